package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

var (
	idle = awssim.Usage{GPU: 0, CPU: 2, NetBytesPerSec: 500}
	busy = awssim.Usage{GPU: 90, CPU: 40, NetBytesPerSec: 5e5}
)

// usage gives each listed instance a constant load.
func usage(w *sim.World, load map[string]awssim.Usage) {
	w.Cloud.Usage = func(id string, _ time.Time) (awssim.Usage, bool) {
		u, ok := load[id]
		return u, ok
	}
}

func instance(t *testing.T, w *sim.World, id string) awssim.Instance {
	t.Helper()
	for _, i := range w.Cloud.Instances() {
		if i.ID == id {
			return i
		}
	}
	t.Fatalf("no instance %s", id)
	return awssim.Instance{}
}

func messages(w *sim.World, substr string) []awssim.Notification {
	var out []awssim.Notification
	for _, m := range w.Cloud.Notifications() {
		if strings.Contains(m.Subject+" "+m.Message, substr) {
			out = append(out, m)
		}
	}
	return out
}

func TestWatchedNotebooks(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{IdleTimeout: 45 * time.Minute}})
	idleNb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "forgotten notebook"})
	busyNb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "training notebook"})
	sessionNb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "someone is logged in"})
	shortNb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "nightshift:idle-timeout": "20m"})
	noAgent := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "no GPU metrics"})
	stranger := w.Launch("g5.xlarge", map[string]string{"Name": "not watched"})
	usage(w, map[string]awssim.Usage{idleNb: idle, busyNb: busy, sessionNb: idle, shortNb: idle, noAgent: idle, stranger: idle})
	w.Cloud.Session(sessionNb, true)
	w.Cloud.SetGPUMetrics(noAgent, false)

	w.Run(ctx, 30*time.Minute)
	if got := instance(t, w, shortNb).State; got != "stopped" {
		t.Errorf("notebook with a 20m idle-timeout tag is %s after 30 min; want stopped", got)
	}
	if got := instance(t, w, idleNb).State; got != "running" {
		t.Errorf("idle notebook is %s after 30 min of a 45 min timeout; want running", got)
	}
	w.Run(ctx, 25*time.Minute)
	i := instance(t, w, idleNb)
	if i.State != "stopped" {
		t.Fatalf("idle notebook is %s after 55 min; want stopped", i.State)
	}
	if i.StoppedBy != "StopInstances" || !strings.Contains(i.Tags["nightshift:last-action"], "stop: idle for 45m") {
		t.Errorf("stopped by %q, last-action %q; want the watchdog's stop, tagged with why", i.StoppedBy, i.Tags["nightshift:last-action"])
	}
	if len(messages(w, idleNb)) != 1 {
		t.Errorf("notifications about %s: %v; want one", idleNb, messages(w, idleNb))
	}
	w.Run(ctx, 2*time.Hour)
	for id, why := range map[string]string{busyNb: "GPU at 90%", sessionNb: "an open session", noAgent: "no GPU metrics (missing data is never idle)", stranger: "no nightshift tag"} {
		if got := instance(t, w, id); got.State != "running" || got.Tags["nightshift:last-action"] != "" {
			t.Errorf("%s (%s) is %s, tagged %q; want running and untouched", id, why, got.State, got.Tags["nightshift:last-action"])
		}
	}
	// Closing the session makes the notebook idle from then on.
	w.Cloud.Session(sessionNb, false)
	w.Run(ctx, 50*time.Minute)
	if got := instance(t, w, sessionNb).State; got != "stopped" {
		t.Errorf("notebook idle 50 min after its session closed is %s; want stopped", got)
	}
}

func TestWatchedGrace(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{IdleTimeout: 10 * time.Minute, Grace: 30 * time.Minute}})
	nb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true"})
	usage(w, map[string]awssim.Usage{nb: idle})
	w.Run(ctx, 25*time.Minute)
	if got := instance(t, w, nb).State; got != "running" {
		t.Errorf("freshly started notebook is %s within its grace; want running", got)
	}
	w.Run(ctx, 10*time.Minute)
	if got := instance(t, w, nb).State; got != "stopped" {
		t.Errorf("notebook is %s after its grace; want stopped", got)
	}
}

func TestDryRun(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{IdleTimeout: 20 * time.Minute, DryRun: true}})
	nb := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true"})
	usage(w, map[string]awssim.Usage{nb: idle})
	w.Run(ctx, time.Hour)
	if i := instance(t, w, nb); i.State != "running" || i.Tags["nightshift:last-action"] != "" {
		t.Errorf("dry run: notebook %s, tagged %q; want running and untagged", i.State, i.Tags["nightshift:last-action"])
	}
	if n := w.Cloud.Calls["StopInstances"]; n != 0 {
		t.Errorf("dry run called StopInstances %d times", n)
	}
	if got := messages(w, "would stop "+nb); len(got) == 0 {
		t.Errorf("dry run reported nothing; want a 'would stop' notification")
	}
}

func TestDeadlineEnforcedByWatchdog(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{StallTimeout: 10 * time.Hour}})
	w.Cloud.IgnoreTimeouts = true // SSM fails to end it: the watchdog must
	w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Hang: true} })
	w.Send(`{"id": "forever", "command": "python train.py", "max_runtime": "30m"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 2*time.Hour, stateIs(w, "forever", job.TimedOut)) {
		t.Fatalf("job %s: %s", jobOf(t, w, "forever").State, jobOf(t, w, "forever").Reason)
	}
	j := jobOf(t, w, "forever")
	if over := j.EndedAt.Sub(j.StartedAt) - j.Spec.MaxRuntime.D(); over > 2*scheduler.Period {
		t.Errorf("TIMED_OUT %v past max runtime; want within a period (L2)", over)
	}
	if w.Cloud.Calls["CancelCommand"] == 0 {
		t.Errorf("the command was not cancelled")
	}
	w.Run(ctx, scheduler.DefaultKeepWarm+3*time.Minute)
	if i := managed(w)[0]; i.State != "stopped" {
		t.Errorf("instance %s after the timed-out job and keep-warm; want stopped", i.State)
	}
}

func TestStalledJob(t *testing.T) {
	for _, onStall := range []string{"notify", "cancel"} {
		t.Run(onStall, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, sim.Config{Watchdog: watchdog.Config{StallTimeout: 20 * time.Minute}})
			w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Hang: true} })
			w.Send(`{"id": "hung", "command": "python train.py", "max_runtime": "6h", "on_stall": "` + onStall + `"}`)
			w.Poll(ctx)
			w.Run(ctx, 40*time.Minute)
			j := jobOf(t, w, "hung")
			if j.StalledAt.IsZero() || len(messages(w, "stalled")) != 1 {
				t.Fatalf("after 40 min hung: %s, stalled at %v, %d notifications; want reported once", j.State, j.StalledAt, len(messages(w, "stalled")))
			}
			w.Run(ctx, 30*time.Minute)
			j = jobOf(t, w, "hung")
			switch onStall {
			case "notify":
				if j.State != job.Running || len(messages(w, "stalled")) != 1 {
					t.Errorf("notify: %s with %d notifications; want still RUNNING, reported once", j.State, len(messages(w, "stalled")))
				}
			case "cancel":
				if j.State != job.Cancelled || !strings.Contains(j.Reason, "stalled") {
					t.Errorf("cancel: %s (%s); want CANCELLED because stalled", j.State, j.Reason)
				}
			}
		})
	}
}

func TestBusyJobNotStalled(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{StallTimeout: 10 * time.Minute}})
	w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Duration: 2 * time.Hour} })
	w.Send(`{"id": "long", "command": "python train.py", "max_runtime": "3h", "on_stall": "cancel"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 3*time.Hour, stateIs(w, "long", job.Succeeded)) {
		t.Errorf("long busy job: %s (%s); want SUCCEEDED, never taken for stalled", jobOf(t, w, "long").State, jobOf(t, w, "long").Reason)
	}
}

func TestLeakedInstanceStopped(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	// A managed instance the store does not know: a crash before any record,
	// or a person copying the tags.
	leak := w.Launch("g4dn.xlarge", map[string]string{"nightshift:managed": "true", "nightshift:pool": "default"})
	w.Run(ctx, scheduler.DefaultKeepWarm+3*scheduler.Period)
	i := instance(t, w, leak)
	if i.State != "stopped" || !strings.Contains(i.Tags["nightshift:last-action"], "stop") {
		t.Errorf("leaked instance %s, tagged %q; want stopped within keep-warm plus a period, tagged", i.State, i.Tags["nightshift:last-action"])
	}
}

func TestBudget(t *testing.T) {
	for _, policy := range []string{watchdog.PolicyFinish, watchdog.PolicyCancel} {
		t.Run(policy, func(t *testing.T) {
			ctx := context.Background()
			// Two g4dn.xlarge at $0.526/h reach $1 in under an hour.
			w := newWorld(t, sim.Config{Watchdog: watchdog.Config{DailyBudget: 1, Policy: policy}})
			w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
				if r.JobID == "short" {
					return sim.Outcome{Duration: 5 * time.Minute}
				}
				return sim.Outcome{Duration: 5 * time.Hour}
			})
			w.Send(`{"id": "long", "command": "python big.py", "max_runtime": "6h"}`)
			w.Send(`{"id": "short", "command": "python small.py"}`)
			w.Poll(ctx)
			warned := func() bool { return len(messages(w, "% of the $1.00 budget")) > 0 }
			if !w.RunUntil(ctx, 3*time.Hour, warned) {
				t.Fatalf("no 80%% notification; messages %v", w.Cloud.Notifications())
			}
			if got := messages(w, "budget of $1.00 reached"); len(got) != 0 {
				t.Errorf("100%% notification came with the 80%% one: %v", got)
			}
			reached := func() bool { return len(messages(w, "daily budget of $1.00 reached")) > 0 }
			if !w.RunUntil(ctx, 3*time.Hour, reached) {
				t.Fatalf("no 100%% notification; messages %v", w.Cloud.Notifications())
			}
			w.Run(ctx, 2*time.Minute)
			if n := len(messages(w, "nightshift: notify")); n != 2 {
				t.Errorf("%d budget notifications; want one at 80%% and one at 100%%: %v", n, w.Cloud.Notifications())
			}
			// Placement is paused: a new job waits with the reason.
			w.Send(`{"id": "late", "command": "python more.py"}`)
			w.Poll(ctx)
			w.Run(ctx, 5*time.Minute)
			if j := jobOf(t, w, "late"); j.State != job.Queued || !strings.Contains(j.Reason, "budget") {
				t.Errorf("new job: %s (%s); want QUEUED with reason budget", j.State, j.Reason)
			}
			// The idle instance (short's) is stopped without waiting for keep-warm.
			short := jobOf(t, w, "short").InstanceID
			if i := instance(t, w, short); i.State != "stopped" {
				t.Errorf("idle instance %s is %s; want stopped at once under the budget", short, i.State)
			}
			long := jobOf(t, w, "long")
			switch policy {
			case watchdog.PolicyFinish:
				if long.State != job.Running {
					t.Errorf("finish policy: long job %s; want RUNNING", long.State)
				}
			case watchdog.PolicyCancel:
				if long.State != job.Cancelled {
					t.Errorf("cancel policy: long job %s; want CANCELLED", long.State)
				}
			}
			// The next day the budget is fresh and the waiting job runs.
			w.Run(ctx, 24*time.Hour)
			if j := jobOf(t, w, "late"); !j.State.Terminal() {
				t.Errorf("next day the waiting job is %s (%s); want it run", j.State, j.Reason)
			}
		})
	}
}

func TestDeadManTimer(t *testing.T) {
	ctx := context.Background()
	t.Run("hung job, control plane gone", func(t *testing.T) {
		w := newWorld(t, sim.Config{})
		w.Cloud.IgnoreTimeouts = true
		w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Hang: true} })
		w.Send(`{"id": "orphan", "command": "python train.py", "max_runtime": "1h"}`)
		w.Poll(ctx)
		if !w.RunUntil(ctx, time.Hour, stateIs(w, "orphan", job.Running)) {
			t.Fatal("job never ran")
		}
		started := jobOf(t, w, "orphan").StartedAt
		w.Down = true // Lambda and EventBridge are gone
		w.Run(ctx, 5*time.Hour)
		i := managed(w)[0]
		if i.State != "stopped" || i.StoppedBy != "dead-man timer" {
			t.Fatalf("instance %s (by %q); want stopped by its dead-man timer", i.State, i.StoppedBy)
		}
		_ = started
		if w.Cloud.Calls["StopInstances"] != 0 {
			t.Errorf("StopInstances was called with the control plane down")
		}
		secs, _ := w.Cloud.Bill()
		want := (time.Hour + runner.DeadmanGrace + 3*time.Minute).Seconds() // boot + agent + tick before the job
		if got := secs["g4dn.xlarge"]; got > want+60 {
			t.Errorf("billed %.0f s; want at most max runtime + grace + boot ≈ %.0f s", got, want)
		}
	})
	t.Run("finished job, control plane gone", func(t *testing.T) {
		w := newWorld(t, sim.Config{KeepWarm: 10 * time.Minute})
		w.Send(`{"id": "done", "command": "python train.py"}`)
		w.Poll(ctx)
		if !w.RunUntil(ctx, time.Hour, stateIs(w, "done", job.Running)) {
			t.Fatal("job never ran")
		}
		w.Down = true
		w.Run(ctx, time.Hour)
		i := managed(w)[0]
		if i.State != "stopped" || i.StoppedBy != "idle timer" {
			t.Fatalf("instance %s (by %q); want stopped by its idle timer after keep-warm", i.State, i.StoppedBy)
		}
	})
}

// TestWatchedResolution: two notebooks busy until the same minute, one
// with EC2 detailed monitoring, one without. The detailed one is stopped
// within two minutes (its resolution and a sweep) after its idle timeout
// has run from the end of that minute; the basic one within six (5-minute
// CPU and network, and a sweep), and not before the detailed one.
func TestWatchedResolution(t *testing.T) {
	ctx := context.Background()
	const timeout = 20 * time.Minute
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{IdleTimeout: timeout}})
	t0 := w.Clock.Now()
	detailed := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "detailed"})
	basic := w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true", "Name": "basic"})
	if err := w.Cloud.ByHand(detailed, "monitor"); err != nil {
		t.Fatal(err)
	}
	lastBusy := t0.Add(41 * time.Minute) // the last minute of work starts here
	w.Cloud.Usage = func(_ string, at time.Time) (awssim.Usage, bool) {
		if at.After(lastBusy) {
			return idle, true
		}
		return busy, true
	}
	quietFrom := lastBusy.Add(time.Minute)
	stoppedAt := map[string]time.Time{}
	w.RunUntil(ctx, 2*time.Hour, func() bool {
		for _, id := range []string{detailed, basic} {
			if s := instance(t, w, id).State; stoppedAt[id].IsZero() && (s == "stopping" || s == "stopped") {
				stoppedAt[id] = w.Clock.Now()
			}
		}
		return len(stoppedAt) == 2
	})
	for id, within := range map[string]time.Duration{detailed: 2 * time.Minute, basic: 6 * time.Minute} {
		at, ok := stoppedAt[id]
		late := at.Sub(quietFrom.Add(timeout))
		if !ok || late <= 0 || late > within {
			t.Errorf("%s stopped %v after its idle timeout (at T+%v); want within (0, %v]", instance(t, w, id).Tags["Name"], late, at.Sub(t0), within)
		}
		t.Logf("%s: stopped %v after its idle timeout", instance(t, w, id).Tags["Name"], late)
	}
	if !stoppedAt[detailed].Before(stoppedAt[basic]) {
		t.Errorf("detailed stopped at T+%v, basic at T+%v; want the detailed one first", stoppedAt[detailed].Sub(t0), stoppedAt[basic].Sub(t0))
	}
	if i := instance(t, w, detailed); !strings.Contains(i.Tags["nightshift:last-action"], "CPU and network every 1m0s") {
		t.Errorf("detailed notebook's last action %q; want it to say the 1-minute resolution", i.Tags["nightshift:last-action"])
	}
}
