package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// rechecksSent counts the re-check messages sent so far, for id ("" any).
func rechecksSent(w *sim.World, id string) int {
	n := 0
	for _, m := range w.Sent() {
		if r, err := job.ParseRecheck([]byte(m.Body)); err == nil && (id == "" || r.InstanceID == id) {
			n++
		}
	}
	return n
}

// launchFigures are one launch's: from its agent coming online to its
// command's SendCommand, the re-check messages and the Lambda invocations
// from the job message to that SendCommand.
type launchFigures struct {
	wait               time.Duration
	rechecks, lambdas  int
	intakes, watchdogs int
}

// oneLaunch runs one job on a fresh world whose agent registers after a
// delay drawn from r in [AgentMin, AgentMax), until its command is sent.
func oneLaunch(t testing.TB, r *rand.Rand, recheck bool) launchFigures {
	ctx := context.Background()
	w := sim.NewWorld(sim.Config{NoRecheck: !recheck})
	var online time.Time
	draw := awssim.AgentUniform(r, awssim.AgentMin, awssim.AgentMax)
	w.Cloud.AgentDelay = func(id string) (time.Duration, bool) {
		d, ok := draw(id)
		online = w.Clock.Now().Add(d)
		return d, ok
	}
	var f launchFigures
	w.Invoke = func(l *sim.Lambda) func(error) {
		f.lambdas++
		switch l.Function {
		case "intake":
			f.intakes++
		case "watchdog":
			f.watchdogs++
		}
		return func(error) {}
	}
	// The world's tick is at whole minutes from its start: the job comes
	// at a time drawn within the minute, as jobs do.
	w.Run(ctx, time.Duration(r.Int64N(int64(time.Minute))))
	w.Send(`{"id": "measured", "command": "python train.py"}`)
	if !w.RunUntil(ctx, time.Hour, func() bool { return len(w.Cloud.Invocations()) > 0 }) {
		j, _ := w.Store.Job(ctx, "measured")
		t.Fatalf("no command sent: job %+v", j)
	}
	f.wait = w.Cloud.Invocations()[0].Requested.Sub(online)
	f.rechecks = rechecksSent(w, "")
	return f
}

// readyFigures runs n launches from seed, with or without re-checks.
func readyFigures(t testing.TB, seed uint64, n int, recheck bool) (waits []time.Duration, rechecks, lambdas, watchdogs float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for range n {
		f := oneLaunch(t, r, recheck)
		waits = append(waits, f.wait)
		rechecks += float64(f.rechecks) / float64(n)
		lambdas += float64(f.lambdas) / float64(n)
		watchdogs += float64(f.watchdogs) / float64(n)
	}
	slices.Sort(waits)
	return waits, rechecks, lambdas, watchdogs
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// TestReadyLatency: over 200 launches, each agent registering 30 s to 3 min
// after running, the time from the agent coming online to SendCommand, on
// the virtual clock (deterministic): before re-checks, the next tick's
// wait (about 30 s on median); with them, at most RecheckDelay, 5 s or less
// on median. Run with -v for the figures.
func TestReadyLatency(t *testing.T) {
	const n = 200
	before, _, lb, _ := readyFigures(t, 7, n, false)
	after, rechecks, la, wd := readyFigures(t, 7, n, true)
	t.Logf("agent online → SendCommand over %d launches (agent %v–%v): before median %v p95 %v max %v; after median %v p95 %v max %v",
		n, awssim.AgentMin, awssim.AgentMax, quantile(before, 0.5), quantile(before, 0.95), before[n-1], quantile(after, 0.5), quantile(after, 0.95), after[n-1])
	t.Logf("per launch, job message to SendCommand: %.1f re-check messages; Lambda invocations %.1f before, %.1f after (%.1f of them ticks)", rechecks, lb, la, wd)
	if m := quantile(after, 0.5); m > 5*time.Second {
		t.Errorf("median wait with re-checks %v; want ≤ 5 s", m)
	}
	if m := after[n-1]; m > scheduler.RecheckDelay {
		t.Errorf("longest wait with re-checks %v; want ≤ RecheckDelay %v", m, scheduler.RecheckDelay)
	}
	if quantile(before, 0.5) < 15*time.Second {
		t.Errorf("median wait without re-checks %v: the tick's wait should be ~30 s", quantile(before, 0.5))
	}
}

// BenchmarkReadyLatency reports the same figures as metrics.
func BenchmarkReadyLatency(b *testing.B) {
	for _, recheck := range []bool{false, true} {
		b.Run(fmt.Sprintf("recheck=%v", recheck), func(b *testing.B) {
			var waits []time.Duration
			var rechecks, lambdas float64
			for range b.N {
				waits, rechecks, lambdas, _ = readyFigures(b, 7, 100, recheck)
			}
			b.ReportMetric(quantile(waits, 0.5).Seconds(), "median-s")
			b.ReportMetric(quantile(waits, 0.95).Seconds(), "p95-s")
			b.ReportMetric(rechecks, "rechecks/launch")
			b.ReportMetric(lambdas, "lambdas/launch")
		})
	}
}

// TestRecheckDispatchesBetweenTicks: a launched job's command is sent
// within RecheckDelay of its agent coming online, by a re-check, with no
// watchdog tick in between.
func TestRecheckDispatchesBetweenTicks(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	// The launch is at 0; running at 40 s; online at 40 s + 35 s = 75 s,
	// 15 s after a tick, 45 s before the next.
	w.Cloud.Agent = 35 * time.Second
	var ticks []time.Time
	w.Invoke = func(l *sim.Lambda) func(error) {
		if l.Function == "watchdog" {
			ticks = append(ticks, l.Started)
		}
		return func(error) {}
	}
	start := w.Clock.Now()
	w.Send(`{"id": "quick", "command": "python train.py"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 10*time.Minute, func() bool { return len(w.Cloud.Invocations()) > 0 }) {
		t.Fatalf("no command sent: %s", jobOf(t, w, "quick").Reason)
	}
	online := start.Add(awssim.DefaultBoot + w.Cloud.Agent)
	sent := w.Cloud.Invocations()[0].Requested
	if d := sent.Sub(online); d < 0 || d > scheduler.RecheckDelay {
		t.Errorf("command sent %v after the agent came online; want within %v", d, scheduler.RecheckDelay)
	}
	for _, tk := range ticks {
		if !tk.Before(online) && !tk.After(sent) {
			t.Errorf("a tick at %v, between the agent online at %v and the command at %v", tk.Sub(start), online.Sub(start), sent.Sub(start))
		}
	}
	if n := rechecksSent(w, ""); n == 0 {
		t.Errorf("no re-check sent")
	}
	// The chain ended with the dispatch: nothing more waits on the queue
	// but, after the job, its keep-warm re-check.
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "quick", job.Succeeded)) {
		t.Fatal("job did not finish")
	}
	if n := w.Cloud.Delayed(); n != 1 {
		t.Errorf("%d delayed messages after the job; want 1 (the keep-warm re-check)", n)
	}
	checkSafety(t, w)
}

// TestRecheckChainEnds: for an agent that never comes online the re-checks
// stop at AgentTimeout: nothing loops for ever.
func TestRecheckChainEnds(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Retries: -1})
	w.Cloud.Agent = -1
	w.Send(`{"id": "stuck", "command": "python train.py"}`)
	w.Poll(ctx)
	w.Run(ctx, scheduler.AgentTimeout+5*time.Minute)
	id := jobOf(t, w, "stuck").InstanceID
	n := rechecksSent(w, id)
	w.Run(ctx, 30*time.Minute)
	if m := rechecksSent(w, id); m != n || w.Cloud.Delayed() != 0 {
		t.Errorf("re-checks of %s: %d at the timeout, %d half an hour on, %d delayed; want the chain ended", id, n, m, w.Cloud.Delayed())
	}
	if max := int((scheduler.AgentTimeout+2*time.Minute)/scheduler.RecheckDelay) + 2; n > max {
		t.Errorf("%d re-checks; want at most one per RecheckDelay up to AgentTimeout (%d)", n, max)
	}
	if j := jobOf(t, w, "stuck"); j.State != job.Failed {
		t.Errorf("job %s (%s); want FAILED at the agent timeout", j.State, j.Reason)
	}
}

// TestRecheckStartedInstance: a stopped instance started for a job is
// re-checked too.
func TestRecheckStartedInstance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{KeepWarm: 5 * time.Minute})
	w.Send(`{"id": "monday", "command": "python train.py"}`)
	w.Poll(ctx)
	w.RunUntil(ctx, time.Hour, stateIs(w, "monday", job.Succeeded))
	w.Run(ctx, 10*time.Minute)
	id := managed(w)[0].ID
	if s := managed(w)[0].State; s != "stopped" {
		t.Fatalf("instance %s; want stopped", s)
	}
	before := rechecksSent(w, id)
	w.Cloud.Agent = 100 * time.Second
	start := w.Clock.Now()
	w.Send(`{"id": "tuesday", "command": "python train.py"}`)
	w.Poll(ctx)
	if w.Cloud.Calls["StartInstances"] != 1 {
		t.Fatalf("StartInstances %d; want the stopped instance started", w.Cloud.Calls["StartInstances"])
	}
	if !w.RunUntil(ctx, time.Hour, func() bool { return len(w.Cloud.Invocations()) == 2 }) {
		t.Fatalf("tuesday: %s", jobOf(t, w, "tuesday").Reason)
	}
	online := start.Add(awssim.DefaultBoot + w.Cloud.Agent)
	if d := w.Cloud.Invocations()[1].Requested.Sub(online); d < 0 || d > scheduler.RecheckDelay {
		t.Errorf("command sent %v after the agent came online; want within %v", d, scheduler.RecheckDelay)
	}
	if rechecksSent(w, id) == before {
		t.Errorf("no re-check of %s after its start", id)
	}
}

// TestKeepWarmRecheckStopsOnTime: a free instance is stopped when its
// keep-warm window ends, by its re-check, not at the tick after.
func TestKeepWarmRecheckStopsOnTime(t *testing.T) {
	ctx := context.Background()
	keep := 5*time.Minute + 30*time.Second // off the tick's minute
	w := newWorld(t, sim.Config{KeepWarm: keep})
	w.Send(`{"id": "one", "command": "python train.py"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "one", job.Succeeded)) {
		t.Fatal("job did not finish")
	}
	id := jobOf(t, w, "one").InstanceID
	l, err := w.Store.Lease(ctx, id)
	if err != nil || l.Held() {
		t.Fatalf("lease %+v, %v; want free", l, err)
	}
	w.Run(ctx, l.IdleSince.Add(keep-time.Second).Sub(w.Clock.Now()))
	if s := managed(w)[0].State; s != "running" {
		t.Fatalf("a second before keep-warm ends the instance is %s; want running", s)
	}
	w.Run(ctx, 2*time.Second)
	if s := managed(w)[0].State; s != "stopping" && s != "stopped" {
		t.Errorf("a second after keep-warm ends the instance is %s; want stopping", s)
	}
	checkSafety(t, w)
}

// TestRecheckDrops: re-checks for an instance that is gone, for one whose
// job has its command, and malformed ones are dropped: no new re-check, no
// error, no retry.
func TestRecheckDrops(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Send(`{"id": "one", "command": "python train.py"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "one", job.Running)) {
		t.Fatal("job did not start")
	}
	id := jobOf(t, w, "one").InstanceID
	for _, body := range []string{job.RecheckMessage(id), job.RecheckMessage("i-00000000000000bad"), `{"recheck": "bogus"}`, `{"recheck": 7}`} {
		n, delayed := rechecksSent(w, ""), w.Cloud.Delayed()
		w.Send(body)
		w.Poll(ctx)
		if rechecksSent(w, "") != n+boolInt(job.IsRecheck([]byte(body)) && validRecheck(body)) || w.Cloud.Delayed() != delayed || w.Cloud.Waiting() != 0 {
			t.Errorf("%s: %d re-checks sent (was %d), %d delayed (was %d), %d waiting; want it dropped", body, rechecksSent(w, ""), n, w.Cloud.Delayed(), delayed, w.Cloud.Waiting())
		}
	}
	if len(w.Errors) > 0 {
		t.Errorf("handler errors: %v", w.Errors)
	}
}

func validRecheck(body string) bool { _, err := job.ParseRecheck([]byte(body)); return err == nil }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
