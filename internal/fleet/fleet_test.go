package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/document"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// ignoreNoSerde lets cmp compare SDK structs, which carry an unexported marker.
var ignoreNoSerde = cmpopts.IgnoreTypes(document.NoSerde{})

const (
	testRegion   = "us-east-1"
	testTemplate = "lt-0123456789abcdef0"
	testParam    = "/aws/service/deeplearning/ami/x86_64/test/latest/ami-id"
	testAMI      = "ami-0dlami000000001"
)

// testSubnets are the simulated account's subnets, one per zone; any other
// subnet does not exist (InvalidSubnetID.NotFound).
var testSubnets = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b", "subnet-c": "us-east-1c"}

var (
	_ fleet.EC2        = (*awssim.Cloud)(nil)
	_ fleet.Parameters = (*awssim.Cloud)(nil)
)

// testFleet is a Fleet on the simulated cloud, with the cloud at hand, the
// refusals and lost answers a test injects where the cloud does not model
// them, and a record of the inputs the fleet sent.
type testFleet struct {
	*fleet.Fleet
	cloud *awssim.Cloud
	clock *vclock.Clock
	cfg   fleet.Config

	// fail maps a RunInstances try ("type/market/subnet", see tryKey) to the
	// error code it is refused with: for what the cloud does not model,
	// such as one zone out of capacity, a type a zone does not offer, or
	// throttling.
	fail map[string]string
	// startFail, when set, is the error code StartInstances is refused with.
	startFail string
	// lost maps an operation to the error its caller gets after the call
	// took effect: the answer never arrived.
	lost map[string]error

	runs      []*ec2.RunInstancesInput
	describes []*ec2.DescribeInstancesInput
	asked     []string // GetParameter names
}

func newTestFleet(subnets ...string) *testFleet {
	clock := vclock.New()
	f := &testFleet{cloud: awssim.New(clock), clock: clock, fail: map[string]string{}, lost: map[string]error{}}
	f.cloud.Subnets = maps.Clone(testSubnets)
	f.cloud.Parameters = map[string]string{testParam: testAMI, "/custom/ami": "ami-0custom00000001"}
	f.cloud.Fault = f.fault
	f.cloud.After = func(op string) error { return f.lost[op] }
	f.cfg = fleet.Config{Region: testRegion, LaunchTemplateID: testTemplate, Subnets: subnets, AMIParameter: testParam}
	f.Fleet = fleet.New(f.cloud, f.cloud, f.cfg, clock.Now)
	return f
}

// fault records each call's input and refuses the calls the test said to.
// The cloud runs it before the call, so a call the cloud itself refuses is
// recorded too.
func (f *testFleet) fault(_ string, in any) error {
	switch in := in.(type) {
	case *ec2.RunInstancesInput:
		f.runs = append(f.runs, in)
		if code, ok := f.fail[tryKey(in)]; ok {
			return &smithy.GenericAPIError{Code: code, Message: "injected " + code}
		}
	case *ec2.StartInstancesInput:
		if f.startFail != "" {
			return &smithy.GenericAPIError{Code: f.startFail, Message: "injected " + f.startFail}
		}
	case *ec2.DescribeInstancesInput:
		f.describes = append(f.describes, in)
	case *ssm.GetParameterInput:
		f.asked = append(f.asked, aws.ToString(in.Name))
	}
	return nil
}

// forget clears the cloud's call counts and the recorded inputs: what a
// test set up through the cloud is not what the fleet did.
func (f *testFleet) forget() {
	clear(f.cloud.Calls)
	f.runs, f.describes, f.asked = nil, nil, nil
}

// The markets the tests' own launches use.
const (
	onDemand = "on-demand"
	// oneTimeSpot is spot as the fleet launches it: a one-time request,
	// terminated when interrupted; EC2 refuses to stop it.
	oneTimeSpot = "one-time spot"
	// persistentSpot is a persistent request that stops when interrupted:
	// EC2 stops and starts it like an on-demand instance.
	persistentSpot = "persistent spot"
)

// run launches a g5.xlarge with tags through the cloud, as an earlier
// launch or a person did. It is pending until the clock moves on by
// awssim.DefaultBoot.
func (f *testFleet) run(t *testing.T, market string, tags map[string]string) string {
	t.Helper()
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeG5Xlarge,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance}},
	}
	for k, v := range tags {
		in.TagSpecifications[0].Tags = append(in.TagSpecifications[0].Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	spot := func(kind types.SpotInstanceType, behaviour types.InstanceInterruptionBehavior) *types.InstanceMarketOptionsRequest {
		return &types.InstanceMarketOptionsRequest{
			MarketType:  types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{SpotInstanceType: kind, InstanceInterruptionBehavior: behaviour},
		}
	}
	switch market {
	case oneTimeSpot:
		in.InstanceMarketOptions = spot(types.SpotInstanceTypeOneTime, types.InstanceInterruptionBehaviorTerminate)
	case persistentSpot:
		in.InstanceMarketOptions = spot(types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorStop)
	}
	out, err := f.cloud.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances(%s, %v) = %v", market, tags, err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// describe reads one instance as DescribeInstances answers it.
func (f *testFleet) describe(t *testing.T, id string) types.Instance {
	t.Helper()
	out, err := f.cloud.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil || len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("DescribeInstances(%s) = %+v, %v; want one instance", id, out, err)
	}
	return out.Reservations[0].Instances[0]
}

// state returns the instance's state in the cloud.
func (f *testFleet) state(id string) string {
	for _, i := range f.cloud.Instances() {
		if i.ID == id {
			return i.State
		}
	}
	return "absent"
}

// tryKey names one RunInstances try: "g5.xlarge/spot/subnet-a".
func tryKey(in *ec2.RunInstancesInput) string {
	market := "on-demand"
	if in.InstanceMarketOptions != nil && in.InstanceMarketOptions.MarketType == types.MarketTypeSpot {
		market = "spot"
	}
	return fmt.Sprintf("%s/%s/%s", in.InstanceType, market, aws.ToString(in.SubnetId))
}

func (f *testFleet) tries() []string {
	keys := make([]string, len(f.runs))
	for i, in := range f.runs {
		keys[i] = tryKey(in)
	}
	return keys
}

func (f *testFleet) tokensSent() []string {
	toks := make([]string, len(f.runs))
	for i, in := range f.runs {
		toks[i] = aws.ToString(in.ClientToken)
	}
	return toks
}

func request(market string, instanceTypes ...string) fleet.LaunchRequest {
	j := &job.Job{ID: "resnet-cifar10", Attempt: 1}
	return fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: j.Attempt, Types: instanceTypes, Market: market}
}

const quotaURL = "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/"

// TestLaunchErrors: each kind of EC2 refusal is classified by its code, and
// Launch moves on, or stops, as the kind calls for. The cloud's own model
// refuses where it can (capacity per type, vCPU quotas, unknown types and
// subnets); the rest is injected per try (one zone out of capacity, a type
// a zone does not offer, throttling), with one injected case of each quota
// code besides.
func TestLaunchErrors(t *testing.T) {
	tests := []struct {
		name      string
		types     []string
		market    string
		subnets   []string
		capacity  map[string]int    // the cloud's Capacity
		quota     map[string]int    // the cloud's vCPU quotas
		fail      map[string]string // injected refusals, by try
		wantType  string            // launched type; "" when Launch fails
		wantZone  string            // launched zone, when it says which subnet won
		wantKind  error             // for errors.Is; nil when unclassified
		permanent bool              // the kind is one no retry clears
		wantCode  string            // the AWS error code inside
		wantText  []string
		wantTry   []string
	}{
		{
			name: "capacity in one zone: next subnet", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "InsufficientInstanceCapacity"},
			wantType: "g5.xlarge", wantZone: "us-east-1b",
			wantTry: []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "capacity: next type", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a"},
			capacity: map[string]int{"g5.xlarge": 0},
			wantType: "g4dn.xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-a"},
		},
		{
			name: "capacity everywhere", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			capacity: map[string]int{"g5.xlarge": 0, "g4dn.xlarge": 0},
			wantKind: fleet.ErrCapacity, wantCode: "InsufficientInstanceCapacity",
			wantText: []string{"g4dn.xlarge", "retries"},
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b", "g4dn.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-b"},
		},
		{
			name: "G vCPU quota", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			quota:    map[string]int{awssim.QuotaOnDemandG: 0},
			wantKind: fleet.ErrQuota, wantCode: "VcpuLimitExceeded",
			wantText: []string{"L-DB2E81BA", "Running On-Demand G and VT instances", quotaURL + "L-DB2E81BA"},
			// Another subnet does not help with a quota.
			wantTry: []string{"g5.xlarge/on-demand/subnet-a"},
		},
		{
			name: "P vCPU quota, injected", types: []string{"p3.2xlarge"}, subnets: []string{"subnet-a"},
			fail:     map[string]string{"p3.2xlarge/on-demand/subnet-a": "VcpuLimitExceeded"},
			wantKind: fleet.ErrQuota, wantCode: "VcpuLimitExceeded",
			wantText: []string{"L-417A185B", "Running On-Demand P instances", quotaURL + "L-417A185B"},
			wantTry:  []string{"p3.2xlarge/on-demand/subnet-a"},
		},
		{
			name: "G quota, then a P type", types: []string{"g5.xlarge", "p3.2xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			quota:    map[string]int{awssim.QuotaOnDemandG: 0},
			wantType: "p3.2xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "p3.2xlarge/on-demand/subnet-a"},
		},
		{
			name: "spot quota, injected", types: []string{"g5.xlarge"}, market: "spot", subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/spot/subnet-a": "MaxSpotInstanceCountExceeded"},
			wantKind: fleet.ErrSpotQuota, wantCode: "MaxSpotInstanceCountExceeded",
			wantText: []string{"L-3819A6DF", quotaURL + "L-3819A6DF"},
			wantTry:  []string{"g5.xlarge/spot/subnet-a"},
		},
		{
			name: "spot quota, then on-demand", types: []string{"g5.xlarge"}, market: "spot-then-on-demand", subnets: []string{"subnet-a", "subnet-b"},
			quota:    map[string]int{awssim.QuotaSpotG: 0},
			wantType: "g5.xlarge",
			wantTry:  []string{"g5.xlarge/spot/subnet-a", "g5.xlarge/on-demand/subnet-a"},
		},
		{
			name: "throttled: stop at once", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "RequestLimitExceeded"},
			wantKind: fleet.ErrThrottled, wantCode: "RequestLimitExceeded",
			wantTry: []string{"g5.xlarge/on-demand/subnet-a"},
		},
		{
			name: "unsupported in a zone: next subnet", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "Unsupported"},
			wantType: "g5.xlarge", wantZone: "us-east-1b",
			wantTry: []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "unsupported everywhere", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "Unsupported", "g5.xlarge/on-demand/subnet-b": "Unsupported"},
			wantKind: fleet.ErrUnsupported, wantCode: "Unsupported",
			wantTry: []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "unknown type: stop at once, the deployment's (an error nightshift does not know)", types: []string{"g5.xlarg", "g4dn.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			wantKind: fleet.ErrDeployment, permanent: true, wantCode: "InvalidParameterValue",
			wantTry:  []string{"g5.xlarg/on-demand/subnet-a"},
			wantText: []string{"back-off"},
		},
		{
			name: "unknown subnet: stop at once, the deployment's", types: []string{"g5.xlarge"}, subnets: []string{"subnet-gone", "subnet-a"},
			wantKind: fleet.ErrDeployment, permanent: true, wantCode: "InvalidSubnetID.NotFound",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-gone"},
			wantText: []string{"SubnetIds"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet(tt.subnets...)
			f.fail = tt.fail
			maps.Copy(f.cloud.Capacity, tt.capacity)
			maps.Copy(f.cloud.Quota, tt.quota)
			req := request(tt.market, tt.types...)
			got, err := f.Launch(context.Background(), req)
			if diff := cmp.Diff(tt.wantTry, f.tries()); diff != "" {
				t.Errorf("Launch(%v) tries (-want +got):\n%s", tt.types, diff)
			}
			launched := f.cloud.Instances()
			if tt.wantType != "" {
				if err != nil || got.Type != tt.wantType {
					t.Fatalf("Launch(%v) = %+v, %v; want a %s", tt.types, got, err, tt.wantType)
				}
				if len(launched) != 1 || launched[0].ID != got.ID {
					t.Errorf("Launch(%v) = %s; the cloud holds %v; want that one instance", tt.types, got.ID, launched)
				}
				if tt.wantZone != "" && got.Zone != tt.wantZone {
					t.Errorf("Launch(%v) zone = %s; want %s", tt.types, got.Zone, tt.wantZone)
				}
				return
			}
			if err == nil {
				t.Fatalf("Launch(%v) = %+v; want an error", tt.types, got)
			}
			if len(launched) != 0 {
				t.Errorf("Launch(%v) = %v, and the cloud holds %v; want no instance", tt.types, err, launched)
			}
			var le *fleet.LaunchError
			if tt.wantKind == nil {
				if errors.As(err, &le) || fleet.Transient(err) {
					t.Errorf("Launch(%v) = %v; want an unclassified, permanent error", tt.types, err)
				}
			} else {
				if !errors.Is(err, tt.wantKind) || !errors.As(err, &le) {
					t.Errorf("Launch(%v) = %v; want a *LaunchError of kind %v", tt.types, err, tt.wantKind)
				}
				if fleet.Transient(err) == tt.permanent {
					t.Errorf("Transient(%v) = %v; want %v", err, !tt.permanent, !tt.permanent)
				}
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
				t.Errorf("Launch(%v) = %v; want AWS error code %s inside", tt.types, err, tt.wantCode)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Launch(%v) = %q; want the text to contain %q", tt.types, err, s)
				}
			}
		})
	}
}

// TestLaunchMarkets: spot-then-on-demand tries spot first for each type, in
// every subnet, then on-demand; each market gets its own settings.
func TestLaunchMarkets(t *testing.T) {
	f := newTestFleet("subnet-a", "subnet-b")
	f.cloud.Capacity["g5.xlarge"], f.cloud.Capacity["g4dn.xlarge"] = 0, 0
	req := request("spot-then-on-demand", "g5.xlarge", "g4dn.xlarge")
	if _, err := f.Launch(context.Background(), req); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch(%+v) = %v; want ErrCapacity", req, err)
	}
	want := []string{
		"g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-b", "g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b",
		"g4dn.xlarge/spot/subnet-a", "g4dn.xlarge/spot/subnet-b", "g4dn.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-b",
	}
	if diff := cmp.Diff(want, f.tries()); diff != "" {
		t.Errorf("Launch(%+v) tries (-want +got):\n%s", req, diff)
	}
	spot := &types.InstanceMarketOptionsRequest{
		MarketType: types.MarketTypeSpot,
		SpotOptions: &types.SpotMarketOptions{
			SpotInstanceType: types.SpotInstanceTypeOneTime, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
		},
	}
	for _, in := range f.runs {
		wantMarket, wantShutdown := (*types.InstanceMarketOptionsRequest)(nil), types.ShutdownBehaviorStop
		if strings.Contains(tryKey(in), "/spot/") {
			// A one-time spot instance cannot be stopped.
			wantMarket, wantShutdown = spot, types.ShutdownBehaviorTerminate
		}
		if diff := cmp.Diff(wantMarket, in.InstanceMarketOptions, ignoreNoSerde); diff != "" {
			t.Errorf("try %s market options (-want +got):\n%s", tryKey(in), diff)
		}
		if in.InstanceInitiatedShutdownBehavior != wantShutdown {
			t.Errorf("try %s shutdown behaviour = %s; want %s", tryKey(in), in.InstanceInitiatedShutdownBehavior, wantShutdown)
		}
	}
}

// TestLaunchClientTokens: each try has its own client token, derived only
// from the request, so a Launch repeated after a crash sends the same
// tokens and EC2 returns the instance it launched the first time.
func TestLaunchClientTokens(t *testing.T) {
	// The longest id with a large attempt and launch try.
	j := &job.Job{ID: strings.Repeat("x", 64), Attempt: 11, LaunchTry: 1234}
	req := fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: j.Attempt,
		Types: []string{"g5.xlarge", "g4dn.xlarge", "g6.xlarge"}, Market: "spot-then-on-demand"}

	var runs [][]string
	for range 2 {
		f := newTestFleet("subnet-a", "subnet-b", "subnet-c")
		for _, typ := range req.Types {
			f.cloud.Capacity[typ] = 0
		}
		// The cloud refuses a token over EC2's 64 characters before it
		// looks at capacity: ErrCapacity also says every token was taken.
		if _, err := f.Launch(context.Background(), req); !errors.Is(err, fleet.ErrCapacity) {
			t.Fatalf("Launch(%+v) = %v; want ErrCapacity", req, err)
		}
		runs = append(runs, f.tokensSent())
	}
	if diff := cmp.Diff(runs[0], runs[1]); diff != "" {
		t.Errorf("tokens of two identical Launch calls differ (-first +second):\n%s", diff)
	}
	seen := map[string]bool{}
	for _, tok := range runs[0] {
		if len(tok) == 0 || len(tok) > 64 {
			t.Errorf("token %q has %d characters; want 1 to 64 (EC2's limit)", tok, len(tok))
		}
		if seen[tok] {
			t.Errorf("token %q sent for two different tries; want one per try", tok)
		}
		seen[tok] = true
	}
	if len(runs[0]) != 18 {
		t.Errorf("tries = %d; want 18 (3 types × 2 markets × 3 subnets)", len(runs[0]))
	}

	// A crash after RunInstances: the repeated Launch gets the same instance.
	f := newTestFleet("subnet-a")
	first, err := f.Launch(context.Background(), request("on-demand", "g5.xlarge"))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	again, err := f.Launch(context.Background(), request("on-demand", "g5.xlarge"))
	if err != nil || again.ID != first.ID {
		t.Errorf("Launch repeated = %s, %v; want the first launch's %s", again.ID, err, first.ID)
	}
	if n := len(f.cloud.Instances()); n != 1 {
		t.Errorf("instances after a repeated Launch = %d; want 1", n)
	}
}

// optionsEC2 is the cloud, recording the SDK option funcs each
// RunInstances gets: the cloud takes them and ignores them, so only a
// wrapper sees what the fleet asked of the SDK.
type optionsEC2 struct {
	*awssim.Cloud
	runOpts [][]func(*ec2.Options)
}

func (o *optionsEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	o.runOpts = append(o.runOpts, optFns)
	return o.Cloud.RunInstances(ctx, in, optFns...)
}

// TestLaunchNoSDKRetries: RunInstances runs with one attempt: a capacity
// error comes back as HTTP 500, which the SDK would retry for seconds.
func TestLaunchNoSDKRetries(t *testing.T) {
	tf := newTestFleet("subnet-a")
	tf.cloud.Capacity["g5.xlarge"] = 0
	e := &optionsEC2{Cloud: tf.cloud}
	f := fleet.New(e, tf.cloud, tf.cfg, tf.clock.Now)
	if _, err := f.Launch(context.Background(), request("on-demand", "g5.xlarge", "g4dn.xlarge")); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if len(e.runOpts) != 2 {
		t.Fatalf("RunInstances calls = %d; want 2", len(e.runOpts))
	}
	for i, fns := range e.runOpts {
		o := ec2.Options{RetryMaxAttempts: 3}
		for _, fn := range fns {
			fn(&o)
		}
		if o.RetryMaxAttempts != 1 {
			t.Errorf("RunInstances call %d: RetryMaxAttempts = %d; want 1", i+1, o.RetryMaxAttempts)
		}
	}
}

// TestLaunchInput: the whole RunInstances request of an on-demand launch,
// and the instance the cloud says it launched.
func TestLaunchInput(t *testing.T) {
	f := newTestFleet("subnet-a")
	req := request("on-demand", "g5.xlarge")
	req.VolumeGB = 300
	launchedAt := f.clock.Now()
	got, err := f.Launch(context.Background(), req)
	if err != nil {
		t.Fatalf("Launch(%+v) = %v", req, err)
	}
	tags := []types.Tag{
		{Key: aws.String("nightshift:managed"), Value: aws.String("true")},
		{Key: aws.String("nightshift:pool"), Value: aws.String("default")},
		{Key: aws.String("nightshift:job"), Value: aws.String("resnet-cifar10")},
		{Key: aws.String("nightshift:attempt"), Value: aws.String("1")},
		{Key: aws.String("Name"), Value: aws.String("nightshift default resnet-cifar10")},
	}
	want := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		ClientToken:  aws.String(req.Token + "-1"),
		ImageId:      aws.String(testAMI),
		InstanceType: types.InstanceTypeG5Xlarge,
		SubnetId:     aws.String("subnet-a"),
		LaunchTemplate: &types.LaunchTemplateSpecification{
			LaunchTemplateId: aws.String(testTemplate), Version: aws.String("$Latest"),
		},
		// Every field, as in the launch template: a partial set here may
		// leave the others at EC2's defaults rather than the template's.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpEndpoint:            types.InstanceMetadataEndpointStateEnabled,
			HttpTokens:              types.HttpTokensStateRequired,
			HttpPutResponseHopLimit: aws.Int32(2),
			InstanceMetadataTags:    types.InstanceMetadataTagsStateEnabled,
			HttpProtocolIpv6:        types.InstanceMetadataProtocolStateDisabled,
		},
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop,
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsBlockDevice{
				VolumeSize: aws.Int32(300), VolumeType: types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
			},
		}},
	}
	if len(f.runs) != 1 {
		t.Fatalf("RunInstances calls = %d; want 1", len(f.runs))
	}
	if diff := cmp.Diff(want, f.runs[0], ignoreNoSerde); diff != "" {
		t.Errorf("RunInstances input (-want +got):\n%s", diff)
	}
	wantInst := fleet.Instance{
		ID: got.ID, Type: "g5.xlarge", State: "pending", Pool: "default", Job: "resnet-cifar10", Attempt: 1, Managed: true,
		LaunchTime: launchedAt, Zone: testSubnets["subnet-a"],
		Tags: tagMap(tags),
	}
	if diff := cmp.Diff(wantInst, got); diff != "" {
		t.Errorf("Launch(%+v) (-want +got):\n%s", req, diff)
	}
}

// TestLaunchAMI: the AMI is the request's id, or the value of the request's
// resolve:ssm: parameter, or of the deployment's parameter; parameters are
// cached for a while; a parameter that cannot be read launches nothing.
func TestLaunchAMI(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantImage string
		wantAsked []string
	}{
		{name: "deployment parameter", give: "", wantImage: testAMI, wantAsked: []string{testParam}},
		{name: "explicit id", give: "ami-0explicit000001", wantImage: "ami-0explicit000001", wantAsked: nil},
		{name: "job's parameter", give: "resolve:ssm:/custom/ami", wantImage: "ami-0custom00000001", wantAsked: []string{"/custom/ami"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			req := request("on-demand", "g5.xlarge")
			req.AMI = tt.give
			for range 3 {
				if _, err := f.Launch(context.Background(), req); err != nil {
					t.Fatalf("Launch(AMI %q) = %v", tt.give, err)
				}
				req.Token += "x" // a new launch, not a retry
			}
			if len(f.runs) != 3 {
				t.Errorf("RunInstances calls for three launches = %d; want 3", len(f.runs))
			}
			for _, in := range f.runs {
				if got := aws.ToString(in.ImageId); got != tt.wantImage {
					t.Errorf("Launch(AMI %q) ImageId = %s; want %s", tt.give, got, tt.wantImage)
				}
			}
			if diff := cmp.Diff(tt.wantAsked, f.asked); diff != "" {
				t.Errorf("GetParameter names for three launches (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("cache expires", func(t *testing.T) {
		f := newTestFleet()
		req := request("on-demand", "g5.xlarge")
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(14 * time.Minute)
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if n := len(f.asked); n != 1 {
			t.Errorf("GetParameter calls within 14 min = %d; want 1", n)
		}
		f.clock.Advance(2 * time.Minute)
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if n := len(f.asked); n != 2 {
			t.Errorf("GetParameter calls after 16 min = %d; want 2", n)
		}
	})

	t.Run("missing parameter", func(t *testing.T) {
		f := newTestFleet()
		req := request("on-demand", "g5.xlarge")
		req.AMI = "resolve:ssm:/no/such/parameter"
		_, err := f.Launch(context.Background(), req)
		var api smithy.APIError
		if !errors.As(err, &api) || api.ErrorCode() != "ParameterNotFound" {
			t.Errorf("Launch(AMI %q) = %v; want ParameterNotFound", req.AMI, err)
		}
		if n := f.cloud.Calls["RunInstances"]; n != 0 {
			t.Errorf("RunInstances calls = %d; want 0", n)
		}
	})
}

// TestList: List reads only managed instances — terminated ones too, so a
// caller can tell an instance gone from one not listed yet — a thousand per
// page, and converts them.
func TestList(t *testing.T) {
	f := newTestFleet()
	managed := map[string]string{"nightshift:managed": "true", "nightshift:pool": "gpu", "nightshift:job": "bert", "nightshift:attempt": "2"}
	launchedAt := f.clock.Now()
	var want, stop, terminate []string
	for range 2500 {
		want = append(want, f.run(t, onDemand, managed))
	}
	for range 5 {
		// Spot instances that EC2 lets stop: those of a persistent request.
		id := f.run(t, persistentSpot, managed)
		want, stop = append(want, id), append(stop, id)
	}
	for range 3 {
		id := f.run(t, onDemand, managed)
		want, terminate = append(want, id), append(terminate, id)
	}
	for range 7 {
		f.cloud.Launch("g5.xlarge", map[string]string{"Name": "notebook"}, false)
	}
	f.cloud.Launch("g5.xlarge", map[string]string{"nightshift:managed": "false"}, false)
	f.clock.Advance(awssim.DefaultBoot)
	ctx := context.Background()
	if _, err := f.cloud.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: stop}); err != nil {
		t.Fatalf("StopInstances(%v) = %v", stop, err)
	}
	if _, err := f.cloud.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: terminate}); err != nil {
		t.Fatalf("TerminateInstances(%v) = %v", terminate, err)
	}
	f.clock.Advance(awssim.DefaultStop)
	states := map[string]int{}
	for _, i := range f.cloud.Instances() {
		states[i.State]++
	}
	if diff := cmp.Diff(map[string]int{"running": 2508, "stopped": 5, "terminated": 3}, states); diff != "" {
		t.Fatalf("instances by state before List (-want +got):\n%s", diff)
	}
	f.forget()

	got, err := f.List(ctx)
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	ids := make([]string, len(got))
	for i, in := range got {
		ids[i] = in.ID
	}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("List() ids (-want +got):\n%s", diff)
	}
	if n := f.cloud.Calls["DescribeInstances"]; n != 3 {
		t.Errorf("DescribeInstances calls for 2508 instances = %d; want 3", n)
	}
	if last := got[len(got)-1]; last.State != fleet.StateTerminated || last.Live() {
		t.Errorf("List()[last] = %s, Live %v; want a terminated instance, not live", last.State, last.Live())
	}
	for _, in := range f.describes {
		if aws.ToInt32(in.MaxResults) != 1000 {
			t.Errorf("DescribeInstances MaxResults = %d; want 1000", aws.ToInt32(in.MaxResults))
		}
	}
	wantSpot := fleet.Instance{
		ID: want[2500], Type: "g5.xlarge", State: "stopped", Pool: "gpu", Job: "bert", Attempt: 2, Spot: true, Managed: true,
		LaunchTime: launchedAt, Zone: awssim.DefaultZone, Tags: managed,
	}
	if diff := cmp.Diff(wantSpot, got[2500]); diff != "" {
		t.Errorf("List()[2500] (-want +got):\n%s", diff)
	}
}

// TestNotManaged: the fleet refuses to act on an instance without the
// managed tag, before any EC2 call (S4).
func TestNotManaged(t *testing.T) {
	f := newTestFleet()
	id := f.cloud.Launch("g5.xlarge", map[string]string{"Name": "notebook"}, false)
	f.clock.Advance(awssim.DefaultBoot)
	inst := fleet.Instance{ID: id, Type: "g5.xlarge", State: "running"}
	tests := []struct {
		name string
		give func(context.Context, fleet.Instance) error
	}{
		{name: "Stop", give: f.Stop},
		{name: "Start", give: f.Start},
		{name: "Terminate", give: f.Terminate},
	}
	for _, tt := range tests {
		if err := tt.give(context.Background(), inst); !errors.Is(err, fleet.ErrNotManaged) {
			t.Errorf("%s(%s) = %v; want ErrNotManaged", tt.name, id, err)
		}
	}
	if diff := cmp.Diff(map[string]int{}, f.cloud.Calls); diff != "" {
		t.Errorf("AWS calls (-want +got):\n%s", diff)
	}
	if got := f.state(id); got != "running" {
		t.Errorf("the notebook is %s; want running", got)
	}
}

// TestStop: an on-demand instance is stopped; a spot instance, which
// cannot be stopped, is terminated.
func TestStop(t *testing.T) {
	tests := []struct {
		name      string
		market    string
		want      map[string]int
		wantState string
	}{
		{name: "on-demand", market: onDemand, want: map[string]int{"StopInstances": 1}, wantState: "stopping"},
		{name: "spot", market: oneTimeSpot, want: map[string]int{"TerminateInstances": 1}, wantState: "shutting-down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			id := f.run(t, tt.market, map[string]string{"nightshift:managed": "true"})
			f.clock.Advance(awssim.DefaultBoot)
			f.forget()
			inst := fleet.Instance{ID: id, State: "running", Spot: tt.market != onDemand, Managed: true}
			if err := f.Stop(context.Background(), inst); err != nil {
				t.Fatalf("Stop(%+v) = %v", inst, err)
			}
			if diff := cmp.Diff(tt.want, f.cloud.Calls); diff != "" {
				t.Errorf("Stop(%+v) AWS calls (-want +got):\n%s", inst, diff)
			}
			if got := f.state(id); got != tt.wantState {
				t.Errorf("Stop(%+v) left the instance %s; want %s", inst, got, tt.wantState)
			}
		})
	}
}

// TestLaunchNoAnswer: a launch AWS did not answer wraps ErrNoAnswer around
// what happened, so the caller keeps its intent and repeats the launch; the
// repeat, with the same token, gets the instance the lost answer was for.
// A launch AWS refused does not.
func TestLaunchNoAnswer(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name      string
		lost      map[string]error // the calls whose answers are lost, after they took effect
		capacity  map[string]int
		noParam   bool // the deployment's AMI parameter does not exist
		types     []string
		want      bool  // errors.Is(err, ErrNoAnswer)
		wantInner error // errors.Is(err, wantInner)
	}{
		{name: "connection reset", lost: map[string]error{"RunInstances": reset}, types: []string{"g5.xlarge"}, want: true, wantInner: reset},
		{name: "timeout", lost: map[string]error{"RunInstances": context.DeadlineExceeded}, types: []string{"g5.xlarge"}, want: true, wantInner: context.DeadlineExceeded},
		{name: "AMI lookup timed out", lost: map[string]error{"GetParameter": context.DeadlineExceeded}, types: []string{"g5.xlarge"}, want: true, wantInner: context.DeadlineExceeded},
		{name: "capacity refused", capacity: map[string]int{"g5.xlarge": 0}, types: []string{"g5.xlarge"}, wantInner: fleet.ErrCapacity},
		{name: "bad request refused", types: []string{"g5.xlarg"}},
		{name: "AMI parameter missing", noParam: true, types: []string{"g5.xlarge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			f.lost = tt.lost
			maps.Copy(f.cloud.Capacity, tt.capacity)
			if tt.noParam {
				delete(f.cloud.Parameters, testParam)
			}
			req := request("on-demand", tt.types...)
			_, err := f.Launch(context.Background(), req)
			if err == nil {
				t.Fatalf("Launch(%v) = nil error; want one", tt.types)
			}
			if got := errors.Is(err, fleet.ErrNoAnswer); got != tt.want {
				t.Errorf("Launch(%v) = %v; errors.Is(ErrNoAnswer) = %v; want %v", tt.types, err, got, tt.want)
			}
			if tt.wantInner != nil && !errors.Is(err, tt.wantInner) {
				t.Errorf("Launch(%v) = %v; want %v inside", tt.types, err, tt.wantInner)
			}
			if tt.lost["RunInstances"] == nil {
				return
			}
			before := f.cloud.Instances()
			f.lost = nil
			inst, err := f.Launch(context.Background(), req)
			after := f.cloud.Instances()
			if err != nil || len(before) != 1 || len(after) != 1 || inst.ID != before[0].ID {
				t.Errorf("Launch(%v) again = %+v, %v with %d instances, %d before; want the one launched before, %v", tt.types, inst, err, len(after), len(before), before)
			}
		})
	}
}

// TestStartErrors: Start classifies a capacity or quota refusal like Launch
// does, so the scheduler leaves the job waiting; a missing instance is
// NotFound. The cloud models capacity on start; it does not check vCPU
// quotas on start, so that refusal is injected.
func TestStartErrors(t *testing.T) {
	tests := []struct {
		name      string
		capacity  map[string]int
		startFail string
		wantKind  error
		wantCode  string
	}{
		{name: "no capacity", capacity: map[string]int{"g5.xlarge": 0}, wantKind: fleet.ErrCapacity, wantCode: "InsufficientInstanceCapacity"},
		{name: "vCPU quota, injected", startFail: "VcpuLimitExceeded", wantKind: fleet.ErrQuota, wantCode: "VcpuLimitExceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			id := f.stopped(t)
			maps.Copy(f.cloud.Capacity, tt.capacity)
			f.startFail = tt.startFail
			inst := fleet.Instance{ID: id, Type: "g5.xlarge", State: "stopped", Managed: true}
			err := f.Start(context.Background(), inst)
			if !errors.Is(err, tt.wantKind) || !fleet.Transient(err) {
				t.Errorf("Start(%s) = %v; want a transient %v", id, err, tt.wantKind)
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
				t.Errorf("Start(%s) = %v; want AWS error code %s inside", id, err, tt.wantCode)
			}
			if got := f.state(id); got != "stopped" {
				t.Errorf("Start(%s) refused left the instance %s; want stopped", id, got)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		f := newTestFleet()
		gone := fleet.Instance{ID: "i-00000000000000999", Managed: true}
		if err := f.Start(context.Background(), gone); !fleet.IsNotFound(err) {
			t.Errorf("Start(%s) = %v; want IsNotFound", gone.ID, err)
		}
	})
}

// stopped returns a managed on-demand instance, launched, running, then
// stopped.
func (f *testFleet) stopped(t *testing.T) string {
	t.Helper()
	id := f.run(t, onDemand, map[string]string{"nightshift:managed": "true"})
	f.clock.Advance(awssim.DefaultBoot)
	if _, err := f.cloud.StopInstances(context.Background(), &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("StopInstances(%s) = %v", id, err)
	}
	f.clock.Advance(awssim.DefaultStop)
	return id
}

// TestStartNoAnswer: a start whose answer is lost returns what happened;
// the instance is starting all the same, and a repeated Start succeeds.
func TestStartNoAnswer(t *testing.T) {
	f := newTestFleet()
	id := f.stopped(t)
	inst := fleet.Instance{ID: id, Type: "g5.xlarge", State: "stopped", Managed: true}
	f.lost = map[string]error{"StartInstances": context.DeadlineExceeded}
	if err := f.Start(context.Background(), inst); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start(%s) with its answer lost = %v; want %v inside", id, err, context.DeadlineExceeded)
	}
	if got := f.state(id); got != "pending" {
		t.Errorf("Start(%s) with its answer lost left the instance %s; want pending", id, got)
	}
	f.lost = nil
	if err := f.Start(context.Background(), inst); err != nil {
		t.Errorf("Start(%s) again = %v; want nil", id, err)
	}
}

// TestClassification: which codes are transient and which mean not found.
func TestClassification(t *testing.T) {
	tests := []struct {
		give          error
		wantTransient bool
		wantNotFound  bool
	}{
		{give: &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound"}, wantNotFound: true},
		{give: &smithy.GenericAPIError{Code: "InvalidInstanceID.Malformed"}, wantNotFound: true},
		{give: fmt.Errorf("stop i-1: %w", &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound"}), wantNotFound: true},
		{give: &smithy.GenericAPIError{Code: "UnauthorizedOperation"}},
		{give: context.DeadlineExceeded},
		{give: &fleet.LaunchError{Kind: fleet.ErrCapacity}, wantTransient: true},
		{give: fmt.Errorf("start: %w", &fleet.LaunchError{Kind: fleet.ErrQuota}), wantTransient: true},
	}
	for _, tt := range tests {
		if got := fleet.Transient(tt.give); got != tt.wantTransient {
			t.Errorf("Transient(%v) = %v; want %v", tt.give, got, tt.wantTransient)
		}
		if got := fleet.IsNotFound(tt.give); got != tt.wantNotFound {
			t.Errorf("IsNotFound(%v) = %v; want %v", tt.give, got, tt.wantNotFound)
		}
	}
}

// TestTag: Tag refuses an instance without the managed tag before any EC2
// call; on a managed one it sets the tag, replacing an earlier value as
// EC2's CreateTags does.
func TestTag(t *testing.T) {
	ctx := context.Background()
	f := newTestFleet()
	stranger := f.cloud.Launch("g5.xlarge", map[string]string{"Name": "someone's notebook"}, false)
	if err := f.Tag(ctx, fleet.Instance{ID: stranger}, fleet.TagReady, "90"); !errors.Is(err, fleet.ErrNotManaged) || f.cloud.Calls["CreateTags"] != 0 {
		t.Errorf("Tag(unmanaged) = %v with %d calls; want ErrNotManaged and no call", err, f.cloud.Calls["CreateTags"])
	}

	id := f.run(t, onDemand, map[string]string{fleet.TagManaged: "true"})
	inst := fleet.FromEC2(f.describe(t, id))
	for _, v := range []string{"90", "75"} {
		if err := f.Tag(ctx, inst, fleet.TagReady, v); err != nil {
			t.Fatalf("Tag(%s, %s=%s) = %v", id, fleet.TagReady, v, err)
		}
	}
	if got := fleet.FromEC2(f.describe(t, id)).Tags[fleet.TagReady]; got != "75" {
		t.Errorf("tag %s after Tag 90 then 75 = %q; want 75", fleet.TagReady, got)
	}
}
