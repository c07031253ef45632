package awserr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/awssim"
)

func api(code string) error { return &smithy.GenericAPIError{Code: code, Message: "simulated"} }

// sdkWrapped wraps err the way the SDK returns an error from a call.
func sdkWrapped(err error) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "RunInstances", Err: &awshttp.ResponseError{
		ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}}, Err: err},
		RequestID:     "req-1",
	}}
}

// TestCodes: each set holds exactly its codes; Has is true for them, bare
// and wrapped, and false for every other code, for errors that only say a
// code in their text, and for nil.
func TestCodes(t *testing.T) {
	tests := []struct {
		name string
		give awserr.Codes
		want []string
	}{
		{name: "EC2Capacity", give: awserr.EC2Capacity, want: []string{"InsufficientCapacity", "InsufficientHostCapacity", "InsufficientInstanceCapacity", "InsufficientReservedInstanceCapacity", "UnfulfillableCapacity"}},
		{name: "EC2Quota", give: awserr.EC2Quota, want: []string{"InstanceLimitExceeded", "VcpuLimitExceeded"}},
		{name: "EC2SpotQuota", give: awserr.EC2SpotQuota, want: []string{"MaxSpotInstanceCountExceeded", "SpotMaxPriceTooLow"}},
		{name: "EC2Unsupported", give: awserr.EC2Unsupported, want: []string{"InvalidInstanceType", "Unsupported"}},
		{name: "EC2NotFound", give: awserr.EC2NotFound, want: []string{"InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound"}},
		{name: "EC2Throttle", give: awserr.EC2Throttle, want: []string{"RequestLimitExceeded", "Throttling", "ThrottlingException"}},
		{name: "SSMThrottle", give: awserr.SSMThrottle, want: []string{"Throttling", "ThrottlingException", "TooManyUpdates"}},
		{name: "CloudWatchThrottle", give: awserr.CloudWatchThrottle, want: []string{"Throttling"}},
		{name: "DynamoDBThrottle", give: awserr.DynamoDBThrottle, want: []string{"ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException"}},
		{name: "SSMNotReady", give: awserr.SSMNotReady, want: []string{"InvalidInstanceId"}},
		{name: "SSMNoInvocation", give: awserr.SSMNoInvocation, want: []string{"InvocationDoesNotExist"}},
		{name: "DynamoDBConditionFailed", give: awserr.DynamoDBConditionFailed, want: []string{"ConditionalCheckFailedException"}},
		{name: "DynamoDBTransactionConflict", give: awserr.DynamoDBTransactionConflict, want: []string{"TransactionConflictException"}},
		{name: "DynamoDBLostRace", give: awserr.DynamoDBLostRace, want: []string{"ConditionalCheckFailed", "TransactionConflict"}},
	}
	// Every code of every set, plus codes that are in none: near misses in
	// case and spelling, and codes nightshift does not branch on.
	others := []string{
		"throttlingexception", "InvalidInstanceID", "InvalidInstanceId.NotFound", "Server.InsufficientInstanceCapacity",
		"InvalidParameterValue", "UnauthorizedOperation", "AccessDeniedException", "IdempotentParameterMismatch",
		"InternalError", "None", "ThrottlingError", "TransactionCanceledException", "UnknownError", "",
	}
	for _, tt := range tests {
		others = append(others, tt.want...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.give.List()); diff != "" {
				t.Errorf("%s.List() (-want +got):\n%s", tt.name, diff)
			}
			for _, code := range tt.want {
				for _, err := range []error{api(code), fmt.Errorf("start i-1: %w", api(code)), sdkWrapped(api(code))} {
					if !tt.give.Has(err) {
						t.Errorf("%s.Has(%v) = false; want true", tt.name, err)
					}
				}
				if !tt.give.Contains(code) {
					t.Errorf("%s.Contains(%q) = false; want true", tt.name, code)
				}
				// A code in the message text alone is no API error.
				for _, err := range []error{errors.New(code), fmt.Errorf("%s: %w", code, context.DeadlineExceeded)} {
					if tt.give.Has(err) {
						t.Errorf("%s.Has(%q) = true; want false: not an API error", tt.name, err)
					}
				}
			}
			for _, code := range others {
				if slices.Contains(tt.want, code) {
					continue
				}
				if tt.give.Has(api(code)) || tt.give.Has(fmt.Errorf("x: %w", api(code))) || tt.give.Contains(code) {
					t.Errorf("%s.Has(%q) = true; want false", tt.name, code)
				}
			}
			for _, err := range []error{nil, context.DeadlineExceeded, context.Canceled, awssim.ErrCrash} {
				if tt.give.Has(err) {
					t.Errorf("%s.Has(%v) = true; want false", tt.name, err)
				}
			}
		})
	}
}

// TestModeled: the SDK's modeled errors carry their code, so a set matches
// them as it matches a generic API error.
func TestModeled(t *testing.T) {
	tests := []struct {
		name string
		set  awserr.Codes
		give error
		want bool
	}{
		{name: "condition failed", set: awserr.DynamoDBConditionFailed, give: &ddbtypes.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}, want: true},
		{name: "wrapped condition failed", set: awserr.DynamoDBConditionFailed, give: fmt.Errorf("put: %w", &ddbtypes.ConditionalCheckFailedException{}), want: true},
		{name: "transaction conflict", set: awserr.DynamoDBTransactionConflict, give: &ddbtypes.TransactionConflictException{}, want: true},
		{name: "not a conflict", set: awserr.DynamoDBTransactionConflict, give: &ddbtypes.ConditionalCheckFailedException{}},
		{name: "cancelled is neither", set: awserr.DynamoDBConditionFailed, give: &ddbtypes.TransactionCanceledException{}},
		{name: "dynamodb throttled", set: awserr.DynamoDBThrottle, give: &ddbtypes.ProvisionedThroughputExceededException{}, want: true},
		{name: "agent not registered", set: awserr.SSMNotReady, give: &ssmtypes.InvalidInstanceId{}, want: true},
		{name: "no invocation yet", set: awserr.SSMNoInvocation, give: &ssmtypes.InvocationDoesNotExist{}, want: true},
		{name: "ssm throttled", set: awserr.SSMThrottle, give: &ssmtypes.ThrottlingException{Message: aws.String("Rate exceeded")}, want: true},
		{name: "ssm too many updates", set: awserr.SSMThrottle, give: &ssmtypes.TooManyUpdates{}, want: true},
		{name: "quotas access denied", set: awserr.ServiceQuotasDenied, give: &sqtypes.AccessDeniedException{}, want: true},
		{name: "quotas dependency denied", set: awserr.ServiceQuotasDenied, give: &sqtypes.DependencyAccessDeniedException{}, want: true},
		{name: "quotas no such resource", set: awserr.ServiceQuotasDenied, give: &sqtypes.NoSuchResourceException{}, want: true},
		{name: "quota request open", set: awserr.ServiceQuotasOpen, give: &sqtypes.ResourceAlreadyExistsException{}, want: true},
		{name: "too many quota requests", set: awserr.ServiceQuotasTooMany, give: &sqtypes.QuotaExceededException{}, want: true},
		{name: "quota request invalid", set: awserr.ServiceQuotasInvalid, give: &sqtypes.IllegalArgumentException{}, want: true},
		{name: "quota state invalid", set: awserr.ServiceQuotasInvalid, give: &sqtypes.InvalidResourceStateException{}, want: true},
		{name: "quotas throttled", set: awserr.ServiceQuotasThrottle, give: &sqtypes.TooManyRequestsException{}, want: true},
		{name: "open is not denied", set: awserr.ServiceQuotasDenied, give: &sqtypes.ResourceAlreadyExistsException{}},
	}
	for _, tt := range tests {
		if got := tt.set.Has(tt.give); got != tt.want {
			t.Errorf("%s: Has(%v) = %v; want %v", tt.name, tt.give, got, tt.want)
		}
	}
}

// TestAnswered: an API error, however wrapped, is an answer; a timeout, a
// cancelled context, a connection error or the simulation's crash is not.
func TestAnswered(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name string
		give error
		want bool
	}{
		{name: "api error", give: api("InsufficientInstanceCapacity"), want: true},
		{name: "unclassified code", give: api("InvalidParameterValue"), want: true},
		{name: "wrapped", give: fmt.Errorf("launch: %w", api("VcpuLimitExceeded")), want: true},
		{name: "as the SDK returns it", give: sdkWrapped(api("RequestLimitExceeded")), want: true},
		{name: "after retries", give: &retry.MaxAttemptsError{Attempt: 3, Err: api("RequestLimitExceeded")}, want: true},
		{name: "modeled", give: &ddbtypes.ConditionalCheckFailedException{}, want: true},
		{name: "joined with a crash", give: errors.Join(awssim.ErrCrash, api("Unsupported")), want: true},
		{name: "nil"},
		{name: "deadline", give: context.DeadlineExceeded},
		{name: "cancelled", give: fmt.Errorf("launch: %w", context.Canceled)},
		{name: "sdk timeout", give: &smithy.OperationError{ServiceID: "EC2", OperationName: "RunInstances", Err: &aws.RequestCanceledError{Err: context.DeadlineExceeded}}},
		{name: "connection reset", give: &smithy.OperationError{ServiceID: "EC2", OperationName: "RunInstances", Err: reset}},
		{name: "simulated crash", give: awssim.ErrCrash},
		{name: "code in the text only", give: errors.New("InsufficientInstanceCapacity")},
	}
	for _, tt := range tests {
		if got := awserr.Answered(tt.give); got != tt.want {
			t.Errorf("%s: Answered(%v) = %v; want %v", tt.name, tt.give, got, tt.want)
		}
	}
}

func TestCode(t *testing.T) {
	tests := []struct {
		give error
		want string
	}{
		{give: api("Unsupported"), want: "Unsupported"},
		{give: sdkWrapped(api("InvalidInstanceID.NotFound")), want: "InvalidInstanceID.NotFound"},
		{give: &ddbtypes.TransactionCanceledException{}, want: "TransactionCanceledException"},
		{give: errors.New("Unsupported"), want: ""},
		{give: nil, want: ""},
	}
	for _, tt := range tests {
		if got := awserr.Code(tt.give); got != tt.want {
			t.Errorf("Code(%v) = %q; want %q", tt.give, got, tt.want)
		}
	}
}

// TestOverHTTP: the real SDK clients against a local server. An error
// response is an answer with its code, EC2's XML and DynamoDB's JSON alike;
// a connection closed before any response is no answer.
func TestOverHTTP(t *testing.T) {
	tests := []struct {
		name    string
		give    http.HandlerFunc
		call    func(context.Context, aws.Config) error
		wantSet awserr.Codes // the set of the answer's code, when want
		want    bool
	}{
		{
			name: "EC2 refuses",
			give: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/xml")
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>We currently do not have sufficient g5.xlarge capacity.</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>`)
			},
			call:    runInstances,
			wantSet: awserr.EC2Capacity,
			want:    true,
		},
		{
			name: "DynamoDB condition fails",
			give: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.0")
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprint(w, `{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}`)
			},
			call: func(ctx context.Context, cfg aws.Config) error {
				_, err := dynamodb.NewFromConfig(cfg).PutItem(ctx, &dynamodb.PutItemInput{
					TableName: aws.String("jobs"), Item: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "JOB#a"}},
				})
				return err
			},
			wantSet: awserr.DynamoDBConditionFailed,
			want:    true,
		},
		{
			name: "EC2 hangs up",
			give: func(w http.ResponseWriter, r *http.Request) {
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
			},
			call: runInstances,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.give)
			defer srv.Close()
			cfg := aws.Config{
				Region:           "us-east-1",
				Credentials:      credentials.NewStaticCredentialsProvider("testing", "testing", ""),
				BaseEndpoint:     aws.String(srv.URL),
				RetryMaxAttempts: 1,
			}
			err := tt.call(t.Context(), cfg)
			if err == nil {
				t.Fatalf("call = nil; want an error")
			}
			if got := awserr.Answered(err); got != tt.want {
				t.Errorf("Answered(%v) = %v; want %v", err, got, tt.want)
			}
			if tt.want && !tt.wantSet.Has(err) {
				t.Errorf("Has(%v) = false; want true (code %q)", err, awserr.Code(err))
			}
		})
	}
}

func runInstances(ctx context.Context, cfg aws.Config) error {
	_, err := ec2.NewFromConfig(cfg).RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String("ami-0123456789abcdef0"), InstanceType: "g5.xlarge",
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ClientToken: aws.String("job-a-1-1"),
	})
	return err
}
