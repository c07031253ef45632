package metrics

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// The watchdog's figures, published once per tick.
const (
	// JobsQueued, JobsPlaced and JobsRunning count the live jobs by state.
	JobsQueued  = "JobsQueued"
	JobsPlaced  = "JobsPlaced"
	JobsRunning = "JobsRunning"
	// SpendTodayUSD and SpendMonthUSD are the estimated spend of the UTC
	// day and month so far, as the budget accounting keeps it.
	SpendTodayUSD = "SpendTodayUSD"
	SpendMonthUSD = "SpendMonthUSD"
	// DailyBudgetUSD and MonthlyBudgetUSD are the caps; absent when none.
	DailyBudgetUSD   = "DailyBudgetUSD"
	MonthlyBudgetUSD = "MonthlyBudgetUSD"
	// ActionsStop, ActionsCancel and ActionsNotify count what the tick did:
	// instances stopped, commands cancelled, notices sent (budget, stall,
	// a job's end), by the sweep and by the tick's reconcile.
	ActionsStop   = "ActionsStop"
	ActionsCancel = "ActionsCancel"
	ActionsNotify = "ActionsNotify"
)

// JobFigures names the count of each live state.
var JobFigures = []struct {
	State job.State
	Name  string
}{{job.Queued, JobsQueued}, {job.Placed, JobsPlaced}, {job.Running, JobsRunning}}

// InstanceStates are the EC2 states nightshift's instances are counted
// in, each pool's in each, every tick.
var InstanceStates = []string{"pending", "running", "stopping", "stopped"}

// InstancesIn is the name every pool's count of instances in an EC2 state
// starts with: "InstancesRunning". A dashboard finds all pools' with one
// search on it.
func InstancesIn(state string) string {
	return "Instances" + strings.ToUpper(state[:1]) + state[1:]
}

// InstanceMetric names the count of a pool's instances in an EC2 state:
// "InstancesRunning.default". One document cannot give a dimension two
// values, so the pool is in the name, and the tick stays one document.
func InstanceMetric(state, pool string) string { return InstancesIn(state) + "." + pool }

// ActionKinds are the kinds of action a tick counts, by the verb said.
var ActionKinds = []struct {
	Verb string
	Name string
}{{"stop", ActionsStop}, {"cancel", ActionsCancel}, {"notify", ActionsNotify}}

// Tick is what the watchdog saw and did in one tick. A figure it could not
// read is left out, never published as 0.
type Tick struct {
	// Jobs counts the live jobs by state; a state absent was not counted.
	Jobs map[job.State]int
	// Pools are the deployment's pools. Each gets a count in every
	// InstanceStates every tick, 0 included, so that a graph falls to 0
	// rather than stopping; instances of other pools are not counted.
	Pools []string
	// Instances counts nightshift's instances by pool, then EC2 state;
	// nil when the instances could not be listed.
	Instances map[string]map[string]int
	// SpendToday and SpendMonth are the estimates in USD; nil when not
	// accounted this tick (no budget set, or the record could not be read).
	SpendToday, SpendMonth *float64
	// DailyBudget and MonthlyBudget are the caps in USD; 0 is none, and is
	// not published.
	DailyBudget, MonthlyBudget float64
	// Actions counts the tick's actions by verb (Actions.Counts).
	Actions map[string]int
}

// Documents returns the tick's figures as documents at at: one, unless
// there are more than MaxMetrics of them (the fixed figures and four per
// pool: more than 22 pools).
func (t Tick) Documents(at time.Time) []Document {
	var ms []Metric
	count := func(name string, n int) { ms = append(ms, Metric{Name: name, Unit: Count, Value: float64(n)}) }
	usd := func(name string, v float64) { ms = append(ms, Metric{Name: name, Unit: None, Value: v}) }
	for _, f := range JobFigures {
		if n, ok := t.Jobs[f.State]; ok {
			count(f.Name, n)
		}
	}
	if t.SpendToday != nil {
		usd(SpendTodayUSD, *t.SpendToday)
	}
	if t.SpendMonth != nil {
		usd(SpendMonthUSD, *t.SpendMonth)
	}
	if t.DailyBudget > 0 {
		usd(DailyBudgetUSD, t.DailyBudget)
	}
	if t.MonthlyBudget > 0 {
		usd(MonthlyBudgetUSD, t.MonthlyBudget)
	}
	for _, k := range ActionKinds {
		count(k.Name, t.Actions[k.Verb])
	}
	if t.Instances != nil {
		for _, pool := range slices.Compact(slices.Sorted(slices.Values(t.Pools))) {
			for _, st := range InstanceStates {
				count(InstanceMetric(st, pool), t.Instances[pool][st])
			}
		}
	}
	var docs []Document
	for chunk := range slices.Chunk(ms, MaxMetrics) {
		docs = append(docs, Document{Time: at, Metrics: chunk})
	}
	return docs
}

// Actions tallies the actions said during one tick.
type Actions struct {
	mu sync.Mutex
	by map[string]int
}

type actionsKey struct{}

// WithActions returns ctx carrying a new, empty tally: the actions said
// under it (CountAction) are counted in it. The watchdog's tick makes one
// per invocation; the tally lives as long as the invocation's ctx.
func WithActions(ctx context.Context) (context.Context, *Actions) {
	a := &Actions{by: map[string]int{}}
	return context.WithValue(ctx, actionsKey{}, a), a
}

// CountAction counts one action of verb in ctx's tally; without one (an
// invocation that is not a tick) it does nothing. A dry run's actions are
// not taken and not counted.
func CountAction(ctx context.Context, verb string, dryRun bool) {
	a, ok := ctx.Value(actionsKey{}).(*Actions)
	if !ok || dryRun {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.by[ActionKind(verb)]++
}

// ActionKind is the kind of action a verb says: "stop", "cancel", or, for
// any notice (a budget's, a stall's, a job's end), "notify".
func ActionKind(verb string) string {
	switch verb {
	case "stop", "cancel":
		return verb
	}
	return "notify"
}

// Counts returns the tally by kind.
func (a *Actions) Counts() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.by)
}
