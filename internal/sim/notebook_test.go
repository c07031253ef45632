package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// notebookInstance returns notebook name's instance, if it has one.
func notebookInstance(w *sim.World, name string) (awssim.Instance, bool) {
	var out []awssim.Instance
	for _, i := range managed(w) {
		if i.Tags["nightshift:pool"] == job.NotebookPool(name) {
			out = append(out, i)
		}
	}
	if len(out) != 1 {
		return awssim.Instance{}, false
	}
	return out[0], true
}

// watchStops records when each instance began to stop, from EC2's events
// as they go by (none is lost).
func watchStops(w *sim.World) map[string]time.Time {
	stops := map[string]time.Time{}
	w.Drop = func(e awssim.Event) bool {
		if e.DetailType == "EC2 Instance State-change Notification" && e.Detail["state"] == "stopping" {
			stops[e.Detail["instance-id"]] = e.At
		}
		return false
	}
	return stops
}

// TestNotebookSession: a notebook message gets the notebook its own
// instance (outside the pool's cap), JupyterLab runs under the wrapper,
// and once its person has closed the laptop the session ends by itself
// after the idle timeout and the instance stops at once; the next session
// of the same name starts the same instance again, its disk kept.
func TestNotebookSession(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: oneInstance})
	stops := watchStops(w)
	longJobs(w)
	w.Send(`{"id": "busy", "command": "train", "max_runtime": "3h"}`) // the pool's one instance
	w.Send(`{"id": "nb-1", "notebook": {"name": "alice", "idle": "5m"}}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb-1", job.Running)) {
		j := jobOf(t, w, "nb-1")
		t.Fatalf("nb-1: %s (%s); want RUNNING: a notebook is outside the pool's cap", j.State, j.Reason)
	}
	inst, ok := notebookInstance(w, "alice")
	if !ok || jobOf(t, w, "nb-1").InstanceID != inst.ID || jobOf(t, w, "busy").InstanceID == inst.ID {
		t.Fatalf("notebook alice's instance %+v; want one of its own, running nb-1", inst)
	}
	// The person works for an hour through a port-forwarding session.
	w.Cloud.Session(inst.ID, true)
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{Connections: 1, KernelBusy: true, GPU: 80})
	w.Run(ctx, time.Hour)
	if j := jobOf(t, w, "nb-1"); j.State != job.Running {
		t.Fatalf("nb-1 while its person works: %s (%s); want RUNNING", j.State, j.Reason)
	}
	// Laptop closed: the session and the browser go.
	left := w.Clock.Now()
	w.Cloud.Session(inst.ID, false)
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{})
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb-1", job.Succeeded)) {
		j := jobOf(t, w, "nb-1")
		t.Fatalf("nb-1 after its person left: %s (%s); want SUCCEEDED, ended by itself", j.State, j.Reason)
	}
	w.Run(ctx, 5*time.Minute)
	stop := stops[inst.ID]
	if stop.IsZero() {
		t.Fatalf("notebook instance %s never stopped after its session ended", inst.ID)
	}
	// Within the idle timeout, one look, the stop's seconds.
	if d := stop.Sub(left); d < 5*time.Minute || d > 5*time.Minute+30*time.Second {
		t.Errorf("instance stopping %v after its person left; want within 5m–5m30s (idle 5m, looks every 15 s)", d)
	}
	// The next session: the same instance, started again.
	w.Send(`{"id": "nb-2", "notebook": "alice"}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb-2", job.Running)) {
		j := jobOf(t, w, "nb-2")
		t.Fatalf("nb-2: %s (%s); want RUNNING", j.State, j.Reason)
	}
	if got := jobOf(t, w, "nb-2").InstanceID; got != inst.ID {
		t.Errorf("nb-2 on %s; want %s, the notebook's own instance, started again", got, inst.ID)
	}
	if n := len(managed(w)); n != 2 {
		t.Errorf("%d managed instances; want 2: the pool's and the notebook's", n)
	}
}

// TestNotebookNeverStoppedUnderItsPerson: a busy kernel with the laptop
// closed, and a person reading with the tab open for 40 minutes, are never
// idle; the tab left open ends the session after the connected timeout.
func TestNotebookNeverStoppedUnderItsPerson(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	stops := watchStops(w)
	w.Send(`{"id": "nb", "notebook": {"name": "bob", "idle": "5m", "idle_connected": "1h"}}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb", job.Running)) {
		t.Fatalf("nb: %s; want RUNNING", jobOf(t, w, "nb").State)
	}
	inst, _ := notebookInstance(w, "bob")
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{KernelBusy: true}) // training in a cell, laptop closed
	w.Run(ctx, 3*time.Hour)
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{Connections: 1}) // reading the results
	w.Run(ctx, 40*time.Minute)
	if j := jobOf(t, w, "nb"); j.State != job.Running {
		t.Fatalf("nb after 3 h busy and 40 min reading: %s (%s); want RUNNING", j.State, j.Reason)
	}
	// Walks away with the tab open: an hour after the kernel was last
	// busy, the session ends.
	open := w.Clock.Now()
	if !w.RunUntil(ctx, 2*time.Hour, stateIs(w, "nb", job.Succeeded)) {
		t.Fatalf("nb with the tab left open: %s; want SUCCEEDED after the connected timeout", jobOf(t, w, "nb").State)
	}
	w.Run(ctx, 5*time.Minute)
	// The hour counts from the last busy look, 40 min before the tab was left.
	if d := stops[inst.ID].Sub(open); d < 20*time.Minute || d > 21*time.Minute {
		t.Errorf("stopped %v after the reading began to be left alone; want 20–21 min (1 h from the kernel's last busy look)", d)
	}
	out := ""
	for _, inv := range w.Invocations() {
		if inv.JobID == "nb" {
			out += inv.Output
		}
	}
	if !strings.Contains(out, job.NotebookReady) {
		t.Errorf("notebook output %q; want the ready line", out)
	}
}

// TestNotebookSweepReadsOneMetricEach: the watchdog's backstop reads one
// metric per running notebook per sweep, all in one GetMetricData call,
// and no stall metrics for them (a notebook is idle, never stalled).
func TestNotebookSweepReadsOneMetricEach(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	names := []string{"a", "b", "c"}
	for _, n := range names {
		w.Send(`{"id": "nb-` + n + `", "notebook": {"name": "` + n + `", "idle": "5m"}}`)
	}
	if !w.RunUntil(ctx, 30*time.Minute, func() bool {
		for _, n := range names {
			if !stateIs(w, "nb-"+n, job.Running)() {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the notebooks did not all run")
	}
	for _, n := range names {
		inst, _ := notebookInstance(w, n)
		w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{KernelBusy: true})
	}
	w.Run(ctx, 10*time.Minute) // past the idle timeout and its slack: due for a look
	calls, queries := 0, map[string]int{}
	w.Cloud.Fault = func(op string, in any) error {
		if q, ok := in.(*cloudwatch.GetMetricDataInput); ok {
			calls++
			for _, d := range q.MetricDataQueries {
				queries[aws.ToString(d.MetricStat.Metric.MetricName)]++
			}
		}
		return nil
	}
	w.Tick(ctx)
	if calls != 1 || queries["NotebookState"] != 3 || len(queries) != 1 {
		t.Errorf("one sweep over 3 busy notebooks: %d GetMetricData calls, queries %v; want 1 call of 3 NotebookState queries", calls, queries)
	}
	for _, n := range names {
		if j := jobOf(t, w, "nb-"+n); j.State != job.Running {
			t.Errorf("nb-%s: %s (%s); want RUNNING: its kernel is busy", n, j.State, j.Reason)
		}
	}
}

// TestNotebookBackstop: a notebook whose wrapper cannot end JupyterLab is
// cancelled by the watchdog from its NotebookState metric, a minute past
// the idle timeout and within a sweep more, and its instance stopped.
func TestNotebookBackstop(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	stops := watchStops(w)
	w.NotebookStuck = true
	w.Send(`{"id": "nb", "notebook": {"name": "stuck", "idle": "5m"}}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb", job.Running)) {
		t.Fatalf("nb: %s; want RUNNING", jobOf(t, w, "nb").State)
	}
	inst, _ := notebookInstance(w, "stuck")
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{KernelBusy: true})
	w.Run(ctx, 30*time.Minute)
	left := w.Clock.Now()
	w.Cloud.SetJupyter(inst.ID, awssim.Jupyter{})
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb", job.Cancelled)) {
		j := jobOf(t, w, "nb")
		t.Fatalf("nb with a stuck wrapper: %s (%s); want CANCELLED by the watchdog", j.State, j.Reason)
	}
	if j := jobOf(t, w, "nb"); !strings.HasPrefix(j.CancelReason, "idle: notebook stuck: nobody connected and nothing running for 5m0s") {
		t.Errorf("cancel reason %q; want the watchdog's idle rule", j.CancelReason)
	}
	w.Run(ctx, 5*time.Minute)
	t.Logf("stopping %v after its person left", stops[inst.ID].Sub(left))
	// The window (idle + one period of slack) must be covered by minute
	// datapoints, the minute of the last busy look included; then a sweep.
	if d := stops[inst.ID].Sub(left); d < 6*time.Minute || d > 8*time.Minute+30*time.Second {
		t.Errorf("instance stopping %v after its person left; want 6–8m30s (idle 5m, a period of slack, the metric's minute, a sweep, the stop)", d)
	}
}
