package scheduler

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// followRunner answers every Result with res, has every agent online or
// none, finds the command found, and records the commands it cancels and
// the jobs it stops (answering stopErr).
type followRunner struct {
	res     runner.Result
	online  bool
	found   string
	stopErr error
	cancels []string
	stopped []string
	synced  []string
}

func (r *followRunner) Online(_ context.Context, ids []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = r.online
	}
	return m, nil
}
func (r *followRunner) Find(context.Context, *job.Job, string) (string, error) { return r.found, nil }
func (r *followRunner) Stop(_ context.Context, j *job.Job, _ string) (string, error) {
	if r.stopErr != nil {
		return "", r.stopErr
	}
	r.stopped = append(r.stopped, j.ID)
	return "stop-" + j.ID, nil
}
func (r *followRunner) SyncNow(_ context.Context, j *job.Job, _ string) (string, error) {
	r.synced = append(r.synced, j.ID)
	return "sync-" + j.ID, nil
}
func (r *followRunner) Send(_ context.Context, j *job.Job, _ string, _ time.Duration) (string, error) {
	return "cmd-" + j.ID + "-next", nil
}
func (r *followRunner) Result(_ context.Context, commandID, _ string) (runner.Result, error) {
	res := r.res
	res.CommandID = commandID
	return res, nil
}
func (r *followRunner) Cancel(_ context.Context, commandID, _ string) error {
	r.cancels = append(r.cancels, commandID)
	return nil
}

// followFleet is a fixed list of instances that records the stops.
type followFleet struct {
	insts []fleet.Instance
	stops []string
}

func (f *followFleet) List(context.Context) ([]fleet.Instance, error) {
	return slices.Clone(f.insts), nil
}
func (f *followFleet) Launch(context.Context, fleet.LaunchRequest) (fleet.Instance, error) {
	return fleet.Instance{}, nil
}
func (f *followFleet) Start(context.Context, fleet.Instance) error { return nil }
func (f *followFleet) Stop(_ context.Context, i fleet.Instance) error {
	f.stops = append(f.stops, i.ID)
	return nil
}
func (f *followFleet) Tag(context.Context, fleet.Instance, string, string) error { return nil }

// TestFollowDelivery: a command SSM never delivered is a lost attempt —
// re-queued with attempt+1, the command cancelled if it still waits, the
// instance stopped if its agent is still gone — whether SSM says so
// (TimedOut, DeliveryTimedOut), or the delivery timeout has passed with the
// command not started, or a short max runtime ran out first. A command
// that ran too long is TIMED_OUT.
func TestFollowDelivery(t *testing.T) {
	started := t0.Add(time.Hour)
	tests := []struct {
		name       string
		maxRuntime time.Duration
		give       runner.Result
		online     bool          // the instance's agent reports Online
		after      time.Duration // when the watchdog polls, after the command was sent
		want       job.State
		wantTry    int      // the job's attempt afterwards
		wantCancel []string // commands cancelled
		wantStops  []string // instances stopped
	}{
		{name: "execution timed out", maxRuntime: time.Hour, give: runner.Result{Status: runner.TimedOut, ExitCode: -1},
			online: true, after: time.Hour + time.Minute, want: job.TimedOut, wantTry: 1},
		{name: "delivery timed out", maxRuntime: time.Hour, give: runner.Result{Status: runner.TimedOut, ExitCode: -1, Undelivered: true},
			online: false, after: 70 * time.Minute, want: job.Queued, wantTry: 2, wantStops: []string{"i-1"}},
		{name: "delivery timed out, agent back", maxRuntime: time.Hour, give: runner.Result{Status: runner.TimedOut, ExitCode: -1, Undelivered: true},
			online: true, after: 70 * time.Minute, want: job.Queued, wantTry: 2}, // i-1 stays up for it
		{name: "waiting for delivery", maxRuntime: time.Hour, give: runner.Result{Status: runner.Pending, ExitCode: -1, Undelivered: true},
			online: false, after: 5 * time.Minute, want: job.Running, wantTry: 1},
		{name: "not delivered by the delivery timeout", maxRuntime: time.Hour, give: runner.Result{Status: runner.Pending, ExitCode: -1, Undelivered: true},
			online: false, after: runner.DeliveryTimeout + Period + time.Second, want: job.Queued, wantTry: 2, wantCancel: []string{"cmd-1"}, wantStops: []string{"i-1"}},
		{name: "not delivered by a short deadline", maxRuntime: time.Minute, give: runner.Result{Status: runner.Pending, ExitCode: -1, Undelivered: true},
			online: false, after: 3 * time.Minute, want: job.Queued, wantTry: 2, wantCancel: []string{"cmd-1"}, wantStops: []string{"i-1"}},
		{name: "running past the deadline", maxRuntime: time.Hour, give: runner.Result{Status: runner.Pending, ExitCode: -1, Started: started},
			online: true, after: time.Hour + 2*time.Minute, want: job.TimedOut, wantTry: 1, wantCancel: []string{"cmd-1"}},
		{name: "running, delivered", maxRuntime: time.Hour, give: runner.Result{Status: runner.Pending, ExitCode: -1, Started: started},
			online: true, after: 30 * time.Minute, want: job.Running, wantTry: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			r := &followRunner{res: tt.give, online: tt.online}
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(tt.maxRuntime)}, f, r, nil, started, started.Add(tt.after))
			if err := s.Reconcile(ctx, Options{Poll: true}); err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			got, err := st.Job(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.want || got.Attempt != tt.wantTry {
				t.Errorf("Reconcile(%+v at +%v) = %s attempt %d (%s); want %s attempt %d", tt.give, tt.after, got.State, got.Attempt, got.Reason, tt.want, tt.wantTry)
			}
			if diff := cmp.Diff(tt.wantCancel, r.cancels); diff != "" {
				t.Errorf("commands cancelled (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStops, f.stops); diff != "" {
				t.Errorf("instances stopped (-want +got):\n%s", diff)
			}
		})
	}
}

// runningJob returns a scheduler at now over a store holding job "j", of
// spec (with a command, and 2 retries unless it says), RUNNING since started
// as command cmd-1 on i-1, which it holds.
func runningJob(t *testing.T, spec job.Spec, f Fleet, r Runner, n Notifier, started, now time.Time) (*Scheduler, *store.Memory) {
	t.Helper()
	if spec.Retries == nil {
		two := 2
		spec.Retries = &two
	}
	return runningAt(t, spec, f, r, n, started, now, 1, 0)
}

// runningAt is runningJob's job "j" at its attempt n, resumes of the lost
// ones resumed, with spec's retries as they are.
func runningAt(t *testing.T, spec job.Spec, f Fleet, r Runner, n Notifier, started, now time.Time, attempt, resumes int) (*Scheduler, *store.Memory) {
	t.Helper()
	ctx := context.Background()
	st := store.NewMemory()
	spec.ID, spec.Command = "j", "python train.py"
	j := job.New(spec, "gpu", t0)
	j.Attempt, j.Resumes = attempt, resumes
	if err := j.Move(job.Placed, "placed", started); err != nil {
		t.Fatal(err)
	}
	j.InstanceID, j.InstanceType = "i-1", "g5.xlarge"
	if err := st.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := st.PutLease(ctx, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0}); err != nil {
		t.Fatal(err)
	}
	if err := j.Move(job.Running, "running on i-1", started); err != nil {
		t.Fatal(err)
	}
	j.CommandID = "cmd-1"
	if err := st.Update(ctx, j, job.Placed, store.LeaseOp{InstanceID: "i-1", Pool: "gpu", Acquire: true}); err != nil {
		t.Fatal(err)
	}
	s := New(st, f, r, n, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
		func() time.Time { return now }, slog.New(slog.DiscardHandler))
	return s, st
}

// saidNotifier records what the scheduler says.
type saidNotifier struct{ said []notice.Action }

func (n *saidNotifier) Say(_ context.Context, a notice.Action) error {
	n.said = append(n.said, a)
	return nil
}

// TestFollowNotifies: every way a job ends reaches its notify — a command
// that ended, a deadline the watchdog enforced, retries spent on a lost
// attempt — and a notify of "failure" keeps quiet about a success.
func TestFollowNotifies(t *testing.T) {
	started := t0.Add(time.Hour)
	zero := 0
	tests := []struct {
		name  string
		spec  job.Spec
		give  runner.Result
		after time.Duration
		want  []string // the verbs said
	}{
		{name: "succeeded, notify end", spec: job.Spec{Notify: job.NotifyEnd, MaxRuntime: job.Duration(time.Hour)},
			give: runner.Result{Status: runner.Success, Started: started}, after: 10 * time.Minute, want: []string{"job j SUCCEEDED"}},
		{name: "succeeded, notify failure", spec: job.Spec{Notify: job.NotifyFailure, MaxRuntime: job.Duration(time.Hour)},
			give: runner.Result{Status: runner.Success, Started: started}, after: 10 * time.Minute},
		{name: "past the deadline, notify failure", spec: job.Spec{Notify: job.NotifyFailure, MaxRuntime: job.Duration(time.Hour)},
			give: runner.Result{Status: runner.Pending, ExitCode: -1, Started: started}, after: time.Hour + 2*time.Minute, want: []string{"job j TIMED_OUT"}},
		{name: "lost, retries spent, notify failure", spec: job.Spec{Notify: job.NotifyFailure, MaxRuntime: job.Duration(time.Hour), Retries: &zero},
			give: runner.Result{Status: runner.Failed, ExitCode: -1, Started: started}, after: 10 * time.Minute, want: []string{"job j FAILED"}},
		{name: "lost, re-queued, notify end", spec: job.Spec{Notify: job.NotifyEnd, MaxRuntime: job.Duration(time.Hour)},
			give: runner.Result{Status: runner.Failed, ExitCode: -1, Started: started}, after: 10 * time.Minute},
		{name: "failed, no notify", spec: job.Spec{MaxRuntime: job.Duration(time.Hour)},
			give: runner.Result{Status: runner.Failed, ExitCode: 3, Started: started}, after: 10 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := &saidNotifier{}
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			s, _ := runningJob(t, tt.spec, f, &followRunner{res: tt.give, online: true}, n, started, started.Add(tt.after))
			if err := s.Reconcile(context.Background(), Options{Poll: true}); err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			var got []string
			for _, a := range n.said {
				if strings.HasPrefix(a.Verb, "job ") {
					got = append(got, a.Verb)
					if a.Instance != "" || !strings.Contains(a.Why, "estimated cost $") {
						t.Errorf("said %+v; want no instance to tag, and the cost", a)
					}
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("job ends said (-want +got):\n%s", diff)
			}
		})
	}
}
