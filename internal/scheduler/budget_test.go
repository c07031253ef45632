package scheduler

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// startFleet is followFleet counting the starts.
type startFleet struct {
	followFleet
	starts []string
}

func (f *startFleet) Start(_ context.Context, i fleet.Instance) error {
	f.starts = append(f.starts, i.ID)
	return nil
}

// TestBudgetHoldsADispatchedJobsStoppedInstance: a placed job whose
// command was sent, on an instance that has stopped since (its idle timer
// fired before the command arrived), is held while a budget is spent:
// its instance is not started again. Before, only a job not yet
// dispatched was held, and the start billed past the budget (chaos seed
// 511, B2).
func TestBudgetHoldsADispatchedJobsStoppedInstance(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(time.Hour)
	st := store.NewMemory()
	j := job.New(job.Spec{ID: "j", Command: "python train.py"}, "gpu", t0)
	if err := j.Move(job.Placed, "placed", t0); err != nil {
		t.Fatal(err)
	}
	j.InstanceID, j.InstanceType, j.DispatchedAt = "i-1", "g5.xlarge", t0.Add(time.Minute)
	if err := st.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	if err := st.PutLease(ctx, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0}); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, j, job.Placed, store.LeaseOp{InstanceID: "i-1", Pool: "gpu", Acquire: true}); err != nil {
		t.Fatal(err)
	}
	status := store.Spend{Period: store.BudgetStatus, Reached: true, Reason: "budget: daily budget of $9.00 reached"}
	if err := st.PutSpend(ctx, &status); err != nil {
		t.Fatal(err)
	}
	f := &startFleet{followFleet: followFleet{insts: []fleet.Instance{{ID: "i-1", Type: "g5.xlarge", State: fleet.StateStopped, Pool: "gpu", Managed: true}}}}
	s := New(st, f, &followRunner{online: true}, &saidNotifier{}, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 1}}, DefaultPool: "gpu"},
		func() time.Time { return now }, slog.New(slog.DiscardHandler))
	if err := s.Reconcile(ctx, Options{}); err != nil {
		t.Fatal(err)
	}
	if len(f.starts) != 0 {
		t.Errorf("started %v with the budget spent; want none", f.starts)
	}
	got, err := st.Job(ctx, "j")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != job.Placed || !strings.Contains(got.Reason, "holding instance i-1, stopped: budget") {
		t.Errorf("job: %s (%s); want PLACED, holding its stopped instance for the budget", got.State, got.Reason)
	}
}
