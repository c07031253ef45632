// Package scheduler joins jobs, the store, the fleet and the runner. Its
// Reconcile is level-triggered and idempotent: it reads the world, moves it
// one step toward the desired state (queued jobs placed, ready instances
// given work, finished or idle instances stopped), and can be run by any
// number of invocations at once, after any crash.
package scheduler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// Fleet is what the scheduler needs from EC2.
type Fleet interface {
	List(ctx context.Context) ([]fleet.Instance, error)
	Launch(ctx context.Context, r fleet.LaunchRequest) (fleet.Instance, error)
	Start(ctx context.Context, i fleet.Instance) error
	Stop(ctx context.Context, i fleet.Instance) error
	Tag(ctx context.Context, i fleet.Instance, key, value string) error
}

// Runner is what the scheduler needs from SSM.
type Runner interface {
	Online(ctx context.Context, ids []string) (map[string]bool, error)
	Find(ctx context.Context, j *job.Job, instanceID string) (string, error)
	Send(ctx context.Context, j *job.Job, instanceID string, keepWarm time.Duration) (string, error)
	Result(ctx context.Context, commandID, instanceID string) (runner.Result, error)
	Cancel(ctx context.Context, commandID, instanceID string) error
	Stop(ctx context.Context, j *job.Job, instanceID string) (string, error)
	SyncNow(ctx context.Context, j *job.Job, instanceID string) (string, error)
}

var (
	_ Fleet  = (*fleet.Fleet)(nil)
	_ Runner = (*runner.Runner)(nil)
)

// Pool is a named group of interchangeable instances with a cap.
type Pool struct {
	Types        []string `json:"types"`
	MaxInstances int      `json:"max_instances"`
	Market       string   `json:"market,omitempty"`
	// KeepWarm is how long a free instance waits for the next job before it
	// is stopped. In JSON: a duration ("10m"), whole minutes ("10"), or
	// "auto": each instance's own measured start-to-ready time.
	KeepWarm job.Duration `json:"keep_warm,omitempty"`
	// KeepWarmAuto: keep each instance warm for as long as it took to start
	// and get its agent online — waiting longer than a restart costs is
	// never cheaper.
	KeepWarmAuto bool   `json:"-"`
	AMI          string `json:"ami,omitempty"`
	VolumeGB     int    `json:"volume_gb,omitempty"`
}

// Defaults for what a deployment leaves out. Each is a named constant with its reason.
const (
	// DefaultKeepWarm: a GPU instance takes minutes to start and get its SSM
	// agent online; waiting about that long for the next job is never
	// dearer than restarting for it.
	DefaultKeepWarm = 10 * time.Minute
	// DefaultMaxRuntime bounds a job that names no max_runtime.
	DefaultMaxRuntime = 2 * time.Hour
	// DefaultRetries: a spot interruption or a lost instance is retried twice.
	DefaultRetries = 2
	// DispatchRetry is how long a dispatch intent stands before another
	// reconcile looks for its command and, if none, sends it again.
	DispatchRetry = 2 * time.Minute
	// AgentTimeout is how long a running instance may take to get its SSM
	// agent online; past it the instance is taken as broken and stopped, and
	// the job moves on. Registration normally takes 30 s to a few minutes.
	AgentTimeout = 15 * time.Minute
	// Period is the watchdog's tick; deadlines get one period of slack.
	Period = time.Minute
)

// Config is the deployment's scheduling settings.
type Config struct {
	Pools       map[string]Pool
	DefaultPool string
	MaxRuntime  time.Duration
	Setup       string
	Retries     int
	// SecretsPrefix is the Parameter Store path under which a job's env
	// may name secrets (see job.Defaults); empty refuses every reference.
	SecretsPrefix string
	// CheckpointBuckets are the buckets a job's checkpoint may name (see
	// job.Defaults); nil: unchecked.
	CheckpointBuckets []string
	// MaxWait is a job's max_wait when its message names none; zero: for ever.
	MaxWait time.Duration
	// NotebookIdle and NotebookIdleConnected are the deployment's notebook
	// idle timeouts (see job.Notebook); zero: job's defaults.
	NotebookIdle, NotebookIdleConnected time.Duration
	// QuotaRequestMax is the most vCPUs nightshift may ask a quota to be
	// raised to, for the jobs waiting on it; zero: it never asks.
	QuotaRequestMax int
	// Region is the deployment's region, for the console links in reasons.
	Region string
}

// Bounds of an "auto" keep-warm window: at least a minute, so that a job
// submitted right after another still finds the instance; at most half an
// hour, whatever a slow start measured.
const (
	MinAutoKeepWarm = time.Minute
	MaxAutoKeepWarm = 30 * time.Minute
)

// maxKeepWarmMinutes is the most whole minutes a time.Duration holds.
const maxKeepWarmMinutes = math.MaxInt64 / int64(time.Minute)

// UnmarshalJSON reads a pool, with keep_warm as a duration, whole minutes or
// "auto". Unknown fields are an error: a typo such as "max_instance" would
// otherwise leave the cap at 0 and pause the pool without a word.
func (p *Pool) UnmarshalJSON(b []byte) error {
	type plain Pool
	var raw struct {
		plain
		KeepWarm json.RawMessage `json:"keep_warm"`
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&raw); err != nil {
		return err
	}
	*p = Pool(raw.plain)
	if len(raw.KeepWarm) == 0 {
		return nil
	}
	var s string
	if err := json.Unmarshal(raw.KeepWarm, &s); err != nil {
		var minutes int
		if err := json.Unmarshal(raw.KeepWarm, &minutes); err != nil {
			return fmt.Errorf("keep_warm: want \"auto\", minutes or a duration such as \"10m\", got %s", raw.KeepWarm)
		}
		s = strconv.Itoa(minutes)
	}
	switch n, err := strconv.ParseInt(s, 10, 64); {
	case s == "auto":
		p.KeepWarmAuto = true
	case err == nil && n > maxKeepWarmMinutes:
		return fmt.Errorf("keep_warm: %d minutes is longer than a duration can be", n)
	case err == nil && n > 0:
		p.KeepWarm = job.Duration(time.Duration(n) * time.Minute)
	default:
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			return fmt.Errorf("keep_warm: want \"auto\", minutes or a duration such as \"10m\", got %q", s)
		}
		p.KeepWarm = job.Duration(d)
	}
	return nil
}

// ParsePools reads the NIGHTSHIFT_POOLS JSON, e.g.
// {"default":{"types":["g4dn.xlarge"],"max_instances":2,"keep_warm":"10m"}}.
// Pools are read in name order, so that the same bad value always gives
// the same error, and each error names its pool.
func ParsePools(s string) (map[string]Pool, error) {
	var raws map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raws); err != nil {
		return nil, fmt.Errorf("pools: %w", err)
	}
	if len(raws) == 0 {
		return nil, errors.New("pools: none defined")
	}
	pools := make(map[string]Pool, len(raws))
	for _, name := range slices.Sorted(maps.Keys(raws)) {
		p, err := parsePool(name, raws[name])
		if err != nil {
			return nil, fmt.Errorf("pool %q: %w", name, err)
		}
		pools[name] = p
	}
	return pools, nil
}

func parsePool(name string, b []byte) (Pool, error) {
	var p Pool
	if err := json.Unmarshal(b, &p); err != nil {
		return p, err
	}
	switch {
	case name == "":
		return p, errors.New("want a name a job can give as instance.pool")
	case strings.Contains(name, ":"):
		return p, errors.New(`want a name without ":" (notebooks have pools of their own, named "notebook:NAME")`)
	case len(p.Types) == 0 || p.MaxInstances < 0:
		return p, errors.New("want at least one instance type and max_instances ≥ 0 (0 pauses launching)")
	case p.VolumeGB != 0 && (p.VolumeGB < job.MinVolumeGB || p.VolumeGB > job.MaxVolumeGB):
		return p, fmt.Errorf("volume_gb %d: want %d to %d", p.VolumeGB, job.MinVolumeGB, job.MaxVolumeGB)
	}
	switch p.Market {
	case "", job.OnDemand, job.Spot, job.SpotThenOnDemand:
	default:
		// The fleet would launch an unknown market on demand: a typo of
		// "spot" would cost the on-demand price without a word.
		return p, fmt.Errorf("market %q: want on-demand, spot or spot-then-on-demand", p.Market)
	}
	for _, t := range p.Types {
		if !catalog.Known(t) {
			return p, fmt.Errorf("unknown instance type %q", t)
		}
	}
	if p.KeepWarm == 0 && !p.KeepWarmAuto {
		p.KeepWarm = job.Duration(DefaultKeepWarm)
	}
	return p, nil
}

// Notifier says what nightshift did to an instance: tag, log, notification.
type Notifier interface {
	Say(ctx context.Context, a notice.Action) error
}

var _ Notifier = (*notice.Notice)(nil)

// Scheduler places and follows jobs.
type Scheduler struct {
	store  store.Jobs
	fleet  Fleet
	runner Runner
	notice Notifier
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	// recheck asks for delayed re-checks (UseRechecker); nil: none.
	recheck Rechecker
	// quotas reads the vCPU quotas before launches (UseQuotas); nil: EC2 decides.
	quotas Quotas
}

// New returns a Scheduler.
func New(s store.Jobs, f Fleet, r Runner, n Notifier, cfg Config, now func() time.Time, log *slog.Logger) *Scheduler {
	if cfg.MaxRuntime == 0 {
		cfg.MaxRuntime = DefaultMaxRuntime
	}
	if cfg.DefaultPool == "" {
		cfg.DefaultPool = "default"
	}
	return &Scheduler{store: s, fleet: f, runner: r, notice: n, cfg: cfg, now: now, log: log}
}

// Defaults returns the job-message defaults of this deployment.
func (s *Scheduler) Defaults() job.Defaults { return s.cfg.Defaults() }

// Defaults returns the job-message defaults of a deployment with these
// settings: what the intake validates a message against, and what the
// command line validates one against before it sends it.
func (c Config) Defaults() job.Defaults {
	if c.MaxRuntime == 0 {
		c.MaxRuntime = DefaultMaxRuntime
	}
	if c.DefaultPool == "" {
		c.DefaultPool = "default"
	}
	market := ""
	if p, ok := c.Pools[c.DefaultPool]; ok {
		market = p.Market
	}
	return job.Defaults{
		Pool: c.DefaultPool, MaxRuntime: c.MaxRuntime, Retries: c.Retries,
		Setup: c.Setup, Market: market, Pools: slices.Sorted(maps.Keys(c.Pools)), KnownType: catalog.Known,
		SecretsPrefix: c.SecretsPrefix, CheckpointBuckets: c.CheckpointBuckets, NotebookIdle: c.NotebookIdle, NotebookIdleConnected: c.NotebookIdleConnected,
		MaxWait: c.MaxWait,
	}
}

// Outcome says what Submit did with a message.
type Outcome int

// Outcomes of Submit.
const (
	Accepted  Outcome = iota // a new job was queued
	Duplicate                // a job with this id exists; nothing was created
	Rejected                 // the message is invalid; recorded as REJECTED when it has a usable id

	// The outcomes of a cancel message.
	Cancelled  // the job was QUEUED: it is CANCELLED
	Cancelling // the job has an instance or a command: the reconcile that follows ends it
	NoSuchJob  // no job has this id: nothing to cancel
	Ended      // the job has ended already: nothing to cancel
)

func (o Outcome) String() string {
	return [...]string{"accepted", "duplicate", "rejected", "cancelled", "cancelling", "no such job", "ended already"}[o]
}

// Submit validates one job message or cancel message, and records it.
// messageID names the message (the SQS message id) and is the job id when
// the message has none.
// A returned error is transient (the store failed): the message should be
// retried. An invalid message is not an error: it is Rejected, with the
// reason in the returned error-free Result.
func (s *Scheduler) Submit(ctx context.Context, raw []byte, messageID string) (Result, error) {
	now := s.now()
	var spec job.Spec
	var verr error
	if job.IsCancel(raw) {
		c, err := job.ParseCancel(raw)
		if err == nil {
			return s.cancel(ctx, c, messageID)
		}
		verr = err
	} else {
		spec, verr = job.Parse(raw, s.Defaults())
	}
	if verr != nil {
		id := idOf(raw, messageID)
		res := Result{ID: id, Outcome: Rejected, Reason: verr}
		if id == "" {
			return res, nil
		}
		j := job.NewRejected(id, verr, now)
		j.Source = messageID
		if err := s.store.Create(ctx, j); err != nil && !errors.Is(err, store.ErrExists) {
			return res, fmt.Errorf("record rejected %s: %w", id, err)
		}
		return res, nil
	}
	if spec.ID == "" {
		spec.ID = messageID
	}
	pool := spec.Instance.Pool
	if spec.Notebook != nil {
		pool = job.NotebookPool(spec.Notebook.Name)
	}
	j := job.New(spec, pool, now)
	j.Source = messageID
	if err := s.store.Create(ctx, j); err != nil {
		if errors.Is(err, store.ErrExists) {
			return Result{ID: j.ID, Outcome: Duplicate}, nil
		}
		return Result{ID: j.ID}, fmt.Errorf("create %s: %w", j.ID, err)
	}
	s.log.InfoContext(ctx, "queued", "job", j.ID, "pool", j.Pool, "priority", j.Priority)
	return Result{ID: j.ID, Outcome: Accepted, Job: j}, nil
}

// Result is what Submit did.
type Result struct {
	ID      string
	Outcome Outcome
	// Reason says why a message was rejected.
	Reason error
	// Job is the job an accepted message created, or the one a cancel
	// message named.
	Job *job.Job
}

// idOf finds a usable id for a rejected message: its own valid "id" field
// (with scheduled_at folded in), else the message id.
func idOf(raw []byte, messageID string) string {
	var m struct {
		ID          string `json:"id"`
		ScheduledAt string `json:"scheduled_at"`
	}
	if json.Unmarshal(raw, &m) == nil && job.ValidID(m.ID) && m.ScheduledAt == "" {
		return m.ID
	}
	if job.ValidID(messageID) {
		return messageID
	}
	return ""
}

// pool returns the job's pool settings and the instance types it may run on.
func (s *Scheduler) pool(j *job.Job) (Pool, []string) {
	p := s.cfg.Pools[j.Pool]
	if j.Spec.Notebook != nil {
		p = notebookPool(s.cfg.Pools[j.Spec.Instance.Pool])
	}
	types := p.Types
	if len(j.Spec.Instance.Types) > 0 {
		types = j.Spec.Instance.Types
	}
	return p, types
}
