package runner_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

var _ runner.SSM = (*awssim.Cloud)(nil)

// testCloud is the simulated AWS account the runner's SSM tests run
// against, on a virtual clock, with a record of the inputs the runner sent
// and the refusals a test injects where the cloud does not model them.
type testCloud struct {
	*awssim.Cloud
	clock *vclock.Clock

	// fail maps an operation to the error code it is refused with: for
	// what the cloud does not model, such as throttling, or another
	// service's code.
	fail map[string]string

	sent      []*ssm.SendCommandInput
	listed    []*ssm.ListCommandInvocationsInput
	described []*ssm.DescribeInstanceInformationInput
	cancels   []*ssm.CancelCommandInput
}

func newTestCloud() *testCloud {
	clock := vclock.New()
	c := &testCloud{Cloud: awssim.New(clock), clock: clock, fail: map[string]string{}}
	c.Fault = c.fault
	return c
}

// fault records each call's input and refuses the calls the test said to.
// The cloud runs it before the call, so a call the cloud itself refuses is
// recorded too.
func (c *testCloud) fault(op string, in any) error {
	switch in := in.(type) {
	case *ssm.SendCommandInput:
		c.sent = append(c.sent, in)
	case *ssm.ListCommandInvocationsInput:
		c.listed = append(c.listed, in)
	case *ssm.DescribeInstanceInformationInput:
		c.described = append(c.described, in)
	case *ssm.CancelCommandInput:
		c.cancels = append(c.cancels, in)
	}
	if code, ok := c.fail[op]; ok {
		return &smithy.GenericAPIError{Code: code, Message: "injected " + code}
	}
	return nil
}

// launch puts a GPU instance in the account, as a person or an earlier
// launch did. Its agent is online once the clock has moved on by
// awssim.DefaultBoot and awssim.DefaultAgent.
func (c *testCloud) launch() string { return c.Launch("g5.xlarge", nil, true) }

// ready launches an instance and moves the clock on until its SSM agent is
// online.
func (c *testCloud) ready() string {
	id := c.launch()
	c.clock.Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	return id
}

// forget clears the cloud's call counts and the recorded inputs: what a
// test set up through the cloud is not what the runner did.
func (c *testCloud) forget() {
	clear(c.Calls)
	c.sent, c.listed, c.described, c.cancels = nil, nil, nil, nil
}

// invocation returns the cloud's invocation of a command on an instance.
func (c *testCloud) invocation(t *testing.T, commandID, instanceID string) awssim.Invocation {
	t.Helper()
	for _, inv := range c.Invocations() {
		if inv.CommandID == commandID && inv.InstanceID == instanceID {
			return inv
		}
	}
	t.Fatalf("no invocation of %s on %s in the cloud", commandID, instanceID)
	return awssim.Invocation{}
}

// pings reads every managed node's ping status as SSM reports it, past
// the runner, to check what a test set up.
func (c *testCloud) pings(t *testing.T) map[types.PingStatus]int {
	t.Helper()
	n := map[types.PingStatus]int{}
	p := ssm.NewDescribeInstanceInformationPaginator(c.Cloud, &ssm.DescribeInstanceInformationInput{MaxResults: aws.Int32(50)})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("DescribeInstanceInformation = %v", err)
		}
		for _, i := range out.InstanceInformationList {
			n[i.PingStatus]++
		}
	}
	return n
}

// delayed is the cloud as it answers while SSM retries delivering a
// command to an agent it cannot reach: the invocation is Delayed and has
// not started. The cloud delivers at once, so it never says so itself.
type delayed struct{ *awssim.Cloud }

func (d delayed) GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	out, err := d.Cloud.GetCommandInvocation(ctx, in, optFns...)
	if err != nil || out.Status != types.CommandInvocationStatusInProgress {
		return out, err
	}
	out.Status, out.StatusDetails, out.ExecutionStartDateTime = types.CommandInvocationStatusDelayed, aws.String("Delayed"), aws.String("")
	return out, nil
}
