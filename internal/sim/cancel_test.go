package sim_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// oneInstance is a pool of one instance, so a second job waits for it.
var oneInstance = map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarm: job.Duration(30 * time.Minute)}}

// longJobs run for two hours unless stopped.
func longJobs(w *sim.World) {
	w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Duration: 2 * time.Hour} })
}

// TestCancelQueued: a queued job, behind the pool's cap, is CANCELLED when
// its cancel is read and never runs; the running job is untouched.
func TestCancelQueued(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: oneInstance})
	longJobs(w)
	w.Send(`{"id": "first", "command": "train", "max_runtime": "3h"}`)
	w.Send(`{"id": "second", "command": "train", "max_runtime": "3h"}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "first", job.Running)) {
		t.Fatalf("first: %s; want RUNNING", jobOf(t, w, "first").State)
	}
	if j := jobOf(t, w, "second"); j.State != job.Queued {
		t.Fatalf("second: %s; want QUEUED behind the cap", j.State)
	}
	w.Send(`{"cancel": "second", "reason": "not needed"}`)
	w.Poll(ctx)
	if j := jobOf(t, w, "second"); j.State != job.Cancelled || j.Reason != "cancelled: not needed" {
		t.Fatalf("second after its cancel: %s (%s); want CANCELLED (cancelled: not needed) at once", j.State, j.Reason)
	}
	w.Run(ctx, 3*time.Hour)
	if j := jobOf(t, w, "first"); j.State != job.Succeeded {
		t.Errorf("first: %s (%s); want SUCCEEDED, untouched by the other's cancel", j.State, j.Reason)
	}
	for _, inv := range w.Invocations() {
		if inv.JobID == "second" {
			t.Errorf("a command of the cancelled job ran: %+v", inv)
		}
	}
}

// TestCancelPlaced: a job placed on an instance that is still starting is
// CANCELLED at once and its instance freed: the next job takes it, and no
// second instance is launched.
func TestCancelPlaced(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: oneInstance})
	longJobs(w)
	w.Send(`{"id": "placed", "command": "train", "max_runtime": "3h"}`)
	w.Poll(ctx)
	j := jobOf(t, w, "placed")
	if j.State != job.Placed || j.InstanceID == "" {
		t.Fatalf("placed: %s on %q; want PLACED on a launched instance", j.State, j.InstanceID)
	}
	inst := j.InstanceID
	w.Send(`{"cancel": "placed"}`)
	w.Poll(ctx)
	if j := jobOf(t, w, "placed"); j.State != job.Cancelled {
		t.Fatalf("placed after its cancel: %s (%s); want CANCELLED at once", j.State, j.Reason)
	}
	w.Send(`{"id": "next", "command": "train", "max_runtime": "3h"}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "next", job.Running)) {
		t.Fatalf("next: %s (%s); want RUNNING on the freed instance", jobOf(t, w, "next").State, jobOf(t, w, "next").Reason)
	}
	if got := jobOf(t, w, "next").InstanceID; got != inst {
		t.Errorf("next runs on %s; want %s, the cancelled job's", got, inst)
	}
	if n := len(managed(w)); n != 1 {
		t.Errorf("%d instances launched; want 1", n)
	}
}

// TestCancelRunning: a running job is stopped through its wrapper: the
// attempt ends with exit code 143 after the wrapper's grace (outputs
// synced, exit code recorded), the job is CANCELLED with the reason given,
// and the instance goes to the next job. The same cancel again changes
// nothing.
func TestCancelRunning(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: oneInstance})
	longJobs(w)
	w.Send(`{"id": "run", "command": "train", "max_runtime": "3h"}`)
	w.Send(`{"id": "waiting", "command": "train", "max_runtime": "3h"}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "run", job.Running)) {
		t.Fatalf("run: %s; want RUNNING", jobOf(t, w, "run").State)
	}
	running := jobOf(t, w, "run")
	w.Run(ctx, 10*time.Minute)
	cancelAt := w.Clock.Now()
	w.Send(`{"cancel": "run", "reason": "wrong learning rate"}`)
	w.Poll(ctx)
	if j := jobOf(t, w, "run"); j.State != job.Running || !j.CancelRequested() {
		t.Fatalf("run just after its cancel: %s, cancel asked %v; want RUNNING while its wrapper stops it", j.State, j.CancelRequested())
	}
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "run", job.Cancelled)) {
		t.Fatalf("run: %s (%s); want CANCELLED within minutes", jobOf(t, w, "run").State, jobOf(t, w, "run").Reason)
	}
	j := jobOf(t, w, "run")
	if took := j.EndedAt.Sub(cancelAt); took < runner.StopGrace || took > runner.StopGrace+2*scheduler.Period {
		t.Errorf("the attempt ended %v after the cancel; want the wrapper's grace (%v) and at most a period or two more", took, runner.StopGrace)
	}
	if !strings.HasPrefix(j.Reason, "cancelled: wrong learning rate") || j.ExitCode == nil || *j.ExitCode != runner.StopExitCode {
		t.Errorf("run = %s, exit %v; want cancelled: wrong learning rate…, exit %d", j.Reason, j.ExitCode, runner.StopExitCode)
	}
	var own, stops int
	for _, inv := range w.Invocations() {
		switch {
		case inv.JobID == "run" && inv.Stop:
			stops++
			if inv.Status != "Success" {
				t.Errorf("stop command %s: %s; want Success", inv.CommandID, inv.Status)
			}
		case inv.JobID == "run":
			own++
			if inv.Status != "Failed" || inv.ResponseCode != runner.StopExitCode {
				t.Errorf("the attempt's command: %s, code %d; want Failed with %d (the wrapper's exit, after syncing)", inv.Status, inv.ResponseCode, runner.StopExitCode)
			}
		}
	}
	if own != 1 || stops != 1 {
		t.Errorf("commands of run: %d own, %d stops; want one of each", own, stops)
	}
	if code, ok := w.Cloud.Disk(running.InstanceID, runner.Header{Job: "run", Attempt: 1, StateDir: runner.DefaultStateDir}.AttemptDir()+"/exit_code"); !ok || code != "143" {
		t.Errorf("exit_code on the instance = %q (%v); want 143, written by the wrapper after the stop", code, ok)
	}
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "waiting", job.Running)) {
		t.Fatalf("waiting: %s; want RUNNING on the freed instance", jobOf(t, w, "waiting").State)
	}
	if got := jobOf(t, w, "waiting").InstanceID; got != running.InstanceID {
		t.Errorf("waiting runs on %s; want %s", got, running.InstanceID)
	}
	before := jobOf(t, w, "run")
	w.Send(`{"cancel": "run", "reason": "again"}`)
	w.Poll(ctx)
	if after := jobOf(t, w, "run"); after.Version != before.Version || after.Reason != before.Reason {
		t.Errorf("a second cancel changed the ended job: %s (v%d) → %s (v%d)", before.Reason, before.Version, after.Reason, after.Version)
	}
}

// TestCancelledLaunchKeptWarmFromItsLaunch: a job cancelled while its
// launch's instance was never recorded (the invocation died after
// RunInstances) leaves an instance no job ever held. It is adopted as free,
// and its keep-warm counts from its launch, not from the pass that adopted
// it: it stops within keep-warm and a few periods of its launch.
func TestCancelledLaunchKeptWarmFromItsLaunch(t *testing.T) {
	ctx := context.Background()
	keep := 10 * time.Minute
	w := newWorld(t, sim.Config{Pools: map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(keep)}}})
	crashed := false
	w.Cloud.After = func(op string) error {
		if op == "RunInstances" && !crashed {
			crashed = true
			return awssim.ErrCrash
		}
		return nil
	}
	if _, err := w.Svc.Scheduler.Submit(ctx, []byte(`{"id": "orphan", "command": "train", "max_runtime": "1h"}`), "m-1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Svc.Scheduler.Reconcile(ctx, scheduler.Options{}); !errors.Is(err, awssim.ErrCrash) {
		t.Fatalf("Reconcile() = %v; want the injected crash", err)
	}
	insts := managed(w)
	if len(insts) != 1 {
		t.Fatalf("%d instances; want the one launched before the crash", len(insts))
	}
	launched := insts[0].LaunchTime
	// The control plane then misses a few minutes: the instance is adopted
	// late.
	// The cancel is recorded, and the invocation ends before its reconcile.
	if _, err := w.Svc.Scheduler.Submit(ctx, []byte(`{"cancel": "orphan"}`), "m-2"); err != nil {
		t.Fatal(err)
	}
	if j := jobOf(t, w, "orphan"); j.State != job.Cancelled {
		t.Fatalf("orphan: %s (%s); want CANCELLED", j.State, j.Reason)
	}
	w.Down = true
	w.Run(ctx, 6*time.Minute)
	w.Down = false
	stopped := func() bool { return managed(w)[0].State == "stopped" }
	if !w.RunUntil(ctx, time.Hour, stopped) {
		t.Fatalf("the orphan's instance still %s", managed(w)[0].State)
	}
	if ran := w.Clock.Now().Sub(launched); ran > keep+3*scheduler.Period {
		t.Errorf("the instance no job held ran %v after its launch; want its keep-warm (%v) and a few periods", ran, keep)
	}
}
