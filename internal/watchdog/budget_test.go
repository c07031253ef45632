package watchdog

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func TestPeriods(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, time.UTC) }
	tests := []struct {
		name string
		give time.Time
		want []Period
	}{
		{name: "mid-month", give: utc(2026, 11, 25, 10, 0), want: []Period{
			{Key: "D2026-11-25", Start: utc(2026, 11, 25, 0, 0), Limit: 20, Label: "daily"},
			{Key: "M2026-11", Start: utc(2026, 11, 1, 0, 0), Limit: 300, Label: "monthly"},
		}},
		{name: "last second of the month", give: utc(2026, 11, 30, 23, 59).Add(59 * time.Second), want: []Period{
			{Key: "D2026-11-30", Start: utc(2026, 11, 30, 0, 0), Limit: 20, Label: "daily"},
			{Key: "M2026-11", Start: utc(2026, 11, 1, 0, 0), Limit: 300, Label: "monthly"},
		}},
		{name: "midnight: a new day and a new month", give: utc(2026, 12, 1, 0, 0), want: []Period{
			{Key: "D2026-12-01", Start: utc(2026, 12, 1, 0, 0), Limit: 20, Label: "daily"},
			{Key: "M2026-12", Start: utc(2026, 12, 1, 0, 0), Limit: 300, Label: "monthly"},
		}},
		{name: "new year", give: utc(2027, 1, 1, 0, 30), want: []Period{
			{Key: "D2027-01-01", Start: utc(2027, 1, 1, 0, 0), Limit: 20, Label: "daily"},
			{Key: "M2027-01", Start: utc(2027, 1, 1, 0, 0), Limit: 300, Label: "monthly"},
		}},
		{name: "periods are UTC: 01:00 in UTC+2 is still yesterday", give: time.Date(2026, 12, 1, 1, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)), want: []Period{
			{Key: "D2026-11-30", Start: utc(2026, 11, 30, 0, 0), Limit: 20, Label: "daily"},
			{Key: "M2026-11", Start: utc(2026, 11, 1, 0, 0), Limit: 300, Label: "monthly"},
		}},
	}
	b := Budget{Daily: 20, Monthly: 300}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, b.Periods(tt.give)); diff != "" {
				t.Errorf("Periods(%v) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

func TestAccrue(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		give      store.Spend
		meters    []Meter
		now       time.Time
		want      store.Spend
		wantAdded float64
	}{
		{name: "fresh record: from the period's start", give: store.Spend{Period: "D", AccountedUntil: day},
			meters: []Meter{{Launched: day.Add(-48 * time.Hour), Hourly: 1.5}}, now: day.Add(2 * time.Hour),
			want: store.Spend{Period: "D", USD: 3, AccountedUntil: day.Add(2 * time.Hour)}, wantAdded: 3},
		{name: "launched after the last accounting: from its launch", give: store.Spend{Period: "D", USD: 1, AccountedUntil: day.Add(time.Hour)},
			meters: []Meter{{Launched: day.Add(90 * time.Minute), Hourly: 2}}, now: day.Add(2 * time.Hour),
			want: store.Spend{Period: "D", USD: 2, AccountedUntil: day.Add(2 * time.Hour)}, wantAdded: 1},
		{name: "several instances add up", give: store.Spend{Period: "D", USD: 0.5, AccountedUntil: day.Add(time.Hour)},
			meters: []Meter{{Launched: day, Hourly: 1}, {Launched: day, Hourly: 3}}, now: day.Add(90 * time.Minute),
			want: store.Spend{Period: "D", USD: 2.5, AccountedUntil: day.Add(90 * time.Minute)}, wantAdded: 2},
		{name: "an instance without a price costs nothing", give: store.Spend{Period: "D", AccountedUntil: day},
			meters: []Meter{{Launched: day}}, now: day.Add(time.Hour),
			want: store.Spend{Period: "D", AccountedUntil: day.Add(time.Hour)}},
		{name: "accounted up to now already: nothing added", give: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(time.Hour), Version: 3},
			meters: []Meter{{Launched: day, Hourly: 1}}, now: day.Add(time.Hour),
			want: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(time.Hour), Version: 3}},
		{name: "clock behind the record: nothing added, nothing moved back", give: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(time.Hour)},
			meters: []Meter{{Launched: day, Hourly: 1}}, now: day.Add(30 * time.Minute),
			want: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(time.Hour)}},
		{name: "no instances: the record still moves to now", give: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(time.Hour)},
			now:  day.Add(2 * time.Hour),
			want: store.Spend{Period: "D", USD: 4, AccountedUntil: day.Add(2 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, added := Accrue(tt.give, tt.meters, tt.now)
			if diff := cmp.Diff(tt.want, got); diff != "" || added != tt.wantAdded {
				t.Errorf("Accrue(%+v) = _, %v; want %v; record (-want +got):\n%s", tt.give, added, tt.wantAdded, diff)
			}
		})
	}
}

func TestAccount(t *testing.T) {
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	now := day.Add(10 * time.Hour)
	p := Period{Key: "D2026-11-25", Start: day, Limit: 10, Label: "daily"}
	// rate returns one instance running all day whose cost over the two
	// hours since the record's last accounting is usd.
	rate := func(usd float64) []Meter { return []Meter{{Launched: day, Hourly: usd / 2}} }
	at := func(usd float64, warned, reached bool) store.Spend {
		return store.Spend{Period: p.Key, USD: usd, AccountedUntil: now.Add(-2 * time.Hour), Warned: warned, Reached: reached}
	}
	warn := func(usd float64, pct int) notice.Action {
		return notice.Action{Verb: "notify", Why: "daily spend estimate $" + money(usd) + " is " + itoa(pct) + "% of the $10.00 budget"}
	}
	reachedWords := func(usd float64) string { return "daily budget of $10.00 reached ($" + money(usd) + " spent)" }
	reach := func(usd float64, jobs string) notice.Action {
		return notice.Action{Verb: "notify", Why: reachedWords(usd) + ": placement paused, idle instances stopped, running jobs " + jobs}
	}
	tests := []struct {
		name   string
		budget Budget
		period Period
		give   store.Spend
		meters []Meter
		want   Accounting
	}{
		{name: "under 80%: accrued and written, no notice", give: at(2, false, false), meters: rate(5),
			want: Accounting{Record: rec(p, 7, false, false, now), Write: true}},
		{name: "exactly 80%: the warning", give: at(3, false, false), meters: rate(5),
			want: Accounting{Record: rec(p, 8, true, false, now), Write: true, Notices: []notice.Action{warn(8, 80)}}},
		{name: "warned already: no second warning", give: at(8, true, false), meters: rate(1),
			want: Accounting{Record: rec(p, 9, true, false, now), Write: true}},
		{name: "exactly 100%: reached, once", give: at(9, true, false), meters: rate(1),
			want: Accounting{Record: rec(p, 10, true, true, now), Write: true, Reached: reachedWords(10), Notices: []notice.Action{reach(10, "left to finish")}}},
		{name: "from under 80% to over 100% in one sweep: both notices, in order", give: at(1, false, false), meters: rate(11),
			want: Accounting{Record: rec(p, 12, true, true, now), Write: true, Reached: reachedWords(12), Notices: []notice.Action{warn(12, 120), reach(12, "left to finish")}}},
		{name: "reached already: still reached, no second notice", give: at(12, true, true), meters: rate(2),
			want: Accounting{Record: rec(p, 14, true, true, now), Write: true, Reached: reachedWords(14)}},
		{name: "cancel policy says so", budget: Budget{Policy: PolicyCancel}, give: at(9, true, false), meters: rate(1),
			want: Accounting{Record: rec(p, 10, true, true, now), Write: true, Reached: reachedWords(10), Notices: []notice.Action{reach(10, "cancelled")}}},
		{name: "dry run: the notices say would", budget: Budget{DryRun: true}, give: at(3, false, false), meters: rate(5),
			want: Accounting{Record: rec(p, 8, true, false, now), Write: true, Notices: []notice.Action{dry(warn(8, 80))}}},
		{name: "nothing added and nothing new: no write", give: store.Spend{Period: p.Key, USD: 8.5, AccountedUntil: now, Warned: true},
			want: Accounting{Record: rec(p, 8.5, true, false, now)}},
		{name: "nothing added but a warning due: written", give: store.Spend{Period: p.Key, USD: 8.5, AccountedUntil: now},
			want: Accounting{Record: rec(p, 8.5, true, false, now), Write: true, Notices: []notice.Action{warn(8.5, 85)}}},
		{name: "no cap: estimated, never written, no notice", period: Period{Key: p.Key, Start: day, Label: "daily"}, give: at(100, false, false), meters: rate(50),
			want: Accounting{Record: rec(p, 150, false, false, now)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			period := p
			if tt.period.Key != "" {
				period = tt.period
			}
			if tt.budget.Policy == "" {
				tt.budget.Policy = PolicyFinish
			}
			got := tt.budget.Account(period, tt.give, tt.meters, now)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Account(%+v) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

// TestAccountRollover: at midnight a fresh day record counts only from
// midnight, while yesterday's record keeps what it had; the same holds for
// the month on the first.
func TestAccountRollover(t *testing.T) {
	midnight := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	now := midnight.Add(30 * time.Minute)
	b := Budget{Daily: 10, Monthly: 100, Policy: PolicyFinish}
	meters := []Meter{{Launched: midnight.Add(-5 * time.Hour), Hourly: 2}}
	var got []float64
	for _, p := range b.Periods(now) {
		got = append(got, b.Account(p, p.Fresh(), meters, now).Record.USD)
	}
	if diff := cmp.Diff([]float64{1, 1}, got); diff != "" {
		t.Errorf("Account(fresh day, fresh month) at 00:30 on the 1st (-want +got):\n%s", diff)
	}
	// A fresh day in mid-month: the day counts from midnight, the month record from where it was.
	now = time.Date(2026, 12, 2, 0, 30, 0, 0, time.UTC)
	ps := b.Periods(now)
	month := store.Spend{Period: ps[1].Key, USD: 49, AccountedUntil: now.Add(-time.Hour)}
	day := b.Account(ps[0], ps[0].Fresh(), meters, now).Record.USD
	mon := b.Account(ps[1], month, meters, now).Record.USD
	if day != 1 || mon != 51 {
		t.Errorf("Account at 00:30 on the 2nd = day %v, month %v; want 1, 51", day, mon)
	}
}

func TestVerdict(t *testing.T) {
	running := []*job.Job{{ID: "a", InstanceID: "i-1", CommandID: "c-1"}, {ID: "b", InstanceID: "i-2", CommandID: "c-2"}}
	const dayWords = "daily budget of $10.00 reached ($10.50 spent)"
	const monthWords = "monthly budget of $100.00 reached ($100.50 spent)"
	reason := func(w string) string {
		return "budget: " + w + "; placement resumes when the period ends or the budget is raised"
	}
	cancel := func(j *job.Job, why string, dry bool) Finding {
		return Finding{Job: j, Action: notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: "cancel", Why: why, DryRun: dry}}
	}
	tests := []struct {
		name   string
		budget Budget
		give   []string
		want   Verdict
	}{
		{name: "under every cap", budget: Budget{Policy: PolicyCancel}, give: nil, want: Verdict{}},
		{name: "daily reached, finish policy", budget: Budget{Policy: PolicyFinish}, give: []string{dayWords},
			want: Verdict{Reached: true, Reason: reason(dayWords)}},
		{name: "both reached: the first period's words", budget: Budget{Policy: PolicyFinish}, give: []string{dayWords, monthWords},
			want: Verdict{Reached: true, Reason: reason(dayWords)}},
		{name: "monthly reached, cancel policy: every running job", budget: Budget{Policy: PolicyCancel}, give: []string{monthWords},
			want: Verdict{Reached: true, Reason: reason(monthWords), Cancels: []Finding{cancel(running[0], reason(monthWords), false), cancel(running[1], reason(monthWords), false)}}},
		{name: "cancel policy in a dry run", budget: Budget{Policy: PolicyCancel, DryRun: true}, give: []string{dayWords},
			want: Verdict{Reached: true, Reason: reason(dayWords), Cancels: []Finding{cancel(running[0], reason(dayWords), true), cancel(running[1], reason(dayWords), true)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.budget.Verdict(tt.give, running)); diff != "" {
				t.Errorf("Verdict(%q) (-want +got):\n%s", tt.give, diff)
			}
		})
	}
}

func TestRates(t *testing.T) {
	g5, _ := catalog.Lookup("g5.xlarge")
	g4, _ := catalog.Lookup("g4dn.xlarge")
	insts := []Instance{
		{ID: "on-demand", Type: "g5.xlarge", Zone: "us-east-1a"},
		{ID: "on-demand overridden", Type: "g4dn.xlarge", Zone: "us-east-1a"},
		{ID: "spot", Type: "g5.xlarge", Zone: "us-east-1a", Spot: true},
		{ID: "spot, no price in its zone", Type: "g5.xlarge", Zone: "us-east-1c", Spot: true},
		{ID: "spot of an overridden type", Type: "g4dn.xlarge", Zone: "us-east-1b", Spot: true},
		{ID: "unknown type", Type: "x9.huge", Zone: "us-east-1a"},
		{ID: "unknown type overridden", Type: "x9.large", Zone: "us-east-1a"},
	}
	overrides := map[string]float64{"g4dn.xlarge": 0.4, "x9.large": 7}
	spot := map[SpotKey]float64{{"g5.xlarge", "us-east-1a"}: 0.35, {"g5.xlarge", "us-east-1b"}: 0.3, {"g4dn.xlarge", "us-east-1b"}: 0.2}
	want := map[string]float64{
		"on-demand":                  g5.Hourly,
		"on-demand overridden":       0.4,
		"spot":                       0.35,
		"spot, no price in its zone": g5.Hourly,
		"spot of an overridden type": 0.2,
		"unknown type overridden":    7,
	}
	if diff := cmp.Diff(want, Rates(insts, overrides, spot)); diff != "" {
		t.Errorf("Rates() (-want +got):\n%s", diff)
	}
	// Without its spot price a spot instance of an overridden type takes
	// the on-demand table, not the override (which prices on-demand only).
	if got := Rates(insts[4:5], overrides, nil)["spot of an overridden type"]; got != g4.Hourly {
		t.Errorf("Rates(spot g4dn.xlarge, no spot price) = %v; want %v", got, g4.Hourly)
	}
}

func TestSpotTypes(t *testing.T) {
	tests := []struct {
		name string
		give []Instance
		want []string
	}{
		{name: "none", give: nil, want: nil},
		{name: "on-demand only", give: []Instance{{Type: "g5.xlarge"}}, want: nil},
		{name: "each type once, in order", give: []Instance{
			{Type: "g6.xlarge", Spot: true}, {Type: "g5.xlarge"}, {Type: "g5.xlarge", Spot: true}, {Type: "g6.xlarge", Spot: true},
		}, want: []string{"g6.xlarge", "g5.xlarge"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, SpotTypes(tt.give)); diff != "" {
			t.Errorf("SpotTypes(%s) (-want +got):\n%s", tt.name, diff)
		}
	}
}

func rec(p Period, usd float64, warned, reached bool, until time.Time) store.Spend {
	return store.Spend{Period: p.Key, USD: usd, AccountedUntil: until, Warned: warned, Reached: reached}
}

func dry(a notice.Action) notice.Action {
	a.DryRun = true
	return a
}

func money(usd float64) string { return strconv.FormatFloat(usd, 'f', 2, 64) }

func itoa(n int) string { return strconv.Itoa(n) }
