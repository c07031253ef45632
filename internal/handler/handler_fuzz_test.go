package handler

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// samples returns the contents of the events/ files whose names match glob.
func samples(f *testing.F, glob string) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "events", glob))
	if err != nil || len(files) == 0 {
		f.Fatalf("events/%s: %v, %d files", glob, err, len(files))
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// Outcomes the fuzzed intake scheduler gives a message, by the mode byte.
const (
	modeParse     = iota // job.Parse decides: accepted or rejected
	modeTransient        // the store failed: an error
	modeDuplicate        // the job exists
	modes
)

var errThrottled = errors.New("dynamodb: throttled")

// intakeScheduler is a Submit whose outcome per message the fuzzer picks;
// a message it does not fail is parsed for real, so a rejection carries
// job.Parse's reason, as the scheduler's does.
type intakeScheduler struct {
	fakeScheduler
	modes     []byte
	failRecon bool
	submitted []string // "id\x00body" per call
	outcomes  []scheduler.Result
	fails     []string // ids Submit returned an error for
	fresh     [][]*job.Job
}

func (f *intakeScheduler) Submit(_ context.Context, raw []byte, id string) (scheduler.Result, error) {
	n := len(f.submitted)
	f.submitted = append(f.submitted, id+"\x00"+string(raw))
	mode := modeParse
	if len(f.modes) > 0 {
		mode = int(f.modes[n%len(f.modes)]) % modes
	}
	var res scheduler.Result
	switch mode {
	case modeTransient:
		f.fails = append(f.fails, id)
		return scheduler.Result{ID: id}, errThrottled
	case modeDuplicate:
		res = scheduler.Result{ID: id, Outcome: scheduler.Duplicate}
	default:
		spec, err := job.Parse(raw, intakeDefaults)
		if err != nil {
			res = scheduler.Result{ID: id, Outcome: scheduler.Rejected, Reason: err}
			break
		}
		j := job.New(spec, spec.Instance.Pool, time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC))
		res = scheduler.Result{ID: id, Outcome: scheduler.Accepted, Job: j}
	}
	f.outcomes = append(f.outcomes, res)
	return res, nil
}

func (f *intakeScheduler) Reconcile(_ context.Context, o scheduler.Options) error {
	f.fresh = append(f.fresh, o.Fresh)
	if f.failRecon {
		return errThrottled
	}
	return nil
}

var intakeDefaults = job.Defaults{
	Pool: "default", MaxRuntime: 2 * time.Hour, Retries: 2, Setup: ". /opt/pytorch/bin/activate",
	Market: job.OnDemand, Pools: []string{"default"},
	KnownType: func(t string) bool { return strings.HasPrefix(t, "g") },
}

// FuzzIntake feeds Intake SQS batches: the sample batches as fuzzed JSON,
// plus one record of fuzzed id and body, with fuzzed outcomes. Every record
// must be submitted once, in order; exactly the failed ones come back as
// batch item failures; the accepted jobs are reconciled once, together.
func FuzzIntake(f *testing.F) {
	for _, b := range samples(f, "sqs-*.json") {
		f.Add(b, []byte(`{"command": "python train.py"}`), "5a8e13e7-3f6c-4c29-9d8e-0b1d0f6a2c41", []byte{0, 1, 2}, false)
		f.Add(b, []byte(`{"comand": "x"}`), "", []byte{1}, true)
	}
	f.Add([]byte(`{"Records": []}`), []byte(``), "m-1", []byte{}, false)
	f.Add([]byte(`nope`), []byte(`{"id": "a", "command": "x"}`), "a", []byte{2, 0}, false)
	f.Fuzz(func(t *testing.T, batch, body []byte, id string, modes []byte, failRecon bool) {
		var ev events.SQSEvent
		if json.Unmarshal(batch, &ev) != nil {
			ev = events.SQSEvent{}
		}
		ev.Records = append(ev.Records, events.SQSMessage{MessageId: id, Body: string(body)})
		s := &intakeScheduler{modes: modes, failRecon: failRecon}
		resp, err := (Intake{S: s, Log: discard}).Handle(context.Background(), ev)
		if err != nil {
			t.Fatalf("Handle(%d records) = %v; want the batch acknowledged through its item failures", len(ev.Records), err)
		}
		// Re-check messages are nightshift's own: reconciled, never submitted.
		var want []string
		rechecks := 0
		for _, m := range ev.Records {
			if job.IsRecheck([]byte(m.Body)) {
				rechecks++
				continue
			}
			want = append(want, m.MessageId+"\x00"+m.Body)
		}
		if !slices.Equal(s.submitted, want) {
			t.Fatalf("Handle submitted %q; want each record once, in order: %q", s.submitted, want)
		}
		var failed []string
		for _, fl := range resp.BatchItemFailures {
			failed = append(failed, fl.ItemIdentifier)
		}
		if !slices.Equal(failed, s.fails) {
			t.Errorf("Handle batch item failures = %q; want the records Submit failed: %q", failed, s.fails)
		}
		var accepted []*job.Job
		for _, r := range s.outcomes {
			if r.Outcome == scheduler.Accepted {
				accepted = append(accepted, r.Job)
			}
		}
		if len(s.outcomes)+len(s.fails)+rechecks != len(ev.Records) {
			t.Errorf("Handle: %d outcomes and %d failures for %d records", len(s.outcomes), len(s.fails), len(ev.Records))
		}
		switch {
		case len(accepted) == 0 && rechecks == 0 && len(s.fresh) != 0:
			t.Errorf("Handle reconciled %d times with nothing accepted; want none", len(s.fresh))
		case len(accepted) == 0 && rechecks > 0 && len(s.fresh) > 1:
			t.Errorf("Handle reconciled %d times for re-checks; want at most once", len(s.fresh))
		case len(accepted) > 0 && (len(s.fresh) != 1 || !slices.Equal(s.fresh[0], accepted)):
			t.Errorf("Handle reconciled with %v; want once, with the %d accepted jobs in order", s.fresh, len(accepted))
		}
	})
}

// dispatchScheduler records the one call Dispatch makes and can fail it.
type dispatchScheduler struct {
	fakeScheduler
	fail bool
}

var errStore = errors.New("dynamodb: unavailable")

func (f *dispatchScheduler) err() error {
	if f.fail {
		return errStore
	}
	return nil
}

func (f *dispatchScheduler) CommandEvent(ctx context.Context, cmd, iid, status string) error {
	f.calls = append(f.calls, "CommandEvent")
	if cmd == "" || iid == "" || status == "" {
		f.calls = append(f.calls, "with an empty argument")
	}
	return f.err()
}

func (f *dispatchScheduler) InstanceEvent(ctx context.Context, iid, state string) error {
	f.calls = append(f.calls, "InstanceEvent")
	if iid == "" || state == "" {
		f.calls = append(f.calls, "with an empty argument")
	}
	return f.err()
}

func (f *dispatchScheduler) SpotWarning(ctx context.Context, iid, action string) error {
	f.calls = append(f.calls, "SpotWarning")
	if iid == "" {
		f.calls = append(f.calls, "with an empty argument")
	}
	return f.err()
}

func (f *dispatchScheduler) Rebalance(ctx context.Context, iid string) error {
	f.calls = append(f.calls, "Rebalance")
	if iid == "" {
		f.calls = append(f.calls, "with an empty argument")
	}
	return f.err()
}

// dispatchCalls is the scheduler call each detail-type makes.
var dispatchCalls = map[string]string{
	DetailInstanceState: "InstanceEvent",
	DetailCommandStatus: "CommandEvent",
	DetailSpotWarning:   "SpotWarning",
	DetailRebalance:     "Rebalance",
}

// FuzzDispatch feeds Dispatch raw events. Each is handled (one scheduler
// call, for its detail-type, with the detail's required fields) or refused
// with an error wrapping ErrUnknownEvent and no call; a failing call's
// error comes back as it is.
func FuzzDispatch(f *testing.F) {
	for _, b := range samples(f, "*.json") {
		f.Add(b, false)
		f.Add(b, true)
	}
	f.Add([]byte(`{"detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2", "detail": ["i-1"]}`), false)
	f.Add([]byte(`{"detail-type": "EC2 Instance State-change Notification", "detail": null}`), false)
	f.Add([]byte(`{"detail-type": "EC2 Instance Rebalance Recommendation", "detail": {"instance-id": ""}}`), false)
	f.Add([]byte(`{"detail-type": "EC2 Command Invocation Status-change Notification", "time": "yesterday", "detail": {}}`), false)
	f.Fuzz(func(t *testing.T, raw []byte, fail bool) {
		s := &dispatchScheduler{fail: fail}
		err := (Dispatch{S: s, Log: discard}).Handle(context.Background(), raw)
		switch {
		case errors.Is(err, ErrUnknownEvent):
			if len(s.calls) != 0 || err.Error() == "" {
				t.Errorf("Handle(%q) = %v after calls %q; want no call", raw, err, s.calls)
			}
			return
		case err != nil && (!fail || !errors.Is(err, errStore)):
			t.Fatalf("Handle(%q) = %v; want nil, ErrUnknownEvent or the scheduler's own error", raw, err)
		}
		var ev events.CloudWatchEvent
		if uerr := json.Unmarshal(raw, &ev); uerr != nil {
			t.Fatalf("Handle(%q) = %v, calls %q, for what is not an event (%v)", raw, err, s.calls, uerr)
		}
		if want := dispatchCalls[ev.DetailType]; len(s.calls) != 1 || s.calls[0] != want {
			t.Errorf("Handle(%q) calls = %q; want one %q for detail-type %q", raw, s.calls, want, ev.DetailType)
		}
	})
}

// sweeper counts sweeps.
type sweeper struct{ n int }

func (s *sweeper) Sweep(context.Context) (watchdog.Report, error) {
	s.n++
	return watchdog.Report{}, nil
}

func (s *sweeper) Figures(context.Context, watchdog.Report, map[string]int) (metrics.Tick, error) {
	return metrics.Tick{}, nil
}

// FuzzWatchdog feeds the tick any payload: the payload is not read, so
// every one sweeps once and reconciles once, with polling.
func FuzzWatchdog(f *testing.F) {
	for _, b := range samples(f, "*.json") {
		f.Add(b)
	}
	f.Add([]byte(``))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, w := &fakeScheduler{}, &sweeper{}
		if err := (Watchdog{S: s, W: w, Log: discard}).Handle(context.Background(), raw); err != nil {
			t.Fatalf("Handle(%q) = %v; want nil", raw, err)
		}
		if w.n != 1 || !slices.Equal(s.calls, []string{"Reconcile poll"}) {
			t.Errorf("Handle(%q): %d sweeps, calls %q; want one sweep and one polling reconcile", raw, w.n, s.calls)
		}
	})
}
