package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/document"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// ignoreNoSerde lets cmp compare SDK structs, which carry an unexported marker.
var ignoreNoSerde = cmpopts.IgnoreTypes(document.NoSerde{})

const (
	testRegion   = "us-east-1"
	testTemplate = "lt-0123456789abcdef0"
	testParam    = "/aws/service/deeplearning/ami/x86_64/test/latest/ami-id"
	testAMI      = "ami-0dlami000000001"
)

// fakeEC2 is an in-memory EC2: instances with tags and states, ClientToken
// idempotency as EC2 has it, RunInstances failures by try, and a record of
// every call.
type fakeEC2 struct {
	mu        sync.Mutex
	instances map[string]*types.Instance
	order     []string
	tokens    map[string]string
	// fail maps a try ("type/market/subnet", see tryKey) to the error code
	// RunInstances fails it with.
	fail map[string]string
	// startFail, when set, is the error code StartInstances fails with.
	startFail string
	// lost, when set, is what RunInstances returns after launching as
	// asked: the response never arrived.
	lost error

	runs      []*ec2.RunInstancesInput
	runOpts   [][]func(*ec2.Options)
	describes []*ec2.DescribeInstancesInput
	calls     map[string]int
}

var _ fleet.EC2 = (*fakeEC2)(nil)

func newFakeEC2() *fakeEC2 {
	return &fakeEC2{instances: map[string]*types.Instance{}, tokens: map[string]string{}, fail: map[string]string{}, calls: map[string]int{}}
}

// tryKey names one RunInstances try: "g5.xlarge/spot/subnet-a".
func tryKey(in *ec2.RunInstancesInput) string {
	market := "on-demand"
	if in.InstanceMarketOptions != nil && in.InstanceMarketOptions.MarketType == types.MarketTypeSpot {
		market = "spot"
	}
	return fmt.Sprintf("%s/%s/%s", in.InstanceType, market, aws.ToString(in.SubnetId))
}

// add puts an instance in the fake, as if launched earlier.
func (f *fakeEC2) add(state types.InstanceStateName, spot bool, tags map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := fmt.Sprintf("i-%017d", len(f.order)+1)
	in := &types.Instance{
		InstanceId: aws.String(id), InstanceType: types.InstanceTypeG5Xlarge,
		State:      &types.InstanceState{Name: state},
		LaunchTime: aws.Time(time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC)),
	}
	if spot {
		in.InstanceLifecycle = types.InstanceLifecycleTypeSpot
	}
	for k, v := range tags {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	f.instances[id] = in
	f.order = append(f.order, id)
	return id
}

func (f *fakeEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["RunInstances"]++
	f.runs = append(f.runs, in)
	f.runOpts = append(f.runOpts, optFns)
	if code, ok := f.fail[tryKey(in)]; ok {
		return nil, &smithy.GenericAPIError{Code: code, Message: "fake " + code}
	}
	if id, ok := f.tokens[aws.ToString(in.ClientToken)]; ok {
		return &ec2.RunInstancesOutput{Instances: []types.Instance{*f.instances[id]}}, nil
	}
	id := fmt.Sprintf("i-%017d", len(f.order)+1)
	inst := &types.Instance{
		InstanceId: aws.String(id), InstanceType: in.InstanceType, ImageId: in.ImageId, SubnetId: in.SubnetId,
		State:      &types.InstanceState{Name: types.InstanceStateNamePending},
		LaunchTime: aws.Time(time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)),
	}
	if in.InstanceMarketOptions != nil && in.InstanceMarketOptions.MarketType == types.MarketTypeSpot {
		inst.InstanceLifecycle = types.InstanceLifecycleTypeSpot
	}
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType == types.ResourceTypeInstance {
			inst.Tags = append(inst.Tags, ts.Tags...)
		}
	}
	f.instances[id] = inst
	f.order = append(f.order, id)
	if tok := aws.ToString(in.ClientToken); tok != "" {
		f.tokens[tok] = id
	}
	if f.lost != nil {
		return nil, f.lost
	}
	return &ec2.RunInstancesOutput{Instances: []types.Instance{*inst}}, nil
}

// DescribeInstances supports what List uses: tag:K and instance-state-name
// filters, and pages of MaxResults instances.
func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["DescribeInstances"]++
	f.describes = append(f.describes, in)
	var match []types.Instance
	for _, id := range f.order {
		if i := f.instances[id]; matches(*i, in.Filters) {
			match = append(match, *i)
		}
	}
	start := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		start, _ = strconv.Atoi(tok)
	}
	end := len(match)
	if n := int(aws.ToInt32(in.MaxResults)); n > 0 {
		end = min(start+n, len(match))
	}
	out := &ec2.DescribeInstancesOutput{}
	for _, i := range match[start:end] {
		out.Reservations = append(out.Reservations, types.Reservation{Instances: []types.Instance{i}})
	}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

func matches(i types.Instance, filters []types.Filter) bool {
	for _, fl := range filters {
		name := aws.ToString(fl.Name)
		var v string
		switch {
		case name == "instance-state-name":
			v = string(i.State.Name)
		case strings.HasPrefix(name, "tag:"):
			v = tagMap(i.Tags)[strings.TrimPrefix(name, "tag:")]
		default:
			panic("fake DescribeInstances: unsupported filter " + name)
		}
		if !slices.Contains(fl.Values, v) {
			return false
		}
	}
	return true
}

func (f *fakeEC2) setState(op string, ids []string, to types.InstanceStateName) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	for _, id := range ids {
		i, ok := f.instances[id]
		if !ok {
			return &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound"}
		}
		i.State = &types.InstanceState{Name: to}
	}
	return nil
}

func (f *fakeEC2) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	if f.startFail != "" {
		f.mu.Lock()
		f.calls["StartInstances"]++
		f.mu.Unlock()
		return nil, &smithy.GenericAPIError{Code: f.startFail}
	}
	return &ec2.StartInstancesOutput{}, f.setState("StartInstances", in.InstanceIds, types.InstanceStateNamePending)
}

func (f *fakeEC2) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	return &ec2.StopInstancesOutput{}, f.setState("StopInstances", in.InstanceIds, types.InstanceStateNameStopping)
}

func (f *fakeEC2) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	return &ec2.TerminateInstancesOutput{}, f.setState("TerminateInstances", in.InstanceIds, types.InstanceStateNameShuttingDown)
}

func (f *fakeEC2) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["CreateTags"]++
	for _, id := range in.Resources {
		i, ok := f.instances[id]
		if !ok {
			return nil, &smithy.GenericAPIError{Code: "InvalidInstanceID.NotFound"}
		}
		for _, t := range in.Tags {
			i.Tags = append(i.Tags, t)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}

func (f *fakeEC2) tries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, len(f.runs))
	for i, in := range f.runs {
		keys[i] = tryKey(in)
	}
	return keys
}

func (f *fakeEC2) tokensSent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	toks := make([]string, len(f.runs))
	for i, in := range f.runs {
		toks[i] = aws.ToString(in.ClientToken)
	}
	return toks
}

func (f *fakeEC2) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// fakeParams is an SSM parameter store that records the names asked for.
type fakeParams struct {
	mu     sync.Mutex
	values map[string]string
	asked  []string
	err    error // when set, what every GetParameter returns
}

var _ fleet.Parameters = (*fakeParams)(nil)

func (p *fakeParams) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	name := aws.ToString(in.Name)
	p.asked = append(p.asked, name)
	if p.err != nil {
		return nil, p.err
	}
	v, ok := p.values[name]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ParameterNotFound"}
	}
	return &ssm.GetParameterOutput{Parameter: &ssmtypes.Parameter{Name: in.Name, Value: aws.String(v)}}, nil
}

func (p *fakeParams) names() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.asked)
}

// testFleet is a Fleet on fakes, with the fakes at hand.
type testFleet struct {
	*fleet.Fleet
	ec2    *fakeEC2
	params *fakeParams
	clock  *clock
}

func newTestFleet(subnets ...string) *testFleet {
	tf := &testFleet{
		ec2:    newFakeEC2(),
		params: &fakeParams{values: map[string]string{testParam: testAMI, "/custom/ami": "ami-0custom00000001"}},
		clock:  &clock{t: time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)},
	}
	tf.Fleet = fleet.New(tf.ec2, tf.params, fleet.Config{
		Region: testRegion, LaunchTemplateID: testTemplate, Subnets: subnets, AMIParameter: testParam,
	}, tf.clock.now)
	return tf
}

func request(market string, instanceTypes ...string) fleet.LaunchRequest {
	j := &job.Job{ID: "resnet-cifar10", Attempt: 1}
	return fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: j.Attempt, Types: instanceTypes, Market: market}
}

const quotaURL = "https://us-east-1.console.aws.amazon.com/servicequotas/home/services/ec2/quotas/"

// TestLaunchErrors: each kind of EC2 refusal is classified by its code, and
// Launch moves on, or stops, as the kind calls for.
func TestLaunchErrors(t *testing.T) {
	tests := []struct {
		name     string
		types    []string
		market   string
		subnets  []string
		fail     map[string]string
		wantType string // launched type; "" when Launch fails
		wantKind error  // for errors.Is; nil when unclassified
		wantCode string // the AWS error code inside
		wantText []string
		wantTry  []string
	}{
		{
			name: "capacity: next subnet", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "InsufficientInstanceCapacity"},
			wantType: "g5.xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "capacity: next type", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "InsufficientInstanceCapacity"},
			wantType: "g4dn.xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-a"},
		},
		{
			name: "capacity everywhere", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail: map[string]string{
				"g5.xlarge/on-demand/subnet-a": "InsufficientInstanceCapacity", "g5.xlarge/on-demand/subnet-b": "InsufficientInstanceCapacity",
				"g4dn.xlarge/on-demand/subnet-a": "InsufficientInstanceCapacity", "g4dn.xlarge/on-demand/subnet-b": "InsufficientInstanceCapacity",
			},
			wantKind: fleet.ErrCapacity, wantCode: "InsufficientInstanceCapacity",
			wantText: []string{"g4dn.xlarge", "retries"},
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b", "g4dn.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-b"},
		},
		{
			name: "G vCPU quota", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "VcpuLimitExceeded"},
			wantKind: fleet.ErrQuota, wantCode: "VcpuLimitExceeded",
			wantText: []string{"L-DB2E81BA", "Running On-Demand G and VT instances", quotaURL + "L-DB2E81BA"},
			// Another subnet does not help with a quota.
			wantTry: []string{"g5.xlarge/on-demand/subnet-a"},
		},
		{
			name: "P vCPU quota", types: []string{"p3.2xlarge"}, subnets: []string{"subnet-a"},
			fail:     map[string]string{"p3.2xlarge/on-demand/subnet-a": "VcpuLimitExceeded"},
			wantKind: fleet.ErrQuota, wantCode: "VcpuLimitExceeded",
			wantText: []string{"L-417A185B", "Running On-Demand P instances", quotaURL + "L-417A185B"},
			wantTry:  []string{"p3.2xlarge/on-demand/subnet-a"},
		},
		{
			name: "G quota, then a P type", types: []string{"g5.xlarge", "p3.2xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "VcpuLimitExceeded"},
			wantType: "p3.2xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "p3.2xlarge/on-demand/subnet-a"},
		},
		{
			name: "spot quota", types: []string{"g5.xlarge"}, market: "spot", subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/spot/subnet-a": "MaxSpotInstanceCountExceeded"},
			wantKind: fleet.ErrSpotQuota, wantCode: "MaxSpotInstanceCountExceeded",
			wantText: []string{"L-3819A6DF", quotaURL + "L-3819A6DF"},
			wantTry:  []string{"g5.xlarge/spot/subnet-a"},
		},
		{
			name: "spot quota, then on-demand", types: []string{"g5.xlarge"}, market: "spot-then-on-demand", subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/spot/subnet-a": "MaxSpotInstanceCountExceeded"},
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
			wantType: "g5.xlarge",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "unsupported everywhere", types: []string{"g5.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "Unsupported", "g5.xlarge/on-demand/subnet-b": "Unsupported"},
			wantKind: fleet.ErrUnsupported, wantCode: "Unsupported",
			wantTry: []string{"g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b"},
		},
		{
			name: "other error: stop at once, unclassified", types: []string{"g5.xlarge", "g4dn.xlarge"}, subnets: []string{"subnet-a", "subnet-b"},
			fail:     map[string]string{"g5.xlarge/on-demand/subnet-a": "InvalidParameterValue"},
			wantCode: "InvalidParameterValue",
			wantTry:  []string{"g5.xlarge/on-demand/subnet-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet(tt.subnets...)
			f.ec2.fail = tt.fail
			req := request(tt.market, tt.types...)
			got, err := f.Launch(context.Background(), req)
			if diff := cmp.Diff(tt.wantTry, f.ec2.tries()); diff != "" {
				t.Errorf("Launch(%v) tries (-want +got):\n%s", tt.types, diff)
			}
			if tt.wantType != "" {
				if err != nil || got.Type != tt.wantType {
					t.Fatalf("Launch(%v) = %+v, %v; want a %s", tt.types, got, err, tt.wantType)
				}
				return
			}
			if err == nil {
				t.Fatalf("Launch(%v) = %+v; want an error", tt.types, got)
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
				if !fleet.Transient(err) {
					t.Errorf("Transient(%v) = false; want true: the job waits", err)
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
	for _, k := range []string{"g5.xlarge", "g4dn.xlarge"} {
		for _, m := range []string{"spot", "on-demand"} {
			for _, s := range []string{"subnet-a", "subnet-b"} {
				f.ec2.fail[k+"/"+m+"/"+s] = "InsufficientInstanceCapacity"
			}
		}
	}
	req := request("spot-then-on-demand", "g5.xlarge", "g4dn.xlarge")
	if _, err := f.Launch(context.Background(), req); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch(%+v) = %v; want ErrCapacity", req, err)
	}
	want := []string{
		"g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-b", "g5.xlarge/on-demand/subnet-a", "g5.xlarge/on-demand/subnet-b",
		"g4dn.xlarge/spot/subnet-a", "g4dn.xlarge/spot/subnet-b", "g4dn.xlarge/on-demand/subnet-a", "g4dn.xlarge/on-demand/subnet-b",
	}
	if diff := cmp.Diff(want, f.ec2.tries()); diff != "" {
		t.Errorf("Launch(%+v) tries (-want +got):\n%s", req, diff)
	}
	spot := &types.InstanceMarketOptionsRequest{
		MarketType: types.MarketTypeSpot,
		SpotOptions: &types.SpotMarketOptions{
			SpotInstanceType: types.SpotInstanceTypeOneTime, InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
		},
	}
	for _, in := range f.ec2.runs {
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
	failAll := func(f *testFleet) {
		for _, k := range []string{"g5.xlarge", "g4dn.xlarge", "g6.xlarge"} {
			for _, m := range []string{"spot", "on-demand"} {
				for _, s := range []string{"subnet-a", "subnet-b", "subnet-c"} {
					f.ec2.fail[k+"/"+m+"/"+s] = "InsufficientInstanceCapacity"
				}
			}
		}
	}
	// The longest id with a large attempt and launch try.
	j := &job.Job{ID: strings.Repeat("x", 64), Attempt: 11, LaunchTry: 1234}
	req := fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: j.Attempt,
		Types: []string{"g5.xlarge", "g4dn.xlarge", "g6.xlarge"}, Market: "spot-then-on-demand"}

	var runs [][]string
	for range 2 {
		f := newTestFleet("subnet-a", "subnet-b", "subnet-c")
		failAll(f)
		if _, err := f.Launch(context.Background(), req); !errors.Is(err, fleet.ErrCapacity) {
			t.Fatalf("Launch(%+v) = %v; want ErrCapacity", req, err)
		}
		runs = append(runs, f.ec2.tokensSent())
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
	if n := len(f.ec2.order); n != 1 {
		t.Errorf("instances after a repeated Launch = %d; want 1", n)
	}
}

// TestLaunchNoSDKRetries: RunInstances runs with one attempt: a capacity
// error comes back as HTTP 500, which the SDK would retry for seconds.
func TestLaunchNoSDKRetries(t *testing.T) {
	f := newTestFleet("subnet-a", "subnet-b")
	f.ec2.fail["g5.xlarge/on-demand/subnet-a"] = "InsufficientInstanceCapacity"
	if _, err := f.Launch(context.Background(), request("on-demand", "g5.xlarge")); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if len(f.ec2.runOpts) != 2 {
		t.Fatalf("RunInstances calls = %d; want 2", len(f.ec2.runOpts))
	}
	for i, fns := range f.ec2.runOpts {
		o := ec2.Options{RetryMaxAttempts: 3}
		for _, fn := range fns {
			fn(&o)
		}
		if o.RetryMaxAttempts != 1 {
			t.Errorf("RunInstances call %d: RetryMaxAttempts = %d; want 1", i+1, o.RetryMaxAttempts)
		}
	}
}

// TestLaunchInput: the whole RunInstances request of an on-demand launch.
func TestLaunchInput(t *testing.T) {
	f := newTestFleet("subnet-a")
	req := request("on-demand", "g5.xlarge")
	req.VolumeGB = 300
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
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens: types.HttpTokensStateRequired, HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
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
	if diff := cmp.Diff(want, f.ec2.runs[0], ignoreNoSerde); diff != "" {
		t.Errorf("RunInstances input (-want +got):\n%s", diff)
	}
	wantInst := fleet.Instance{
		ID: got.ID, Type: "g5.xlarge", State: "pending", Pool: "default", Job: "resnet-cifar10", Attempt: 1, Managed: true,
		LaunchTime: time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC),
		Tags:       tagMap(tags),
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
			for _, in := range f.ec2.runs {
				if got := aws.ToString(in.ImageId); got != tt.wantImage {
					t.Errorf("Launch(AMI %q) ImageId = %s; want %s", tt.give, got, tt.wantImage)
				}
			}
			if diff := cmp.Diff(tt.wantAsked, f.params.names()); diff != "" {
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
		f.clock.advance(14 * time.Minute)
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if n := len(f.params.names()); n != 1 {
			t.Errorf("GetParameter calls within 14 min = %d; want 1", n)
		}
		f.clock.advance(2 * time.Minute)
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		if n := len(f.params.names()); n != 2 {
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
		if n := f.ec2.count("RunInstances"); n != 0 {
			t.Errorf("RunInstances calls = %d; want 0", n)
		}
	})
}

// TestList: List reads only managed, live instances, a thousand per page,
// and converts them.
func TestList(t *testing.T) {
	f := newTestFleet()
	managed := map[string]string{"nightshift:managed": "true", "nightshift:pool": "gpu", "nightshift:job": "bert", "nightshift:attempt": "2"}
	var want []string
	for range 2500 {
		want = append(want, f.ec2.add(types.InstanceStateNameRunning, false, managed))
	}
	for range 5 {
		want = append(want, f.ec2.add(types.InstanceStateNameStopped, true, managed))
	}
	for range 3 {
		f.ec2.add(types.InstanceStateNameTerminated, false, managed)
	}
	for range 7 {
		f.ec2.add(types.InstanceStateNameRunning, false, map[string]string{"Name": "notebook"})
	}
	f.ec2.add(types.InstanceStateNameRunning, false, map[string]string{"nightshift:managed": "false"})

	got, err := f.List(context.Background())
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
	if n := len(f.ec2.describes); n != 3 {
		t.Errorf("DescribeInstances calls for 2505 instances = %d; want 3", n)
	}
	for _, in := range f.ec2.describes {
		if aws.ToInt32(in.MaxResults) != 1000 {
			t.Errorf("DescribeInstances MaxResults = %d; want 1000", aws.ToInt32(in.MaxResults))
		}
	}
	wantSpot := fleet.Instance{
		ID: want[2500], Type: "g5.xlarge", State: "stopped", Pool: "gpu", Job: "bert", Attempt: 2, Spot: true, Managed: true,
		LaunchTime: time.Date(2026, 11, 25, 20, 0, 0, 0, time.UTC), Tags: managed,
	}
	if diff := cmp.Diff(wantSpot, got[2500]); diff != "" {
		t.Errorf("List()[2500] (-want +got):\n%s", diff)
	}
}

// TestNotManaged: the fleet refuses to act on an instance without the
// managed tag, before any EC2 call (S4).
func TestNotManaged(t *testing.T) {
	f := newTestFleet()
	id := f.ec2.add(types.InstanceStateNameRunning, false, map[string]string{"Name": "notebook"})
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
	if diff := cmp.Diff(map[string]int{}, f.ec2.calls); diff != "" {
		t.Errorf("EC2 calls (-want +got):\n%s", diff)
	}
}

// TestStop: an on-demand instance is stopped; a spot instance, which
// cannot be stopped, is terminated.
func TestStop(t *testing.T) {
	tests := []struct {
		name string
		spot bool
		want map[string]int
	}{
		{name: "on-demand", want: map[string]int{"StopInstances": 1}},
		{name: "spot", spot: true, want: map[string]int{"TerminateInstances": 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			id := f.ec2.add(types.InstanceStateNameRunning, tt.spot, map[string]string{"nightshift:managed": "true"})
			inst := fleet.Instance{ID: id, State: "running", Spot: tt.spot, Managed: true}
			if err := f.Stop(context.Background(), inst); err != nil {
				t.Fatalf("Stop(%+v) = %v", inst, err)
			}
			if diff := cmp.Diff(tt.want, f.ec2.calls); diff != "" {
				t.Errorf("Stop(%+v) EC2 calls (-want +got):\n%s", inst, diff)
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
		lost      error             // RunInstances launches, then the answer is lost
		fail      map[string]string // RunInstances refuses, by try
		paramErr  error             // GetParameter fails
		types     []string
		want      bool  // errors.Is(err, ErrNoAnswer)
		wantInner error // errors.Is(err, wantInner)
	}{
		{name: "connection reset", lost: reset, types: []string{"g5.xlarge"}, want: true, wantInner: reset},
		{name: "timeout", lost: context.DeadlineExceeded, types: []string{"g5.xlarge"}, want: true, wantInner: context.DeadlineExceeded},
		{name: "AMI lookup timed out", paramErr: context.DeadlineExceeded, types: []string{"g5.xlarge"}, want: true, wantInner: context.DeadlineExceeded},
		{name: "capacity refused", fail: map[string]string{"g5.xlarge/on-demand/": "InsufficientInstanceCapacity"}, types: []string{"g5.xlarge"}, wantInner: fleet.ErrCapacity},
		{name: "bad request refused", fail: map[string]string{"g5.xlarge/on-demand/": "InvalidParameterValue"}, types: []string{"g5.xlarge"}},
		{name: "AMI parameter missing", paramErr: &smithy.GenericAPIError{Code: "ParameterNotFound"}, types: []string{"g5.xlarge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newTestFleet()
			f.ec2.lost, f.ec2.fail, f.params.err = tt.lost, tt.fail, tt.paramErr
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
			if tt.lost == nil {
				return
			}
			f.ec2.lost = nil
			inst, err := f.Launch(context.Background(), req)
			if err != nil || len(f.ec2.order) != 1 || inst.ID != f.ec2.order[0] {
				t.Errorf("Launch(%v) again = %+v, %v with %d instances; want the one launched before, %v", tt.types, inst, err, len(f.ec2.order), f.ec2.order)
			}
		})
	}
}

// TestStartErrors: Start classifies a capacity refusal like Launch does, so
// the scheduler leaves the job waiting; a missing instance is NotFound.
func TestStartErrors(t *testing.T) {
	f := newTestFleet()
	id := f.ec2.add(types.InstanceStateNameStopped, false, map[string]string{"nightshift:managed": "true"})
	f.ec2.startFail = "InsufficientInstanceCapacity"
	inst := fleet.Instance{ID: id, Type: "g5.xlarge", State: "stopped", Managed: true}
	err := f.Start(context.Background(), inst)
	if !errors.Is(err, fleet.ErrCapacity) || !fleet.Transient(err) {
		t.Errorf("Start(%s) = %v; want a transient ErrCapacity", id, err)
	}

	f.ec2.startFail = ""
	gone := fleet.Instance{ID: "i-00000000000000999", Managed: true}
	if err := f.Start(context.Background(), gone); !fleet.IsNotFound(err) {
		t.Errorf("Start(%s) = %v; want IsNotFound", gone.ID, err)
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

func TestTag(t *testing.T) {
	ctx := context.Background()
	e := newFakeEC2()
	f := fleet.New(e, nil, fleet.Config{}, time.Now)
	if err := f.Tag(ctx, fleet.Instance{ID: "i-stranger"}, fleet.TagReady, "90"); !errors.Is(err, fleet.ErrNotManaged) || e.calls["CreateTags"] != 0 {
		t.Errorf("Tag(unmanaged) = %v with %d calls; want ErrNotManaged and no call", err, e.calls["CreateTags"])
	}
}
