package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// StopGrace is how long a cancelled job's wrapper has, once asked to stop,
// to end its command and sync its outputs; past it the command is cancelled
// outright (SSM kills its process group: outputs not yet synced are lost).
const StopGrace = 5 * time.Minute

// cancelTries bounds the re-reads of a job whose write a cancel keeps
// losing: another invocation moves it meanwhile, and each lost race reads
// its new state. A job that moves this often is moving toward its end.
const cancelTries = 5

// cancel records a cancel message. A QUEUED job, or a PLACED one no command
// has been sent for, is cancelled at once, its instance freed; one whose
// command may have been sent is marked, and the reconcile that follows
// stops its command (see stop).
// A cancel for a finished job, or for an id with no job, changes nothing:
// its Result says so, and the message is acknowledged.
func (s *Scheduler) cancel(ctx context.Context, c job.Cancel, messageID string) (Result, error) {
	for range cancelTries {
		j, err := s.store.Job(ctx, c.ID)
		if errors.Is(err, store.ErrNotFound) {
			return Result{ID: c.ID, Outcome: NoSuchJob}, nil
		}
		if err != nil {
			return Result{ID: c.ID}, fmt.Errorf("read %s to cancel it: %w", c.ID, err)
		}
		switch {
		case j.State.Terminal():
			return Result{ID: j.ID, Outcome: Ended, Job: j}, nil
		case j.CancelRequested():
			// A repeated cancel: the first is being carried out.
			return Result{ID: j.ID, Outcome: Cancelling, Job: j}, nil
		}
		now := s.now().UTC()
		from := j.State
		j.CancelRequestedAt, j.CancelReason = now, c.Reason
		out, ops := Cancelling, []store.Op(nil)
		switch {
		case j.State == job.Queued || j.State == job.Placed && j.DispatchedAt.IsZero():
			// No command can have been sent: dispatch writes its intent
			// before it sends, and this write, fenced by the job's
			// version, loses to that intent. The instance, if the job
			// holds one, is freed in the same write; a queued job holds
			// nothing.
			out = Cancelled
			if ops, err = s.leaseOf(ctx, j); err != nil {
				return Result{ID: j.ID}, err
			}
			if err := j.Move(job.Cancelled, j.CancelledReason(""), now); err != nil {
				return Result{ID: j.ID}, err
			}
			s.cost(j, fleet.Instance{})
		default:
			j.Reason = j.CancelledReason("") + "; stopping"
			j.UpdatedAt = now
		}
		err = s.store.Update(ctx, j, from, ops...)
		if errors.Is(err, store.ErrConflict) {
			continue // it moved meanwhile: decide again on its new state
		}
		if err != nil {
			return Result{ID: j.ID}, fmt.Errorf("cancel %s: %w", j.ID, err)
		}
		if out == Cancelled {
			s.ended(ctx, j)
		}
		return Result{ID: j.ID, Outcome: out, Job: j}, nil
	}
	return Result{ID: c.ID}, fmt.Errorf("cancel %s: it moved on each of %d tries; the message will be retried", c.ID, cancelTries)
}

// leaseOf returns the op that frees j's instance's lease, if j holds it. A
// placed job that has not recorded its instance yet holds no lease; the
// slot its launch took is left to tidySlots (see cancelPlaced).
func (s *Scheduler) leaseOf(ctx context.Context, j *job.Job) ([]store.Op, error) {
	if j.InstanceID == "" {
		return nil, nil
	}
	l, err := s.store.Lease(ctx, j.InstanceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("read the lease of %s to cancel %s: %w", j.InstanceID, j.ID, err)
	case l.JobID != j.ID:
		return nil, nil
	}
	return []store.Op{store.LeaseOp{InstanceID: j.InstanceID, Pool: l.Pool, At: s.now().UTC()}}, nil
}

// cancelPlaced ends a PLACED job a cancel asked to end, unless a command
// may have been sent for it: then the command is found, and stopped as a
// running job's is. Its lease is freed; an unbound slot is left to
// tidySlots, since a launch for it may still be in flight in another
// invocation (a slot given back now would let a launch past the cap).
func (s *Scheduler) cancelPlaced(ctx context.Context, w *world, j *job.Job) error {
	if !j.DispatchedAt.IsZero() {
		// An invocation may be sending the command now. No Send is in
		// flight past DispatchRetry (the functions time out well before):
		// after it, Find sees the command, if there is one.
		if w.now.Sub(j.DispatchedAt) < DispatchRetry {
			return s.setReason(ctx, j, j.CancelledReason("")+"; waiting to learn whether its command was sent")
		}
		cmd, err := s.runner.Find(ctx, j, j.InstanceID)
		if err != nil {
			return err
		}
		if cmd != "" {
			// Sent: it runs, or will. Record it, then stop it.
			if err := s.running(ctx, w, j, cmd); err != nil || j.State != job.Running {
				return err
			}
			return s.stop(ctx, w, j, false)
		}
	}
	return s.endCancelled(ctx, w, j, "")
}

// endCancelled records a cancelled job's end, freeing its lease.
func (s *Scheduler) endCancelled(ctx context.Context, w *world, j *job.Job, why string) error {
	from := j.State
	ops := release(w, j)
	if err := j.Move(job.Cancelled, j.CancelledReason(why), w.now); err != nil {
		return err
	}
	s.cost(j, w.instances[j.InstanceID])
	ok, err := s.write(ctx, j, from, ops...)
	if ok {
		s.freed(w, j)
		s.log.InfoContext(ctx, "cancelled", "job", j.ID, "instance", j.InstanceID, "from", from)
		s.ended(ctx, j)
	}
	return err
}

// stop asks a cancelled RUNNING job's wrapper to end its command and sync
// its outputs, once; past StopGrace the watchdog's tick cancels the
// command outright. The
// command's end, reported as any command's is, records CANCELLED. An agent
// that cannot take the stop command gets the cancel at once: SSM delivers
// it when the agent is back, and the instance's loss ends the job if not.
func (s *Scheduler) stop(ctx context.Context, w *world, j *job.Job, poll bool) error {
	if !j.StopSentAt.IsZero() {
		if w.now.Sub(j.StopSentAt) < StopGrace || !poll {
			return nil // the watchdog's tick, once a minute, cancels it
		}
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
		return s.setReason(ctx, j, j.CancelledReason("")+fmt.Sprintf("; not stopped within %v, command cancelled", StopGrace))
	}
	cmd, err := s.runner.Stop(ctx, j, j.InstanceID)
	reason := j.CancelledReason("") + "; asked its wrapper to stop and sync outputs"
	switch {
	case errors.Is(err, runner.ErrNotReady):
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
		reason = j.CancelledReason("") + "; agent not reachable: command cancelled"
	case errors.Is(err, runner.ErrThrottled):
		return s.setReason(ctx, j, j.CancelledReason("")+"; stop will be retried: "+err.Error())
	case err != nil:
		return err
	}
	j.StopCommandID, j.StopSentAt = cmd, w.now
	j.Reason, j.UpdatedAt = reason, w.now
	if ok, err := s.write(ctx, j, job.Running); !ok {
		return err
	}
	s.log.InfoContext(ctx, "stopping cancelled job", "job", j.ID, "instance", j.InstanceID, "command", j.CommandID, "stop_command", cmd)
	return nil
}
