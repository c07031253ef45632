package watchdog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// idleFinding is a watched instance found idle.
type idleFinding struct {
	inst   Instance
	action notice.Action
}

// Sweep looks at every running watched and managed instance once: it stops
// the idle watched ones, reports (and cancels, where asked) stalled jobs,
// and accounts the spend against the budgets. Without the instances or the
// running jobs it does nothing; past that, a failed step does not keep the
// others from running, and their errors are joined.
func (w *Watchdog) Sweep(ctx context.Context) (Report, error) {
	now := w.now()
	var rep Report
	insts, err := w.cloud.Instances(ctx)
	if err != nil {
		return rep, err
	}
	rep.Instances = countInstances(insts)
	running, err := w.store.Live(ctx, job.Running)
	if err != nil {
		return rep, fmt.Errorf("read running jobs: %w", err)
	}
	// The rules judge running instances only: a pending one is not up
	// yet, a stopping or stopped one costs nothing and uses nothing.
	var watched, managed []Instance
	for _, i := range insts {
		switch {
		case i.State != fleet.StateRunning:
		case i.Managed:
			managed = append(managed, i)
		case i.Watched:
			watched = append(watched, i)
		}
	}
	rep.Watched, rep.Managed = len(watched), len(managed)

	var errs []error
	idle, err := w.idleWatched(ctx, watched, now)
	errs = append(errs, err)
	stalls, err := w.stalled(ctx, managed, running, now)
	errs = append(errs, err)
	notebooks, err := w.idleNotebooks(ctx, managed, running, now)
	errs = append(errs, err)
	for _, f := range notebooks {
		errs = append(errs, w.endNotebook(ctx, f))
		rep.Actions = append(rep.Actions, f.action)
	}
	for _, f := range idle {
		errs = append(errs, w.stop(ctx, f))
		rep.Actions = append(rep.Actions, f.action)
	}
	for _, s := range stalls {
		errs = append(errs, w.stall(ctx, s))
		rep.Actions = append(rep.Actions, s.Action)
	}
	acts, spend, err := w.budget(ctx, managed, running, now)
	errs = append(errs, err)
	rep.Actions = append(rep.Actions, acts...)
	rep.DaySpend, rep.MonthSpend = spend[0].usd, spend[1].usd
	rep.DayAccounted, rep.MonthAccounted = spend[0].ok, spend[1].ok
	return rep, errors.Join(errs...)
}

// countInstances counts nightshift's instances by pool (nightshift:pool)
// and EC2 state; watched instances belong to no pool and are not counted.
func countInstances(insts []Instance) map[string]map[string]int {
	out := map[string]map[string]int{}
	for _, i := range insts {
		if !i.Managed {
			continue
		}
		pool := i.Tags[fleet.TagPool]
		if out[pool] == nil {
			out[pool] = map[string]int{}
		}
		out[pool][i.State]++
	}
	return out
}

// periodSpend is one budget period's estimate, and whether it was
// accounted this sweep: the period has a cap and its record was read.
type periodSpend struct {
	usd float64
	ok  bool
}

// idleWatched reads the metrics and sessions of the watched instances past
// their grace, in one batch, and returns a stop for each one Idle judges idle.
func (w *Watchdog) idleWatched(ctx context.Context, watched []Instance, now time.Time) ([]idleFinding, error) {
	var due []Instance
	var ins []IdleInput
	var reqs []Request
	longest := time.Duration(0)
	for _, i := range watched {
		to, bad := IdleTimeout(i.Tags, w.cfg.IdleTimeout)
		if bad {
			w.log.Warn("ignored bad idle-timeout tag", "instance", i.ID, "value", i.Tags[TagIdleTimeout])
		}
		in := IdleInput{Now: now, Launched: i.LaunchTime, Timeout: to, Grace: w.cfg.Grace, Limits: w.cfg.thresholds(), Resolution: Resolution(i)}
		if !in.Due() {
			continue
		}
		due, ins = append(due, i), append(ins, in)
		longest = max(longest, to)
		for _, m := range in.Metrics() {
			reqs = append(reqs, Request{i.ID, m})
		}
	}
	if len(due) == 0 {
		return nil, nil
	}
	// From one 5-minute period before the longest window: Idle counts the
	// datapoint that covers a window's start, stamped before it.
	series, err := w.cloud.Series(ctx, reqs, now.Add(-longest-BasicPeriod), now)
	if err != nil {
		return nil, err
	}
	sessions, err := w.cloud.Sessions(ctx)
	if err != nil {
		return nil, err
	}
	var out []idleFinding
	for k, i := range due {
		in := ins[k]
		ms := in.Metrics()
		in.GPU, in.CPU = series[Request{i.ID, ms[0]}], series[Request{i.ID, ms[1]}]
		in.NetworkIn, in.NetworkOut = series[Request{i.ID, ms[2]}], series[Request{i.ID, ms[3]}]
		in.Session = sessions[i.ID]
		if why, idle := Idle(in); idle {
			out = append(out, idleFinding{inst: i, action: notice.Action{Instance: i.ID, Verb: "stop", Why: fmt.Sprintf("idle for %v: %s", in.Timeout, why), DryRun: w.cfg.DryRun}})
		}
	}
	return out, nil
}

// stop stops an idle watched instance (unless dry run) and says so. The
// provider's stop re-checks the tags: only watched or managed instances
// are ever stopped.
func (w *Watchdog) stop(ctx context.Context, f idleFinding) error {
	if !f.action.DryRun {
		if err := w.cloud.Stop(ctx, f.inst); err != nil {
			return err
		}
	}
	return w.notice.Say(ctx, f.action)
}

// stalled reads the GPU and progress series of the running jobs due for a
// look, in one batch, and returns a finding for each one Stalled judges stalled.
func (w *Watchdog) stalled(ctx context.Context, managed []Instance, running []*job.Job, now time.Time) ([]Finding, error) {
	up := map[string]bool{}
	for _, i := range managed {
		up[i.ID] = true
	}
	var jobs []*job.Job
	var ins []StallInput
	var reqs []Request
	longest := time.Duration(0)
	for _, j := range running {
		in := StallInput{Now: now, Started: j.StartedAt, Reported: !j.StalledAt.IsZero(), Timeout: StallTimeout(j, w.cfg.StallTimeout), GPUPercent: w.cfg.GPUPercent}
		if !up[j.InstanceID] || !in.Due() || j.Spec.Notebook != nil { // a notebook is idle (idleNotebooks), never stalled
			continue
		}
		jobs, ins = append(jobs, j), append(ins, in)
		longest = max(longest, in.Timeout)
		reqs = append(reqs, Request{j.InstanceID, GPU}, Request{j.InstanceID, Progress})
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	series, err := w.cloud.Series(ctx, reqs, now.Add(-longest), now)
	if err != nil {
		return nil, err
	}
	var out []Finding
	for k, j := range jobs {
		in := ins[k]
		in.GPU, in.Progress = series[Request{j.InstanceID, GPU}], series[Request{j.InstanceID, Progress}]
		why, stalled := Stalled(in)
		if !stalled {
			continue
		}
		verb := "notify"
		if j.Spec.OnStall == job.StallCancel {
			verb = "cancel"
		}
		out = append(out, Finding{Job: j, Action: notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: verb, Why: why, DryRun: w.cfg.DryRun}})
	}
	return out, nil
}

// stall records a stalled job (reason and StalledAt, so it is reported once),
// cancels its command when the job asked for it, and says so.
func (w *Watchdog) stall(ctx context.Context, s Finding) error {
	if s.Action.DryRun {
		return w.notice.Say(ctx, s.Action)
	}
	j := s.Job
	j.StalledAt = w.now().UTC()
	j.Reason = "running on " + j.InstanceID + "; " + s.Action.Why
	j.UpdatedAt = j.StalledAt
	if err := w.store.Update(ctx, j, job.Running); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // the job moved meanwhile; the next sweep looks again
		}
		return err
	}
	var errs []error
	if s.Action.Verb == "cancel" {
		errs = append(errs, w.runner.Cancel(ctx, j.CommandID, j.InstanceID))
	}
	errs = append(errs, w.notice.Say(ctx, s.Action))
	return errors.Join(errs...)
}

// budget adds the spend since the last sweep to today's and this month's
// records (instance-seconds × price), notifies at 80% and 100% of a cap,
// and at 100% pauses placement (through the status record) and, if the
// policy says so, cancels running jobs. It returns the actions and the
// day's and month's estimates, in Periods' order.
func (w *Watchdog) budget(ctx context.Context, managed []Instance, running []*job.Job, now time.Time) ([]notice.Action, [2]periodSpend, error) {
	var spend [2]periodSpend
	b := w.cfg.budget()
	if !b.On() {
		return nil, spend, w.setStatus(ctx, false, "")
	}
	meters, err := w.meters(ctx, managed)
	if err != nil {
		return nil, spend, err
	}
	var acts []notice.Action
	var errs []error
	var reached []string
	unread := false
	for k, p := range b.Periods(now) {
		rec, err := w.store.Spend(ctx, p.Key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			rec = p.Fresh()
		case err != nil:
			errs = append(errs, err)
			unread = true
			spend[k].usd = rec.USD
			continue
		}
		a := b.Account(p, rec, meters, now)
		// A period without a cap is estimated but its record not kept
		// (Account): its figure would be the running instances' cost
		// alone, not the period's spend.
		spend[k] = periodSpend{usd: a.Record.USD, ok: p.Limit > 0}
		acts = append(acts, a.Notices...)
		if a.Reached != "" {
			reached = append(reached, a.Reached)
		}
		if a.Write {
			// A conflict means another sweep accounted this period meanwhile.
			if err := w.store.PutSpend(ctx, &a.Record); err != nil && !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
		}
	}
	v := b.Verdict(reached, running)
	// A period whose record could not be read says nothing about its
	// budget: unless another period is found spent, the status stays as
	// it is — clearing it would resume placement past a budget that may be
	// spent (a throttled read is not a new day).
	if !b.DryRun && (len(reached) > 0 || !unread) {
		errs = append(errs, w.setStatus(ctx, v.Reached, v.Reason))
	}
	for _, c := range v.Cancels {
		if !c.Action.DryRun {
			errs = append(errs, w.runner.Cancel(ctx, c.Job.CommandID, c.Job.InstanceID))
		}
		acts = append(acts, c.Action)
	}
	for _, a := range acts {
		errs = append(errs, w.notice.Say(ctx, a))
	}
	return acts, spend, errors.Join(errs...)
}

// meters prices the managed instances, reading the spot prices only when
// some instance is spot.
func (w *Watchdog) meters(ctx context.Context, managed []Instance) ([]Meter, error) {
	var spot map[SpotKey]float64
	if types := SpotTypes(managed); len(types) > 0 {
		var err error
		if spot, err = w.cloud.SpotPrices(ctx, types); err != nil {
			return nil, err
		}
	}
	rates := Rates(managed, w.cfg.Prices, spot)
	out := make([]Meter, len(managed))
	for k, i := range managed {
		out[k] = Meter{Launched: i.LaunchTime, Hourly: rates[i.ID]}
	}
	return out, nil
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
