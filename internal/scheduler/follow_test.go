package scheduler

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// followRunner answers every Result with res, has every agent online or
// none, and records the commands it cancels.
type followRunner struct {
	res     runner.Result
	online  bool
	cancels []string
}

func (r *followRunner) Online(_ context.Context, ids []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = r.online
	}
	return m, nil
}
func (r *followRunner) Find(context.Context, *job.Job, string) (string, error) { return "", nil }
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
			st := store.NewMemory()
			two := 2
			j := job.New(job.Spec{ID: "j", Command: "python train.py", MaxRuntime: job.Duration(tt.maxRuntime), Retries: &two}, "gpu", t0)
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
			r := &followRunner{res: tt.give, online: tt.online}
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			now := started.Add(tt.after)
			s := New(st, f, r, nil, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
				func() time.Time { return now }, slog.New(slog.DiscardHandler))
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
