// Package handler adapts Lambda events to the scheduler: it decodes each
// trigger's payload, records what it says, and reconciles. functions/*/main.go
// only wire these handlers up.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Scheduler is what the handlers need from the scheduler.
type Scheduler interface {
	Submit(ctx context.Context, raw []byte, messageID string) (scheduler.Result, error)
	Reconcile(ctx context.Context, o scheduler.Options) error
	CommandEvent(ctx context.Context, commandID, instanceID, status string) error
	InstanceEvent(ctx context.Context, instanceID, state string) error
	SpotWarning(ctx context.Context, instanceID, action string) error
	Rebalance(ctx context.Context, instanceID string) error
}

var _ Scheduler = (*scheduler.Scheduler)(nil)

// Rechecker is what the intake needs for re-check messages: a reconcile
// that then asks again for the instances still not ready.
type Rechecker interface {
	Recheck(ctx context.Context, o scheduler.Options, instanceIDs []string) error
}

var _ Rechecker = (*scheduler.Scheduler)(nil)

// Intake handles SQS batches of job messages.
type Intake struct {
	S   Scheduler
	Log *slog.Logger
	// R handles re-check messages; nil reconciles for them and asks no
	// more (the tick takes over).
	R Rechecker
}

// Handle records every message of the batch — job messages and cancel
// messages — then reconciles once. An invalid message, or a cancel for no
// live job, is acknowledged (it can never succeed) and logged with its reason;
// a message the store could not record is returned as a batch item failure,
// so SQS delivers it again.
func (h Intake) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	var accepted []*job.Job
	var rechecks []string
	for _, m := range ev.Records {
		if job.IsRecheck([]byte(m.Body)) {
			// nightshift's own delayed re-check: a reconcile, below. A
			// malformed one can never succeed: acknowledged, not retried.
			r, err := job.ParseRecheck([]byte(m.Body))
			if err != nil {
				h.Log.ErrorContext(ctx, "malformed recheck message; dropped", "message", m.MessageId, "err", err)
				continue
			}
			rechecks = append(rechecks, r.InstanceID)
			continue
		}
		res, err := h.S.Submit(ctx, []byte(m.Body), m.MessageId)
		switch {
		case err != nil:
			h.Log.ErrorContext(ctx, "message not recorded; SQS will retry it", "message", m.MessageId, "job", res.ID, "err", err)
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: m.MessageId})
		case res.Outcome == scheduler.Rejected:
			h.Log.WarnContext(ctx, "rejected job message", "message", m.MessageId, "job", res.ID, "reason", res.Reason.Error())
		case res.Outcome == scheduler.Duplicate:
			h.Log.InfoContext(ctx, "duplicate job message; already recorded", "message", m.MessageId, "job", res.ID)
		case res.Outcome == scheduler.NoSuchJob:
			h.Log.WarnContext(ctx, "cancel message for a job that does not exist; nothing cancelled", "message", m.MessageId, "job", res.ID)
		case res.Outcome == scheduler.Ended:
			h.Log.InfoContext(ctx, "cancel message for a job that has ended; nothing cancelled", "message", m.MessageId, "job", res.ID, "state", res.Job.State)
		case res.Outcome == scheduler.Cancelled:
			// Its instance, if it had one, is free: the reconcile below
			// may give it to the next job.
			h.Log.InfoContext(ctx, "cancelled job", "message", m.MessageId, "job", res.ID, "reason", res.Job.Reason)
			accepted = append(accepted, res.Job)
		case res.Outcome == scheduler.Cancelling:
			// The reconcile below frees its instance or stops its command.
			h.Log.InfoContext(ctx, "cancelling job", "message", m.MessageId, "job", res.ID, "state", res.Job.State)
			accepted = append(accepted, res.Job)
		default:
			accepted = append(accepted, res.Job)
		}
	}
	// The jobs are recorded: a failed reconcile only delays them until the
	// watchdog's next tick, so it must not fail the batch. Nor does a
	// re-check's: it is dropped, and the tick does its work.
	switch {
	case len(rechecks) > 0 && h.R != nil:
		if err := h.R.Recheck(ctx, scheduler.Options{Fresh: accepted}, rechecks); err != nil {
			h.Log.ErrorContext(ctx, "reconcile after intake", "err", err)
		}
	case len(accepted) > 0 || len(rechecks) > 0:
		if err := h.S.Reconcile(ctx, scheduler.Options{Fresh: accepted}); err != nil {
			h.Log.ErrorContext(ctx, "reconcile after intake", "err", err)
		}
	}
	return resp, nil
}

// Dispatch handles the EventBridge events of EC2 and SSM.
type Dispatch struct {
	S   Scheduler
	Log *slog.Logger
}

// The detail-types Dispatch understands.
const (
	DetailInstanceState = "EC2 Instance State-change Notification"
	DetailCommandStatus = "EC2 Command Invocation Status-change Notification"
	DetailSpotWarning   = "EC2 Spot Instance Interruption Warning"
	DetailRebalance     = "EC2 Instance Rebalance Recommendation"
)

// ErrUnknownEvent: the event is not one Dispatch handles. It is returned (not
// retried forever: EventBridge gives up after its retry policy) so that a
// wrong rule shows up as an error in the function's metrics.
var ErrUnknownEvent = errors.New("unknown event")

// Handle decodes one EventBridge event and acts on it.
func (h Dispatch) Handle(ctx context.Context, raw json.RawMessage) error {
	var ev events.CloudWatchEvent
	if err := json.Unmarshal(raw, &ev); err != nil {
		return fmt.Errorf("%w: not an EventBridge event: %v", ErrUnknownEvent, err)
	}
	switch ev.DetailType {
	case DetailInstanceState:
		var d InstanceStateDetail
		if err := decodeDetail(ev, &d); err != nil {
			return err
		}
		if d.InstanceID == "" || d.State == "" {
			return fmt.Errorf("%w: %s without instance-id or state", ErrUnknownEvent, ev.DetailType)
		}
		return h.S.InstanceEvent(ctx, d.InstanceID, d.State)
	case DetailCommandStatus:
		var d CommandStatusDetail
		if err := decodeDetail(ev, &d); err != nil {
			return err
		}
		if d.CommandID == "" || d.InstanceID == "" || d.Status == "" {
			return fmt.Errorf("%w: %s without command-id, instance-id or status", ErrUnknownEvent, ev.DetailType)
		}
		return h.S.CommandEvent(ctx, d.CommandID, d.InstanceID, d.Status)
	case DetailSpotWarning:
		var d SpotWarningDetail
		if err := decodeDetail(ev, &d); err != nil {
			return err
		}
		if d.InstanceID == "" {
			return fmt.Errorf("%w: %s without instance-id", ErrUnknownEvent, ev.DetailType)
		}
		return h.S.SpotWarning(ctx, d.InstanceID, d.InstanceAction)
	case DetailRebalance:
		var d RebalanceDetail
		if err := decodeDetail(ev, &d); err != nil {
			return err
		}
		if d.InstanceID == "" {
			return fmt.Errorf("%w: %s without instance-id", ErrUnknownEvent, ev.DetailType)
		}
		return h.S.Rebalance(ctx, d.InstanceID)
	}
	h.Log.WarnContext(ctx, "ignored event", "detail_type", ev.DetailType, "source", ev.Source)
	return fmt.Errorf("%w: detail-type %q from %q", ErrUnknownEvent, ev.DetailType, ev.Source)
}

func decodeDetail(ev events.CloudWatchEvent, v any) error {
	if err := json.Unmarshal(ev.Detail, v); err != nil {
		return fmt.Errorf("%w: %s detail: %v", ErrUnknownEvent, ev.DetailType, err)
	}
	return nil
}

// InstanceStateDetail is the detail of an EC2 state change:
//
//	{"instance-id": "i-0abcd1234efgh5678", "state": "stopped"}
type InstanceStateDetail struct {
	InstanceID string `json:"instance-id"`
	State      string `json:"state"`
}

// CommandStatusDetail is the detail of an SSM command invocation status change:
//
//	{"command-id": "4b5ad6f3-…", "document-name": "AWS-RunShellScript",
//	 "instance-id": "i-0abcd1234efgh5678", "requested-date-time": "2026-11-25T09:01:02.123Z",
//	 "status": "Success"}
type CommandStatusDetail struct {
	CommandID    string `json:"command-id"`
	DocumentName string `json:"document-name"`
	InstanceID   string `json:"instance-id"`
	Requested    string `json:"requested-date-time"`
	Status       string `json:"status"`
}

// SpotWarningDetail is the detail of a spot interruption warning:
//
//	{"instance-id": "i-0abcd1234efgh5678", "instance-action": "terminate"}
type SpotWarningDetail struct {
	InstanceID     string `json:"instance-id"`
	InstanceAction string `json:"instance-action"`
}

// RebalanceDetail is the detail of an EC2 instance rebalance
// recommendation (a spot instance at elevated risk of interruption):
//
//	{"instance-id": "i-0abcd1234efgh5678"}
type RebalanceDetail struct {
	InstanceID string `json:"instance-id"`
}

// Sweeper is the watchdog's sweep and the figures the tick publishes.
type Sweeper interface {
	Sweep(ctx context.Context) (watchdog.Report, error)
	Figures(ctx context.Context, rep watchdog.Report, actions map[string]int) (metrics.Tick, error)
}

var _ Sweeper = (*watchdog.Watchdog)(nil)

// Watchdog handles the one-minute tick.
type Watchdog struct {
	S   Scheduler
	W   Sweeper
	Log *slog.Logger
	// Metrics receives the tick's figures as one embedded-metric-format
	// document; it must carry the stack (metrics.WithStack). Nil publishes
	// none.
	Metrics *slog.Logger
	// Now stamps the figures.
	Now func() time.Time
}

// Handle sweeps (watched instances, stalls, budget), then reconciles with
// polling, catching whatever events were lost, then publishes the tick's
// figures: the live jobs, the instances by pool, the spend, and the
// actions the sweep and the reconcile took. The payload is not read: any
// tick is the same tick. A failed sweep does not stop the reconcile, and
// figures that cannot be read do not fail the tick.
func (h Watchdog) Handle(ctx context.Context, _ json.RawMessage) error {
	ctx, tally := metrics.WithActions(ctx)
	var errs []error
	var rep watchdog.Report
	if h.W != nil {
		var err error
		rep, err = h.W.Sweep(ctx)
		errs = append(errs, err)
		level := slog.LevelDebug
		if len(rep.Actions) > 0 {
			level = slog.LevelInfo
		}
		h.Log.Log(ctx, level, "sweep", "watched", rep.Watched, "managed", rep.Managed, "actions", len(rep.Actions),
			"spend_today_usd", rep.DaySpend, "spend_month_usd", rep.MonthSpend)
	}
	errs = append(errs, h.S.Reconcile(ctx, scheduler.Options{Poll: true}))
	if h.W != nil && h.Metrics != nil {
		h.publish(ctx, rep, tally.Counts())
	}
	return errors.Join(errs...)
}

// publish writes the tick's figures. What could not be read is left out
// and logged: the figures are for people, and a retried tick would count
// its actions twice.
func (h Watchdog) publish(ctx context.Context, rep watchdog.Report, actions map[string]int) {
	t, err := h.W.Figures(ctx, rep, actions)
	if err != nil {
		h.Log.WarnContext(ctx, "tick figures incomplete", "err", err)
	}
	if err := metrics.Emit(ctx, h.Metrics, t.Documents(h.Now())...); err != nil {
		h.Log.ErrorContext(ctx, "tick figures not published", "err", err)
	}
}
