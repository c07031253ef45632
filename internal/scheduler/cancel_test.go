package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// cancelMsg is a cancel message for id, giving reason.
func cancelMsg(id, reason string) []byte {
	return fmt.Appendf(nil, `{"cancel": %q, "reason": %q}`, id, reason)
}

func mustJob(t *testing.T, st store.Jobs, id string) *job.Job {
	t.Helper()
	j, err := st.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("Job(%s) = %v", id, err)
	}
	return j
}

// TestCancelMessage: a cancel message ends a queued job at once, marks one
// that has an instance, changes nothing for a finished job or an unknown
// id, says so in its outcome, and is idempotent. A bad cancel message is
// rejected with its specific error.
func TestCancelMessage(t *testing.T) {
	ctx := context.Background()
	started := t0.Add(time.Hour)
	s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(time.Hour)}, &followFleet{}, &followRunner{}, nil, started, started.Add(time.Minute))
	for _, id := range []string{"q", "done"} {
		if err := st.Create(ctx, job.New(job.Spec{ID: id, Command: "true"}, "gpu", t0)); err != nil {
			t.Fatal(err)
		}
	}
	done := mustJob(t, st, "done")
	if err := done.Move(job.Failed, "exit code 1", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, done, job.Queued); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		give      []byte
		want      Outcome
		wantState job.State // the named job's state afterwards; "" for none
	}{
		{name: "queued", give: cancelMsg("q", "wrong data"), want: Cancelled, wantState: job.Cancelled},
		{name: "queued, again", give: cancelMsg("q", "wrong data"), want: Ended, wantState: job.Cancelled},
		{name: "running", give: cancelMsg("j", "wrong learning rate"), want: Cancelling, wantState: job.Running},
		{name: "running, again", give: cancelMsg("j", "twice"), want: Cancelling, wantState: job.Running},
		{name: "finished", give: cancelMsg("done", ""), want: Ended, wantState: job.Failed},
		{name: "unknown id", give: cancelMsg("nope", ""), want: NoSuchJob},
	}
	for _, tt := range tests {
		res, err := s.Submit(ctx, tt.give, "msg-"+tt.name)
		if err != nil || res.Outcome != tt.want {
			t.Errorf("%s: Submit(%s) = %v, %v; want %v", tt.name, tt.give, res.Outcome, err, tt.want)
			continue
		}
		if tt.wantState == "" {
			if _, err := st.Job(ctx, res.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s: Job(%s) = %v; want no record made", tt.name, res.ID, err)
			}
			continue
		}
		if got := mustJob(t, st, res.ID); got.State != tt.wantState {
			t.Errorf("%s: state = %s (%s); want %s", tt.name, got.State, got.Reason, tt.wantState)
		}
	}
	if q := mustJob(t, st, "q"); q.Reason != "cancelled: wrong data" || q.CancelRequestedAt.IsZero() || q.EndedAt.IsZero() {
		t.Errorf("cancelled queued job = %q, requested %v, ended %v; want the reason given and both times", q.Reason, q.CancelRequestedAt, q.EndedAt)
	}
	if j := mustJob(t, st, "j"); j.CancelReason != "wrong learning rate" {
		t.Errorf("repeated cancel: reason = %q; want the first cancel's", j.CancelReason)
	}

	bad := []struct{ give, want string }{
		{`{"cancel": "has spaces"}`, `cancel: "has spaces": want the id`},
		{`{"cancel": "j", "force": true}`, `"force" is not a cancel message field`},
		{`{"cancel": 7}`, "a cancel message is"},
		{`{"cancel": "j", "reason": "` + strings.Repeat("x", job.MaxCancelReason+1) + `"}`, "reason"},
	}
	for _, tt := range bad {
		res, err := s.Submit(ctx, []byte(tt.give), "msg-bad")
		if err != nil || res.Outcome != Rejected || res.Reason == nil || !strings.Contains(res.Reason.Error(), tt.want) {
			t.Errorf("Submit(%.60s) = %v (%v), %v; want rejected saying %q", tt.give, res.Outcome, res.Reason, err, tt.want)
		}
	}
	if j := mustJob(t, st, "j"); j.State != job.Running || j.CancelReason != "wrong learning rate" {
		t.Errorf("after bad cancel messages, j = %s %q; want it untouched", j.State, j.CancelReason)
	}
}

// cancelRunning returns a scheduler at now over RUNNING job "j" (on i-1,
// command cmd-1, started at started) with a cancel recorded at started+1m.
func cancelRunning(t *testing.T, f *followFleet, r *followRunner, started, now time.Time) (*Scheduler, *store.Memory) {
	t.Helper()
	s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(3 * time.Hour)}, f, r, nil, started, started.Add(time.Minute))
	if res, err := s.Submit(context.Background(), cancelMsg("j", "stop it"), "msg-1"); err != nil || res.Outcome != Cancelling {
		t.Fatalf("Submit(cancel) = %v, %v; want cancelling", res.Outcome, err)
	}
	s.now = func() time.Time { return now }
	return s, st
}

// TestCancelRunning: a cancelled running job's wrapper is asked, once, to
// stop and sync its outputs; a wrapper that does not stop within StopGrace
// gets its command cancelled by the watchdog's tick; the command's end is
// recorded CANCELLED (SUCCEEDED if it had finished its work), and an
// instance lost meanwhile ends the job too, without a retry. The instance
// is freed for the next job.
func TestCancelRunning(t *testing.T) {
	started := t0.Add(time.Hour)
	running := runner.Result{Status: runner.Pending, ExitCode: -1, Started: started}
	tests := []struct {
		name        string
		res         runner.Result
		insts       []fleet.Instance
		stopErr     error
		stopSentAgo time.Duration // 0: no stop sent yet
		at          time.Duration // the pass's time after the start; 10m if 0
		poll        bool
		want        job.State
		wantStopped []string // jobs whose wrapper was asked to stop
		wantCancel  []string // commands cancelled
		wantReason  string
	}{
		{name: "first pass asks the wrapper to stop", res: running, want: job.Running,
			wantStopped: []string{"j"}, wantReason: "cancelled: stop it; asked its wrapper to stop"},
		{name: "stop sent, within the grace", res: running, stopSentAgo: StopGrace - time.Second, poll: true, want: job.Running},
		{name: "past the grace, not the tick", res: running, stopSentAgo: StopGrace + time.Second, want: job.Running},
		{name: "past the grace, the tick cancels", res: running, stopSentAgo: StopGrace + time.Second, poll: true, want: job.Running,
			wantCancel: []string{"cmd-1"}, wantReason: "not stopped within 5m0s, command cancelled"},
		{name: "agent unreachable: cancelled at once", res: running, stopErr: fmt.Errorf("x: %w", runner.ErrNotReady), want: job.Running,
			wantCancel: []string{"cmd-1"}, wantReason: "agent not reachable: command cancelled"},
		{name: "wrapper stopped", res: runner.Result{Status: runner.Failed, ExitCode: 143}, stopSentAgo: time.Minute, poll: true,
			want: job.Cancelled, wantReason: "cancelled: stop it (command Failed, exit code 143)"},
		{name: "command cancelled", res: runner.Result{Status: runner.Cancelled, ExitCode: -1}, stopSentAgo: StopGrace + time.Minute, poll: true,
			want: job.Cancelled, wantReason: "cancelled: stop it (command Cancelled"},
		{name: "finished first", res: runner.Result{Status: runner.Success}, stopSentAgo: time.Minute, poll: true,
			want: job.Succeeded, wantReason: "before the cancel took effect"},
		{name: "instance lost: no retry", res: runner.Result{Status: runner.Failed, ExitCode: -1}, stopSentAgo: time.Minute, poll: true,
			want: job.Cancelled, wantReason: "cancelled: stop it (the command on i-1 ended without an exit code"},
		{name: "past the max runtime", res: running, at: 3*time.Hour + 2*time.Minute, stopSentAgo: 2 * time.Hour, poll: true,
			want: job.Cancelled, wantCancel: []string{"cmd-1"}, wantReason: "cancelled: stop it (command cancelled at its max runtime of 3h0m0s)"},
		{name: "instance gone", res: running, insts: []fleet.Instance{}, stopSentAgo: time.Minute,
			want: job.Cancelled, wantReason: "cancelled: stop it (instance i-1 terminated while the job ran)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			if tt.insts != nil {
				f.insts = tt.insts
			}
			r := &followRunner{res: tt.res, online: true, stopErr: tt.stopErr}
			now := started.Add(10 * time.Minute)
			if tt.at > 0 {
				now = started.Add(tt.at)
			}
			s, st := cancelRunning(t, f, r, started, now)
			if tt.stopSentAgo > 0 {
				j := mustJob(t, st, "j")
				j.StopCommandID, j.StopSentAt = "stop-0", now.Add(-tt.stopSentAgo)
				if err := st.Update(ctx, j, job.Running); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Reconcile(ctx, Options{Poll: tt.poll}); err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			got := mustJob(t, st, "j")
			if got.State != tt.want || got.Attempt != 1 || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("job = %s attempt %d (%s); want %s attempt 1 (%s…)", got.State, got.Attempt, got.Reason, tt.want, tt.wantReason)
			}
			if diff := cmp.Diff(tt.wantStopped, r.stopped); diff != "" {
				t.Errorf("wrappers asked to stop (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCancel, r.cancels); diff != "" {
				t.Errorf("commands cancelled (-want +got):\n%s", diff)
			}
			if len(tt.wantStopped) > 0 && (got.StopCommandID != "stop-j" || !got.StopSentAt.Equal(now)) {
				t.Errorf("stop recorded as %q at %v; want stop-j at %v", got.StopCommandID, got.StopSentAt, now)
			}
			wantFreed(t, st, "i-1", got)
		})
	}
}

// wantFreed fails unless the instance's lease is free (or gone, with the
// instance) exactly when j has ended.
func wantFreed(t *testing.T, st store.Jobs, id string, j *job.Job) {
	t.Helper()
	l, err := st.Lease(context.Background(), id)
	switch {
	case errors.Is(err, store.ErrNotFound) && j.State.Terminal():
	case err != nil:
		t.Fatalf("Lease(%s) = %v", id, err)
	case !l.Held() != j.State.Terminal():
		t.Errorf("lease %+v with the job %s; want it freed exactly when the job has ended", l, j.State)
	}
}

// TestCancelRunningTwice: a second pass sends no second stop, and a pass
// that lost the race to record the stop does no harm.
func TestCancelRunningTwice(t *testing.T) {
	started := t0.Add(time.Hour)
	f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
	r := &followRunner{res: runner.Result{Status: runner.Pending, ExitCode: -1}, online: true}
	s, st := cancelRunning(t, f, r, started, started.Add(2*time.Minute))
	for range 3 {
		if err := s.Reconcile(context.Background(), Options{Poll: true}); err != nil {
			t.Fatalf("Reconcile() = %v", err)
		}
	}
	if len(r.stopped) != 1 || len(r.cancels) != 0 {
		t.Errorf("three passes stopped %v and cancelled %v; want one stop, no cancel", r.stopped, r.cancels)
	}
	if j := mustJob(t, st, "j"); j.State != job.Running {
		t.Errorf("job = %s; want RUNNING until its command ends", j.State)
	}
}

// TestCancelPlaced: a cancel message ends a PLACED job at once, its
// instance freed in the same write, unless its command may have been sent:
// then the reconcile that follows waits DispatchRetry (a Send may be in
// flight), looks for the command, and stops it as a running job's if it
// finds one.
func TestCancelPlaced(t *testing.T) {
	tests := []struct {
		name        string
		dispatched  time.Duration // how long ago the dispatch intent was written; 0 for none
		found       string        // the command Find returns
		wantOut     Outcome       // what the cancel message did
		want        job.State     // after the reconcile that follows
		wantStopped []string
		wantReason  string
	}{
		{name: "booting", wantOut: Cancelled, want: job.Cancelled, wantReason: "cancelled: not needed"},
		{name: "dispatch just intended", dispatched: time.Minute, wantOut: Cancelling, want: job.Placed, wantReason: "waiting to learn whether its command was sent"},
		{name: "dispatch intended, nothing sent", dispatched: DispatchRetry + time.Second, wantOut: Cancelling, want: job.Cancelled},
		{name: "dispatch intended, command sent", dispatched: DispatchRetry + time.Second, found: "cmd-7",
			wantOut: Cancelling, want: job.Running, wantStopped: []string{"j"}, wantReason: "asked its wrapper to stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			now := t0.Add(time.Hour)
			st := store.NewMemory()
			j := job.New(job.Spec{ID: "j", Command: "python train.py", MaxRuntime: job.Duration(time.Hour)}, "gpu", t0)
			if err := j.Move(job.Placed, "placed", t0.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
			j.InstanceID, j.InstanceType = "i-1", "g5.xlarge"
			if tt.dispatched > 0 {
				j.DispatchedAt = now.Add(-tt.dispatched)
			}
			if err := st.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
			if err := st.PutLease(ctx, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0}); err != nil {
				t.Fatal(err)
			}
			if err := st.Update(ctx, j, job.Placed, store.LeaseOp{InstanceID: "i-1", Pool: "gpu", Acquire: true}); err != nil {
				t.Fatal(err)
			}
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			r := &followRunner{res: runner.Result{Status: runner.Pending, ExitCode: -1}, online: true, found: tt.found}
			s := New(st, f, r, nil, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
				func() time.Time { return now }, slog.New(slog.DiscardHandler))
			res, err := s.Submit(ctx, cancelMsg("j", "not needed"), "msg-1")
			if err != nil || res.Outcome != tt.wantOut {
				t.Fatalf("Submit(cancel) = %v, %v; want %v", res.Outcome, err, tt.wantOut)
			}
			if tt.wantOut == Cancelled {
				wantFreed(t, st, "i-1", mustJob(t, st, "j")) // by the cancel's own write
			}
			if err := s.Reconcile(ctx, Options{Fresh: []*job.Job{res.Job}}); err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			got := mustJob(t, st, "j")
			if got.State != tt.want || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("job = %s (%s); want %s (%s…)", got.State, got.Reason, tt.want, tt.wantReason)
			}
			if tt.found != "" && got.CommandID != tt.found {
				t.Errorf("command = %q; want the one found, %q", got.CommandID, tt.found)
			}
			if diff := cmp.Diff(tt.wantStopped, r.stopped); diff != "" {
				t.Errorf("wrappers asked to stop (-want +got):\n%s", diff)
			}
			wantFreed(t, st, "i-1", got)
		})
	}
}

// TestCancelLaunching: a job cancelled while its launch may be in flight
// ends at once, but its slot stays taken: an instance the launch makes
// later is bound to it (and becomes a free instance of the pool), and a
// launch that made none gives it back after slotGrace. A job cancelled,
// then sent back to the queue by a refused launch, ends at the next pass.
func TestCancelLaunching(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	st := store.NewMemory()
	j := job.New(job.Spec{ID: "j", Command: "python train.py", MaxRuntime: job.Duration(time.Hour)}, "gpu", t0)
	if err := st.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := j.Move(job.Placed, "launching an instance", now); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, j, job.Queued, store.SlotOp{Kind: store.TakeSlot, Pool: "gpu", Index: 0, At: now}); err != nil {
		t.Fatal(err)
	}
	f := &followFleet{}
	r := &followRunner{online: true}
	clock := now
	s := New(st, f, r, nil, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
		func() time.Time { return clock }, slog.New(slog.DiscardHandler))
	res, err := s.Submit(ctx, cancelMsg("j", ""), "msg-1")
	if err != nil || res.Outcome != Cancelled {
		t.Fatalf("Submit(cancel) = %v, %v; want cancelled", res.Outcome, err)
	}
	if err := s.Reconcile(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := mustJob(t, st, "j"); got.State != job.Cancelled || got.Reason != "cancelled" {
		t.Fatalf("job = %s (%s); want CANCELLED (cancelled)", got.State, got.Reason)
	}
	slots := func() []store.Slot {
		sl, err := st.Slots(ctx, "gpu")
		if err != nil {
			t.Fatal(err)
		}
		return sl
	}
	if sl := slots(); len(sl) != 1 || sl[0].InstanceID != "" {
		t.Fatalf("slots = %+v; want the launch's slot still taken, unbound", sl)
	}

	// The launch, in flight in another invocation, made an instance.
	late := inst("i-2", fleet.StatePending)
	late.Job, late.Attempt = "j", 1
	f.insts = []fleet.Instance{late}
	if err := s.Reconcile(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if sl := slots(); len(sl) != 1 || sl[0].InstanceID != "i-2" {
		t.Errorf("slots = %+v; want the slot bound to the late instance i-2", sl)
	}
	if l, err := st.Lease(ctx, "i-2"); err != nil || l.Held() {
		t.Errorf("Lease(i-2) = %+v, %v; want a free lease: the pool's next job may have it", l, err)
	}

	// A second job, cancelled while placed, is sent back by a refused launch.
	k := job.New(job.Spec{ID: "k", Command: "true"}, "gpu", t0)
	k.CancelRequestedAt = now
	if err := st.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.Reconcile(ctx, Options{Fresh: []*job.Job{k}}); err != nil {
		t.Fatal(err)
	}
	if got := mustJob(t, st, "k"); got.State != job.Cancelled || got.InstanceID != "" || !got.PlacedAt.IsZero() {
		t.Errorf("queued job with a cancel recorded = %s (%s) on %q; want CANCELLED, never placed", got.State, got.Reason, got.InstanceID)
	}
}

// TestCancelLaunchMadeNothing: the slot of a cancelled launch that made no
// instance is given back once slotGrace has passed.
func TestCancelLaunchMadeNothing(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	st := store.NewMemory()
	j := job.New(job.Spec{ID: "j", Command: "true"}, "gpu", t0)
	if err := st.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := j.Move(job.Placed, "launching an instance", now); err != nil {
		t.Fatal(err)
	}
	j.CancelRequestedAt = now
	if err := st.Update(ctx, j, job.Queued, store.SlotOp{Kind: store.TakeSlot, Pool: "gpu", Index: 0, At: now}); err != nil {
		t.Fatal(err)
	}
	clock := now
	s := New(st, &followFleet{}, &followRunner{}, nil, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
		func() time.Time { return clock }, slog.New(slog.DiscardHandler))
	for _, step := range []struct {
		at    time.Duration
		slots int
	}{{0, 1}, {slotGrace - time.Second, 1}, {slotGrace + time.Second, 0}} {
		clock = now.Add(step.at)
		if err := s.Reconcile(ctx, Options{}); err != nil {
			t.Fatal(err)
		}
		if sl, err := st.Slots(ctx, "gpu"); err != nil || len(sl) != step.slots {
			t.Errorf("+%v: slots = %+v, %v; want %d", step.at, sl, err, step.slots)
		}
	}
	if got := mustJob(t, st, "j"); got.State != job.Cancelled {
		t.Errorf("job = %s; want CANCELLED", got.State)
	}
}
