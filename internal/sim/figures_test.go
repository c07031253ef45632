package sim_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// syncBuffer is a buffer the handlers' loggers may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// take returns the lines written since the last take.
func (b *syncBuffer) take() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n"))
	b.buf.Reset()
	return out
}

// documents returns the EMF documents among lines, the tick's (no State
// dimension) and the job ends' (State).
func documents(t *testing.T, lines [][]byte) (ticks, ends []metrics.Parsed) {
	t.Helper()
	for _, l := range lines {
		if !bytes.Contains(l, []byte(`"_aws"`)) {
			continue
		}
		p, err := metrics.Parse(l)
		if err != nil {
			t.Fatalf("Parse(%s) = %v", l, err)
		}
		if _, ok := p.DimensionValues[metrics.State]; ok {
			ends = append(ends, p)
		} else {
			ticks = append(ticks, p)
		}
	}
	return ticks, ends
}

// TestTickFigures runs a two-pool deployment on the simulated cloud and
// reads what one watchdog tick publishes: exactly one EMF document, whose
// figures are the store's live jobs after the tick, the instances by pool
// and state as the tick's sweep listed them, the budget accounting's spend
// and the tick's actions (the keep-warm stops its reconcile makes); its API
// calls for the
// figures are one COUNT query per live state and no metric call. Each job
// that ends is counted once, in the state it ended in.
func TestTickFigures(t *testing.T) {
	ctx := context.Background()
	var out syncBuffer
	pools := map[string]scheduler.Pool{
		"default": {Types: []string{"g5.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(5 * time.Minute)},
		"multi":   {Types: []string{"g5.12xlarge"}, MaxInstances: 1, KeepWarm: job.Duration(5 * time.Minute)},
	}
	w := sim.NewWorld(sim.Config{
		Pools:    pools,
		Log:      slog.New(slog.NewJSONHandler(&out, nil)),
		Watchdog: watchdog.Config{DailyBudget: 1000},
	})
	w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
		switch {
		case strings.HasPrefix(r.JobID, "multi"):
			return sim.Outcome{Duration: 3 * time.Hour}
		case r.JobID == "broken":
			return sim.Outcome{Exit: 1, Duration: time.Minute}
		}
		return sim.Outcome{Duration: time.Minute}
	})
	w.Send(`{"id": "multi-0", "command": "torchrun train.py", "instance": {"pool": "multi"}, "max_runtime": "4h"}`)
	w.Send(`{"id": "multi-1", "command": "torchrun train.py", "instance": {"pool": "multi"}, "max_runtime": "4h"}`)
	w.Send(`{"id": "small", "command": "python train.py"}`)
	w.Send(`{"id": "broken", "command": "python broken.py", "retries": 0}`)
	w.Send(`{"id": "bad", "command": ""}`)
	w.Poll(ctx)
	if !w.RunUntil(ctx, time.Hour, func() bool {
		return stateIs(w, "small", job.Succeeded)() && stateIs(w, "broken", job.Failed)() && stateIs(w, "multi-0", job.Running)()
	}) {
		t.Fatalf("jobs did not reach SUCCEEDED, FAILED and RUNNING: %+v, %+v, %+v", jobOf(t, w, "small"), jobOf(t, w, "broken"), jobOf(t, w, "multi-0"))
	}
	// Past the default pool's keep-warm: the next tick's reconcile stops
	// its idle instances (before their own idle timers, a minute later).
	// No tick runs meanwhile.
	w.Down = true
	w.Run(ctx, 5*time.Minute+20*time.Second)
	w.Down = false

	_, ends := documents(t, out.take())
	ended := map[string]int{}
	for _, e := range ends {
		ended[e.DimensionValues[metrics.State]] += int(e.Values[metrics.JobsEnded])
	}
	if want := map[string]int{"SUCCEEDED": 1, "FAILED": 1, "REJECTED": 1}; !mapsEqualInt(ended, want) {
		t.Errorf("JobsEnded by state = %v; want %v, each end once", ended, want)
	}

	idle := 0
	for _, i := range managed(w) {
		if i.Tags["nightshift:pool"] == "default" && i.State == "running" {
			idle++
		}
	}
	if idle == 0 {
		t.Fatal("no idle instance in pool default before the tick; the test needs one for the tick to stop")
	}
	counts, calls := w.StoreCalls["Count"], snapshot(w.Cloud.Calls)
	w.Tick(ctx)
	ticks, _ := documents(t, out.take())
	if len(ticks) != 1 {
		t.Fatalf("one tick wrote %d figure documents; want exactly 1", len(ticks))
	}
	tickCounts := w.StoreCalls["Count"] - counts
	got := ticks[0]
	if got.Namespace != metrics.Namespace || got.DimensionValues[metrics.Stack] != "nightshift" || !got.Time.Equal(w.Clock.Now()) {
		t.Errorf("document %s Stack=%q at %v; want %s Stack=nightshift at %v", got.Namespace, got.DimensionValues[metrics.Stack], got.Time, metrics.Namespace, w.Clock.Now())
	}
	// What the document says, against the world after the tick.
	want := map[string]float64{}
	for _, f := range metrics.JobFigures {
		n, err := w.Store.Count(ctx, f.State)
		if err != nil {
			t.Fatal(err)
		}
		want[f.Name] = float64(n)
	}
	if want[metrics.JobsRunning] != 1 || want[metrics.JobsQueued] != 1 {
		t.Fatalf("store: %v; the test wants multi-0 running and multi-1 queued behind the multi pool's cap", want)
	}
	for pool := range pools {
		for _, st := range metrics.InstanceStates {
			want[metrics.InstanceMetric(st, pool)] = 0
		}
	}
	// The instances as the tick's sweep listed them, before its reconcile
	// stopped the idle ones: the stops are the tick's actions.
	want[metrics.InstanceMetric("running", "multi")] = 1
	want[metrics.InstanceMetric("running", "default")] = float64(idle)
	want[metrics.ActionsStop] = float64(idle)
	want[metrics.ActionsCancel], want[metrics.ActionsNotify] = 0, 0
	for name, v := range want {
		if g, ok := got.Values[name]; !ok || g != v {
			t.Errorf("document %s = %v (present %v); want %v", name, g, ok, v)
		}
	}
	// The spend as the tick accounted it: today's record and the daily
	// budget; nothing of the month, which has no budget and so no record.
	period := "D" + w.Clock.Now().UTC().Format("2006-01-02")
	rec, err := w.Store.Spend(ctx, period)
	if err != nil {
		t.Fatalf("Spend(%s) = %v", period, err)
	}
	if g, ok := got.Values[metrics.SpendTodayUSD]; !ok || g != rec.USD || g == 0 {
		t.Errorf("document %s = %v (present %v); want the %s record's $%v", metrics.SpendTodayUSD, g, ok, period, rec.USD)
	}
	if g := got.Values[metrics.DailyBudgetUSD]; g != 1000 {
		t.Errorf("document %s = %v; want 1000", metrics.DailyBudgetUSD, g)
	}
	for _, name := range []string{metrics.SpendMonthUSD, metrics.MonthlyBudgetUSD} {
		if _, ok := got.Values[name]; ok {
			t.Errorf("document has %s; want none: no monthly budget is set", name)
		}
	}
	if n := tickCounts; n != len(job.Live) {
		t.Errorf("one tick made %d COUNT queries; want %d, one per live state", n, len(job.Live))
	}
	for op, n := range w.Cloud.Calls {
		if strings.Contains(op, "PutMetricData") && n != calls[op] {
			t.Errorf("one tick called %s %d times; want none: the figures are a log line", op, n-calls[op])
		}
	}
}

func snapshot(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func mapsEqualInt(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
