package watchdog

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// BudgetStatus is the spend record the scheduler reads before placing: while
// it is Reached, no job is placed and free instances are stopped at once.
const BudgetStatus = store.BudgetStatus

// prices returns the hourly price of each instance: the deployment's override,
// the spot price for spot instances, else the built-in on-demand table.
func (w *Watchdog) prices(ctx context.Context, insts []instance) (map[string]float64, error) {
	out := map[string]float64{}
	var spotTypes []types.InstanceType
	seen := map[string]bool{}
	for _, i := range insts {
		if p, ok := w.cfg.Prices[i.Type]; ok && !i.Spot {
			out[i.ID] = p
			continue
		}
		if t, ok := catalog.Lookup(i.Type); ok {
			out[i.ID] = t.Hourly
		}
		if i.Spot && !seen[i.Type] {
			seen[i.Type] = true
			spotTypes = append(spotTypes, types.InstanceType(i.Type))
		}
	}
	if len(spotTypes) == 0 {
		return out, nil
	}
	// One call for every spot type: the newest price per type and zone.
	spot := map[string]float64{}
	p := ec2.NewDescribeSpotPriceHistoryPaginator(w.ec2, &ec2.DescribeSpotPriceHistoryInput{
		InstanceTypes: spotTypes, ProductDescriptions: []string{"Linux/UNIX"}, StartTime: aws.Time(w.now()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return out, fmt.Errorf("spot prices: %w", err)
		}
		for _, sp := range page.SpotPriceHistory {
			v, err := strconv.ParseFloat(aws.ToString(sp.SpotPrice), 64)
			key := string(sp.InstanceType) + "/" + aws.ToString(sp.AvailabilityZone)
			if _, dup := spot[key]; err == nil && !dup {
				spot[key] = v
			}
		}
	}
	for _, i := range insts {
		if v, ok := spot[i.Type+"/"+i.Zone]; ok && i.Spot {
			out[i.ID] = v
		}
	}
	return out, nil
}

// budget adds the spend since the last sweep to today's and this month's
// estimates (instance-seconds × price), notifies at 80% and 100% of a cap,
// and at 100% pauses placement (through the status record) and, if the
// policy says so, cancels running jobs.
func (w *Watchdog) budget(ctx context.Context, managed []instance, running []*job.Job, now time.Time) ([]notice.Action, float64, float64, error) {
	if w.cfg.DailyBudget <= 0 && w.cfg.MonthlyBudget <= 0 {
		return nil, 0, 0, w.setStatus(ctx, false, "")
	}
	rates, err := w.prices(ctx, managed)
	if err != nil {
		return nil, 0, 0, err
	}
	now = now.UTC()
	dayStart := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	monthStart := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var acts []notice.Action
	var errs []error
	reached := []string{}
	account := func(key string, start time.Time, limit float64, label string) float64 {
		s, add, err := w.accrue(ctx, key, start, managed, rates, now)
		if err != nil {
			errs = append(errs, err)
			return s.USD
		}
		if limit <= 0 {
			return s.USD
		}
		changed := false
		if !s.Warned && s.USD >= warnFraction*limit {
			s.Warned, changed = true, true
			acts = append(acts, notice.Action{Verb: "notify", Why: fmt.Sprintf("%s spend estimate $%.2f is %.0f%% of the $%.2f budget", label, s.USD, 100*s.USD/limit, limit), DryRun: w.cfg.DryRun})
		}
		if s.USD >= limit {
			reached = append(reached, fmt.Sprintf("%s budget of $%.2f reached ($%.2f spent)", label, limit, s.USD))
			if !s.Reached {
				s.Reached, changed = true, true
				acts = append(acts, notice.Action{Verb: "notify", Why: fmt.Sprintf("%s budget of $%.2f reached ($%.2f spent): placement paused, idle instances stopped, running jobs %s", label, limit, s.USD, policyWords(w.cfg.Policy)), DryRun: w.cfg.DryRun})
			}
		}
		if changed || add > 0 {
			if err := w.store.PutSpend(ctx, &s); err != nil && !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
		}
		return s.USD
	}
	day := account("D"+now.Format("2006-01-02"), dayStart, w.cfg.DailyBudget, "daily")
	month := account("M"+now.Format("2006-01"), monthStart, w.cfg.MonthlyBudget, "monthly")

	blocked := len(reached) > 0
	reason := ""
	if blocked {
		reason = "budget: " + reached[0] + "; placement resumes when the period ends or the budget is raised"
	}
	if !w.cfg.DryRun {
		errs = append(errs, w.setStatus(ctx, blocked, reason))
	}
	if blocked && w.cfg.Policy == PolicyCancel {
		for _, j := range running {
			a := notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: "cancel", Why: reason, DryRun: w.cfg.DryRun}
			if !a.DryRun {
				errs = append(errs, w.runner.Cancel(ctx, j.CommandID, j.InstanceID))
			}
			acts = append(acts, a)
		}
	}
	for _, a := range acts {
		errs = append(errs, w.notice.Say(ctx, a))
	}
	return acts, day, month, errors.Join(errs...)
}

func policyWords(p string) string {
	if p == PolicyCancel {
		return "cancelled"
	}
	return "left to finish"
}

// accrue adds, to the spend record key, what each running instance cost
// since the record was last accounted (or since it started, or the period
// began). The record's version makes concurrent sweeps count once.
func (w *Watchdog) accrue(ctx context.Context, key string, start time.Time, insts []instance, rates map[string]float64, now time.Time) (store.Spend, float64, error) {
	s, err := w.store.Spend(ctx, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s = store.Spend{Period: key, AccountedUntil: start}
	case err != nil:
		return s, 0, err
	}
	add := 0.0
	for _, i := range insts {
		from := s.AccountedUntil
		if i.LaunchTime.After(from) {
			from = i.LaunchTime
		}
		if d := now.Sub(from); d > 0 {
			add += rates[i.ID] * d.Hours()
		}
	}
	s.USD += add
	if now.After(s.AccountedUntil) {
		s.AccountedUntil = now
	}
	return s, add, nil
}

// setStatus writes the budget status the scheduler reads, when it changed.
func (w *Watchdog) setStatus(ctx context.Context, reached bool, reason string) error {
	s, err := w.store.Spend(ctx, BudgetStatus)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !reached {
			return nil
		}
		s = store.Spend{Period: BudgetStatus}
	case err != nil:
		return err
	}
	if s.Reached == reached && s.Reason == reason {
		return nil
	}
	s.Reached, s.Reason = reached, reason
	if err := w.store.PutSpend(ctx, &s); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}
