package fleet_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// TestSpotFallbackNote: a spot-then-on-demand launch that spot refuses
// for capacity in every zone is launched on-demand, and the instance says
// why, naming the type and the zones; one launched on spot, or asked for
// on-demand, says nothing. A rung skipped because its refusal is
// remembered counts as refused, and OnSkip is told of it.
func TestSpotFallbackNote(t *testing.T) {
	ctx := context.Background()
	tf := newTestFleet("subnet-a", "subnet-b")
	zones := map[string]string{}
	for id, z := range tf.cloud.Subnets {
		zones[id] = z
	}
	for _, z := range zones {
		tf.cloud.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: z, Spot: true}] = 0
	}
	launch := func(id, market string) fleet.Instance {
		t.Helper()
		j := &job.Job{ID: id, Attempt: 1}
		inst, err := tf.Launch(ctx, fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: id, Attempt: 1, Types: []string{"g5.xlarge"}, Market: market})
		if err != nil {
			t.Fatalf("Launch(%s): %v", id, err)
		}
		return inst
	}
	var skips []fleet.Skip
	tf.OnSkip(func(s fleet.Skip) { skips = append(skips, s) })
	inst := launch("a", "spot-then-on-demand")
	want := "spot had no g5.xlarge capacity in " + zones["subnet-a"] + ", " + zones["subnet-b"] + "; launched g5.xlarge on-demand in " + zones["subnet-a"] + " as market spot-then-on-demand allows"
	if inst.Spot || inst.LaunchNote != want {
		t.Errorf("fallback: spot %v, note %q; want on-demand with %q", inst.Spot, inst.LaunchNote, want)
	}
	if len(skips) != 0 {
		t.Errorf("skips on the first launch: %v; want none", skips)
	}
	// Remembered: the second launch skips both spot rungs and says so too.
	if inst := launch("b", "spot-then-on-demand"); inst.LaunchNote != want {
		t.Errorf("fallback past remembered refusals: note %q; want %q", inst.LaunchNote, want)
	}
	if len(skips) != 2 || !skips[0].Spot || skips[0].Type != "g5.xlarge" || skips[0].Until.Sub(skips[0].At) != fleet.UnavailableTTL {
		t.Errorf("skips = %+v; want the two spot rungs, each blocked for UnavailableTTL", skips)
	}
	if inst := launch("c", "on-demand"); inst.LaunchNote != "" {
		t.Errorf("on-demand asked for: note %q; want none", inst.LaunchNote)
	}
	for _, z := range zones {
		delete(tf.cloud.ZoneCapacity, awssim.Offering{Type: "g5.xlarge", Zone: z, Spot: true})
	}
	tf.clock.AdvanceTo(tf.clock.Now().Add(fleet.UnavailableTTL))
	if inst := launch("d", "spot-then-on-demand"); !inst.Spot || inst.LaunchNote != "" {
		t.Errorf("spot back: spot %v, note %q; want spot and no note", inst.Spot, inst.LaunchNote)
	}
}

// BenchmarkSpotShortage: RunInstances calls per placed job when spot has
// no g5.xlarge in the first zone (of two) and spot-then-on-demand jobs
// come a second apart: with the refusals remembered (the default) and
// without (the baseline). Every job lands on spot in the second zone.
func BenchmarkSpotShortage(b *testing.B) {
	for _, c := range []struct {
		name string
		ttl  time.Duration
	}{{"remembered", 0}, {"not remembered", -1}} {
		b.Run(c.name, func(b *testing.B) {
			calls, placed := 0, 0
			for range b.N {
				tf := newTestFleet("subnet-a", "subnet-b")
				tf.cfg.UnavailableTTL = c.ttl
				f := fleet.New(tf.cloud, tf.cloud, tf.cfg, tf.clock.Now)
				tf.cloud.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: tf.cloud.Subnets["subnet-a"], Spot: true}] = 0
				for k := range 20 {
					j := &job.Job{ID: fmt.Sprintf("j%d", k), Attempt: 1}
					inst, err := f.Launch(context.Background(), fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: 1, Types: []string{"g5.xlarge"}, Market: "spot-then-on-demand"})
					if err != nil || !inst.Spot {
						b.Fatalf("launch: spot %v, %v", inst.Spot, err)
					}
					placed++
					tf.clock.AdvanceTo(tf.clock.Now().Add(time.Second))
				}
				calls += tf.cloud.Calls["RunInstances"]
			}
			b.ReportMetric(float64(calls)/float64(placed), "RunInstances/job")
		})
	}
}
