package sim_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// goneOnce makes the agent of the first instance a command goes to go
// away just before SSM delivers it; every other delivery goes through. It
// returns the instance, once known.
func goneOnce(w *sim.World) func() string {
	var gone string
	w.Cloud.AgentGone = func(id string) bool {
		if gone == "" {
			gone = id
			return true
		}
		return false
	}
	return func() string { return gone }
}

// TestUndeliveredCommandRequeued: the agent goes away after the Online
// check, so the attempt's command never reaches it. That is a lost attempt,
// not a job past its deadline: once SSM's delivery timeout has passed (SSM
// never starts the command after it), the command is cancelled, the job
// re-queued with attempt 2 well before its max runtime, the instance whose
// agent is gone stopped, and the next attempt succeeds elsewhere.
func TestUndeliveredCommandRequeued(t *testing.T) {
	ctx := context.Background()
	var log bytes.Buffer
	w := sim.NewWorld(sim.Config{Log: slog.New(slog.NewTextHandler(&log, nil))})
	gone := goneOnce(w)
	w.Send(`{"id": "undelivered", "command": "python train.py", "max_runtime": "2h"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "undelivered", job.Running)) {
		t.Fatal("job never dispatched")
	}
	sent := jobOf(t, w, "undelivered").StartedAt
	if !w.RunUntil(ctx, runner.DeliveryTimeout+3*scheduler.Period, func() bool { return jobOf(t, w, "undelivered").Attempt == 2 }) {
		j := jobOf(t, w, "undelivered")
		t.Fatalf("after the delivery timeout: %s attempt %d (%s); want attempt 2", j.State, j.Attempt, j.Reason)
	}
	if !strings.Contains(log.String(), `msg="instance lost" job=undelivered state=QUEUED attempt=2 why="its command never reached the SSM agent on `+gone()) {
		t.Errorf("log:\n%s\nwant the attempt lost because its command never reached the agent", log.String())
	}
	if requeued := w.Clock.Now().Sub(sent); requeued > runner.DeliveryTimeout+2*scheduler.Period {
		t.Errorf("re-queued %v after dispatch; want within the delivery timeout plus two periods", requeued)
	}
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "undelivered", job.Succeeded)) {
		j := jobOf(t, w, "undelivered")
		t.Fatalf("job %s attempt %d: %s", j.State, j.Attempt, j.Reason)
	}
	j := jobOf(t, w, "undelivered")
	if j.Attempt != 2 || j.InstanceID == gone() {
		t.Errorf("succeeded as attempt %d on %s; want attempt 2, not on %s whose agent is gone", j.Attempt, j.InstanceID, gone())
	}
	for _, inv := range w.Invocations() {
		if inv.InstanceID == gone() && inv.Status != "Cancelled" {
			t.Errorf("the undelivered command is %s; want Cancelled, so that it can never run late", inv.Status)
		}
	}
	if i := instance(t, w, gone()); i.State != "stopped" || i.StoppedBy != "StopInstances" {
		t.Errorf("instance with the gone agent: %s (by %q); want stopped by nightshift", i.State, i.StoppedBy)
	}
	if n := len(messages(w, "never delivered")); n != 1 {
		t.Errorf("%d notices of the stop; want 1 that says why", n)
	}
	checkSafety(t, w)
	if len(w.Errors) > 0 {
		t.Errorf("handler errors: %v", w.Errors)
	}
}

// TestDeliveryTimedOutRequeued: with the control plane away while SSM gives
// up on delivering the command, the poll that follows reads TimedOut with
// StatusDetails DeliveryTimedOut: a lost attempt, re-queued, not TIMED_OUT;
// the next attempt succeeds.
func TestDeliveryTimedOutRequeued(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	gone := goneOnce(w)
	w.Send(`{"id": "expired", "command": "python train.py", "max_runtime": "20m"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "expired", job.Running)) {
		t.Fatal("job never dispatched")
	}
	w.Down = true
	w.Run(ctx, runner.DeliveryTimeout+20*time.Minute) // SSM's total timeout for the command
	var expired bool
	for _, inv := range w.Invocations() {
		expired = expired || inv.InstanceID == gone() && inv.Status == "TimedOut" && inv.StatusDetails == "DeliveryTimedOut"
	}
	if !expired {
		t.Fatalf("invocations %+v; want the command on %s TimedOut (DeliveryTimedOut)", w.Invocations(), gone())
	}
	w.Down = false
	w.Run(ctx, 2*scheduler.Period)
	if j := jobOf(t, w, "expired"); j.State == job.TimedOut || j.Attempt != 2 {
		t.Fatalf("after the delivery timed out: %s attempt %d (%s); want re-queued as attempt 2", j.State, j.Attempt, j.Reason)
	}
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "expired", job.Succeeded)) {
		j := jobOf(t, w, "expired")
		t.Fatalf("job %s attempt %d: %s", j.State, j.Attempt, j.Reason)
	}
	checkSafety(t, w)
}
