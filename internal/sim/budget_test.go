package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// TestBudgetHoldsPlacedJob: a job placed on an instance that is still
// booting when the budget runs out does not start after it: its instance
// is stopped (it keeps it), and it goes on the next day (found by the
// chaos harness's budget histories: a placed job was dispatched, and its
// instance billed, after the budget was spent).
func TestBudgetHoldsPlacedJob(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Watchdog: watchdog.Config{DailyBudget: 1, Policy: watchdog.PolicyCancel}})
	w.Cloud.AgentDelay = func(string) (time.Duration, bool) { return 10 * time.Minute, true } // a slow agent: the job stays placed a while
	w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
		if r.JobID == "second" {
			return sim.Outcome{Duration: 10 * time.Minute} // within the next day's budget
		}
		return sim.Outcome{Duration: 3 * time.Hour}
	})
	w.Send(`{"id": "first", "command": "python big.py", "max_runtime": "4h"}`)
	w.Poll(ctx)
	reached := func() bool {
		st, err := w.Store.Spend(ctx, store.BudgetStatus)
		return err == nil && st.Reached
	}
	// The first job's instance spends the budget; a second job, placed on
	// a new instance as the budget runs out, waits for its agent.
	if !w.RunUntil(ctx, 3*time.Hour, func() bool { return w.Cloud.RunningUSD(func(awssim.Instance) bool { return true }) > 0.9 }) {
		t.Fatal("the budget was never near")
	}
	w.Send(`{"id": "second", "command": "python more.py"}`)
	w.Poll(ctx)
	second := jobOf(t, w, "second")
	if second.State != job.Placed || second.InstanceID == "" {
		t.Fatalf("second job = %s on %q (%s); want PLACED on a new instance before the budget is spent", second.State, second.InstanceID, second.Reason)
	}
	if !w.RunUntil(ctx, time.Hour, reached) {
		t.Fatal("the budget was never reached")
	}
	w.Run(ctx, 15*time.Minute)
	j := jobOf(t, w, "second")
	if j.State != job.Placed || j.InstanceID != second.InstanceID || !strings.Contains(j.Reason, "budget") {
		t.Errorf("second job = %s on %q (%s); want still PLACED on %s, held for the budget", j.State, j.InstanceID, j.Reason, second.InstanceID)
	}
	if got := instance(t, w, second.InstanceID); got.State != "stopped" {
		t.Errorf("the held instance is %s; want stopped while the budget is spent", got.State)
	}
	for _, inv := range w.Invocations() {
		if inv.JobID == "second" {
			t.Errorf("second job's command was sent at %v, after the budget was spent", inv.Requested)
		}
	}
	w.Run(ctx, 24*time.Hour)
	if j := jobOf(t, w, "second"); j.State != job.Succeeded {
		t.Errorf("next day the held job is %s (%s); want it run", j.State, j.Reason)
	}
}
