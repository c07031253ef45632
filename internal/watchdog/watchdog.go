// Package watchdog keeps nightshift's promise that no GPU bill runs away: it
// stops watched instances (tag nightshift:watch=true, a notebook started by
// hand, say) once idle, reports and optionally cancels stalled jobs, and
// keeps the spend within the daily and monthly budgets. The job pipeline's
// own keep-warm, deadline and leak rules live in the scheduler's Reconcile,
// which the watchdog's tick runs too.
//
// The rules (Idle, Stalled, Budget) are plain functions over plain data; a
// sweep gathers that data through a Provider, applies the rules and acts.
package watchdog

import (
	"context"
	"log/slog"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// Tags the watchdog reads.
const (
	// TagWatch marks an instance nightshift did not launch but must stop when idle.
	TagWatch = fleet.TagWatch
	// TagIdleTimeout overrides the idle timeout of one watched instance ("45m").
	TagIdleTimeout = "nightshift:idle-timeout"
)

// Canceller cancels a job's command.
type Canceller interface {
	Cancel(ctx context.Context, commandID, instanceID string) error
}

// Store is what the watchdog reads and writes of the jobs table.
type Store interface {
	Live(ctx context.Context, s job.State) ([]*job.Job, error)
	Update(ctx context.Context, j *job.Job, from job.State, ops ...store.Op) error
	Spend(ctx context.Context, period string) (store.Spend, error)
	PutSpend(ctx context.Context, s *store.Spend) error
	// Counter counts the live jobs for the tick's figures.
	store.Counter
}

// Notifier says what the watchdog did.
type Notifier interface {
	Say(ctx context.Context, a notice.Action) error
}

var _ Notifier = (*notice.Notice)(nil)

// Defaults of the watchdog's settings, each with its reason.
const (
	// DefaultIdleTimeout: a notebook left an hour without GPU, CPU or
	// network use, and without a session, is forgotten.
	DefaultIdleTimeout = time.Hour
	// DefaultGrace: a freshly started instance is being set up by a person.
	DefaultGrace = 15 * time.Minute
	// DefaultStallTimeout: a training step, an evaluation or a checkpoint
	// rarely keeps the GPU idle and the output silent for half an hour.
	DefaultStallTimeout = 30 * time.Minute
	// DefaultGPUPercent, DefaultCPUPercent: below these an instance does no work.
	DefaultGPUPercent = 5
	DefaultCPUPercent = 10
	// DefaultNetworkBytes per 5 minutes in+out: SSM's and the agent's own
	// chatter stay far below it, a download or a notebook in use above.
	DefaultNetworkBytes = 5_000_000
)

// Budget policies at 100%: let running jobs finish, or cancel them.
const (
	PolicyFinish = "finish"
	PolicyCancel = "cancel"
)

// Config is the deployment's watchdog settings.
type Config struct {
	// IdleTimeout is how long a watched instance stays idle before it is
	// stopped, unless its nightshift:idle-timeout tag says otherwise.
	IdleTimeout time.Duration
	// Grace is how long a freshly started watched instance is left alone.
	Grace time.Duration
	// StallTimeout is how long a running job may show no GPU use and no
	// progress before it is reported, unless the job sets its own.
	StallTimeout time.Duration
	// GPUPercent, CPUPercent and NetworkBytes (per 5 minutes, in+out) are
	// the levels below which an instance does no work.
	GPUPercent   float64
	CPUPercent   float64
	NetworkBytes float64
	// DailyBudget and MonthlyBudget cap the estimated spend in USD; 0 is no cap.
	DailyBudget, MonthlyBudget float64
	// Policy is what happens to running jobs at 100%: PolicyFinish or PolicyCancel.
	Policy string
	// DryRun reports every watchdog action without taking it.
	DryRun bool
	// Prices overrides the on-demand price table (USD/hour by type).
	Prices map[string]float64
}

func (c *Config) defaults() {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.Grace == 0 {
		c.Grace = DefaultGrace
	}
	if c.StallTimeout == 0 {
		c.StallTimeout = DefaultStallTimeout
	}
	if c.GPUPercent == 0 {
		c.GPUPercent = DefaultGPUPercent
	}
	if c.CPUPercent == 0 {
		c.CPUPercent = DefaultCPUPercent
	}
	if c.NetworkBytes == 0 {
		c.NetworkBytes = DefaultNetworkBytes
	}
	if c.Policy == "" {
		c.Policy = PolicyFinish
	}
}

func (c Config) thresholds() Thresholds {
	return Thresholds{GPUPercent: c.GPUPercent, CPUPercent: c.CPUPercent, NetworkBytes: c.NetworkBytes}
}

func (c Config) budget() Budget {
	return Budget{Daily: c.DailyBudget, Monthly: c.MonthlyBudget, Policy: c.Policy, DryRun: c.DryRun}
}

// Deps is what New builds a Watchdog from: the cloud it reads and acts on,
// the parts of the job pipeline it uses, its settings, a clock and a logger.
type Deps struct {
	// Cloud lists instances, reads sessions, metrics and prices, and stops
	// watched instances; AWS is the implementation over the SDK clients.
	Cloud Provider
	// Runner cancels the commands of stalled jobs and of jobs over budget.
	Runner Canceller
	// Store holds the jobs and the spend records.
	Store Store
	// Notice tags, logs and publishes every action.
	Notice Notifier
	// Config is the deployment's settings; zero fields take the defaults.
	Config Config
	// Now is the clock.
	Now func() time.Time
	// Log receives the watchdog's warnings; nil discards them.
	Log *slog.Logger
	// Pools are the deployment's pools: each has its instances counted in
	// the tick's figures, 0 included.
	Pools []string
}

// Watchdog runs one sweep per tick.
type Watchdog struct {
	cloud  Provider
	runner Canceller
	store  Store
	notice Notifier
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	pools  []string
}

// New returns a Watchdog.
func New(d Deps) *Watchdog {
	d.Config.defaults()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Watchdog{cloud: d.Cloud, runner: d.Runner, store: d.Store, notice: d.Notice, cfg: d.Config, now: d.Now, log: d.Log, pools: d.Pools}
}

// Report is what one sweep saw and did.
type Report struct {
	Watched, Managed int
	Actions          []notice.Action
	// DaySpend and MonthSpend are today's and this month's estimates, in USD.
	DaySpend, MonthSpend float64
	// DayAccounted and MonthAccounted say the estimates were accounted
	// this sweep: the period has a budget and its record was read.
	DayAccounted, MonthAccounted bool
	// Instances counts nightshift's instances by pool, then EC2 state
	// (pending, running, stopping, stopped); nil when they could not be
	// listed.
	Instances map[string]map[string]int
}
