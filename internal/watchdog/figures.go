package watchdog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
)

// Figures returns what a tick publishes (metrics.Tick): the live jobs by
// state, one COUNT query on the live index per state of
// metrics.JobFigures; and, from the sweep's report, nightshift's instances
// by pool and state, today's and this month's spend, with the budgets and
// the tick's actions. It reads nothing from EC2 or CloudWatch. A count
// that fails is left out of the figures, never published as 0, and its
// error returned with the rest.
func (w *Watchdog) Figures(ctx context.Context, rep Report, actions map[string]int) (metrics.Tick, error) {
	t := metrics.Tick{
		Jobs:        map[job.State]int{},
		Pools:       w.pools,
		Instances:   rep.Instances,
		DailyBudget: w.cfg.DailyBudget, MonthlyBudget: w.cfg.MonthlyBudget,
		Actions: actions,
	}
	var errs []error
	for _, f := range metrics.JobFigures {
		n, err := w.store.Count(ctx, f.State)
		if err != nil {
			errs = append(errs, fmt.Errorf("figures: %w", err))
			continue
		}
		t.Jobs[f.State] = n
	}
	if rep.DayAccounted {
		t.SpendToday = &rep.DaySpend
	}
	if rep.MonthAccounted {
		t.SpendMonth = &rep.MonthSpend
	}
	return t, errors.Join(errs...)
}
