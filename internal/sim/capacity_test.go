package sim_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// maxLeave is how soon a job whose stopped instance cannot start is to
// be on another instance: the bound (three minutes, the fleet's
// UnavailableTTL) and three passes. A literal, not the constant: the test
// holds the scheduler to it.
const maxLeave = 3*time.Minute + 3*scheduler.Period

// twoZones are the stack's subnets in the capacity scenarios.
var twoZones = []sim.Subnet{{ID: "subnet-a", Zone: "us-east-1a"}, {ID: "subnet-b", Zone: "us-east-1b"}}

func capPool(n int) map[string]scheduler.Pool {
	return map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: n, KeepWarm: job.Duration(5 * time.Minute)}}
}

// instanceOf returns the cloud's instance id.
func instanceOf(t *testing.T, w *sim.World, id string) awssim.Instance {
	t.Helper()
	for _, i := range w.Cloud.Instances() {
		if i.ID == id {
			return i
		}
	}
	t.Fatalf("no instance %s", id)
	return awssim.Instance{}
}

// launched counts the RunInstances calls that made an instance.
func launched(w *sim.World) int {
	n := 0
	for _, l := range w.Cloud.Launches {
		if l.Code == "" {
			n++
		}
	}
	return n
}

// liveInPool counts the pool's instances that are not terminated.
func liveInPool(w *sim.World, pool string) int {
	n := 0
	for _, i := range managed(w) {
		if i.Tags["nightshift:pool"] == pool && i.State != "terminated" && i.State != "shutting-down" {
			n++
		}
	}
	return n
}

// runCapped runs d in steps, failing the test if the pool ever holds more
// live instances than cap.
func runCapped(ctx context.Context, t *testing.T, w *sim.World, d time.Duration, cap int, done func() bool) bool {
	t.Helper()
	for end := w.Clock.Now().Add(d); w.Clock.Now().Before(end); {
		if done != nil && done() {
			return true
		}
		w.Run(ctx, 10*time.Second)
		if n := liveInPool(w, "default"); n > cap {
			t.Fatalf("%d live instances in pool default, capped at %d (S5)", n, cap)
		}
	}
	return done == nil || done()
}

// TestZoneOutNextZoneUsed: the first subnet's zone has no g4dn.xlarge:
// the launch is refused there and made in the next zone, in the same
// pass; a second launch within UnavailableTTL does not ask the first zone
// again, and one past it does.
func TestZoneOutNextZoneUsed(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: capPool(3), Subnets: twoZones})
	w.Cloud.ZoneCapacity[awssim.Offering{Type: "g4dn.xlarge", Zone: "us-east-1a"}] = 0
	longJobs(w) // every job needs an instance of its own
	w.Send(`{"id": "a", "command": "python train.py"}`)
	w.Poll(ctx)
	a := jobOf(t, w, "a")
	if a.State != job.Placed || a.InstanceID == "" {
		t.Fatalf("a = %s on %q (%s); want PLACED on an instance in the first pass", a.State, a.InstanceID, a.Reason)
	}
	if got := len(w.Cloud.Launches); got != 2 || w.Cloud.Launches[0].Zone != "us-east-1a" || w.Cloud.Launches[0].Code != "InsufficientInstanceCapacity" {
		t.Fatalf("RunInstances calls %+v; want 2: refused in us-east-1a, then launched", w.Cloud.Launches)
	}
	if z := instanceOf(t, w, a.InstanceID).Zone; z != "us-east-1b" {
		t.Errorf("a's instance is in %s; want us-east-1b, the next zone", z)
	}
	w.Run(ctx, time.Minute)
	w.Send(`{"id": "b", "command": "python train.py"}`)
	w.Poll(ctx)
	if got := w.Cloud.Launches[2:]; len(got) != 1 || got[0].Zone != "us-east-1b" || got[0].Code != "" {
		t.Errorf("b's RunInstances calls %+v; want one, in us-east-1b: us-east-1a's refusal is remembered", got)
	}
	w.Run(ctx, fleet.UnavailableTTL)
	w.Send(`{"id": "c", "command": "python train.py"}`)
	w.Poll(ctx)
	if got := w.Cloud.Launches[3:]; len(got) != 2 || got[0].Zone != "us-east-1a" {
		t.Errorf("c's RunInstances calls %+v past the TTL; want us-east-1a asked again, then us-east-1b", got)
	}
	for _, id := range []string{"a", "b", "c"} {
		if !w.RunUntil(ctx, 3*time.Hour, stateIs(w, id, job.Succeeded)) {
			t.Errorf("%s = %s (%s); want SUCCEEDED", id, jobOf(t, w, id).State, jobOf(t, w, id).Reason)
		}
	}
}

// stoppedInstance runs one job to its end and lets its instance stop after
// the keep-warm window; it returns the stopped instance.
func stoppedInstance(ctx context.Context, t *testing.T, w *sim.World) awssim.Instance {
	t.Helper()
	w.Send(`{"id": "first", "command": "python train.py"}`)
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "first", job.Succeeded)) {
		t.Fatalf("first = %s; want SUCCEEDED", jobOf(t, w, "first").State)
	}
	id := jobOf(t, w, "first").InstanceID
	if !w.RunUntil(ctx, time.Hour, func() bool { return instanceOf(t, w, id).State == "stopped" }) {
		t.Fatalf("instance %s = %s; want stopped after its keep-warm", id, instanceOf(t, w, id).State)
	}
	return instanceOf(t, w, id)
}

// TestStoppedInstanceCannotStart: a job placed on the pool's free stopped
// instance, whose zone has no capacity for it, retries the start for
// StartRefusedBound and is then launched elsewhere, saying what happened,
// on the same attempt; the stopped instance stays (not terminated), rests
// while its refusal is fresh, and once capacity is back it is started for
// another job. The pool never holds more than its cap.
func TestStoppedInstanceCannotStart(t *testing.T) {
	ctx := context.Background()
	const cap = 2
	w := newWorld(t, sim.Config{Pools: capPool(cap), Subnets: twoZones})
	x := stoppedInstance(ctx, t, w)
	out := awssim.Offering{Type: "g4dn.xlarge", Zone: x.Zone}
	w.Cloud.ZoneCapacity[out] = 0
	runs := len(w.Cloud.Launches)

	w.Send(`{"id": "b", "command": "python train.py"}`)
	w.Poll(ctx)
	if b := jobOf(t, w, "b"); b.State != job.Placed || b.InstanceID != x.ID {
		t.Fatalf("b = %s on %q; want PLACED on the free stopped instance %s", b.State, b.InstanceID, x.ID)
	}
	sent := w.Clock.Now()
	var left *job.Job
	runCapped(ctx, t, w, maxLeave, cap, func() bool {
		b := jobOf(t, w, "b")
		if b.InstanceID != "" && b.InstanceID != x.ID {
			left = b
			return true
		}
		return false
	})
	if left == nil {
		b := jobOf(t, w, "b")
		t.Fatalf("b = %s on %s (%s) %v after placement; want it on another instance within the bound (3m) and three passes", b.State, b.InstanceID, b.Reason, w.Clock.Now().Sub(sent))
	}
	t.Logf("b on %s, %v after its placement on %s", left.InstanceID, w.Clock.Now().Sub(sent), x.ID)
	if left.Attempt != 1 {
		t.Errorf("b is on attempt %d; want 1: leaving a stopped instance spends no attempt", left.Attempt)
	}
	said := false
	for _, h := range left.History {
		if strings.Contains(h.Reason, "instance "+x.ID+" could not start for") && strings.Contains(h.Reason, "InsufficientInstanceCapacity in "+x.Zone) && strings.Contains(h.Reason, "launching another, the stopped instance stays for later") {
			said = true
		}
	}
	if !said {
		t.Errorf("b's history %+v; want a reason saying %s could not start, why, where, and that another is launched", left.History, x.ID)
	}
	leaves := 0
	for _, n := range w.Cloud.Notifications() {
		if strings.HasPrefix(n.Subject, "nightshift: leave "+x.ID) && strings.Contains(n.Message, "launching another") {
			leaves++
		}
	}
	if leaves != 1 {
		t.Errorf("%d notices of leaving %s; want 1", leaves, x.ID)
	}
	if z := instanceOf(t, w, left.InstanceID).Zone; z == x.Zone {
		t.Errorf("b's new instance is in %s, the zone with no capacity", z)
	}
	if got := len(w.Cloud.Launches) - runs; got > 2 {
		t.Errorf("%d RunInstances calls for b; want at most 2 (the zone out, then the next)", got)
	}
	xi := instanceOf(t, w, x.ID)
	if xi.State != "stopped" || xi.Tags[fleet.TagStartRefused] == "" {
		t.Errorf("instance %s = %s, tags %v; want stopped, kept, tagged with its refused start", x.ID, xi.State, xi.Tags)
	}
	if !runCapped(ctx, t, w, time.Hour, cap, stateIs(w, "b", job.Succeeded)) {
		t.Fatalf("b = %s; want SUCCEEDED", jobOf(t, w, "b").State)
	}
	// Both stopped once their keep-warm ends; capacity comes back.
	runCapped(ctx, t, w, 20*time.Minute, cap, nil)
	delete(w.Cloud.ZoneCapacity, out)
	w.Send(`{"id": "c", "command": "python train.py"}`)
	w.Send(`{"id": "d", "command": "python train.py"}`)
	w.Send(`{"id": "e", "command": "python train.py"}`)
	runs = launched(w)
	if !runCapped(ctx, t, w, 2*time.Hour, cap, func() bool {
		return stateIs(w, "c", job.Succeeded)() && stateIs(w, "d", job.Succeeded)() && stateIs(w, "e", job.Succeeded)()
	}) {
		t.Fatalf("c, d, e = %s, %s, %s; want all SUCCEEDED", jobOf(t, w, "c").State, jobOf(t, w, "d").State, jobOf(t, w, "e").State)
	}
	on := map[string]bool{}
	for _, id := range []string{"c", "d", "e"} {
		on[jobOf(t, w, id).InstanceID] = true
	}
	if !on[x.ID] {
		t.Errorf("c, d, e ran on %v; want %s, started again once capacity was back", on, x.ID)
	}
	if n := launched(w) - runs; n != 0 {
		t.Errorf("%d instances launched for c, d, e; want none: the pool's two stopped instances are started", n)
	}
	if v := instanceOf(t, w, x.ID).Tags[fleet.TagStartRefused]; v != "" {
		t.Errorf("%s still tagged start-refused %q after it started", x.ID, v)
	}
}

// TestStoppedInstanceCannotStartAtCap: a pool of one whose only instance
// is stopped and cannot start has nowhere else to go: the job stays on it,
// saying why, launches nothing (the cap counts the stopped instance), and
// runs there once capacity returns.
func TestStoppedInstanceCannotStartAtCap(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: capPool(1), Subnets: twoZones})
	x := stoppedInstance(ctx, t, w)
	out := awssim.Offering{Type: "g4dn.xlarge", Zone: x.Zone}
	w.Cloud.ZoneCapacity[out] = 0
	runs := len(w.Cloud.Launches)
	w.Send(`{"id": "b", "command": "python train.py"}`)
	runCapped(ctx, t, w, 15*time.Minute, 1, nil)
	b := jobOf(t, w, "b")
	if b.State != job.Placed || b.InstanceID != x.ID || !strings.Contains(b.Reason, "could not start for") || !strings.Contains(b.Reason, "at its cap of 1") {
		t.Errorf("b = %s on %s (%s); want PLACED on %s, saying it cannot start and the pool is at its cap", b.State, b.InstanceID, b.Reason, x.ID)
	}
	if n := len(w.Cloud.Launches) - runs; n != 0 {
		t.Errorf("%d RunInstances calls; want none: the pool is at its cap", n)
	}
	delete(w.Cloud.ZoneCapacity, out)
	if !runCapped(ctx, t, w, time.Hour, 1, stateIs(w, "b", job.Succeeded)) {
		t.Fatalf("b = %s (%s); want SUCCEEDED once capacity is back", jobOf(t, w, "b").State, jobOf(t, w, "b").Reason)
	}
	if got := jobOf(t, w, "b").InstanceID; got != x.ID {
		t.Errorf("b ran on %s; want %s", got, x.ID)
	}
}

// TestNotebookWaitsForItsInstance: a notebook's stopped instance that
// cannot start is never left: its session waits, saying why, past the
// bound, and nothing is launched for it.
func TestNotebookWaitsForItsInstance(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Subnets: twoZones})
	w.Send(`{"id": "nb-1", "notebook": {"name": "carol", "idle": "5m"}}`)
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "nb-1", job.Running)) {
		t.Fatalf("nb-1 = %s; want RUNNING", jobOf(t, w, "nb-1").State)
	}
	inst, _ := notebookInstance(w, "carol")
	if !w.RunUntil(ctx, 2*time.Hour, func() bool { return instanceOf(t, w, inst.ID).State == "stopped" }) {
		t.Fatalf("notebook instance = %s; want stopped after its person left", instanceOf(t, w, inst.ID).State)
	}
	w.Cloud.ZoneCapacity[awssim.Offering{Type: inst.Type, Zone: inst.Zone}] = 0
	runs := len(w.Cloud.Launches)
	w.Send(`{"id": "nb-2", "notebook": "carol"}`)
	w.Run(ctx, 3*maxLeave)
	nb := jobOf(t, w, "nb-2")
	if nb.State != job.Placed || nb.InstanceID != inst.ID || !strings.Contains(nb.Reason, "could not start") || !strings.Contains(nb.Reason, "a notebook keeps its own instance") {
		t.Errorf("nb-2 = %s on %s (%s); want PLACED on %s, waiting and saying why", nb.State, nb.InstanceID, nb.Reason, inst.ID)
	}
	if n := len(w.Cloud.Launches) - runs; n != 0 {
		t.Errorf("%d RunInstances calls for the notebook; want none", n)
	}
}

// TestSpotFallsBackToOnDemand: spot has no g4dn.xlarge in either zone; a
// spot-then-on-demand job is launched on-demand and its reason, the
// instance's last-action tag and the notice say so.
func TestSpotFallsBackToOnDemand(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: capPool(2), Subnets: twoZones})
	for _, sn := range twoZones {
		w.Cloud.ZoneCapacity[awssim.Offering{Type: "g4dn.xlarge", Zone: sn.Zone, Spot: true}] = 0
	}
	w.Send(`{"id": "s", "command": "python train.py", "instance": {"market": "spot-then-on-demand"}}`)
	w.Poll(ctx)
	s := jobOf(t, w, "s")
	want := "spot had no g4dn.xlarge capacity in us-east-1a, us-east-1b; launched g4dn.xlarge on-demand in us-east-1a as market spot-then-on-demand allows"
	if s.State != job.Placed || !strings.Contains(s.Reason, want) {
		t.Errorf("s = %s (%s); want PLACED, its reason saying %q", s.State, s.Reason, want)
	}
	inst := instanceOf(t, w, s.InstanceID)
	if inst.Spot {
		t.Errorf("s's instance is spot; want on-demand")
	}
	if tag := inst.Tags["nightshift:last-action"]; !strings.Contains(tag, want) {
		t.Errorf("last-action tag %q; want it to say %q", tag, want)
	}
	noticed := false
	for _, n := range w.Cloud.Notifications() {
		noticed = noticed || strings.Contains(n.Message, want)
	}
	if !noticed {
		t.Errorf("no notice says %q", want)
	}
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "s", job.Succeeded)) {
		t.Errorf("s = %s; want SUCCEEDED", jobOf(t, w, "s").State)
	}
}

// TestSpotPlacementScoresOrderZones: a spot job, the first subnet's zone
// out of spot capacity for its type. With the stack's SpotPlacementScores
// the launch asks the zone EC2 scores higher first: one RunInstances call;
// without, the refused zone first: two.
func TestSpotPlacementScoresOrderZones(t *testing.T) {
	for _, tt := range []struct {
		scores bool
		calls  int
	}{{true, 1}, {false, 2}} {
		t.Run(fmt.Sprintf("scores %v", tt.scores), func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, sim.Config{Pools: capPool(3), Subnets: twoZones, PlacementScores: tt.scores})
			w.Cloud.ZoneCapacity[awssim.Offering{Type: "g4dn.xlarge", Zone: "us-east-1a", Spot: true}] = 0
			w.Send(`{"id": "a", "command": "python train.py", "instance": {"market": "spot"}}`)
			w.Poll(ctx)
			if got := len(w.Cloud.Launches); got != tt.calls {
				t.Errorf("RunInstances calls %+v; want %d", w.Cloud.Launches, tt.calls)
			}
			if !w.RunUntil(ctx, 2*time.Hour, stateIs(w, "a", job.Succeeded)) {
				t.Fatalf("a = %s (%s)", jobOf(t, w, "a").State, jobOf(t, w, "a").Reason)
			}
			if z := instanceOf(t, w, jobOf(t, w, "a").InstanceID).Zone; z != "us-east-1b" {
				t.Errorf("a ran in %s; want us-east-1b", z)
			}
		})
	}
}
