package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// callsPerJob runs one job and counts the AWS API calls (EC2, SSM) and store
// calls (DynamoDB) made from its message to its record reaching SUCCEEDED,
// watchdog ticks during that time included. warm first runs a job so that
// the measured one finds an idle, online instance.
func callsPerJob(b *testing.B, warm bool) (aws, store, ticks float64, took time.Duration) {
	ctx := context.Background()
	w := sim.NewWorld(sim.Config{KeepWarm: time.Hour})
	// A one-second command: the count is not inflated by ticks during a long job.
	w.Exec = sim.ExecFunc(func(sim.Run) sim.Outcome { return sim.Outcome{Duration: time.Second} })
	if warm {
		w.Send(`{"id": "warmup", "command": "true"}`)
		w.Poll(ctx)
		if !w.RunUntil(ctx, time.Hour, stateIs(w, "warmup", job.Succeeded)) {
			b.Fatal("warm-up did not finish")
		}
	}
	aws0, store0 := total(w.Cloud.Calls), total(w.StoreCalls)
	start := w.Clock.Now()
	wall := time.Now()
	w.Send(`{"id": "measured", "command": "python train.py"}`)
	w.Poll(ctx)
	// The benchmark's own look at the job is one store read each time; it
	// is not nightshift's and is taken off the count.
	looks := 0
	done := stateIs(w, "measured", job.Succeeded)
	if !w.RunUntil(ctx, time.Hour, func() bool { looks++; return done() }) {
		b.Fatal("job did not finish")
	}
	took = time.Since(wall)
	j, _ := w.Store.Job(ctx, "measured")
	return float64(total(w.Cloud.Calls) - aws0), float64(total(w.StoreCalls) - store0 - looks),
		float64(j.EndedAt.Sub(start) / scheduler.Period), took
}

// BenchmarkCallsPerJobCold: a job that launches a new instance.
func BenchmarkCallsPerJobCold(b *testing.B) { benchCallsPerJob(b, false) }

// BenchmarkCallsPerJobWarm: a job given an idle, online instance.
func BenchmarkCallsPerJobWarm(b *testing.B) { benchCallsPerJob(b, true) }

func benchCallsPerJob(b *testing.B, warm bool) {
	var aws, store, ticks float64
	var took time.Duration
	for b.Loop() {
		var t time.Duration
		aws, store, ticks, t = callsPerJob(b, warm)
		took += t
	}
	// Handler time of the measured job alone (the simulated cloud's share
	// included), without building the world or any warm-up job.
	b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "handler-ns/job")
	b.ReportMetric(aws, "aws-calls/job")
	b.ReportMetric(store, "store-calls/job")
	b.ReportMetric(ticks, "ticks/job")
}

// BenchmarkIdleTick: one watchdog tick with one idle instance and nothing
// queued. Its figures (one EMF log line) cost count-queries/tick, one COUNT
// query per live state, and no CloudWatch call.
func BenchmarkIdleTick(b *testing.B) {
	ctx := context.Background()
	w := sim.NewWorld(sim.Config{KeepWarm: 1000 * time.Hour})
	w.Send(`{"id": "warmup", "command": "true"}`)
	w.Poll(ctx)
	w.RunUntil(ctx, time.Hour, stateIs(w, "warmup", job.Succeeded))
	aws0, store0, count0 := total(w.Cloud.Calls), total(w.StoreCalls), w.StoreCalls["Count"]
	for b.Loop() {
		w.Tick(ctx)
	}
	b.ReportMetric(float64(total(w.Cloud.Calls)-aws0)/float64(b.N), "aws-calls/tick")
	b.ReportMetric(float64(total(w.StoreCalls)-store0)/float64(b.N), "store-calls/tick")
	b.ReportMetric(float64(w.StoreCalls["Count"]-count0)/float64(b.N), "count-queries/tick")
}
