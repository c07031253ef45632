// Package config reads a deployment's settings from the environment the
// template sets. It is read once per Lambda execution environment, outside
// the handler; internal/service builds the product from it.
package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// DefaultPool is the pool a job runs in when it names none.
const DefaultPool = "default"

// DefaultStack is the stack name when NIGHTSHIFT_STACK is unset (a local
// run, a test): the template's own default stack name.
const DefaultStack = "nightshift"

// poolName is what a pool may be called: the name is a tag value on its
// instances (nightshift:pool) and part of its metrics' names
// (InstancesRunning.NAME), where CloudWatch's search reads any other
// character as a word break.
var poolName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// DefaultAMIParameter is the public SSM parameter of the Deep Learning OSS
// Nvidia Driver AMI GPU PyTorch 2.12 (Ubuntu 24.04) that instances launch
// from by default: the newest x86_64 PyTorch DLAMI in AWS's release notes
// (PyTorch 2.7 on Ubuntu 22.04 left patch support on 2026-04-23, 2.9 on
// 2026-10-15). The name follows the DLAMI guide's rule: the AMI's name
// without "Deep Learning" and "AMI". The template's AmiParameter default
// must equal it (internal/deploy checks).
const DefaultAMIParameter = "/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.12-ubuntu-24.04/latest/ami-id"

// MaxRetentionDays bounds NIGHTSHIFT_RETENTION_DAYS: ten years, far past
// any use of a job's record, and well within what a time.Duration holds.
// 0 keeps records for ever.
const MaxRetentionDays = 3650

// maxQuotaRequest bounds NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS against a
// typo: 100,000 vCPUs is over 500 p5.48xlarge.
const maxQuotaRequest = 100000

// Settings is everything a deployment configures, read from NIGHTSHIFT_* variables.
type Settings struct {
	Table            string
	Pools            map[string]scheduler.Pool
	LaunchTemplateID string
	Subnets          []string
	AMIParameter     string
	LogGroup         string
	OutputBucket     string
	MaxRuntime       time.Duration
	Setup            string
	Retries          int
	Region           string
	TopicARN         string
	Watchdog         watchdog.Config
	// CloudWatchProtocol is "query" or "json" for an emulator that does not
	// speak CloudWatch's default protocol (Smithy RPCv2 CBOR); empty for AWS.
	CloudWatchProtocol string
	// StateDir is where the wrapper keeps its per-attempt state on the
	// instance; empty for the runner's default.
	StateDir string
	// Retention is how long the record of an ended job is kept after its
	// end (NIGHTSHIFT_RETENTION_DAYS, whole days); 0, also when unset,
	// keeps it for ever.
	Retention time.Duration
	// SecretsPrefix is the Parameter Store path under which a job's env may
	// name secrets (NIGHTSHIFT_SECRETS_PREFIX, the template's
	// SecretsPrefix); the instance role may read only those.
	SecretsPrefix string
	// CheckpointBuckets are the buckets a job's checkpoint may name
	// (NIGHTSHIFT_CHECKPOINT_BUCKETS, comma-separated): the instance role
	// may use only those. FromEnv always sets it, empty when none.
	CheckpointBuckets []string
	// MaxWait is a job's max_wait when its message names none
	// (NIGHTSHIFT_DEFAULT_MAX_WAIT; 0 or unset: for ever).
	MaxWait time.Duration
	// QuotaRequestMax is the most vCPUs nightshift may ask an EC2 vCPU
	// quota to be raised to (NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS; 0 or
	// unset: it never asks).
	QuotaRequestMax int
	// SpotPlacementScores orders a spot launch's subnets by EC2's spot
	// placement scores (NIGHTSHIFT_SPOT_PLACEMENT_SCORES, true or false).
	SpotPlacementScores bool
	// NotebookIdle and NotebookIdleConnected are the notebook idle timeouts
	// (NIGHTSHIFT_NOTEBOOK_IDLE, NIGHTSHIFT_NOTEBOOK_IDLE_CONNECTED); zero:
	// job.DefaultNotebookIdle and job.DefaultNotebookIdleConnected.
	NotebookIdle, NotebookIdleConnected time.Duration
	// Stack is the CloudFormation stack's name: the Stack dimension of
	// every metric, so that two stacks in one account do not mix.
	Stack string
	// QueueURL is the jobs queue's URL (NIGHTSHIFT_QUEUE_URL): the
	// functions send their delayed re-checks there. Empty sends none, and
	// everything waits for the watchdog's tick.
	QueueURL string
}

// Scheduler returns the scheduler's part of the settings.
func (s Settings) Scheduler() scheduler.Config {
	return scheduler.Config{Pools: s.Pools, DefaultPool: DefaultPool, MaxRuntime: s.MaxRuntime, Setup: s.Setup, Retries: s.Retries, SecretsPrefix: s.SecretsPrefix,
		CheckpointBuckets: s.CheckpointBuckets,
		NotebookIdle:      s.NotebookIdle, NotebookIdleConnected: s.NotebookIdleConnected, MaxWait: s.MaxWait,
		QuotaRequestMax: s.QuotaRequestMax, Region: s.Region}
}

// FromEnv reads the settings; getenv is os.Getenv outside tests.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Table:              getenv("NIGHTSHIFT_TABLE"),
		LaunchTemplateID:   getenv("NIGHTSHIFT_LAUNCH_TEMPLATE_ID"),
		AMIParameter:       getenv("NIGHTSHIFT_AMI_PARAMETER"),
		LogGroup:           getenv("NIGHTSHIFT_LOG_GROUP"),
		OutputBucket:       getenv("NIGHTSHIFT_OUTPUT_BUCKET"),
		Setup:              getenv("NIGHTSHIFT_DEFAULT_SETUP"),
		SecretsPrefix:      getenv("NIGHTSHIFT_SECRETS_PREFIX"),
		Region:             getenv("AWS_REGION"),
		Retries:            scheduler.DefaultRetries,
		TopicARN:           getenv("NIGHTSHIFT_TOPIC_ARN"),
		CloudWatchProtocol: getenv("NIGHTSHIFT_CLOUDWATCH_PROTOCOL"),
		Stack:              getenv("NIGHTSHIFT_STACK"),
		QueueURL:           getenv("NIGHTSHIFT_QUEUE_URL"),
	}
	if s.Stack == "" {
		s.Stack = DefaultStack
	}
	if s.Table == "" {
		return s, fmt.Errorf("NIGHTSHIFT_TABLE is not set")
	}
	if s.AMIParameter == "" {
		s.AMIParameter = DefaultAMIParameter
	}
	pools := getenv("NIGHTSHIFT_POOLS")
	if pools == "" {
		pools = `{"default":{"types":["g4dn.xlarge"],"max_instances":2}}`
	}
	var err error
	if s.Pools, err = scheduler.ParsePools(pools); err != nil {
		return s, fmt.Errorf("NIGHTSHIFT_POOLS: %w", err)
	}
	if err := checkPools(s.Pools); err != nil {
		return s, fmt.Errorf("NIGHTSHIFT_POOLS: %w", err)
	}
	for _, sub := range strings.Split(getenv("NIGHTSHIFT_SUBNET_IDS"), ",") {
		if sub = strings.TrimSpace(sub); sub != "" {
			s.Subnets = append(s.Subnets, sub)
		}
	}
	// A job that names no max_runtime or retries gets these unchecked, so
	// they must be what a job could have asked for; 0 runtime is the
	// scheduler's default.
	if v := getenv("NIGHTSHIFT_DEFAULT_MAX_RUNTIME"); v != "" {
		if s.MaxRuntime, err = time.ParseDuration(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_MAX_RUNTIME: %w", err)
		}
		if s.MaxRuntime != 0 && (s.MaxRuntime < job.MinRuntime || s.MaxRuntime > job.MaxRuntimeLimit) {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_MAX_RUNTIME: %v: want %v to %v", s.MaxRuntime, job.MinRuntime, job.MaxRuntimeLimit)
		}
	}
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{"NIGHTSHIFT_NOTEBOOK_IDLE", &s.NotebookIdle}, {"NIGHTSHIFT_NOTEBOOK_IDLE_CONNECTED", &s.NotebookIdleConnected}} {
		v := getenv(d.name)
		if v == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(v); err != nil {
			return s, fmt.Errorf("%s: %w", d.name, err)
		}
		if *d.dst < job.MinNotebookIdle || *d.dst > job.MaxNotebookIdle {
			return s, fmt.Errorf("%s: %v: want %v to %v", d.name, *d.dst, job.MinNotebookIdle, job.MaxNotebookIdle)
		}
	}
	s.CheckpointBuckets = []string{}
	for b := range strings.SplitSeq(getenv("NIGHTSHIFT_CHECKPOINT_BUCKETS"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			s.CheckpointBuckets = append(s.CheckpointBuckets, b)
		}
	}
	if v := getenv("NIGHTSHIFT_SPOT_PLACEMENT_SCORES"); v != "" {
		if s.SpotPlacementScores, err = strconv.ParseBool(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_SPOT_PLACEMENT_SCORES: %q: want true or false", v)
		}
	}
	if v := getenv("NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxQuotaRequest {
			return s, fmt.Errorf("NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS: %q: want a whole number of vCPUs from 0 (never ask) to %d", v, maxQuotaRequest)
		}
		s.QuotaRequestMax = n
	}
	if v := getenv("NIGHTSHIFT_DEFAULT_MAX_WAIT"); v != "" && v != "0" {
		if s.MaxWait, err = time.ParseDuration(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_MAX_WAIT: %w", err)
		}
		if s.MaxWait < job.MinMaxWait || s.MaxWait > job.MaxWaitLimit {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_MAX_WAIT: %v: want %v to %v, or 0 for ever", s.MaxWait, job.MinMaxWait, job.MaxWaitLimit)
		}
	}
	if v := getenv("NIGHTSHIFT_DEFAULT_RETRIES"); v != "" {
		if s.Retries, err = strconv.Atoi(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_RETRIES: %w", err)
		}
		if s.Retries < 0 || s.Retries > job.MaxRetries {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_RETRIES: %d: want 0 to %d", s.Retries, job.MaxRetries)
		}
	}
	if v := getenv("NIGHTSHIFT_RETENTION_DAYS"); v != "" {
		days, err := strconv.Atoi(v)
		if err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_RETENTION_DAYS: %w", err)
		}
		if days < 0 || days > MaxRetentionDays {
			return s, fmt.Errorf("NIGHTSHIFT_RETENTION_DAYS: %d: want 0 (for ever) to %d", days, MaxRetentionDays)
		}
		s.Retention = time.Duration(days) * 24 * time.Hour
	}
	if p := s.SecretsPrefix; p != "" && (!strings.HasPrefix(p, "/") || strings.ContainsAny(p, " *?")) {
		return s, fmt.Errorf("NIGHTSHIFT_SECRETS_PREFIX: %q: want a Parameter Store path such as /nightshift/secrets/", p)
	}
	if s.Watchdog, err = watchdogFromEnv(getenv); err != nil {
		return s, err
	}
	return s, nil
}

// checkPools holds the pools to what the rest of the deployment needs of
// them: a job that names no pool runs in DefaultPool, so it must be there,
// and every name must be one a tag and a metric name can carry.
func checkPools(pools map[string]scheduler.Pool) error {
	names := slices.Sorted(maps.Keys(pools))
	for _, name := range names {
		if !poolName.MatchString(name) {
			return fmt.Errorf("pool %q: want a name of 1 to 64 of A-Z a-z 0-9 . _ - starting with a letter or digit (it names the pool's instance tag and metrics)", name)
		}
	}
	if _, ok := pools[DefaultPool]; !ok {
		return fmt.Errorf("no pool %q: a job that names no pool runs there; the pools are %s", DefaultPool, strings.Join(names, ", "))
	}
	return nil
}

// watchdogFromEnv reads the watchdog's settings; unset ones keep their defaults.
func watchdogFromEnv(getenv func(string) string) (watchdog.Config, error) {
	var c watchdog.Config
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"NIGHTSHIFT_IDLE_TIMEOUT", &c.IdleTimeout},
		{"NIGHTSHIFT_WATCH_GRACE", &c.Grace},
		{"NIGHTSHIFT_STALL_TIMEOUT", &c.StallTimeout},
	}
	// 0 leaves the watchdog's default; a negative duration would stop
	// every watched instance at once or report every job as stalled.
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", d.name, err)
			}
			if x < 0 {
				return c, fmt.Errorf("%s: %v: want a duration ≥ 0", d.name, x)
			}
			*d.dst = x
		}
	}
	numbers := []struct {
		name string
		dst  *float64
	}{
		{"NIGHTSHIFT_IDLE_GPU_PERCENT", &c.GPUPercent},
		{"NIGHTSHIFT_IDLE_CPU_PERCENT", &c.CPUPercent},
		{"NIGHTSHIFT_IDLE_NETWORK_BYTES", &c.NetworkBytes},
		{"NIGHTSHIFT_DAILY_BUDGET_USD", &c.DailyBudget},
		{"NIGHTSHIFT_MONTHLY_BUDGET_USD", &c.MonthlyBudget},
	}
	// ParseFloat reads "NaN" and "Inf": NaN compares false with every spend
	// and metric, so a NaN budget would never trip and a NaN threshold
	// would take every instance for idle.
	for _, n := range numbers {
		if v := getenv(n.name); v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || !usable(x) {
				return c, fmt.Errorf("%s: want a finite number ≥ 0, got %q", n.name, v)
			}
			*n.dst = x
		}
	}
	switch p := getenv("NIGHTSHIFT_BUDGET_POLICY"); p {
	case "", watchdog.PolicyFinish, watchdog.PolicyCancel:
		c.Policy = p
	default:
		return c, fmt.Errorf("NIGHTSHIFT_BUDGET_POLICY: want finish or cancel, got %q", p)
	}
	if v := getenv("NIGHTSHIFT_DRY_RUN"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("NIGHTSHIFT_DRY_RUN: %w", err)
		}
		c.DryRun = b
	}
	if v := getenv("NIGHTSHIFT_PRICES"); v != "" {
		if err := json.Unmarshal([]byte(v), &c.Prices); err != nil {
			return c, fmt.Errorf("NIGHTSHIFT_PRICES: want {\"g5.xlarge\": 1.006, …}: %w", err)
		}
		for _, t := range slices.Sorted(maps.Keys(c.Prices)) {
			if !usable(c.Prices[t]) {
				return c, fmt.Errorf("NIGHTSHIFT_PRICES: %s: %v: want a price ≥ 0", t, c.Prices[t])
			}
		}
	}
	return c, nil
}

// usable reports whether x is a finite number ≥ 0.
func usable(x float64) bool { return x >= 0 && !math.IsInf(x, 1) }
