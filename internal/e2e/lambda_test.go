package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"
)

// TestIntake: a job message yields one job record in DynamoDB and one tagged
// instance in EC2, however many times SQS delivers it, to however many
// execution environments. moto ignores ClientToken, so a second launch would
// show here as a second instance.
func TestIntake(t *testing.T) {
	tests := []struct {
		name       string
		give       string // sample in events/
		deliveries int
		containers int // emulator processes the deliveries go to, in turn
		want       string
	}{
		{name: "job", give: "sqs-job.json", deliveries: 1, containers: 1, want: "resnet-cifar10"},
		{name: "job delivered three times", give: "sqs-job.json", deliveries: 3, containers: 1, want: "resnet-cifar10"},
		{name: "job delivered three times to two containers", give: "sqs-job.json", deliveries: 3, containers: 2, want: "resnet-cifar10"},
		{name: "scheduled job", give: "sqs-scheduled-job.json", deliveries: 2, containers: 1, want: "nightly-train-2026-11-25T020000Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCloud(t)
			event := readEvent(t, tt.give)
			env := c.env(t)
			var fns []*lambdaFunc
			for range tt.containers {
				fns = append(fns, startFunction(t, "intake", env))
			}
			for n := range tt.deliveries {
				body, ferr := fns[n%len(fns)].invoke(t, event)
				if ferr != nil {
					t.Fatalf("intake(%s), delivery %d = error %s: %s; want success", tt.give, n+1, ferr.Type, ferr.Message)
				}
				if f := batchItemFailures(t, body); len(f) != 0 {
					t.Errorf("intake(%s), delivery %d: batchItemFailures = %v; want none", tt.give, n+1, f)
				}
			}

			if got := c.jobIDs(t); !cmp.Equal(got, []string{tt.want}) {
				t.Fatalf("job records = %v; want [%s]", got, tt.want)
			}
			items := c.jobItems(t, tt.want)
			if len(items) != 1 {
				t.Fatalf("items under pk JOB#%s = %d; want 1", tt.want, len(items))
			}
			j := items[0]
			insts := c.instances(t)
			if len(insts) != 1 {
				t.Fatalf("instances in EC2 = %d (%v); want 1", len(insts), instanceIDs(insts))
			}
			inst := insts[0]
			id := aws.ToString(inst.InstanceId)
			if got, want := str(j["state"]), "PLACED"; got != want {
				t.Errorf("job %s state = %q (reason %q); want %q", tt.want, got, str(j["reason"]), want)
			}
			if got := str(j["instance_id"]); got != id {
				t.Errorf("job %s instance_id = %q; want the launched instance %q", tt.want, got, id)
			}
			if got := str(c.lease(t, id)["job_id"]); got != tt.want {
				t.Errorf("lease of %s job_id = %q; want %q", id, got, tt.want)
			}

			// EC2 adds aws:* tags of its own (the launch template's id and
			// version); only nightshift's are compared.
			got := tags(inst)
			maps.DeleteFunc(got, func(k, _ string) bool { return strings.HasPrefix(k, "aws:") })
			wantTags := map[string]string{
				"nightshift:managed": "true",
				"nightshift:pool":    "default",
				"nightshift:job":     tt.want,
				"nightshift:attempt": "1",
				"Name":               got["Name"],
			}
			if diff := cmp.Diff(wantTags, got); diff != "" {
				t.Errorf("instance %s tags (-want +got):\n%s", id, diff)
			}
			if !strings.Contains(got["Name"], tt.want) {
				t.Errorf("instance %s Name = %q; want it to name the job %s", id, got["Name"], tt.want)
			}
			if inst.InstanceType != "g4dn.xlarge" {
				t.Errorf("instance %s type = %s; want g4dn.xlarge (the default pool's)", id, inst.InstanceType)
			}
			if got := aws.ToString(inst.ImageId); got != c.ami {
				t.Errorf("instance %s image = %s; want %s from parameter %s", id, got, c.ami, amiParameter)
			}
			if mo := inst.MetadataOptions; mo != nil && mo.HttpTokens != ec2types.HttpTokensStateRequired {
				t.Errorf("instance %s HttpTokens = %q; want required (IMDSv2)", id, mo.HttpTokens)
			}
		})
	}
}

// TestIntakeBadMessages: bad messages are acknowledged (never retried), each
// recorded as REJECTED with its own specific reason, and the good message in
// the same batch is recorded and launched.
func TestIntakeBadMessages(t *testing.T) {
	c := newCloud(t)
	intake := startFunction(t, "intake", c.env(t))
	body, ferr := intake.invoke(t, readEvent(t, "sqs-bad-jobs.json"))
	if ferr != nil {
		t.Fatalf("intake(sqs-bad-jobs.json) = error %s: %s; want success", ferr.Type, ferr.Message)
	}
	if f := batchItemFailures(t, body); len(f) != 0 {
		t.Errorf("intake(sqs-bad-jobs.json): batchItemFailures = %v; want none: a bad message can never succeed", f)
	}

	tests := []struct {
		name      string
		give      string // job id: the message's own, or its SQS message id when it has no usable one
		wantState string
		wantIn    []string // substrings of the reason
	}{
		{name: "malformed JSON", give: "c80e8021-a70a-42c7-a470-796e1186f753", wantState: "REJECTED", wantIn: []string{"malformed JSON", "at byte"}},
		{name: "unknown field", give: "typo-comand", wantState: "REJECTED", wantIn: []string{"unknown field", `"comand"`, `did you mean "command"`}},
		{name: "missing command", give: "forgot-command", wantState: "REJECTED", wantIn: []string{"missing command"}},
		{name: "bad id", give: "e3c7a915-2b48-4d6f-a0e1-7c5b9d3f8a26", wantState: "REJECTED", wantIn: []string{"bad id", "resnet cifar10/v2"}},
		{name: "good job", give: "bert-finetune", wantState: "PLACED"},
	}
	var want []string
	for _, tt := range tests {
		want = append(want, tt.give)
		t.Run(tt.name, func(t *testing.T) {
			items := c.jobItems(t, tt.give)
			if len(items) != 1 {
				t.Fatalf("items under pk JOB#%s = %d; want 1", tt.give, len(items))
			}
			state, reason := str(items[0]["state"]), str(items[0]["reason"])
			if state != tt.wantState {
				t.Errorf("job %s state = %q (reason %q); want %q", tt.give, state, reason, tt.wantState)
			}
			for _, s := range tt.wantIn {
				if !strings.Contains(reason, s) {
					t.Errorf("job %s reason = %q; want it to contain %q", tt.give, reason, s)
				}
			}
		})
	}
	got := c.jobIDs(t)
	if diff := cmp.Diff(sorted(want), got); diff != "" {
		t.Errorf("job records (-want +got):\n%s", diff)
	}
	insts := c.instances(t)
	if len(insts) != 1 || tags(insts[0])["nightshift:job"] != "bert-finetune" {
		t.Errorf("instances = %v; want one, for bert-finetune", instanceIDs(insts))
	}
}

// TestIntakeCancel: a cancel message, as typed in the SQS console, ends a
// placed job at once and frees its instance for the next job; the same
// cancel again, and one for an id with no job, are acknowledged and change
// nothing.
func TestIntakeCancel(t *testing.T) {
	c := newCloud(t)
	intake := startFunction(t, "intake", c.env(t))
	for _, sample := range []string{"sqs-job.json", "sqs-cancel.json"} {
		body, ferr := intake.invoke(t, readEvent(t, sample))
		if ferr != nil {
			t.Fatalf("intake(%s) = error %s: %s; want success", sample, ferr.Type, ferr.Message)
		}
		if f := batchItemFailures(t, body); len(f) != 0 {
			t.Errorf("intake(%s): batchItemFailures = %v; want none", sample, f)
		}
	}
	items := c.jobItems(t, "resnet-cifar10")
	if len(items) != 1 {
		t.Fatalf("items under pk JOB#resnet-cifar10 = %d; want 1", len(items))
	}
	j := items[0]
	if state, reason := str(j["state"]), str(j["reason"]); state != "CANCELLED" || reason != "cancelled: wrong learning rate" {
		t.Errorf("job state = %q (reason %q); want CANCELLED (cancelled: wrong learning rate)", state, reason)
	}
	if _, live := j["live_pk"]; live {
		t.Errorf("cancelled job still in the live index: live_pk = %v", j["live_pk"])
	}
	insts := c.instances(t)
	if len(insts) != 1 {
		t.Fatalf("instances = %v; want the one launched for the job", instanceIDs(insts))
	}
	if l := c.lease(t, aws.ToString(insts[0].InstanceId)); str(l["job_id"]) != "" {
		t.Errorf("lease of %s = %v; want it free for the next job", aws.ToString(insts[0].InstanceId), l)
	}
	if got := c.jobIDs(t); !cmp.Equal(got, []string{"resnet-cifar10"}) {
		t.Errorf("job records = %v; want [resnet-cifar10]: a cancel of an unknown id records nothing", got)
	}
}

// TestDispatch: every EC2 and SSM sample event is understood; an event of
// another kind is an error, so a wrong EventBridge rule shows in the
// function's error metric.
func TestDispatch(t *testing.T) {
	c := newCloud(t)
	dispatch := startFunction(t, "dispatch", c.env(t))

	var samples []string
	for _, pattern := range []string{"ec2-state-*.json", "ssm-command-*.json", "spot-interruption.json", "spot-rebalance.json"} {
		m := globEvents(t, pattern)
		if len(m) == 0 {
			t.Fatalf("no sample events/%s", pattern)
		}
		samples = append(samples, m...)
	}
	for _, name := range samples {
		t.Run(name, func(t *testing.T) {
			if _, ferr := dispatch.invoke(t, readEvent(t, name)); ferr != nil {
				t.Errorf("dispatch(%s) = error %s: %s; want success", name, ferr.Type, ferr.Message)
			}
		})
	}

	junk := []struct {
		name string
		give string
	}{
		{name: "unknown detail-type", give: `{"detail-type":"Nope"}`},
		{name: "state change without detail", give: `{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}`},
		{name: "command status without ids", give: `{"detail-type":"EC2 Command Invocation Status-change Notification","source":"aws.ssm","detail":{"status":"Success"}}`},
		{name: "not an object", give: `[1,2,3]`},
	}
	for _, tt := range junk {
		t.Run(tt.name, func(t *testing.T) {
			body, ferr := dispatch.invoke(t, []byte(tt.give))
			if ferr == nil {
				t.Fatalf("dispatch(%s) = %s; want an error", tt.give, body)
			}
			if !strings.Contains(ferr.Message, "unknown event") {
				t.Errorf("dispatch(%s) = error %q; want it to say unknown event", tt.give, ferr.Message)
			}
		})
	}
}

// TestWatchdog: the one-minute tick reconciles and succeeds.
func TestWatchdog(t *testing.T) {
	c := newCloud(t)
	watchdog := startFunction(t, "watchdog", c.env(t))
	if body, ferr := watchdog.invoke(t, readEvent(t, "watchdog-tick.json")); ferr != nil {
		t.Errorf("watchdog(watchdog-tick.json) = error %s: %s; want success", ferr.Type, ferr.Message)
	} else if string(body) != "null" {
		t.Errorf("watchdog(watchdog-tick.json) = %s; want null", body)
	}
}

// readEvent returns a sample from events/.
func readEvent(t testing.TB, name string) []byte {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "events", name))
	if err != nil {
		t.Fatalf("sample event: %v", err)
	}
	return b
}

// globEvents returns the names of the samples in events/ that match pattern.
func globEvents(t testing.TB, pattern string) []string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(root, "events", pattern))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = filepath.Base(p)
	}
	return names
}

// batchItemFailures decodes an intake response.
func batchItemFailures(t testing.TB, body []byte) []events.SQSBatchItemFailure {
	t.Helper()
	var resp events.SQSEventResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("intake response %s: %v", body, err)
	}
	return resp.BatchItemFailures
}

func instanceIDs(insts []ec2types.Instance) []string {
	ids := make([]string, len(insts))
	for i, in := range insts {
		ids[i] = aws.ToString(in.InstanceId) + " " + tags(in)["nightshift:job"]
	}
	return ids
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	slices.Sort(s)
	return s
}
