package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// fakeRechecker records the instances each Recheck was asked about.
type fakeRechecker struct{ asked [][]string }

func (f *fakeRechecker) Recheck(_ context.Context, _ scheduler.Options, ids []string) error {
	f.asked = append(f.asked, ids)
	return nil
}

// TestIntakeRecheck: re-check messages are not submitted as jobs; the batch
// reconciles once through Recheck with every good one; a malformed one is
// an error in the log and acknowledged, never retried.
func TestIntakeRecheck(t *testing.T) {
	var logs bytes.Buffer
	f, r := &fakeScheduler{}, &fakeRechecker{}
	h := Intake{S: f, R: r, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	ev := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m1", Body: `{"recheck": "i-0123456789abcdef0"}`},
		{MessageId: "m2", Body: `{"recheck": "bogus"}`},
		{MessageId: "m3", Body: `{"command": "python train.py"}`},
		{MessageId: "m4", Body: `{"recheck": "i-0fedcba9876543210"}`},
	}}
	resp, err := h.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("Handle = %+v, %v; want every message acknowledged", resp, err)
	}
	if diff := cmp.Diff([]string{"Submit m3"}, f.calls); diff != "" {
		t.Errorf("scheduler calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"i-0123456789abcdef0", "i-0fedcba9876543210"}}, r.asked); diff != "" {
		t.Errorf("Recheck calls (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), "level=ERROR msg=\"malformed recheck message; dropped\" message=m2") {
		t.Errorf("log has no error for the malformed re-check:\n%s", logs.String())
	}

	// Without a Rechecker (old wiring) a re-check still reconciles.
	f = &fakeScheduler{}
	h = Intake{S: f, Log: discard}
	if _, err := h.Handle(context.Background(), events.SQSEvent{Records: ev.Records[:1]}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"Reconcile"}, f.calls); diff != "" {
		t.Errorf("without a Rechecker, calls (-want +got):\n%s", diff)
	}
}

// TestIntakeRecheckSample: the sample re-check reaches Recheck with its
// instance.
func TestIntakeRecheckSample(t *testing.T) {
	var ev events.SQSEvent
	if err := json.Unmarshal(sample(t, "sqs-recheck.json"), &ev); err != nil {
		t.Fatal(err)
	}
	f, r := &fakeScheduler{}, &fakeRechecker{}
	resp, err := Intake{S: f, R: r, Log: discard}.Handle(context.Background(), ev)
	if err != nil || len(resp.BatchItemFailures) != 0 || len(f.calls) != 0 {
		t.Fatalf("Handle = %+v, %v, calls %v; want acknowledged, no Submit", resp, err, f.calls)
	}
	if diff := cmp.Diff([][]string{{"i-0abcd1234efgh5678"}}, r.asked); diff != "" {
		t.Errorf("Recheck calls (-want +got):\n%s", diff)
	}
}
