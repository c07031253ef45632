// Package service wires nightshift together: from a deployment's settings,
// its AWS clients and its jobs store it builds the scheduler, the watchdog
// and the handler of each Lambda function. The deployed functions (over the
// real SDK clients and DynamoDB) and the simulation (over the simulated cloud
// and the in-memory store) both build the product with New, so what the
// simulation tests is the wiring that is deployed.
package service

import (
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/handler"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/queue"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// EC2 is every EC2 call nightshift makes: the union of what its consumers declare.
type EC2 interface {
	fleet.EC2
	watchdog.EC2
	notice.Tagger
}

// SSM is every SSM call nightshift makes.
type SSM interface {
	runner.SSM
	fleet.Parameters
	watchdog.Sessions
}

// CloudWatch is every CloudWatch call nightshift makes.
type CloudWatch interface {
	watchdog.CloudWatch
}

// SNS is every SNS call nightshift makes.
type SNS interface {
	notice.Publisher
}

// SQS is every SQS call nightshift makes (the intake's own batches come
// from the event source, not from calls).
type SQS interface {
	queue.SQS
}

// Quotas is every Service Quotas call nightshift makes.
type Quotas interface {
	quota.ServiceQuotas
}

// Clients are the AWS APIs nightshift runs on, one per service.
type Clients struct {
	EC2        EC2
	SSM        SSM
	CloudWatch CloudWatch
	SNS        SNS
	// SQS sends the delayed re-checks to the jobs queue; nil sends none.
	SQS SQS
	// ServiceQuotas reads the vCPU quotas before launches and files the
	// increases; nil launches without the preflight (EC2's check decides).
	ServiceQuotas Quotas
}

// Service is nightshift wired: the scheduler, the watchdog, and the
// handler of each function.
type Service struct {
	// Fleet is the one fleet every handler launches through: a harness
	// watches the rungs it skips (Fleet.OnSkip).
	Fleet     *fleet.Fleet
	Scheduler *scheduler.Scheduler
	Watchdog  *watchdog.Watchdog
	// Intake handles the jobs queue's SQS batches.
	Intake handler.Intake
	// Dispatch handles EventBridge's EC2 and SSM events.
	Dispatch handler.Dispatch
	// Tick handles the watchdog's one-minute schedule.
	Tick handler.Watchdog
}

// New builds nightshift from settings, clients and a jobs store, on the
// clock now.
//
// Every function writes its metrics as log lines (internal/metrics) on log,
// with the stack's name: the watchdog its tick's figures, every function
// the jobs that end in it.
func New(s config.Settings, c Clients, st store.Jobs, now func() time.Time, log *slog.Logger) *Service {
	stack := s.Stack
	if stack == "" {
		stack = config.DefaultStack
	}
	mlog := metrics.WithStack(log, stack)
	st = endCounter{Jobs: st, log: mlog, now: now}
	f := fleet.New(c.EC2, c.SSM, fleet.Config{
		Region: s.Region, LaunchTemplateID: s.LaunchTemplateID, Subnets: s.Subnets, AMIParameter: s.AMIParameter,
		PlacementScores: s.SpotPlacementScores,
	}, now)
	r := runner.New(c.SSM, runner.Config{
		LogGroup: s.LogGroup, Bucket: s.OutputBucket, KeyPrefix: "nightshift",
		Script: runner.ScriptOptions{Region: s.Region, StateDir: s.StateDir},
	})
	n := notice.New(c.EC2, c.SNS, s.TopicARN, log, now)
	sched := scheduler.New(st, f, r, n, s.Scheduler(), now, log)
	if c.SQS != nil && s.QueueURL != "" {
		sched.UseRechecker(queue.New(c.SQS, s.QueueURL))
	}
	if c.ServiceQuotas != nil {
		sched.UseQuotas(quota.New(c.ServiceQuotas, c.EC2, quota.Config{}, now))
	}
	wd := watchdog.New(watchdog.Deps{
		Cloud:  &watchdog.AWS{EC2: c.EC2, CloudWatch: c.CloudWatch, SSM: c.SSM, Fleet: f, Now: now},
		Runner: r, Store: st, Notice: n, Config: s.Watchdog, Now: now, Log: log,
		Pools: slices.Sorted(maps.Keys(s.Pools)),
	})
	return &Service{
		Fleet:     f,
		Scheduler: sched,
		Watchdog:  wd,
		Intake:    handler.Intake{S: sched, R: sched, Log: log},
		Dispatch:  handler.Dispatch{S: sched, Log: log},
		Tick:      handler.Watchdog{S: sched, W: wd, Log: log, Metrics: mlog, Now: now},
	}
}
