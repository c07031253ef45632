package sim_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// BenchmarkSweep measures one watchdog sweep over N watched instances, all
// busy (so every metric is read and nothing is stopped): the API calls per
// sweep, by operation, and the handler time per instance.
func BenchmarkSweep(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			w := sim.NewWorld(sim.Config{Watchdog: watchdog.Config{IdleTimeout: 30 * time.Minute, Grace: 10 * time.Minute}})
			w.Cloud.Usage = func(string, time.Time) (awssim.Usage, bool) {
				return awssim.Usage{GPU: 80, CPU: 50, NetBytesPerSec: 1e6}, true
			}
			for range n {
				w.Launch("g5.xlarge", map[string]string{"nightshift:watch": "true"})
			}
			w.Down = true // no ticks while the clock moves past the grace
			w.Run(ctx, 45*time.Minute)
			before := map[string]int{}
			for k, v := range w.Cloud.Calls {
				before[k] = v
			}
			b.ResetTimer()
			for b.Loop() {
				rep, err := w.Svc.Watchdog.Sweep(ctx)
				if err != nil || rep.Watched != n || len(rep.Actions) != 0 {
					b.Fatalf("Sweep() = %+v, %v; want %d watched, no action", rep, err, n)
				}
			}
			b.StopTimer()
			total := 0
			for op, v := range w.Cloud.Calls {
				calls := float64(v-before[op]) / float64(b.N)
				total += v - before[op]
				b.ReportMetric(calls, op+"/sweep")
			}
			b.ReportMetric(float64(total)/float64(b.N), "calls/sweep")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/instance")
		})
	}
}
