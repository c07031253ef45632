package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// TestUnavailableOfferings: an offering refused for capacity is not asked
// for again within UnavailableTTL — the next launch goes straight to the
// next rung — and is asked for again once the TTL has passed. A rung
// skipped keeps its place in the client tokens.
func TestUnavailableOfferings(t *testing.T) {
	ctx := context.Background()
	tf := newTestFleet("subnet-a", "subnet-b")
	tf.cloud.Capacity["g5.xlarge"] = 0
	launch := func(id string) []string {
		tf.runs = nil
		j := &job.Job{ID: id, Attempt: 1}
		if _, err := tf.Launch(ctx, fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: 1, Types: []string{"g5.xlarge", "g4dn.xlarge"}, Market: "on-demand"}); err != nil {
			t.Fatalf("Launch(%s): %v", id, err)
		}
		var tries []string
		for _, in := range tf.runs {
			tries = append(tries, tryKey(in)+" "+aws.ToString(in.ClientToken)[len(j.ClientToken()):])
		}
		return tries
	}
	first := launch("a")
	if len(first) != 3 {
		t.Fatalf("first launch tried %v; want g5 in both subnets, then g4dn", first)
	}
	second := launch("b")
	if len(second) != 1 || second[0] != "g4dn.xlarge/on-demand/subnet-a -3" {
		t.Errorf("second launch within the TTL tried %v; want g4dn in subnet-a only, as rung 3", second)
	}
	tf.clock.AdvanceTo(tf.clock.Now().Add(fleet.UnavailableTTL))
	if third := launch("c"); len(third) != 3 {
		t.Errorf("a launch past the TTL tried %v; want g5 asked for again", third)
	}
	// Every rung refused and remembered: the launch makes no call and
	// says why, as EC2 did.
	tf.cloud.Capacity["g4dn.xlarge"] = 0
	tf.clock.AdvanceTo(tf.clock.Now().Add(fleet.UnavailableTTL))
	j := &job.Job{ID: "d", Attempt: 1}
	r := fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: 1, Types: []string{"g5.xlarge", "g4dn.xlarge"}, Market: "on-demand"}
	if _, err := tf.Launch(ctx, r); !errors.Is(err, fleet.ErrCapacity) {
		t.Fatalf("Launch with no capacity = %v; want %v", err, fleet.ErrCapacity)
	}
	tf.runs = nil
	if _, err := tf.Launch(ctx, r); !errors.Is(err, fleet.ErrCapacity) || len(tf.runs) != 0 {
		t.Errorf("Launch again within the TTL = %v after %d calls; want %v and no call", err, len(tf.runs), fleet.ErrCapacity)
	}
}

// BenchmarkLaunchShortage: RunInstances calls per placed job when the
// first type has no capacity in either subnet, with the unavailable
// offerings remembered (the default) and without (the baseline). Launches
// come a second apart, as a burst of jobs is placed.
func BenchmarkLaunchShortage(b *testing.B) {
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
				tf.cloud.Capacity["g5.xlarge"] = 0
				for k := range 20 {
					j := &job.Job{ID: fmt.Sprintf("j%d", k), Attempt: 1}
					if _, err := f.Launch(context.Background(), fleet.LaunchRequest{Token: j.ClientToken(), Pool: "default", Job: j.ID, Attempt: 1, Types: []string{"g5.xlarge", "g4dn.xlarge"}, Market: "on-demand"}); err != nil {
						b.Fatal(err)
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
