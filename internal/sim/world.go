package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/handler"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// AMIParameter is the DLAMI parameter the simulated account holds.
const AMIParameter = "/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.7-ubuntu-22.04/latest/ami-id"

// World runs the real handlers and Reconcile against the simulated cloud:
// SQS delivers job messages to the intake handler, EventBridge delivers the
// cloud's events to the dispatch handler, and a one-minute schedule ticks
// the watchdog handler — all on the virtual clock.
type World struct {
	Clock    *Clock
	Cloud    *Cloud
	Store    *store.Memory
	Sched    *scheduler.Scheduler
	Intake   handler.Intake
	Dispatch handler.Dispatch
	Watchdog handler.Watchdog
	Log      *slog.Logger
	// WatchdogSvc and Notice are the watchdog's sweep and the action notifier.
	WatchdogSvc *watchdog.Watchdog
	Notice      *notice.Notice

	// Drop, when set, decides which events EventBridge loses.
	Drop func(Event) bool
	// Mangle, when set, rewrites each batch of events before delivery:
	// EventBridge may reorder and duplicate them.
	Mangle func([]Event) []Event
	// Down takes the control plane away: no Lambda runs, no event is
	// delivered, no message is polled, the watchdog does not tick. Only the
	// instances' own timers act.
	Down bool
	// Errors collects the errors handlers returned, for tests to inspect.
	Errors []error
	// StoreCalls counts store operations by name.
	StoreCalls map[string]int
	// Invoke, when set, is called as each Lambda invocation starts, with the
	// function's name; the function it returns is called as it ends. The
	// chaos harness arms and disarms crashes with it.
	Invoke func(name string) (end func())

	queue    []events.SQSMessage
	sent     []events.SQSMessage
	msgSeq   int
	nextTick time.Time
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
	// WrapRunner, when set, wraps the runner the scheduler sends commands
	// through (to hold, say, the instances' own idle timer far off).
	WrapRunner func(scheduler.Runner) scheduler.Runner
}

// NewWorld builds a world with one pool "default" of g4dn.xlarge (cap 2)
// unless cfg names others.
func NewWorld(cfg Config) *World {
	clock := NewClock()
	cloud := New(clock)
	cloud.Parameters[AMIParameter] = "ami-0dlami000000001"
	if cfg.KeepWarm == 0 {
		cfg.KeepWarm = scheduler.DefaultKeepWarm
	}
	if cfg.Pools == nil {
		cfg.Pools = map[string]scheduler.Pool{"default": {Types: []string{"g4dn.xlarge"}, MaxInstances: 2, KeepWarm: jobDuration(cfg.KeepWarm)}}
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
	w := &World{Clock: clock, Cloud: cloud, Store: store.NewMemory(), Log: cfg.Log, StoreCalls: map[string]int{}}
	w.Store.Before = func(op string) error {
		cloud.mu.Lock()
		defer cloud.mu.Unlock()
		w.StoreCalls[op]++
		if cloud.Fault != nil {
			return cloud.Fault("store." + op)
		}
		return nil
	}
	f := fleet.New(cloud, cloud, fleet.Config{Region: "us-east-1", LaunchTemplateID: "lt-0sim", AMIParameter: AMIParameter}, clock.Now)
	r := runner.New(cloud, runner.Config{LogGroup: "/nightshift/sim/jobs", Script: runner.ScriptOptions{StateDir: cfg.StateDir}})
	var st store.Jobs = w.Store
	if cfg.WrapStore != nil {
		st = cfg.WrapStore(st)
	}
	var sr scheduler.Runner = r
	if cfg.WrapRunner != nil {
		sr = cfg.WrapRunner(sr)
	}
	w.Notice = notice.New(cloud, cloud, "arn:aws:sns:us-east-1:123456789012:nightshift", cfg.Log, clock.Now)
	w.WatchdogSvc = watchdog.New(cloud, cloud, cloud, r, st, w.Notice, cfg.Watchdog, clock.Now, cfg.Log)
	w.Sched = scheduler.New(st, f, sr, w.Notice, scheduler.Config{Pools: cfg.Pools, DefaultPool: "default", Retries: cfg.Retries, Setup: cfg.Setup}, clock.Now, cfg.Log)
	w.Intake = handler.Intake{S: w.Sched, Log: cfg.Log}
	w.Dispatch = handler.Dispatch{S: w.Sched, Log: cfg.Log}
	w.Watchdog = handler.Watchdog{S: w.Sched, W: w.WatchdogSvc, Log: cfg.Log}
	w.nextTick = clock.Now().Add(scheduler.Period)
	return w
}

// Send puts a job message on the queue and returns its message id.
func (w *World) Send(body string) string {
	w.msgSeq++
	id := fmt.Sprintf("5f0c6e2a-0000-4000-8000-%012d", w.msgSeq)
	m := events.SQSMessage{
		MessageId: id, Body: body, EventSource: "aws:sqs",
		EventSourceARN: "arn:aws:sqs:us-east-1:123456789012:nightshift-jobs",
		Attributes:     map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": strconv.FormatInt(w.Clock.Now().UnixMilli(), 10)},
	}
	w.queue = append(w.queue, m)
	w.sent = append(w.sent, m)
	return id
}

// Sent returns every message sent so far, in order.
func (w *World) Sent() []events.SQSMessage { return w.sent }

// Redeliver puts a copy of an already sent message back on the queue, as
// SQS's at-least-once delivery does.
func (w *World) Redeliver(m events.SQSMessage) { w.queue = append(w.queue, m) }

// Poll delivers the queued messages to the intake handler in batches of up
// to ten, as the SQS event source does. Failed items go back on the queue.
func (w *World) Poll(ctx context.Context) []events.SQSMessage {
	var delivered []events.SQSMessage
	for len(w.queue) > 0 {
		n := min(10, len(w.queue))
		batch := w.queue[:n]
		w.queue = w.queue[n:]
		end := w.invoke("intake")
		resp, err := w.Intake.Handle(ctx, events.SQSEvent{Records: batch})
		end()
		delivered = append(delivered, batch...)
		if err != nil {
			w.Errors = append(w.Errors, err)
			w.queue = append(w.queue, batch...)
			break
		}
		for _, f := range resp.BatchItemFailures {
			for _, m := range batch {
				if m.MessageId == f.ItemIdentifier {
					w.queue = append(w.queue, m)
				}
			}
		}
		if len(resp.BatchItemFailures) > 0 {
			break // retried on the next poll, as after a visibility timeout
		}
	}
	w.deliverEvents(ctx)
	return delivered
}

// deliverEvents hands the cloud's events to the dispatch handler, as
// EventBridge rules do, until no new event is emitted.
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
			end := w.invoke("dispatch")
			if err := w.Dispatch.Handle(ctx, json.RawMessage(e.JSON())); err != nil {
				w.Errors = append(w.Errors, err)
			}
			end()
		}
	}
}

func (w *World) invoke(name string) func() {
	if w.Invoke == nil {
		return func() {}
	}
	return w.Invoke(name)
}

// Tick runs the watchdog handler once, as its schedule does.
func (w *World) Tick(ctx context.Context) {
	tick := fmt.Sprintf(`{"version":"0","id":"tick","detail-type":"Scheduled Event","source":"aws.scheduler","account":"123456789012","time":%q,"region":"us-east-1","resources":[],"detail":{}}`, w.Clock.Now().UTC().Format(time.RFC3339))
	end := w.invoke("watchdog")
	if err := w.Watchdog.Handle(ctx, json.RawMessage(tick)); err != nil {
		w.Errors = append(w.Errors, err)
	}
	end()
	w.deliverEvents(ctx)
}

// Run advances the virtual clock by d: timed cloud actions happen in order,
// their events are delivered, queued messages are polled, and the watchdog
// ticks every minute.
func (w *World) Run(ctx context.Context, d time.Duration) {
	end := w.Clock.Now().Add(d)
	for {
		next := w.nextTick
		if t, ok := w.Clock.Next(); ok && t.Before(next) {
			next = t
		}
		if next.After(end) {
			w.Clock.AdvanceTo(end)
			w.deliverEvents(ctx)
			return
		}
		w.Clock.AdvanceTo(next)
		w.deliverEvents(ctx)
		if len(w.queue) > 0 && !w.Down {
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

func jobDuration(d time.Duration) job.Duration { return job.Duration(d) }
