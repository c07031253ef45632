package awssim_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func code(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}

func launch(t *testing.T, c *awssim.Cloud, typ string, tags map[string]string, mutate ...func(*ec2.RunInstancesInput)) string {
	t.Helper()
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: types.InstanceType(typ),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance}},
	}
	for k, v := range tags {
		in.TagSpecifications[0].Tags = append(in.TagSpecifications[0].Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	for _, m := range mutate {
		m(in)
	}
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances(%s) = %v", typ, err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// TestDescribeFilters: the modelled filters filter; any other filter is an
// error, never silently ignored.
func TestDescribeFilters(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	a := launch(t, c, "g5.xlarge", map[string]string{"owner": "a"})
	b := launch(t, c, "g4dn.xlarge", map[string]string{"team": "b"})
	tests := []struct {
		name     string
		give     []types.Filter
		want     []string
		wantCode string
	}{
		{name: "none", want: []string{a, b}},
		{name: "tag-key", give: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"team", "nobody"}}}, want: []string{b}},
		{name: "tag value", give: []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"a"}}}, want: []string{a}},
		{name: "type", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"g5.xlarge"}}}, want: []string{a}},
		{name: "state", give: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}, want: nil},
		{name: "zone", give: []types.Filter{{Name: aws.String("availability-zone"), Values: []string{awssim.DefaultZone}}}, want: []string{a, b}},
		{name: "unknown filter", give: []types.Filter{{Name: aws.String("owner-id"), Values: []string{"1"}}}, wantCode: "InvalidParameterValue"},
		{name: "no values", give: []types.Filter{{Name: aws.String("tag-key")}}, wantCode: "InvalidParameterValue"},
		{name: "wildcard tag value", give: []types.Filter{{Name: aws.String("tag:owner"), Values: []string{"a*"}}}, want: []string{a}},
		{name: "wildcard family", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"g*", "p*", "vt*"}}}, want: []string{a, b}},
		{name: "wildcard one family", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"g4*"}}}, want: []string{b}},
		{name: "wildcard no match", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"p*"}}}, want: nil},
		{name: "question mark zero or one", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"g5?.xlarge"}}}, want: []string{a}},
		{name: "question mark one", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{"g?dn.xlarge"}}}, want: []string{b}},
		{name: "escaped star is literal", give: []types.Filter{{Name: aws.String("instance-type"), Values: []string{`g\*`}}}, want: nil},
		{name: "wildcard tag-key", give: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"te*"}}}, want: []string{b}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: tt.give})
			if tt.wantCode != "" {
				if code(err) != tt.wantCode {
					t.Fatalf("DescribeInstances(%v) = %v; want %s", tt.give, err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatalf("DescribeInstances(%v) = %v", tt.give, err)
			}
			var got []string
			for _, r := range out.Reservations {
				for _, i := range r.Instances {
					got = append(got, aws.ToString(i.InstanceId))
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DescribeInstances(%v) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(2000)}); code(err) != "InvalidParameterValue" {
		t.Errorf("DescribeInstances(MaxResults 2000) = %v; want InvalidParameterValue", err)
	}
	if _, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), InstanceIds: []string{a}}); code(err) != "InvalidParameterCombination" {
		t.Errorf("DescribeInstances(MaxResults with InstanceIds) = %v; want InvalidParameterCombination", err)
	}
}

func TestRunInstances(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Subnets = map[string]string{"subnet-b": "us-east-1b"}
	tok := func(s string) func(*ec2.RunInstancesInput) {
		return func(in *ec2.RunInstancesInput) { in.ClientToken = aws.String(s) }
	}
	in := func(s string) func(*ec2.RunInstancesInput) {
		return func(in *ec2.RunInstancesInput) { in.SubnetId = aws.String(s) }
	}
	first := launch(t, c, "g5.xlarge", nil, tok("t1"), in("subnet-b"))
	if again := launch(t, c, "g5.xlarge", nil, tok("t1"), in("subnet-b")); again != first {
		t.Errorf("RunInstances with the same token = %s; want %s again", again, first)
	}
	if zone := c.Instances()[0].Zone; zone != "us-east-1b" {
		t.Errorf("zone of an instance in subnet-b = %s; want us-east-1b", zone)
	}
	tests := []struct {
		name string
		give []func(*ec2.RunInstancesInput)
		want string
	}{
		{"same token, other type", []func(*ec2.RunInstancesInput){tok("t1"), func(in *ec2.RunInstancesInput) { in.InstanceType = "g4dn.xlarge" }}, "IdempotentParameterMismatch"},
		{"same token, other subnet", []func(*ec2.RunInstancesInput){tok("t1")}, "IdempotentParameterMismatch"},
		{"unknown subnet", []func(*ec2.RunInstancesInput){in("subnet-nope")}, "InvalidSubnetID.NotFound"},
		{"token too long", []func(*ec2.RunInstancesInput){tok(strings.Repeat("x", 65))}, "InvalidParameterValue"},
		{"unknown type", []func(*ec2.RunInstancesInput){func(in *ec2.RunInstancesInput) { in.InstanceType = "m9.huge" }}, "InvalidParameterValue"},
		{"no counts", []func(*ec2.RunInstancesInput){func(in *ec2.RunInstancesInput) { in.MinCount = nil }}, "MissingParameter"},
		{"two instances", []func(*ec2.RunInstancesInput){func(in *ec2.RunInstancesInput) { in.MaxCount = aws.Int32(2) }}, "NotModelledBySimulation"},
	}
	for _, tt := range tests {
		base := &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "g5.xlarge"}
		for _, m := range tt.give {
			m(base)
		}
		if _, err := c.RunInstances(ctx, base); code(err) != tt.want {
			t.Errorf("%s: RunInstances = %v; want %s", tt.name, err, tt.want)
		}
	}
	c.Quota[awssim.QuotaOnDemandG] = 4 // the first g5.xlarge holds all 4
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "g4dn.xlarge"}); code(err) != "VcpuLimitExceeded" {
		t.Errorf("RunInstances over the G quota = %v; want VcpuLimitExceeded", err)
	}
	c.Capacity["p3.2xlarge"] = 0
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "p3.2xlarge"}); code(err) != "InsufficientInstanceCapacity" {
		t.Errorf("RunInstances without capacity = %v; want InsufficientInstanceCapacity", err)
	}
}

// TestSpotStop: a one-time spot instance cannot be stopped; one of a
// persistent request can, and is stopped, not terminated, when
// interrupted. A persistent request that would terminate is not modelled.
func TestSpotStop(t *testing.T) {
	ctx := context.Background()
	clock := vclock.New()
	c := awssim.New(clock)
	market := func(kind types.SpotInstanceType, behaviour types.InstanceInterruptionBehavior) func(*ec2.RunInstancesInput) {
		return func(in *ec2.RunInstancesInput) {
			in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
				MarketType:  types.MarketTypeSpot,
				SpotOptions: &types.SpotMarketOptions{SpotInstanceType: kind, InstanceInterruptionBehavior: behaviour},
			}
		}
	}
	oneTime := launch(t, c, "g5.xlarge", nil, market(types.SpotInstanceTypeOneTime, types.InstanceInterruptionBehaviorTerminate))
	persistent := launch(t, c, "g5.xlarge", nil, market(types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorStop))
	interrupted := launch(t, c, "g5.xlarge", nil, market(types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorStop))
	clock.Advance(awssim.DefaultBoot)

	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{oneTime}}); code(err) != "UnsupportedOperation" {
		t.Errorf("StopInstances(one-time spot) = %v; want UnsupportedOperation", err)
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{persistent}}); err != nil {
		t.Errorf("StopInstances(persistent spot) = %v; want nil", err)
	}
	c.Events()
	c.Interrupt(interrupted)
	if ev := c.Events(); len(ev) != 1 || ev[0].Detail["instance-action"] != "stop" {
		t.Errorf("Interrupt(persistent spot) events = %+v; want one warning with instance-action stop", ev)
	}
	clock.Advance(2*time.Minute + awssim.DefaultStop)
	states := map[string]string{}
	for _, i := range c.Instances() {
		states[i.ID] = i.State
	}
	want := map[string]string{oneTime: "running", persistent: "stopped", interrupted: "stopped"}
	if diff := cmp.Diff(want, states); diff != "" {
		t.Errorf("states (-want +got):\n%s", diff)
	}
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{persistent}}); err != nil {
		t.Errorf("StartInstances(stopped persistent spot) = %v; want nil", err)
	}

	in := &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "g5.xlarge"}
	market(types.SpotInstanceTypePersistent, types.InstanceInterruptionBehaviorTerminate)(in)
	if _, err := c.RunInstances(ctx, in); code(err) != "NotModelledBySimulation" {
		t.Errorf("RunInstances(persistent spot that terminates) = %v; want NotModelledBySimulation", err)
	}
}

// TestPolicy: a call the policy refuses fails as IAM's refusal does, has no
// effect, and is recorded.
func TestPolicy(t *testing.T) {
	ctx := context.Background()
	clock := vclock.New()
	c := awssim.New(clock)
	id := c.Launch("g5.xlarge", map[string]string{"owner": "someone"}, false)
	var asked []awssim.Request
	c.Policy = func(r awssim.Request) bool {
		asked = append(asked, r)
		return r.Tags["mine"] == "true"
	}
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); code(err) != "UnauthorizedOperation" {
		t.Errorf("StopInstances(not mine) = %v; want UnauthorizedOperation", err)
	}
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{id}, Tags: []types.Tag{{Key: aws.String("mine"), Value: aws.String("true")}}}); code(err) != "UnauthorizedOperation" {
		t.Errorf("CreateTags(not mine) = %v; want UnauthorizedOperation", err)
	}
	if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "g5.xlarge"}); code(err) != "UnauthorizedOperation" {
		t.Errorf("RunInstances(untagged) = %v; want UnauthorizedOperation", err)
	}
	if got := c.Instances(); got[0].Tags["mine"] != "" || got[0].State != "pending" || len(got) != 1 {
		t.Errorf("after refused calls: %+v; want the instance untouched and nothing launched", got)
	}
	if len(c.Denied) != 3 {
		t.Errorf("Denied = %q; want the three refusals", c.Denied)
	}
	want := awssim.Request{Op: "CreateTags", Instance: id, Tags: map[string]string{"owner": "someone"}, TagKeys: []string{"mine"}}
	if diff := cmp.Diff(want, asked[1]); diff != "" {
		t.Errorf("CreateTags asked the policy (-want +got):\n%s", diff)
	}
}

// ready returns a cloud with one instance whose agent is online.
func ready(t *testing.T, exec awssim.Executor) (*awssim.Cloud, string) {
	t.Helper()
	clock := vclock.New()
	c := awssim.New(clock)
	c.Exec = exec
	id := launch(t, c, "g5.xlarge", nil)
	clock.Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	return c, id
}

func send(c *awssim.Cloud, id string, mutate ...func(*ssm.SendCommandInput)) (string, error) {
	in := &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{id},
		Parameters: map[string][]string{"commands": {"echo hi"}, "executionTimeout": {"600"}},
	}
	for _, m := range mutate {
		m(in)
	}
	out, err := c.SendCommand(context.Background(), in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.Command.CommandId), nil
}

// TestSendCommandValidation: SSM refuses what AWS-RunShellScript does not take.
func TestSendCommandValidation(t *testing.T) {
	c, id := ready(t, nil)
	tests := []struct {
		name string
		give func(*ssm.SendCommandInput)
		want string
	}{
		{"unknown parameter", func(in *ssm.SendCommandInput) { in.Parameters["workdir"] = []string{"/tmp"} }, "InvalidParameters"},
		{"no commands", func(in *ssm.SendCommandInput) { delete(in.Parameters, "commands") }, "InvalidParameters"},
		{"timeout too long", func(in *ssm.SendCommandInput) { in.Parameters["executionTimeout"] = []string{"172801"} }, "InvalidParameters"},
		{"timeout not a number", func(in *ssm.SendCommandInput) { in.Parameters["executionTimeout"] = []string{"1h"} }, "InvalidParameters"},
		{"other document", func(in *ssm.SendCommandInput) { in.DocumentName = aws.String("AWS-RunPowerShellScript") }, "NotModelledBySimulation"},
		{"comment too long", func(in *ssm.SendCommandInput) { in.Comment = aws.String(strings.Repeat("c", 101)) }, "ValidationException"},
		{"delivery timeout too short", func(in *ssm.SendCommandInput) { in.TimeoutSeconds = aws.Int32(10) }, "ValidationException"},
		{"agent not online", func(in *ssm.SendCommandInput) { in.InstanceIds = []string{"i-nope"} }, "InvalidInstanceId"},
	}
	for _, tt := range tests {
		if _, err := send(c, id, tt.give); code(err) != tt.want {
			t.Errorf("%s: SendCommand = %v; want %s", tt.name, err, tt.want)
		}
	}
	if _, err := send(c, id, func(in *ssm.SendCommandInput) { in.Parameters["workingDirectory"] = []string{"/home/ubuntu"} }); err != nil {
		t.Errorf("SendCommand(workingDirectory) = %v; want it accepted", err)
	}
	if got := c.Invocations()[0].WorkingDirectory; got != "/home/ubuntu" {
		t.Errorf("invocation's working directory = %q; want /home/ubuntu", got)
	}
}

func status(t *testing.T, c *awssim.Cloud, cmd, id string) *ssm.GetCommandInvocationOutput {
	t.Helper()
	out, err := c.GetCommandInvocation(context.Background(), &ssm.GetCommandInvocationInput{CommandId: aws.String(cmd), InstanceId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestProcesses: a process ends by itself and runs its Then; at the
// execution timeout it is killed without it; one that awaits a file ends
// when the file is written; Tick runs only while the process lives.
func TestProcesses(t *testing.T) {
	var thens []int
	ticks := 0
	exec := awssim.ExecFunc(func(h *awssim.Host, r awssim.Run) awssim.Outcome {
		switch r.Commands {
		case "work":
			return awssim.Outcome{Exit: 3, Duration: 5 * time.Minute, Every: time.Minute, Tick: func(*awssim.Host) { ticks++ },
				Then: func(h *awssim.Host, exit int) { thens = append(thens, exit); h.Write("done", strconv.Itoa(exit)) }}
		case "hang":
			return awssim.Outcome{Hang: true, Then: func(_ *awssim.Host, exit int) { thens = append(thens, exit) }}
		case "wait":
			return awssim.Outcome{Await: "done", Idle: true}
		}
		return awssim.Outcome{Exit: 127}
	})
	c, id := ready(t, exec)
	cmd := func(text string) func(*ssm.SendCommandInput) {
		return func(in *ssm.SendCommandInput) { in.Parameters["commands"] = []string{text} }
	}
	waiter, err := send(c, id, cmd("wait"))
	if err != nil {
		t.Fatal(err)
	}
	worker, _ := send(c, id, cmd("work"))
	hung, _ := send(c, id, cmd("hang"))
	c.Clock().Advance(4 * time.Minute)
	if st := status(t, c, waiter, id); st.Status != ssmtypes.CommandInvocationStatusInProgress || st.ResponseCode != -1 {
		t.Errorf("waiter before the file = %s %d; want InProgress -1", st.Status, st.ResponseCode)
	}
	c.Clock().Advance(2 * time.Minute)
	if st := status(t, c, worker, id); st.Status != ssmtypes.CommandInvocationStatusFailed || st.ResponseCode != 3 {
		t.Errorf("worker = %s %d; want Failed 3", st.Status, st.ResponseCode)
	}
	if st := status(t, c, waiter, id); st.Status != ssmtypes.CommandInvocationStatusFailed || st.ResponseCode != 3 {
		t.Errorf("waiter after the file = %s %d; want Failed 3, the file's exit code", st.Status, st.ResponseCode)
	}
	c.Clock().Advance(10 * time.Minute)
	if st := status(t, c, hung, id); st.Status != ssmtypes.CommandInvocationStatusTimedOut || aws.ToString(st.StatusDetails) != "ExecutionTimedOut" {
		t.Errorf("hung = %s (%s); want TimedOut (ExecutionTimedOut)", st.Status, aws.ToString(st.StatusDetails))
	}
	if diff := cmp.Diff([]int{3}, thens); diff != "" {
		t.Errorf("Then ran with (-want +got):\n%s", diff)
	}
	if ticks != 4 {
		t.Errorf("Tick ran %d times over a 5-minute process; want 4 (at 1–4 min)", ticks)
	}
}

// TestInvocationTimes: an invocation's times read as SSM writes them, UTC
// to the millisecond.
func TestInvocationTimes(t *testing.T) {
	c, id := ready(t, awssim.ExecFunc(func(*awssim.Host, awssim.Run) awssim.Outcome {
		return awssim.Outcome{Duration: 41*time.Minute + 52488*time.Millisecond}
	}))
	c.Clock().AdvanceTo(time.Date(2026, 11, 25, 21, 3, 10, 512e6, time.UTC))
	cmd, err := send(c, id, func(in *ssm.SendCommandInput) { in.Parameters["executionTimeout"] = []string{"7200"} })
	if err != nil {
		t.Fatal(err)
	}
	c.Clock().Advance(time.Hour)
	st := status(t, c, cmd, id)
	got := []string{aws.ToString(st.ExecutionStartDateTime), aws.ToString(st.ExecutionEndDateTime)}
	if diff := cmp.Diff([]string{"2026-11-25T21:03:10.512Z", "2026-11-25T21:45:03.000Z"}, got); diff != "" {
		t.Errorf("invocation start and end (-want +got):\n%s", diff)
	}
}

// TestFilterAfterPage: with FilterAfterPage, DescribeInstanceInformation
// pages through every managed node and thins each page by the filter, so
// pages come back short or empty with a NextToken; without it, only the
// nodes asked for are paged. Either way the pages hold every node asked for.
func TestFilterAfterPage(t *testing.T) {
	c := awssim.New(vclock.New())
	var ids []string
	for range 12 {
		ids = append(ids, launch(t, c, "g5.xlarge", nil))
	}
	c.Clock().Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	asked := []string{ids[11], ids[0], ids[10]}
	tests := []struct {
		give bool
		want [][]string // instance ids, page by page
	}{
		{give: false, want: [][]string{{ids[0], ids[10], ids[11]}}},
		{give: true, want: [][]string{{ids[0]}, nil, {ids[10], ids[11]}}},
	}
	for _, tt := range tests {
		c.FilterAfterPage = tt.give
		in := &ssm.DescribeInstanceInformationInput{
			Filters:    []ssmtypes.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: asked}},
			MaxResults: aws.Int32(5),
		}
		var got [][]string
		for p := ssm.NewDescribeInstanceInformationPaginator(c, in); p.HasMorePages(); {
			out, err := p.NextPage(context.Background())
			if err != nil {
				t.Fatalf("FilterAfterPage %v: DescribeInstanceInformation = %v", tt.give, err)
			}
			var page []string
			for _, i := range out.InstanceInformationList {
				page = append(page, aws.ToString(i.InstanceId))
			}
			got = append(got, page)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("FilterAfterPage %v: pages (-want +got):\n%s", tt.give, diff)
		}
	}
}

// TestShutdownTimer: the instance's own timer stops it; a later one replaces
// an earlier one; a stop voids it.
func TestShutdownTimer(t *testing.T) {
	var host *awssim.Host
	c, id := ready(t, awssim.ExecFunc(func(h *awssim.Host, _ awssim.Run) awssim.Outcome {
		host = h
		return awssim.Outcome{}
	}))
	if _, err := send(c, id); err != nil {
		t.Fatal(err)
	}
	host.Shutdown(5*time.Minute, "first")
	host.Shutdown(20*time.Minute, "second")
	c.Clock().Advance(10 * time.Minute)
	if i := c.Instances()[0]; i.State != "running" {
		t.Fatalf("after 10 min: %s; want running (the 5-minute timer was replaced)", i.State)
	}
	c.Clock().Advance(11 * time.Minute)
	if i := c.Instances()[0]; i.State != "stopped" || i.StoppedBy != "second" {
		t.Errorf("after 21 min: %s by %q; want stopped by the second timer", i.State, i.StoppedBy)
	}
}

func TestQueue(t *testing.T) {
	c := awssim.New(vclock.New())
	a, b := c.Enqueue("a"), c.Enqueue("b")
	batch := c.Receive(10)
	if len(batch) != 2 || batch[0].ID != a || batch[0].Receives != 1 || c.Waiting() != 0 {
		t.Fatalf("Receive(10) = %+v, %d waiting; want a and b, received once", batch, c.Waiting())
	}
	c.Delete(a)
	c.Return(b)
	again := c.Receive(10)
	if len(again) != 1 || again[0].ID != b || again[0].Receives != 2 {
		t.Errorf("after Return(b): Receive(10) = %+v; want b, received twice", again)
	}
	if n := len(c.Sent()); n != 2 {
		t.Errorf("Sent() has %d messages; want 2", n)
	}
}

// TestPublishedMetrics: what an instance publishes comes back per period,
// as the period's maximum, newest first.
func TestPublishedMetrics(t *testing.T) {
	var host *awssim.Host
	c, id := ready(t, awssim.ExecFunc(func(h *awssim.Host, _ awssim.Run) awssim.Outcome {
		host = h
		return awssim.Outcome{Duration: time.Hour}
	}))
	if _, err := send(c, id); err != nil {
		t.Fatal(err)
	}
	start := c.Clock().Now()
	for _, v := range []float64{1, 5, 2} {
		host.PutMetric("app", "Loss", v)
		c.Clock().Advance(30 * time.Second)
	}
	out, err := c.GetMetricData(context.Background(), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(start.Add(-time.Hour)), EndTime: aws.Time(c.Clock().Now()),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("q"), MetricStat: &cwtypes.MetricStat{
			Metric: &cwtypes.Metric{Namespace: aws.String("app"), MetricName: aws.String("Loss"),
				Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id)}}},
			Period: aws.Int32(60), Stat: aws.String("Maximum"),
		}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := out.MetricDataResults[0].Values
	// start is 30 s into a minute: 1 alone in that minute, 5 and 2 share
	// the next, whose maximum is 5; newest first.
	if diff := cmp.Diff([]float64{5, 1}, got); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	_, err = c.GetMetricData(context.Background(), &cloudwatch.GetMetricDataInput{
		StartTime: aws.Time(start), EndTime: aws.Time(c.Clock().Now()),
		MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("e"), Expression: aws.String("SUM(METRICS())")}},
	})
	if code(err) != "NotModelledBySimulation" {
		t.Errorf("GetMetricData(expression) = %v; want NotModelledBySimulation", err)
	}
}

func TestPublish(t *testing.T) {
	c := awssim.New(vclock.New())
	ctx := context.Background()
	if _, err := c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:t"), Message: aws.String("m"), Subject: aws.String(strings.Repeat("s", 101))}); code(err) != "InvalidParameter" {
		t.Errorf("Publish(subject of 101) = %v; want InvalidParameter", err)
	}
	if _, err := c.Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:t"), Message: aws.String("m"), Subject: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	if n := c.Notifications(); len(n) != 1 || n[0].Topic != "arn:t" {
		t.Errorf("Notifications() = %+v; want the one published", n)
	}
}

// TestAgentGone: a command SSM accepts for an agent that has gone away is
// never delivered: it waits Delayed, not started, and at its delivery
// timeout plus its execution timeout it reads TimedOut with StatusDetails
// DeliveryTimedOut and no exit code, unless it is cancelled first. The
// agent reads ConnectionLost from then on, until the instance boots again.
func TestAgentGone(t *testing.T) {
	ran := 0
	c, id := ready(t, awssim.ExecFunc(func(*awssim.Host, awssim.Run) awssim.Outcome {
		ran++
		return awssim.Outcome{Duration: time.Minute}
	}))
	c.AgentGone = func(string) bool { return true }
	sent := c.Clock().Now()
	timeouts := func(in *ssm.SendCommandInput) { in.TimeoutSeconds = aws.Int32(600) } // and executionTimeout 600
	lost, err := send(c, id, timeouts)
	if err != nil {
		t.Fatalf("SendCommand to a gone agent SSM still lists Online = %v; want it accepted", err)
	}
	type seen struct {
		Status                  ssmtypes.CommandInvocationStatus
		Details, Started, Ended string
		ResponseCode            int32
	}
	read := func(cmd string) seen {
		st := status(t, c, cmd, id)
		return seen{st.Status, aws.ToString(st.StatusDetails), aws.ToString(st.ExecutionStartDateTime), aws.ToString(st.ExecutionEndDateTime), st.ResponseCode}
	}
	waiting := seen{Status: ssmtypes.CommandInvocationStatusDelayed, Details: "Delayed", ResponseCode: -1}
	if diff := cmp.Diff(waiting, read(lost)); diff != "" {
		t.Errorf("just sent (-want +got):\n%s", diff)
	}
	info, err := c.DescribeInstanceInformation(context.Background(), &ssm.DescribeInstanceInformationInput{})
	if err != nil || len(info.InstanceInformationList) != 1 || info.InstanceInformationList[0].PingStatus != ssmtypes.PingStatusConnectionLost {
		t.Errorf("DescribeInstanceInformation = %+v, %v; want the agent ConnectionLost", info, err)
	}
	if _, err := send(c, id); code(err) != "InvalidInstanceId" {
		t.Errorf("SendCommand to a ConnectionLost agent = %v; want InvalidInstanceId", err)
	}
	c.AgentGone = nil // whatever the knob says now, the agent stays gone
	c.Clock().AdvanceTo(sent.Add(20*time.Minute - time.Second))
	if diff := cmp.Diff(waiting, read(lost)); diff != "" {
		t.Errorf("a second before it expires (-want +got):\n%s", diff)
	}
	c.Clock().AdvanceTo(sent.Add(20 * time.Minute))
	if diff := cmp.Diff(seen{Status: ssmtypes.CommandInvocationStatusTimedOut, Details: "DeliveryTimedOut", ResponseCode: -1}, read(lost)); diff != "" {
		t.Errorf("at the delivery timeout plus the execution timeout (-want +got):\n%s", diff)
	}
	if ran != 0 {
		t.Errorf("the executor ran %d times; want never", ran)
	}

	// Cancelled while it waits, it is never delivered either; a new boot
	// brings a new agent.
	if err := c.ByHand(id, "stop"); err != nil {
		t.Fatal(err)
	}
	c.Clock().Advance(awssim.DefaultStop)
	if err := c.ByHand(id, "start"); err != nil {
		t.Fatal(err)
	}
	c.Clock().Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	c.AgentGone = func(string) bool { return true }
	cancelled, err := send(c, id, timeouts)
	if err != nil {
		t.Fatalf("SendCommand after a new boot = %v; want it accepted", err)
	}
	c.Clock().Advance(time.Minute)
	if _, err := c.CancelCommand(context.Background(), &ssm.CancelCommandInput{CommandId: aws.String(cancelled)}); err != nil {
		t.Fatal(err)
	}
	c.Clock().Advance(time.Hour)
	if got := read(cancelled); got.Status != ssmtypes.CommandInvocationStatusCancelled || got.Started != "" || ran != 0 {
		t.Errorf("cancelled while delayed = %+v, executor ran %d times; want Cancelled, never started", got, ran)
	}
}

// TestCharges: the bill line by line, by type and market, each at the price
// charged (spot at the spot price); the lines add up to Bill's total.
func TestCharges(t *testing.T) {
	clock := vclock.New()
	c := awssim.New(clock)
	spot := func(in *ec2.RunInstancesInput) {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}
	}
	launch(t, c, "g4dn.xlarge", nil)
	launch(t, c, "g4dn.xlarge", nil, spot)
	launch(t, c, "g5.xlarge", nil)
	launch(t, c, "g4dn.xlarge", nil)
	clock.Advance(awssim.DefaultBoot + time.Hour) // billed from running on
	got := c.Charges()
	want := []awssim.Charge{
		{Type: "g4dn.xlarge", Seconds: 7200, Hourly: 0.526, USD: 2 * 0.526},
		{Type: "g4dn.xlarge", Spot: true, Seconds: 3600, Hourly: 0.526 * 0.3, USD: 0.526 * 0.3},
		{Type: "g5.xlarge", Seconds: 3600, Hourly: 1.006, USD: 1.006},
	}
	approx := cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })
	if diff := cmp.Diff(want, got, approx); diff != "" {
		t.Errorf("Charges() (-want +got):\n%s", diff)
	}
	sum := 0.0
	for _, l := range got {
		sum += l.USD
	}
	if _, total := c.Bill(); sum-total > 1e-9 || total-sum > 1e-9 {
		t.Errorf("Charges() add up to $%v; Bill() = $%v", sum, total)
	}
}

// TestDetailedMonitoring: an instance launched with detailed monitoring
// says so in DescribeInstances and publishes its AWS/EC2 metrics every
// minute, one without every 5 minutes; a 5-minute period over 1-minute
// samples is their statistic; MonitorInstances switches from the next
// 5-minute mark.
func TestDetailedMonitoring(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Boot = 0
	t0 := c.Clock().Now()
	busyAt := t0.Add(12 * time.Minute)
	c.Usage = func(_ string, at time.Time) (awssim.Usage, bool) {
		if at.Equal(busyAt) {
			return awssim.Usage{CPU: 50, NetBytesPerSec: 100}, true
		}
		return awssim.Usage{CPU: 1, NetBytesPerSec: 100}, true
	}
	detailed := launch(t, c, "g5.xlarge", nil, func(in *ec2.RunInstancesInput) {
		in.Monitoring = &types.RunInstancesMonitoringEnabled{Enabled: aws.Bool(true)}
	})
	basic := launch(t, c, "g5.xlarge", nil)
	c.Clock().Advance(30 * time.Minute)

	states := map[string]types.MonitoringState{}
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Reservations {
		states[aws.ToString(r.Instances[0].InstanceId)] = r.Instances[0].Monitoring.State
	}
	if states[detailed] != types.MonitoringStateEnabled || states[basic] != types.MonitoringStateDisabled {
		t.Errorf("Monitoring.State = %v; want %s enabled, %s disabled", states, detailed, basic)
	}

	query := func(id, name, stat string, period int32) cwtypes.MetricDataResult {
		t.Helper()
		out, err := c.GetMetricData(ctx, &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(t0), EndTime: aws.Time(c.Clock().Now()),
			MetricDataQueries: []cwtypes.MetricDataQuery{{Id: aws.String("q"), MetricStat: &cwtypes.MetricStat{
				Metric: &cwtypes.Metric{Namespace: aws.String("AWS/EC2"), MetricName: aws.String(name),
					Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id)}}},
				Period: aws.Int32(period), Stat: aws.String(stat),
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return out.MetricDataResults[0]
	}
	if got := query(detailed, "CPUUtilization", "Maximum", 60); len(got.Values) != 30 || got.Timestamps[0].Sub(got.Timestamps[1]) != time.Minute {
		t.Errorf("detailed CPU at 60 s: %d points %v; want 30, a minute apart", len(got.Values), got.Timestamps)
	}
	if got := query(basic, "CPUUtilization", "Maximum", 60); len(got.Values) != 6 || got.Timestamps[0].Sub(got.Timestamps[1]) != 5*time.Minute {
		t.Errorf("basic CPU at 60 s: %d points %v; want 6, 5 minutes apart", len(got.Values), got.Timestamps)
	}
	// The busy minute: the 1-minute data's maximum over 5 minutes; the
	// basic sample's 5-minute average.
	if got := query(detailed, "CPUUtilization", "Maximum", 300).Values; len(got) != 6 || got[3] != 50 || got[2] != 1 {
		t.Errorf("detailed CPU Maximum at 300 s, newest first = %v; want 50 in the 10-15 minute period", got)
	}
	if got := query(basic, "CPUUtilization", "Maximum", 300).Values; len(got) != 6 || got[3] != (50+4*1)/5.0 {
		t.Errorf("basic CPU at 300 s, newest first = %v; want the 10-15 minute average 10.8", got)
	}
	for _, id := range []string{detailed, basic} {
		if got := query(id, "NetworkIn", "Sum", 300).Values; len(got) != 6 || got[0] != 50*300 {
			t.Errorf("%s NetworkIn Sum at 300 s = %v; want 15000 bytes each", id, got)
		}
	}
	if got := query(detailed, "NetworkOut", "Sum", 60).Values; got[0] != 50*60 {
		t.Errorf("detailed NetworkOut Sum at 60 s = %v; want 3000 bytes a minute", got)
	}

	// Switched at minute 32: 1-minute data from minute 35.
	c.Clock().Advance(2 * time.Minute)
	mon, err := c.MonitorInstances(ctx, &ec2.MonitorInstancesInput{InstanceIds: []string{basic}})
	if err != nil || len(mon.InstanceMonitorings) != 1 || mon.InstanceMonitorings[0].Monitoring.State != types.MonitoringStatePending {
		t.Fatalf("MonitorInstances = %+v, %v; want pending", mon, err)
	}
	c.Clock().Advance(8 * time.Minute)
	got := query(basic, "CPUUtilization", "Maximum", 60)
	if len(got.Timestamps) != 7+5 || !got.Timestamps[4].Equal(t0.Add(35*time.Minute)) || !got.Timestamps[5].Equal(t0.Add(30*time.Minute)) {
		t.Errorf("after MonitorInstances at minute 32: %v; want 1-minute points from minute 35, 5-minute ones before", got.Timestamps)
	}
	if _, err := c.UnmonitorInstances(ctx, &ec2.UnmonitorInstancesInput{InstanceIds: []string{"i-nope"}}); code(err) != "InvalidInstanceID.NotFound" {
		t.Errorf("UnmonitorInstances(unknown) = %v; want InvalidInstanceID.NotFound", err)
	}
}
