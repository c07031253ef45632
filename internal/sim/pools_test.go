package sim_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestTwoPools: a deployment with a small-GPU pool (default: g5.xlarge,
// then g6.xlarge; cap 2) and a multi-GPU pool (multi: g5.12xlarge; cap 1),
// as the README's two-pool deployment declares them. Jobs that name multi
// run only on its type, one at a time; jobs that name no pool go to
// default, take its types in order (g5.xlarge has no capacity here, so
// g6.xlarge), and never more than two at once; the two caps are held
// apart, so a full multi pool does not hold up default, nor the reverse.
func TestTwoPools(t *testing.T) {
	ctx := context.Background()
	pools := map[string]scheduler.Pool{
		"default": {Types: []string{"g5.xlarge", "g6.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(5 * time.Minute)},
		"multi":   {Types: []string{"g5.12xlarge"}, MaxInstances: 1, KeepWarm: job.Duration(5 * time.Minute), VolumeGB: 500},
	}
	w := newWorld(t, sim.Config{Pools: pools})
	w.Cloud.Capacity = map[string]int{"g5.xlarge": 0}
	w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Duration: 20 * time.Minute} })

	var small, multi []string
	for k := range 3 {
		id := fmt.Sprintf("multi-%d", k)
		multi = append(multi, id)
		w.Send(`{"id": "` + id + `", "command": "torchrun --nproc_per_node 4 train.py", "instance": {"pool": "multi"}}`)
	}
	for k := range 4 {
		id := fmt.Sprintf("small-%d", k)
		small = append(small, id)
		w.Send(`{"id": "` + id + `", "command": "python train.py"}`)
	}
	w.Poll(ctx)

	// Count each pool's live instances after every step of the run.
	most := map[string]int{}
	live := func() map[string]int {
		n := map[string]int{}
		for _, i := range managed(w) {
			if i.State != "stopped" && i.State != "terminated" {
				n[i.Tags["nightshift:pool"]]++
			}
		}
		return n
	}
	sawWaiting := false
	done := func() bool {
		for pool, n := range live() {
			most[pool] = max(most[pool], n)
		}
		if j, err := w.Store.Job(ctx, multi[2]); err == nil && j.State == job.Queued && strings.Contains(j.Reason, "pool multi is at its cap of 1") {
			sawWaiting = true
		}
		for _, id := range slices.Concat(small, multi) {
			if !stateIs(w, id, job.Succeeded)() {
				return false
			}
		}
		return true
	}
	if !w.RunUntil(ctx, 3*time.Hour, done) {
		for _, id := range slices.Concat(small, multi) {
			j := jobOf(t, w, id)
			t.Logf("%s: %s (%s)", id, j.State, j.Reason)
		}
		t.Fatal("the jobs did not all succeed")
	}

	byID := map[string]string{} // instance → type
	for _, i := range managed(w) {
		byID[i.ID] = i.Type
		want := map[string][]string{"default": {"g6.xlarge"}, "multi": {"g5.12xlarge"}}[i.Tags["nightshift:pool"]]
		if !slices.Contains(want, i.Type) {
			t.Errorf("instance %s of pool %q is a %s; want one of %v", i.ID, i.Tags["nightshift:pool"], i.Type, want)
		}
	}
	for _, id := range multi {
		j := jobOf(t, w, id)
		if j.Pool != "multi" || j.InstanceType != "g5.12xlarge" || byID[j.InstanceID] != "g5.12xlarge" {
			t.Errorf("job %s: pool %q, ran on %s (%s); want pool multi on a g5.12xlarge", id, j.Pool, j.InstanceID, j.InstanceType)
		}
	}
	for _, id := range small {
		j := jobOf(t, w, id)
		if j.Pool != "default" || j.InstanceType != "g6.xlarge" {
			t.Errorf("job %s (no pool named): pool %q, ran on %s (%s); want pool default on a g6.xlarge, g5.xlarge having no capacity", id, j.Pool, j.InstanceID, j.InstanceType)
		}
	}
	if most["multi"] != 1 || most["default"] != 2 {
		t.Errorf("most live instances at once = %v; want multi 1 (its cap) and default 2 (its cap)", most)
	}
	if !sawWaiting {
		t.Errorf("job %s never waited with reason %q while the multi pool was full", multi[2], "pool multi is at its cap of 1")
	}
	// The small jobs did not wait for the big ones: two ran at once from
	// the start, while multi-1 and multi-2 queued behind multi-0.
	var firstSmall, lastMulti time.Time
	for _, id := range small {
		if j := jobOf(t, w, id); firstSmall.IsZero() || j.EndedAt.Before(firstSmall) {
			firstSmall = j.EndedAt
		}
	}
	for _, id := range multi {
		lastMulti = maxTime(lastMulti, jobOf(t, w, id).EndedAt)
	}
	if !firstSmall.Before(lastMulti) {
		t.Errorf("first small job ended %v, last multi job %v; want the small ones running while multi jobs wait", firstSmall, lastMulti)
	}
	checkSafety(t, w)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
