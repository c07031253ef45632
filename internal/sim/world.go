// Package sim is the harness that runs nightshift on the simulated AWS: it
// builds the product with service.New — the same wiring the Lambda
// functions deploy — over internal/awssim's cloud and the in-memory store,
// models what nightshift's wrapper script does on an instance, models the
// stack's IAM policy, and plays the AWS event sources: SQS batches to the
// intake handler, EventBridge events to the dispatch handler, the
// one-minute schedule to the watchdog handler, all on the virtual clock.
package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/service"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/vclock"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// The simulated cloud answers every call each consumer makes, with the
// SDK's exact signatures.
var (
	_ fleet.EC2           = (*awssim.Cloud)(nil)
	_ fleet.Parameters    = (*awssim.Cloud)(nil)
	_ runner.SSM          = (*awssim.Cloud)(nil)
	_ watchdog.EC2        = (*awssim.Cloud)(nil)
	_ watchdog.CloudWatch = (*awssim.Cloud)(nil)
	_ watchdog.Sessions   = (*awssim.Cloud)(nil)
	_ notice.Tagger       = (*awssim.Cloud)(nil)
	_ notice.Publisher    = (*awssim.Cloud)(nil)
	_ service.EC2         = (*awssim.Cloud)(nil)
	_ service.SSM         = (*awssim.Cloud)(nil)
	_ service.CloudWatch  = (*awssim.Cloud)(nil)
	_ service.SNS         = (*awssim.Cloud)(nil)
	_ service.SQS         = (*awssim.Cloud)(nil)
	_ service.Quotas      = (*awssim.Cloud)(nil)
)

// The simulated deployment.
const (
	// AMIParameter is the DLAMI parameter the simulated account holds.
	AMIParameter = config.DefaultAMIParameter
	// AMI is its value.
	AMI = "ami-0dlami000000001"
	// DLAMISnapshotGB is the size of its root snapshot: a smaller root
	// volume is refused.
	DLAMISnapshotGB = 65
	// LaunchTemplate is the stack's launch template.
	LaunchTemplate = "lt-0sim"
	// TopicARN is the stack's SNS topic.
	TopicARN = "arn:aws:sns:" + awssim.Region + ":" + awssim.Account + ":nightshift"
	// QueueARN is the jobs queue.
	QueueARN = "arn:aws:sqs:" + awssim.Region + ":" + awssim.Account + ":nightshift-jobs"
)

// World runs the real handlers and Reconcile against the simulated cloud.
type World struct {
	Clock *vclock.Clock
	Cloud *awssim.Cloud
	Store *store.Memory
	// Svc is nightshift, as service.New wires it.
	Svc *service.Service
	Log *slog.Logger
	// Exec is what a job's command does on an instance; nil means it
	// succeeds after a minute. The wrapper around it (lock, timers,
	// heartbeat) is modelled by the world.
	Exec ExecFunc
	// NotebookStuck: notebooks' wrappers look and publish NotebookState
	// but cannot end JupyterLab by themselves (the watchdog's backstop
	// must); a stop still ends it.
	NotebookStuck bool

	// Drop, when set, decides which events EventBridge loses.
	Drop func(awssim.Event) bool
	// Mangle, when set, rewrites each batch of events before delivery:
	// EventBridge may reorder and duplicate them.
	Mangle func([]awssim.Event) []awssim.Event
	// Down takes the control plane away: no Lambda runs, no event is
	// delivered, no message is polled, the watchdog does not tick. Only the
	// instances' own timers act.
	Down bool
	// Errors collects the errors handlers returned, for tests to inspect.
	Errors []error
	// StoreCalls counts store operations by name.
	StoreCalls map[string]int
	// Invoke, when set, is called as each Lambda invocation starts; the
	// function it returns is called as it ends, with the handler's error.
	// The chaos harness arms and disarms crashes with it.
	Invoke func(l *Lambda) (end func(err error))
	// Concurrent, when set, runs invocations at once, as AWS does (see
	// Concurrency); nil runs each to its end before the next starts.
	Concurrent *Concurrency
	// Stepped, when set, is called after every step of an invocation in
	// flight: the chaos harness checks its invariants there.
	Stepped func()

	mu       sync.Mutex
	attempts map[string]Wrapped
	// training is what each attempt of a checkpointed job did (Training).
	training map[string][]*Training
	nextTick time.Time
	lambdas
}

// Config sets up a World.
type Config struct {
	Pools    map[string]scheduler.Pool
	KeepWarm time.Duration
	// Retries is the deployment's default retries: 0 means the default, -1 none.
	Retries int
	Log     *slog.Logger
	// StateDir is where the wrapper keeps its locks (for a bash executor).
	StateDir string
	// Setup is the deployment's default environment activation.
	Setup string
	// Watchdog is the watchdog's configuration (idle, stall, budget, dry run).
	Watchdog watchdog.Config
	// WrapStore, when set, wraps the store the scheduler sees (to model,
	// say, an index that lags behind writes).
	WrapStore func(store.Jobs) store.Jobs
	// Subnets are the stack's subnets, in the order launches try them,
	// each with its Availability Zone; none: the default zone only.
	Subnets []Subnet
	// NoRecheck deploys without the delayed re-checks (no queue URL): an
	// instance's readiness and a keep-warm's end wait for the tick, as
	// before they existed.
	NoRecheck bool
	// QuotaRequestMax lets nightshift ask for vCPU quota increases up to
	// this many vCPUs (the stack's QuotaRequestMaxVcpus); 0: it never asks.
	QuotaRequestMax int
	// PlacementScores orders spot launches' subnets by EC2's spot
	// placement scores (the stack's SpotPlacementScores).
	PlacementScores bool
	// NoQuotas deploys without the quota preflight (no Service Quotas
	// client): launches meet EC2's own quota check, as before it existed.
	NoQuotas bool
}

// Subnet is one of the stack's subnets and its Availability Zone.
type Subnet struct{ ID, Zone string }

// NewWorld builds a world with one pool "default" of g4dn.xlarge (cap 2)
// unless cfg names others.
func NewWorld(cfg Config) *World {
	clock := vclock.New()
	cloud := awssim.New(clock)
	cloud.Parameters[AMIParameter] = AMI
	cloud.Images[AMI] = awssim.Image{Snapshot: "snap-0dlami000000001", SnapshotGB: DLAMISnapshotGB}
	cloud.LaunchTemplates[LaunchTemplate] = true
	cloud.Policy = stackPolicy
	if cfg.KeepWarm == 0 {
		cfg.KeepWarm = scheduler.DefaultKeepWarm
	}
	if cfg.Pools == nil {
		cfg.Pools = map[string]scheduler.Pool{config.DefaultPool: {Types: []string{"g4dn.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(cfg.KeepWarm)}}
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = scheduler.DefaultRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.Setup == "" {
		cfg.Setup = ". /opt/pytorch/bin/activate"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// The handlers' logs read as the simulated timeline.
	cfg.Log = slog.New(LogHandler(cfg.Log.Handler(), clock))
	w := &World{Clock: clock, Cloud: cloud, Store: store.NewMemory(), Log: cfg.Log, StoreCalls: map[string]int{}, attempts: map[string]Wrapped{}}
	cloud.Yield = func(string) error { return w.yield() }
	w.Store.Before = func(op string) error {
		if err := w.yield(); err != nil {
			return err
		}
		w.mu.Lock()
		w.StoreCalls[op]++
		w.mu.Unlock()
		return cloud.Inject("store." + op)
	}
	var st store.Jobs = w.Store
	if cfg.WrapStore != nil {
		st = cfg.WrapStore(st)
	}
	var subnets []string
	for _, sn := range cfg.Subnets {
		cloud.Subnets[sn.ID] = sn.Zone
		subnets = append(subnets, sn.ID)
	}
	settings := config.Settings{
		Subnets: subnets,
		Pools:   cfg.Pools, LaunchTemplateID: LaunchTemplate, AMIParameter: AMIParameter,
		LogGroup: "/nightshift/sim/jobs", Setup: cfg.Setup, Retries: cfg.Retries,
		Region: awssim.Region, TopicARN: TopicARN, Watchdog: cfg.Watchdog, StateDir: cfg.StateDir,
		QuotaRequestMax: cfg.QuotaRequestMax, SpotPlacementScores: cfg.PlacementScores,
	}
	clients := service.Clients{EC2: cloud, SSM: cloud, CloudWatch: cloud, SNS: cloud}
	if !cfg.NoQuotas {
		clients.ServiceQuotas = cloud
	}
	if !cfg.NoRecheck {
		settings.QueueURL = awssim.QueueURL
		clients.SQS = cloud
	}
	w.Svc = service.New(settings, clients, st, clock.Now, cfg.Log)
	cloud.Exec = wrapper{w}
	w.nextTick = clock.Now().Add(scheduler.Period)
	return w
}

// Send puts a job message on the queue and returns its message id.
func (w *World) Send(body string) string { return w.Cloud.Enqueue(body) }

// Sent returns every message sent so far, in order.
func (w *World) Sent() []awssim.Message { return w.Cloud.Sent() }

// Redeliver puts a copy of an already sent message back on the queue, as
// SQS's at-least-once delivery does.
func (w *World) Redeliver(m awssim.Message) { w.Cloud.Redeliver(m) }

// Launch starts an instance as a person does, outside nightshift, with the
// given tags. A watched one has the CloudWatch agent: the stack's State
// Manager association installs it on watched instances too.
func (w *World) Launch(typ string, tags map[string]string) string {
	return w.Cloud.Launch(typ, tags, tags[watchdog.TagWatch] == "true")
}

// Poll delivers the queued messages to the intake handler in batches of up
// to ten, as the SQS event source does. Failed items go back on the queue.
// Serially, batches are handled one after the other and a failed batch
// waits for the next poll; with Concurrency, up to SQSBatches run at once.
func (w *World) Poll(ctx context.Context) []awssim.Message {
	var delivered []awssim.Message
	for w.Cloud.Waiting() > 0 && w.intakeSlots() > 0 {
		batch := w.Cloud.Receive(10)
		delivered = append(delivered, batch...)
		retry := false
		w.lambda(ctx, "intake", func(ctx context.Context) error {
			resp, err := w.Svc.Intake.Handle(ctx, sqsEvent(batch))
			failed := map[string]bool{}
			for _, f := range resp.BatchItemFailures {
				failed[f.ItemIdentifier] = true
			}
			for _, m := range batch {
				if err != nil || failed[m.ID] {
					w.Cloud.Return(m.ID)
				} else {
					w.Cloud.Delete(m.ID)
				}
			}
			retry = err != nil || len(failed) > 0
			return err
		})
		if w.Concurrent == nil && retry {
			break // retried on the next poll, as after a visibility timeout
		}
	}
	if w.Concurrent == nil {
		w.deliverEvents(ctx)
	}
	return delivered
}

// intakeSlots is how many more intake batches may start now.
func (w *World) intakeSlots() int {
	if w.Concurrent == nil {
		return 1
	}
	n := w.Concurrent.SQSBatches
	for _, l := range w.flight {
		if l.Function == "intake" {
			n--
		}
	}
	return n
}

// sqsEvent is the Lambda event of a batch, as the SQS event source sends it.
func sqsEvent(batch []awssim.Message) events.SQSEvent {
	ev := events.SQSEvent{}
	for _, m := range batch {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: m.ID, Body: m.Body, EventSource: "aws:sqs", EventSourceARN: QueueARN, AWSRegion: awssim.Region,
			Attributes: map[string]string{
				"ApproximateReceiveCount": strconv.Itoa(m.Receives),
				"SentTimestamp":           strconv.FormatInt(m.Sent.UnixMilli(), 10),
			},
		})
	}
	return ev
}

// deliverEvents hands the cloud's events to the dispatch handler, one
// invocation each, as EventBridge rules do. Serially it repeats until no
// new event is emitted; with Concurrency the invocations start and the
// events they cause come with later steps.
func (w *World) deliverEvents(ctx context.Context) {
	if w.Down {
		w.Cloud.Events() // lost: nothing is listening
		return
	}
	for range 100 {
		evs := w.Cloud.Events()
		if len(evs) == 0 {
			return
		}
		if w.Mangle != nil {
			evs = w.Mangle(evs)
		}
		for _, e := range evs {
			if w.Drop != nil && w.Drop(e) {
				continue
			}
			raw := json.RawMessage(e.JSON())
			w.lambda(ctx, "dispatch", func(ctx context.Context) error { return w.Svc.Dispatch.Handle(ctx, raw) })
		}
		if w.Concurrent != nil {
			return
		}
	}
}

// Tick runs the watchdog handler once, as its schedule does.
func (w *World) Tick(ctx context.Context) {
	tick := json.RawMessage(fmt.Sprintf(`{"version":"0","id":"tick","detail-type":"Scheduled Event","source":"aws.scheduler","account":%q,"time":%q,"region":%q,"resources":[],"detail":{}}`,
		awssim.Account, w.Clock.Now().UTC().Format(time.RFC3339), awssim.Region))
	w.lambda(ctx, "watchdog", func(ctx context.Context) error { return w.Svc.Tick.Handle(ctx, tick) })
	if w.Concurrent == nil {
		w.deliverEvents(ctx)
	}
}

// Run advances the virtual clock by d: timed cloud actions happen in order,
// their events are delivered, queued messages are polled, and the watchdog
// ticks every minute. With Concurrency, invocations in flight move one call
// at a time, in an order drawn from its random source, the clock moving a
// little between calls; Run returns once none is in flight.
func (w *World) Run(ctx context.Context, d time.Duration) {
	end := w.Clock.Now().Add(d)
	for {
		if len(w.flight) > 0 {
			w.step()
			t := w.Clock.Now().Add(time.Duration(w.Concurrent.Rand.Int64N(int64(w.Concurrent.MaxStep) + 1)))
			w.Clock.AdvanceTo(minTime(t, end, w.nextTick))
		} else {
			next := w.nextTick
			if t, ok := w.Clock.Next(); ok && t.Before(next) {
				next = t
			}
			if next.After(end) {
				w.Clock.AdvanceTo(end)
				w.deliverEvents(ctx)
				if len(w.flight) == 0 {
					return
				}
				continue
			}
			w.Clock.AdvanceTo(next)
		}
		w.deliverEvents(ctx)
		if w.Cloud.Waiting() > 0 && !w.Down {
			w.Poll(ctx)
		}
		if !w.Clock.Now().Before(w.nextTick) {
			w.nextTick = w.nextTick.Add(scheduler.Period)
			if !w.Down {
				w.Tick(ctx)
			}
		}
	}
}

func minTime(ts ...time.Time) time.Time {
	m := ts[0]
	for _, t := range ts[1:] {
		if t.Before(m) {
			m = t
		}
	}
	return m
}

// RunUntil runs until done reports true or limit passes; it reports done.
func (w *World) RunUntil(ctx context.Context, limit time.Duration, done func() bool) bool {
	end := w.Clock.Now().Add(limit)
	for w.Clock.Now().Before(end) {
		if done() {
			return true
		}
		w.Run(ctx, 10*time.Second)
	}
	return done()
}
