package watchdog

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
)

// inPool is a managed instance of pool in EC2 state.
func inPool(id, pool, state string) Instance {
	i := managed(id, false)
	i.Tags[fleet.TagPool], i.State = pool, state
	return i
}

// TestSweepJudgesRunningInstancesOnly: the sweep lists pending, stopping
// and stopped instances too, for the figures, but the rules see only the
// running ones: a stopped watched instance is not stopped again, a stopped
// managed one is not metered. The report counts the managed ones by pool
// and state.
func TestSweepJudgesRunningInstancesOnly(t *testing.T) {
	stoppedWatch := watched("i-notebook")
	stoppedWatch.State = fleet.StateStopped
	cloud := &fakeCloud{
		insts: []Instance{
			stoppedWatch,
			inPool("i-a", "default", fleet.StateRunning),
			inPool("i-b", "default", fleet.StateStopped),
			inPool("i-c", "multi", fleet.StatePending),
			inPool("i-d", "multi", fleet.StateStopping),
		},
		series: load(nil, "i-notebook", 0, 0),
	}
	w := newWorld(t, cloud, Config{DailyBudget: 100})
	rep, err := w.w.Sweep(context.Background())
	if err != nil {
		t.Fatalf("Sweep() = %v", err)
	}
	if len(cloud.stopped) != 0 || rep.Watched != 0 || rep.Managed != 1 {
		t.Errorf("Sweep() stopped %v, judged %d watched and %d managed; want none stopped, 0 watched, 1 managed (i-a)", cloud.stopped, rep.Watched, rep.Managed)
	}
	// i-a alone, two hours at the g4dn.xlarge price.
	if want := 2 * 0.526; rep.DaySpend < want-1e-9 || rep.DaySpend > want+1e-9 || !rep.DayAccounted || rep.MonthAccounted {
		t.Errorf("Sweep() spend today $%v (accounted %v), month accounted %v; want $%v of i-a alone, the month unaccounted (no monthly budget)", rep.DaySpend, rep.DayAccounted, rep.MonthAccounted, want)
	}
	want := map[string]map[string]int{
		"default": {fleet.StateRunning: 1, fleet.StateStopped: 1},
		"multi":   {fleet.StatePending: 1, fleet.StateStopping: 1},
	}
	if diff := cmp.Diff(want, rep.Instances); diff != "" {
		t.Errorf("Sweep() instances by pool and state (-want +got):\n%s", diff)
	}
}

// countingStore counts the COUNT queries and fails the ones for a state.
type countingStore struct {
	Store
	asked []job.State
	fail  job.State
}

func (c *countingStore) Count(ctx context.Context, s job.State) (int, error) {
	c.asked = append(c.asked, s)
	if s == c.fail {
		return 0, errors.New("throttled")
	}
	return c.Store.Count(ctx, s)
}

// TestFigures: the tick's figures are one COUNT query per live state, the
// report's instances and spend, the budgets and the actions; a count that
// fails is left out, not published as 0.
func TestFigures(t *testing.T) {
	queued := &job.Job{ID: "q", State: job.Queued}
	w := newWorld(t, &fakeCloud{}, Config{DailyBudget: 50, MonthlyBudget: 900}, queued, runningJob("r", "i-a", ""))
	st := &countingStore{Store: w.store, fail: job.Placed}
	w.w.store, w.w.pools = st, []string{"default", "multi"}
	rep := Report{DaySpend: 12.5, DayAccounted: true, Instances: map[string]map[string]int{"default": {"running": 1}}}
	got, err := w.w.Figures(context.Background(), rep, map[string]int{"stop": 2})
	if err == nil {
		t.Errorf("Figures() with a failed count = nil error; want it returned")
	}
	if want := []job.State{job.Queued, job.Placed, job.Running}; !cmp.Equal(st.asked, want) {
		t.Errorf("Figures() counted %v; want one COUNT query per live state %v", st.asked, want)
	}
	today := 12.5
	want := metrics.Tick{
		Jobs:  map[job.State]int{job.Queued: 1, job.Running: 1},
		Pools: []string{"default", "multi"}, Instances: rep.Instances,
		SpendToday: &today, DailyBudget: 50, MonthlyBudget: 900,
		Actions: map[string]int{"stop": 2},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Figures() (-want +got):\n%s", diff)
	}
}
