package sim_test

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestKeepWarmPerPool: each command carries the keep-warm window of its
// instance's pool, so the instance's own idle timer backs up the pool's
// keep-warm stop, one period later: a fixed window, or with "auto" the
// start-to-ready time measured as the command was sent.
func TestKeepWarmPerPool(t *testing.T) {
	ctx := context.Background()
	pools := map[string]scheduler.Pool{
		"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarm: job.Duration(3 * time.Minute)},
		"long":    {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarm: job.Duration(20 * time.Minute)},
		"auto":    {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarmAuto: true},
	}
	w := newWorld(t, sim.Config{Pools: pools})
	var mu sync.Mutex
	launchers := map[string]string{} // by job
	w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
		mu.Lock()
		defer mu.Unlock()
		launchers[r.JobID] = r.Commands
		return sim.Outcome{Duration: 5 * time.Minute}
	})
	for _, pool := range slices.Sorted(maps.Keys(pools)) {
		w.Send(`{"id": "` + pool + `", "command": "python train.py", "instance": "` + pool + `"}`)
	}
	w.Poll(ctx)
	if !w.RunUntil(ctx, time.Hour, func() bool {
		for pool := range pools {
			if !stateIs(w, pool, job.Succeeded)() {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the jobs did not all succeed")
	}
	// Let every instance go idle past the longest window and its backup.
	w.Run(ctx, 25*time.Minute)

	ended := map[string]time.Time{} // command end, by instance
	for _, inv := range w.Invocations() {
		ended[inv.InstanceID] = inv.Ended
	}
	instances := map[string]awssim.Instance{}
	for _, i := range managed(w) {
		instances[i.ID] = i
	}
	for _, pool := range slices.Sorted(maps.Keys(pools)) {
		p := pools[pool]
		t.Run(pool, func(t *testing.T) {
			j := jobOf(t, w, pool)
			i, ok := instances[j.InstanceID]
			if !ok || i.Tags["nightshift:pool"] != pool {
				t.Fatalf("job %s ran on %q (%v), pool tag %q; want an instance of pool %s", pool, j.InstanceID, ok, i.Tags["nightshift:pool"], pool)
			}
			window := p.KeepWarm.D()
			if p.KeepWarmAuto {
				secs, err := strconv.Atoi(i.Tags["nightshift:ready-seconds"])
				if err != nil {
					t.Fatalf("auto pool instance %s: ready-seconds tag %q; want the measured start-to-ready time", i.ID, i.Tags["nightshift:ready-seconds"])
				}
				window = min(max(time.Duration(secs)*time.Second, scheduler.MinAutoKeepWarm), scheduler.MaxAutoKeepWarm)
			}
			// The wrapper rounds the window up to whole minutes, and adds one.
			want := (window+time.Minute-1)/time.Minute*time.Minute + time.Minute
			h, err := runner.ParseHeader(launchers[pool])
			if err != nil {
				t.Fatalf("ParseHeader(command of %s) = %v", pool, err)
			}
			if got := time.Duration(h.IdleSeconds) * time.Second; got != want {
				t.Errorf("command of %s: header idle timer %v; want %v (keep-warm %v plus a minute)", pool, got, want, window)
			}
			// What the simulated instance armed, read from the wrapper itself.
			if got := i.ShutdownAt.Sub(ended[i.ID]); got != want {
				t.Errorf("instance %s of %s armed its idle timer %v after the job; want %v", i.ID, pool, got, want)
			}
			// Nightshift's own stop comes first; the timer is its backup.
			if i.State != "stopped" || i.StoppedBy != "StopInstances" {
				t.Errorf("instance %s of %s is %s, stopped by %q; want stopped by nightshift's keep-warm stop", i.ID, pool, i.State, i.StoppedBy)
			}
		})
	}
	checkSafety(t, w)
}

// TestReadyMeasuredOnce: a dispatch repeated after a crash and an outage of
// the control plane does not measure the outage as the instance's
// start-to-ready time (found by the chaos harness, seed 93: a 2h42m
// measurement kept an idle instance warm for the 30-minute maximum).
func TestReadyMeasuredOnce(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarmAuto: true}}})
	crashed := false
	w.Cloud.Fault = func(op string, _ any) error {
		if op == "SendCommand" && !crashed {
			crashed = true
			return awssim.ErrCrash // the invocation dies after writing its intent
		}
		return nil
	}
	w.Send(`{"id": "j", "command": "python train.py"}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, 10*time.Minute, func() bool { return crashed }) {
		t.Fatal("the first dispatch never came")
	}
	first := managed(w)[0].Tags["nightshift:ready-seconds"]
	if first == "" {
		t.Fatal("the first dispatch measured nothing")
	}
	w.Down = true
	w.Run(ctx, 2*time.Hour)
	w.Down = false
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "j", job.Running)) {
		t.Fatalf("job %s; want it dispatched again once the control plane is back", jobOf(t, w, "j").State)
	}
	if got := managed(w)[0].Tags["nightshift:ready-seconds"]; got != first {
		t.Errorf("ready-seconds after the repeated dispatch = %s; want the first measurement, %s", got, first)
	}
}

// TestReadyNotMeasuredAfterOutage: a first dispatch that the control plane's
// absence delayed past the agent timeout measures nothing: that time is the
// outage's, not the start's.
func TestReadyNotMeasuredAfterOutage(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 1, KeepWarmAuto: true}}})
	w.Send(`{"id": "j", "command": "python train.py"}`)
	w.Poll(ctx) // launched
	w.Down = true
	w.Run(ctx, time.Hour)
	w.Down = false
	if !w.RunUntil(ctx, 10*time.Minute, stateIs(w, "j", job.Running)) {
		t.Fatalf("job %s; want it dispatched once the control plane is back", jobOf(t, w, "j").State)
	}
	if got, ok := managed(w)[0].Tags["nightshift:ready-seconds"]; ok {
		t.Errorf("ready-seconds = %s after a dispatch delayed an hour; want no measurement", got)
	}
}
