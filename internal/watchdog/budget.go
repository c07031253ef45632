package watchdog

import (
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// BudgetStatus is the spend record the scheduler reads before placing: while
// it is Reached, no job is placed and free instances are stopped at once.
const BudgetStatus = store.BudgetStatus

// warnFraction of a budget triggers the first notification: early enough
// for a person to raise the cap or stop work before placement pauses.
const warnFraction = 0.8

// Budget is the deployment's spending caps and what follows from reaching one.
type Budget struct {
	// Daily and Monthly cap the estimated spend in USD; 0 is no cap.
	Daily, Monthly float64
	// Policy is what happens to running jobs at 100%.
	Policy string
	// DryRun marks every action as one that would be taken.
	DryRun bool
}

// On reports whether any cap is set; without one the spend is not tracked.
func (b Budget) On() bool { return b.Daily > 0 || b.Monthly > 0 }

// Period is one budget period: its spend record's key, its start and cap.
type Period struct {
	// Key is the spend record's key: "D2026-11-25" or "M2026-11".
	Key   string
	Start time.Time
	// Limit is the period's cap in USD; 0 is none (the spend is still estimated).
	Limit float64
	// Label names the period in notices: "daily" or "monthly".
	Label string
}

// Periods returns the periods a sweep at now accounts, today's then this
// month's, in UTC.
func (b Budget) Periods(now time.Time) []Period {
	now = now.UTC()
	return []Period{
		{Key: "D" + now.Format("2006-01-02"), Start: time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC), Limit: b.Daily, Label: "daily"},
		{Key: "M" + now.Format("2006-01"), Start: time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), Limit: b.Monthly, Label: "monthly"},
	}
}

// Fresh returns the record of a period nothing was accounted in yet.
func (p Period) Fresh() store.Spend {
	return store.Spend{Period: p.Key, AccountedUntil: p.Start}
}

// Meter is one running instance's cost: since when, at what hourly price.
type Meter struct {
	Launched time.Time
	Hourly   float64
}

// Accrue adds to rec what each meter cost since rec was last accounted (or
// since it launched, if later) up to now, and moves AccountedUntil to now.
// It returns the record and the amount added. Counting from AccountedUntil,
// with the record's version on the write, makes concurrent sweeps count once.
func Accrue(rec store.Spend, meters []Meter, now time.Time) (store.Spend, float64) {
	add := 0.0
	for _, m := range meters {
		from := rec.AccountedUntil
		if m.Launched.After(from) {
			from = m.Launched
		}
		if d := now.Sub(from); d > 0 {
			add += m.Hourly * d.Hours()
		}
	}
	rec.USD += add
	if now.After(rec.AccountedUntil) {
		rec.AccountedUntil = now
	}
	return rec, add
}

// Accounting is what accounting one period decided.
type Accounting struct {
	Record store.Spend
	// Write: the record is to be written back (it grew or a notice went out).
	Write bool
	// Reached says, in words, that the cap is spent; "" while under it.
	Reached string
	// Notices are the 80% and 100% notices due now; each goes out once a period.
	Notices []notice.Action
}

// Account accrues the meters into p's record rec at now (UTC) and applies
// p's cap: a notice at 80%, and at 100% a notice and the words for the
// status. Without a cap the estimate is not written.
func (b Budget) Account(p Period, rec store.Spend, meters []Meter, now time.Time) Accounting {
	s, add := Accrue(rec, meters, now.UTC())
	a := Accounting{Record: s}
	limit := p.Limit
	if limit <= 0 {
		return a
	}
	changed := false
	if !s.Warned && s.USD >= warnFraction*limit {
		s.Warned, changed = true, true
		a.Notices = append(a.Notices, notice.Action{Verb: "notify", Why: fmt.Sprintf("%s spend estimate $%.2f is %.0f%% of the $%.2f budget", p.Label, s.USD, 100*s.USD/limit, limit), DryRun: b.DryRun})
	}
	if s.USD >= limit {
		a.Reached = fmt.Sprintf("%s budget of $%.2f reached ($%.2f spent)", p.Label, limit, s.USD)
		if !s.Reached {
			s.Reached, changed = true, true
			a.Notices = append(a.Notices, notice.Action{Verb: "notify", Why: fmt.Sprintf("%s budget of $%.2f reached ($%.2f spent): placement paused, idle instances stopped, running jobs %s", p.Label, limit, s.USD, policyWords(b.Policy)), DryRun: b.DryRun})
		}
	}
	a.Record, a.Write = s, changed || add > 0
	return a
}

func policyWords(p string) string {
	if p == PolicyCancel {
		return "cancelled"
	}
	return "left to finish"
}

// Finding is a job the watchdog acts on, and the action.
type Finding struct {
	Job    *job.Job
	Action notice.Action
}

// Verdict is the budget's state after a sweep.
type Verdict struct {
	// Reached pauses placement; Reason says why, for the status record and
	// for the jobs that wait.
	Reached bool
	Reason  string
	// Cancels are the running jobs to cancel, under the cancel policy.
	Cancels []Finding
}

// Verdict turns the periods' reached words (in Periods' order) into the
// status and, under the cancel policy, a cancel of every running job.
func (b Budget) Verdict(reached []string, running []*job.Job) Verdict {
	if len(reached) == 0 {
		return Verdict{}
	}
	v := Verdict{Reached: true, Reason: "budget: " + reached[0] + "; placement resumes when the period ends or the budget is raised"}
	if b.Policy == PolicyCancel {
		for _, j := range running {
			v.Cancels = append(v.Cancels, Finding{Job: j, Action: notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: "cancel", Why: v.Reason, DryRun: b.DryRun}})
		}
	}
	return v
}

// SpotTypes returns the types of the spot instances, each once, in order:
// the prices Rates needs from the spot market.
func SpotTypes(insts []Instance) []string {
	var out []string
	seen := map[string]bool{}
	for _, i := range insts {
		if i.Spot && !seen[i.Type] {
			seen[i.Type] = true
			out = append(out, i.Type)
		}
	}
	return out
}

// Rates returns the hourly price of each instance, by id: the deployment's
// override for an on-demand one, the spot price of its type and zone for a
// spot one, else the built-in on-demand table. An instance of a type none
// of these knows has no price.
func Rates(insts []Instance, overrides map[string]float64, spot map[SpotKey]float64) map[string]float64 {
	out := map[string]float64{}
	for _, i := range insts {
		if p, ok := overrides[i.Type]; ok && !i.Spot {
			out[i.ID] = p
			continue
		}
		if t, ok := catalog.Lookup(i.Type); ok {
			out[i.ID] = t.Hourly
		}
		if v, ok := spot[SpotKey{Type: i.Type, Zone: i.Zone}]; ok && i.Spot {
			out[i.ID] = v
		}
	}
	return out
}
