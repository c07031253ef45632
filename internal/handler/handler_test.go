package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// fakeScheduler records the calls the handlers make.
type fakeScheduler struct {
	calls []string
	// fresh is the ids of each Reconcile's fresh jobs.
	fresh [][]string
	// submit decides each message's outcome by message id.
	submit func(id string) (scheduler.Result, error)
}

func (f *fakeScheduler) Submit(_ context.Context, raw []byte, id string) (scheduler.Result, error) {
	f.calls = append(f.calls, "Submit "+id)
	if f.submit != nil {
		return f.submit(id)
	}
	return scheduler.Result{ID: id}, nil
}

func (f *fakeScheduler) Reconcile(_ context.Context, o scheduler.Options) error {
	var ids []string
	for _, j := range o.Fresh {
		if j != nil {
			ids = append(ids, j.ID)
		}
	}
	f.fresh = append(f.fresh, ids)
	if o.Poll {
		f.calls = append(f.calls, "Reconcile poll")
	} else {
		f.calls = append(f.calls, "Reconcile")
	}
	return nil
}

func (f *fakeScheduler) CommandEvent(_ context.Context, cmd, iid, status string) error {
	f.calls = append(f.calls, "CommandEvent "+cmd+" "+iid+" "+status)
	return nil
}

func (f *fakeScheduler) InstanceEvent(_ context.Context, iid, state string) error {
	f.calls = append(f.calls, "InstanceEvent "+iid+" "+state)
	return nil
}

func (f *fakeScheduler) SpotWarning(_ context.Context, iid, action string) error {
	f.calls = append(f.calls, "SpotWarning "+iid+" "+action)
	return nil
}

func (f *fakeScheduler) Rebalance(_ context.Context, iid string) error {
	f.calls = append(f.calls, "Rebalance "+iid)
	return nil
}

func sample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var discard = slog.New(slog.DiscardHandler)

func TestDispatchSamples(t *testing.T) {
	const iid, cmd = "i-0abcd1234efgh5678", "3f2a0d5c-6b1e-4c8a-9d7f-2e5b8c1a4f60"
	tests := []struct {
		give string
		want string
	}{
		{"ec2-state-change.json", "InstanceEvent " + iid + " running"},
		{"ec2-state-stopped.json", "InstanceEvent " + iid + " stopped"},
		{"ec2-state-terminated.json", "InstanceEvent " + iid + " terminated"},
		{"ssm-command-success.json", "CommandEvent " + cmd + " " + iid + " Success"},
		{"ssm-command-failed.json", "CommandEvent " + cmd + " " + iid + " Failed"},
		{"spot-interruption.json", "SpotWarning " + iid + " terminate"},
		{"spot-rebalance.json", "Rebalance " + iid},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			f := &fakeScheduler{}
			if err := (Dispatch{S: f, Log: discard}).Handle(context.Background(), sample(t, tt.give)); err != nil {
				t.Fatalf("Handle(%s) = %v", tt.give, err)
			}
			if diff := cmp.Diff([]string{tt.want}, f.calls); diff != "" {
				t.Errorf("Handle(%s) calls mismatch (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

func TestDispatchBadEvents(t *testing.T) {
	tests := []struct{ name, give string }{
		{"not json", `nope`},
		{"other detail-type", `{"detail-type": "AWS API Call via CloudTrail", "source": "aws.ec2", "detail": {}}`},
		{"state without instance", `{"detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2", "detail": {"state": "running"}}`},
		{"command without id", `{"detail-type": "EC2 Command Invocation Status-change Notification", "source": "aws.ssm", "detail": {"instance-id": "i-1", "status": "Success"}}`},
		{"detail of the wrong shape", `{"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": ["i-1"]}`},
		{"rebalance without instance", `{"detail-type": "EC2 Instance Rebalance Recommendation", "source": "aws.ec2", "detail": {}}`},
		{"rebalance of the wrong shape", `{"detail-type": "EC2 Instance Rebalance Recommendation", "source": "aws.ec2", "detail": {"instance-id": 7}}`},
		{"rebalance without detail", `{"detail-type": "EC2 Instance Rebalance Recommendation", "source": "aws.ec2"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeScheduler{}
			err := (Dispatch{S: f, Log: discard}).Handle(context.Background(), json.RawMessage(tt.give))
			if !errors.Is(err, ErrUnknownEvent) || len(f.calls) != 0 {
				t.Errorf("Handle(%s) = %v, calls %v; want ErrUnknownEvent and no call", tt.give, err, f.calls)
			}
		})
	}
}

func TestWatchdogSample(t *testing.T) {
	f := &fakeScheduler{}
	if err := (Watchdog{S: f, Log: discard}).Handle(context.Background(), sample(t, "watchdog-tick.json")); err != nil {
		t.Fatalf("Handle(tick) = %v", err)
	}
	if diff := cmp.Diff([]string{"Reconcile poll"}, f.calls); diff != "" {
		t.Errorf("tick calls mismatch (-want +got):\n%s", diff)
	}
}

func TestIntakeBatch(t *testing.T) {
	var ev events.SQSEvent
	if err := json.Unmarshal(sample(t, "sqs-bad-jobs.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Records) < 3 {
		t.Fatalf("sample has %d records; want a batch", len(ev.Records))
	}
	transient := ev.Records[1].MessageId
	f := &fakeScheduler{submit: func(id string) (scheduler.Result, error) {
		switch id {
		case transient:
			return scheduler.Result{ID: id}, errors.New("dynamodb: throttled")
		case ev.Records[0].MessageId:
			return scheduler.Result{ID: id, Outcome: scheduler.Rejected, Reason: errors.New("malformed JSON")}, nil
		}
		return scheduler.Result{ID: id, Outcome: scheduler.Accepted}, nil
	}}
	resp, err := (Intake{S: f, Log: discard}).Handle(context.Background(), ev)
	if err != nil {
		t.Fatalf("Handle(batch) = %v", err)
	}
	// Only the message that hit a transient error is retried; the rejected
	// one is acknowledged.
	want := []events.SQSBatchItemFailure{{ItemIdentifier: transient}}
	if diff := cmp.Diff(want, resp.BatchItemFailures); diff != "" {
		t.Errorf("batch item failures mismatch (-want +got):\n%s", diff)
	}
	if last := f.calls[len(f.calls)-1]; last != "Reconcile" {
		t.Errorf("last call %q; want one Reconcile after the batch", last)
	}
}

// TestIntakeCancel: cancel messages are acknowledged whatever they find —
// a job to stop, a job ended already, no job at all — and the jobs they
// changed are handed to the reconcile that follows.
func TestIntakeCancel(t *testing.T) {
	var ev events.SQSEvent
	if err := json.Unmarshal(sample(t, "sqs-cancel.json"), &ev); err != nil {
		t.Fatal(err)
	}
	outcomes := []scheduler.Result{
		{ID: "resnet-cifar10", Outcome: scheduler.Cancelling, Job: &job.Job{ID: "resnet-cifar10", State: job.Running}},
		{ID: "resnet-cifar10", Outcome: scheduler.Ended, Job: &job.Job{ID: "resnet-cifar10", State: job.Cancelled}},
		{ID: "resnet-cifar11", Outcome: scheduler.NoSuchJob},
	}
	if len(ev.Records) != len(outcomes) {
		t.Fatalf("sample has %d records; want %d", len(ev.Records), len(outcomes))
	}
	byMsg := map[string]scheduler.Result{}
	for i, r := range ev.Records {
		byMsg[r.MessageId] = outcomes[i]
	}
	var logged bytes.Buffer
	f := &fakeScheduler{submit: func(id string) (scheduler.Result, error) { return byMsg[id], nil }}
	resp, err := (Intake{S: f, Log: slog.New(slog.NewJSONHandler(&logged, nil))}).Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle(cancels) = %v, %v; want every message acknowledged", resp.BatchItemFailures, err)
	}
	if diff := cmp.Diff([][]string{{"resnet-cifar10"}}, f.fresh); diff != "" {
		t.Errorf("reconciles' fresh jobs (-want +got):\n%s", diff)
	}
	for _, want := range []string{"cancelling job", "cancel message for a job that has ended", "cancel message for a job that does not exist"} {
		if !strings.Contains(logged.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logged.String())
		}
	}
}
