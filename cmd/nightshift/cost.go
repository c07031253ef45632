package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// maxCostDays bounds the days cost reads one record each of.
const maxCostDays = 92

func (a *app) costCmd() *cobra.Command {
	var since string
	c := &cobra.Command{
		Use:   "cost",
		Short: "What the instances cost, per day and per job, against the budgets",
		Long: `Show the watchdog's estimate of what nightshift's instances cost: each day
since --since (7 days by default) and this month, against the daily and
monthly budgets, and each job submitted in that time, dearest first. The
estimates are on-demand prices for running time; Cost Explorer has the
bill itself, a day or so later.`,
		Example: `  nightshift cost
  nightshift cost --since 2026-11-01`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, a.now())
			if err != nil {
				return usagef("%v", err)
			}
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			rep, err := a.costReport(cmd.Context(), c, from)
			if err != nil {
				return err
			}
			if a.json {
				return printJSON(a.stdout, rep)
			}
			a.printCost(rep)
			return nil
		},
	}
	c.Flags().StringVar(&since, "since", "7d", "how far back (36h, 7d, 2w) or from when (2026-11-01)")
	return c
}

// costReport is what cost prints.
type costReport struct {
	Since         time.Time  `json:"since"`
	Days          []costDay  `json:"days"`
	Month         costPeriod `json:"month"`
	DailyBudget   float64    `json:"daily_budget_usd,omitempty"`
	MonthlyBudget float64    `json:"monthly_budget_usd,omitempty"`
	// BudgetStatus is the watchdog's verdict, when a budget is reached.
	BudgetStatus string    `json:"budget_status,omitempty"`
	Jobs         []costJob `json:"jobs"`
	// Total is the jobs' estimated cost (from placement to end).
	Total float64 `json:"jobs_total_usd"`
}

type costPeriod struct {
	Period         string    `json:"period"`
	USD            float64   `json:"usd"`
	AccountedUntil time.Time `json:"accounted_until,omitzero"`
}

type costDay = costPeriod

type costJob struct {
	ID    string    `json:"id"`
	Name  string    `json:"name,omitempty"`
	State job.State `json:"state"`
	Type  string    `json:"instance_type,omitempty"`
	Ran   string    `json:"ran,omitempty"`
	USD   float64   `json:"usd"`
}

// costReport reads a spend record per day (one GetItem each, at most
// maxCostDays), the month's and the budget status, and the jobs submitted
// since from the index by submission time.
func (a *app) costReport(ctx context.Context, c *cloud, from time.Time) (*costReport, error) {
	now := a.now().UTC()
	day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	if now.Sub(day) > maxCostDays*24*time.Hour {
		return nil, usagef("--since: at most %d days back", maxCostDays)
	}
	rep := &costReport{Since: from}
	c.loadSettings(ctx)
	if c.settingsErr == nil {
		rep.DailyBudget, rep.MonthlyBudget = c.settings.Watchdog.DailyBudget, c.settings.Watchdog.MonthlyBudget
	}
	read := func(period string) (costPeriod, error) {
		s, err := c.jobs.Spend(ctx, period)
		if errors.Is(err, store.ErrNotFound) {
			return costPeriod{Period: period}, nil
		}
		return costPeriod{Period: period, USD: s.USD, AccountedUntil: s.AccountedUntil}, err
	}
	for d := day; !d.After(now); d = d.AddDate(0, 0, 1) {
		p, err := read("D" + d.Format("2006-01-02"))
		if err != nil {
			return nil, err
		}
		p.Period = p.Period[1:]
		rep.Days = append(rep.Days, p)
	}
	m, err := read("M" + now.Format("2006-01"))
	if err != nil {
		return nil, err
	}
	m.Period = m.Period[1:]
	rep.Month = m
	if st, err := c.jobs.Spend(ctx, store.BudgetStatus); err == nil && st.Reached {
		rep.BudgetStatus = st.Reason
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	jobs, err := a.submittedSince(ctx, c, from)
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.Cost == 0 {
			continue
		}
		rep.Jobs = append(rep.Jobs, costJob{ID: j.ID, Name: jobName(j), State: j.State, Type: j.InstanceType, Ran: short(runTime(j, now)), USD: j.Cost})
		rep.Total += j.Cost
	}
	slices.SortStableFunc(rep.Jobs, func(x, y costJob) int {
		switch {
		case x.USD > y.USD:
			return -1
		case x.USD < y.USD:
			return 1
		}
		return 0
	})
	if rep.Jobs == nil {
		rep.Jobs = []costJob{}
	}
	return rep, nil
}

func (a *app) printCost(r *costReport) {
	budget := func(spent, cap float64) string {
		if cap <= 0 {
			return "no budget"
		}
		pct := 100 * spent / cap
		if pct > 0 && pct < 10 {
			return fmt.Sprintf("%.1f%% of $%.2f", pct, cap)
		}
		return fmt.Sprintf("%.0f%% of $%.2f", pct, cap)
	}
	fmt.Fprintln(a.stdout, "instances, by day (UTC; the watchdog's estimate)")
	t := newTable(a.stdout, "  DAY", "SPENT", "BUDGET")
	for _, d := range r.Days {
		t.row("  "+d.Period, usd(d.USD), budget(d.USD, r.DailyBudget))
	}
	t.row("  "+r.Month.Period+" (month)", usd(r.Month.USD), budget(r.Month.USD, r.MonthlyBudget))
	_ = t.flush()
	if r.BudgetStatus != "" {
		fmt.Fprintf(a.stdout, "  budget reached: %s\n", r.BudgetStatus)
	}
	fmt.Fprintf(a.stdout, "\njobs submitted since %s UTC, dearest first\n", stamp(r.Since))
	if len(r.Jobs) == 0 {
		fmt.Fprintln(a.stdout, "  none with a cost")
		return
	}
	t = newTable(a.stdout, "  ID", "NAME", "STATE", "TYPE", "RAN", "COST")
	for _, j := range r.Jobs {
		t.row("  "+j.ID, orDash(clip(j.Name, 24)), string(j.State), orDash(j.Type), j.Ran, usd(j.USD))
	}
	t.row("  total", "", "", "", "", usd(r.Total))
	_ = t.flush()
}
