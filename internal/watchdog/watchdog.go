// Package watchdog keeps nightshift's promise that no GPU bill runs away: it
// stops watched instances (tag nightshift:watch=true, a notebook started by
// hand, say) once idle, reports and optionally cancels stalled jobs, and
// keeps the spend within the daily and monthly budgets. The job pipeline's
// own keep-warm, deadline and leak rules live in the scheduler's Reconcile,
// which the watchdog's tick runs too.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// Tags the watchdog reads.
const (
	// TagWatch marks an instance nightshift did not launch but must stop when idle.
	TagWatch = "nightshift:watch"
	// TagIdleTimeout overrides the idle timeout of one watched instance ("45m").
	TagIdleTimeout = "nightshift:idle-timeout"
)

// EC2 is the part of EC2 the watchdog uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
}

// CloudWatch is the part of CloudWatch the watchdog uses.
type CloudWatch interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// Sessions is the part of SSM that lists open Session Manager sessions.
type Sessions interface {
	DescribeSessions(ctx context.Context, in *ssm.DescribeSessionsInput, optFns ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error)
}

// Canceller cancels a job's command.
type Canceller interface {
	Cancel(ctx context.Context, commandID, instanceID string) error
}

// Store is what the watchdog reads and writes of the jobs table.
type Store interface {
	Live(ctx context.Context, s job.State) ([]*job.Job, error)
	Update(ctx context.Context, j *job.Job, from job.State, ops ...store.LeaseOp) error
	Spend(ctx context.Context, period string) (store.Spend, error)
	PutSpend(ctx context.Context, s *store.Spend) error
}

// Notifier says what the watchdog did.
type Notifier interface {
	Say(ctx context.Context, a notice.Action) error
}

var (
	_ EC2        = (*ec2.Client)(nil)
	_ CloudWatch = (*cloudwatch.Client)(nil)
	_ Sessions   = (*ssm.Client)(nil)
	_ Notifier   = (*notice.Notice)(nil)
)

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
	// warnFraction of a budget triggers the first notification.
	warnFraction = 0.8
)

// Budget policies at 100%: let running jobs finish, or cancel them.
const (
	PolicyFinish = "finish"
	PolicyCancel = "cancel"
)

// Config is the deployment's watchdog settings.
type Config struct {
	IdleTimeout  time.Duration
	Grace        time.Duration
	StallTimeout time.Duration
	GPUPercent   float64
	CPUPercent   float64
	NetworkBytes float64
	// DailyBudget and MonthlyBudget cap the estimated spend in USD; 0 is no cap.
	DailyBudget, MonthlyBudget float64
	Policy                     string
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

// Watchdog runs one sweep per tick.
type Watchdog struct {
	ec2      EC2
	cw       CloudWatch
	sessions Sessions
	runner   Canceller
	store    Store
	notice   Notifier
	cfg      Config
	now      func() time.Time
	log      *slog.Logger
}

// New returns a Watchdog.
func New(e EC2, cw CloudWatch, s Sessions, r Canceller, st Store, n Notifier, cfg Config, now func() time.Time, log *slog.Logger) *Watchdog {
	cfg.defaults()
	return &Watchdog{ec2: e, cw: cw, sessions: s, runner: r, store: st, notice: n, cfg: cfg, now: now, log: log}
}

// Report is what one sweep saw and did.
type Report struct {
	Watched, Managed int
	Actions          []notice.Action
	// Spend is today's and this month's estimate, in USD.
	DaySpend, MonthSpend float64
}

// instance is the watchdog's view of one running instance.
type instance struct {
	fleet.Instance
}

// Sweep looks at every running watched and managed instance once.
func (w *Watchdog) Sweep(ctx context.Context) (Report, error) {
	now := w.now()
	var rep Report
	insts, err := w.list(ctx)
	if err != nil {
		return rep, err
	}
	running, err := w.store.Live(ctx, job.Running)
	if err != nil {
		return rep, fmt.Errorf("read running jobs: %w", err)
	}
	var watched, managed []instance
	for _, i := range insts {
		if i.Managed {
			managed = append(managed, i)
		} else if i.Tags[TagWatch] == "true" {
			watched = append(watched, i)
		}
	}
	rep.Watched, rep.Managed = len(watched), len(managed)

	var errs []error
	idle, err := w.idleWatched(ctx, watched, now)
	errs = append(errs, err)
	stalls, err := w.stalled(ctx, managed, running, now)
	errs = append(errs, err)
	for _, a := range idle {
		errs = append(errs, w.stop(ctx, a))
		rep.Actions = append(rep.Actions, a)
	}
	for _, s := range stalls {
		errs = append(errs, w.stall(ctx, s))
		rep.Actions = append(rep.Actions, s.action)
	}
	acts, day, month, err := w.budget(ctx, managed, running, now)
	errs = append(errs, err)
	rep.Actions = append(rep.Actions, acts...)
	rep.DaySpend, rep.MonthSpend = day, month
	return rep, errors.Join(errs...)
}

// list reads the running instances that carry a nightshift tag, in pages of 1000.
func (w *Watchdog) list(ctx context.Context) ([]instance, error) {
	insts, err := fleet.Describe(ctx, w.ec2, []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{fleet.TagManaged, TagWatch}},
		{Name: aws.String("instance-state-name"), Values: []string{"running"}},
	})
	if err != nil {
		return nil, err
	}
	out := make([]instance, len(insts))
	for k, i := range insts {
		out[k] = instance{Instance: i}
	}
	return out, nil
}

// openSessions returns the instances with an active Session Manager session.
func (w *Watchdog) openSessions(ctx context.Context) (map[string]bool, error) {
	open := map[string]bool{}
	p := ssm.NewDescribeSessionsPaginator(w.sessions, &ssm.DescribeSessionsInput{State: ssmtypes.SessionStateActive})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe sessions: %w", err)
		}
		for _, s := range page.Sessions {
			open[aws.ToString(s.Target)] = true
		}
	}
	return open, nil
}

// idleTimeout is the instance's own timeout (its tag) or the deployment's.
func (w *Watchdog) idleTimeout(i instance) time.Duration {
	if v, ok := i.Tags[TagIdleTimeout]; ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 5*time.Minute {
			return d
		}
		w.log.Warn("ignored bad idle-timeout tag", "instance", i.ID, "value", v)
	}
	return w.cfg.IdleTimeout
}

// idleWatched returns a stop action for each watched instance idle for its
// whole timeout: GPU, CPU and network under their thresholds, with data
// covering the timeout, and no open session.
func (w *Watchdog) idleWatched(ctx context.Context, watched []instance, now time.Time) ([]notice.Action, error) {
	var reqs []request
	longest := time.Duration(0)
	var candidates []instance
	for _, i := range watched {
		to := w.idleTimeout(i)
		// A freshly started instance gets its grace, and cannot have been
		// idle for longer than it has run.
		if now.Sub(i.LaunchTime) < max(w.cfg.Grace, to) {
			continue
		}
		candidates = append(candidates, i)
		longest = max(longest, to)
		for _, m := range []Metric{GPU, CPU, NetworkIn, NetworkOut} {
			reqs = append(reqs, request{i.ID, m})
		}
	}
	if len(candidates) == 0 {
		return nil, nil
	}
	series, err := w.fetch(ctx, reqs, now.Add(-longest), now)
	if err != nil {
		return nil, err
	}
	sessions, err := w.openSessions(ctx)
	if err != nil {
		return nil, err
	}
	var acts []notice.Action
	for _, i := range candidates {
		to := w.idleTimeout(i)
		from := now.Add(-to)
		if why, idle := w.isIdle(i.ID, series, from, now, sessions[i.ID]); idle {
			acts = append(acts, notice.Action{Instance: i.ID, Verb: "stop", Why: fmt.Sprintf("idle for %v: %s", to, why), DryRun: w.cfg.DryRun})
		}
	}
	return acts, nil
}

// isIdle decides idleness from the series over [from, to], and says why.
func (w *Watchdog) isIdle(id string, series map[request]Series, from, to time.Time, session bool) (string, bool) {
	if session {
		return "", false
	}
	window := func(m Metric) Series {
		var s Series
		for _, p := range series[request{id, m}] {
			if !p.At.Before(from.Add(-m.Period)) {
				s = append(s, p)
			}
		}
		return s
	}
	gpu, cpu, in, out := window(GPU), window(CPU), window(NetworkIn), window(NetworkOut)
	for _, c := range []struct {
		s Series
		m Metric
	}{{gpu, GPU}, {cpu, CPU}, {in, NetworkIn}, {out, NetworkOut}} {
		if !c.s.Covers(from, to, c.m.Period) {
			return "", false // missing data is never read as idle
		}
	}
	net := 0.0
	for k := range in {
		v := in[k].Value
		if k < len(out) {
			v += out[k].Value
		}
		net = max(net, v)
	}
	if gpu.Max() >= w.cfg.GPUPercent || cpu.Max() >= w.cfg.CPUPercent || net >= w.cfg.NetworkBytes {
		return "", false
	}
	return fmt.Sprintf("GPU max %.0f%% (< %.0f%%), CPU max %.0f%% (< %.0f%%), network max %s per 5 min (< %s), no open session",
		gpu.Max(), w.cfg.GPUPercent, cpu.Max(), w.cfg.CPUPercent, bytes(net), bytes(w.cfg.NetworkBytes)), true
}

func bytes(b float64) string {
	switch {
	case b >= 1e6:
		return strconv.FormatFloat(b/1e6, 'f', 1, 64) + " MB"
	case b >= 1e3:
		return strconv.FormatFloat(b/1e3, 'f', 1, 64) + " kB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + " B"
}

// stop stops a watched instance (unless dry run) and says so. It re-checks
// the tags it acted on: only watched or managed instances are ever stopped.
func (w *Watchdog) stop(ctx context.Context, a notice.Action) error {
	if !a.DryRun {
		if _, err := w.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{a.Instance}}); err != nil {
			return fmt.Errorf("stop %s: %w", a.Instance, err)
		}
	}
	return w.notice.Say(ctx, a)
}
