package scheduler

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// follow watches a RUNNING job: it completes it when its command has ended
// (polling when asked, or when the instance is gone), re-queues it when its
// instance is lost or its command was never delivered, and cancels it past
// its deadline.
func (s *Scheduler) follow(ctx context.Context, w *world, j *job.Job, poll bool) error {
	inst, alive := w.instances[j.InstanceID]
	alive = alive && inst.Up()
	var res runner.Result
	read := false
	if poll || !alive {
		r, err := s.runner.Result(ctx, j.CommandID, j.InstanceID)
		if err == nil && r.Status.Final() {
			return s.complete(ctx, w, j, r)
		}
		if err != nil && alive {
			return err
		}
		res, read = r, err == nil
	}
	if !alive {
		return s.lost(ctx, w, j, fmt.Sprintf("instance %s %s while the job ran", j.InstanceID, stateWord(inst)))
	}
	// SSM never starts a command its delivery timeout has passed: the
	// agent went away after it reported Online. SSM says DeliveryTimedOut
	// only after the execution timeout too; the attempt is lost now.
	if read && res.Undelivered && w.now.After(j.StartedAt.Add(runner.DeliveryTimeout+Period)) {
		return s.undelivered(ctx, w, j, res)
	}
	if dl := j.Deadline(); !dl.IsZero() && w.now.After(dl.Add(Period)) {
		if !read {
			r, err := s.runner.Result(ctx, j.CommandID, j.InstanceID)
			if err != nil {
				return err
			}
			if r.Status.Final() {
				return s.complete(ctx, w, j, r)
			}
			res = r
		}
		if res.Undelivered {
			// A max runtime shorter than the delivery timeout: the job
			// did not run past it, it never ran.
			return s.undelivered(ctx, w, j, res)
		}
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
		from := j.State
		to, reason := job.TimedOut, fmt.Sprintf("ran past its max runtime of %v; command cancelled", j.Spec.MaxRuntime.D())
		if j.CancelRequested() {
			// Its wrapper did not stop, nor its command end on cancel (its
			// agent is away, say), before the max runtime came.
			to, reason = job.Cancelled, j.CancelledReason(fmt.Sprintf("command cancelled at its max runtime of %v", j.Spec.MaxRuntime.D()))
		}
		if err := j.Move(to, reason, w.now); err != nil {
			return err
		}
		s.cost(j, inst)
		if ok, err := s.write(ctx, j, from, release(w, j)...); ok {
			s.freed(w, j)
			s.log.InfoContext(ctx, "timed out", "job", j.ID, "instance", j.InstanceID, "state", j.State)
			s.ended(ctx, j)
		} else if err != nil {
			return err
		}
		return nil
	}
	if j.CancelRequested() {
		return s.stop(ctx, w, j, poll)
	}
	return nil
}

func stateWord(i fleet.Instance) string {
	if i.State == "" {
		return fleet.StateTerminated
	}
	return i.State
}

// complete records a final command result for j (from an event or a poll).
func (s *Scheduler) complete(ctx context.Context, w *world, j *job.Job, res runner.Result) error {
	if res.Undelivered {
		// TimedOut or Failed, but the command never reached the agent: a
		// lost attempt, neither a timeout nor the job's failure.
		return s.undelivered(ctx, w, j, res)
	}
	if res.Status == runner.Failed && res.ExitCode < 0 {
		// No exit code: the command never finished; its agent or instance
		// went away under it. That is a lost attempt, not the job's failure.
		return s.lost(ctx, w, j, fmt.Sprintf("the command on %s ended without an exit code (instance or agent lost)", j.InstanceID))
	}
	if res.Status == runner.Failed && res.ExitCode == runner.InterruptedExitCode && j.Spec.Checkpointed() && !j.CancelRequested() {
		// The wrapper ended the job on a spot interruption notice and
		// synced its checkpoint, and the instance outlived the notice: the
		// attempt was lost to the interruption all the same.
		return s.lost(ctx, w, j, fmt.Sprintf("spot interruption notice on %s: the job ended on it and its checkpoint was synced (exit code %d)", j.InstanceID, res.ExitCode))
	}
	to, reason := job.Succeeded, "exit code 0"
	switch res.Status {
	case runner.Failed:
		to, reason = job.Failed, fmt.Sprintf("exit code %d", res.ExitCode)
	case runner.TimedOut:
		to, reason = job.TimedOut, fmt.Sprintf("ran past its max runtime of %v", j.Spec.MaxRuntime.D())
	case runner.Cancelled:
		to, reason = job.Cancelled, "command cancelled"
		if !j.StalledAt.IsZero() {
			reason = "cancelled by the watchdog: " + strings.TrimPrefix(j.Reason, "running on "+j.InstanceID+"; ")
		}
	}
	if j.CancelRequested() {
		// Cancelled: whatever ended the command, unless it had finished
		// its work before the cancel took effect.
		if res.Status == runner.Success {
			reason = "exit code 0, before the cancel took effect"
		} else {
			to, reason = job.Cancelled, j.CancelledReason(fmt.Sprintf("command %s, exit code %d", res.Status, res.ExitCode))
		}
	}
	from := j.State
	code := res.ExitCode
	j.ExitCode = &code
	j.CommandID = res.CommandID
	if err := j.Move(to, reason, w.now); err != nil {
		return err
	}
	if !res.Ended.IsZero() {
		j.EndedAt = res.Ended.UTC()
	}
	s.cost(j, w.instances[j.InstanceID])
	ok, err := s.write(ctx, j, from, release(w, j)...)
	if ok {
		s.freed(w, j)
		s.log.InfoContext(ctx, "finished", "job", j.ID, "state", j.State, "exit_code", code, "instance", j.InstanceID, "cost_usd", math.Round(j.Cost*1e4)/1e4)
		s.ended(ctx, j)
	}
	return err
}

// freed marks j's instance free in the snapshot, so the same pass can give
// it the next queued job at once.
func (s *Scheduler) freed(w *world, j *job.Job) { freedLease(w, j.InstanceID, j.ID) }

// freedLease records in the snapshot that job id no longer holds
// instance's lease.
func freedLease(w *world, instance, id string) {
	if l, ok := w.leases[instance]; ok && l.JobID == id {
		l.JobID, l.Attempt, l.IdleSince = "", 0, w.now
		l.Version++
		w.leases[instance] = l
	}
}

// cost estimates what j's instance time cost, from placement to end.
func (s *Scheduler) cost(j *job.Job, i fleet.Instance) {
	t, ok := catalog.Lookup(j.InstanceType)
	if !ok || j.PlacedAt.IsZero() {
		return
	}
	end := j.EndedAt
	if end.IsZero() {
		end = s.now()
	}
	j.Cost += t.Hourly * end.Sub(j.PlacedAt).Hours()
}

// lost re-queues j after its instance went away, fails it when its
// retries are spent, or records it cancelled when a cancel asked for it.
func (s *Scheduler) lost(ctx context.Context, w *world, j *job.Job, why string) error {
	return s.lose(ctx, w, j, why, true)
}

// lose is lost; ran says whether the attempt's command may have run (not
// when SSM never delivered it): only then may the attempt resume from its
// checkpoint without a retry.
func (s *Scheduler) lose(ctx context.Context, w *world, j *job.Job, why string, ran bool) error {
	from, lostAttempt := j.State, j.Attempt
	ops := append(release(w, j), releaseSlot(w, j)...)
	s.cost(j, w.instances[j.InstanceID])
	switch {
	case j.CancelRequested():
		// Nothing to retry: the job was to end anyway.
		if err := j.Move(job.Cancelled, j.CancelledReason(why), w.now); err != nil {
			return err
		}
	case ran && from == job.Running && resumes(j, w.now):
		// Progress kept: the attempt ran long enough to have synced its
		// checkpoint, and the next one resumes from it. It uses no retry.
		j.Resumes++
		if err := j.Move(job.Queued, fmt.Sprintf("%s; resumes from its checkpoint (resume %d of %d; retries used %d of %d)", why, j.Resumes, job.MaxResumes, j.RetriesUsed(), j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
		requeue(j)
	case j.RetriesUsed() >= j.Spec.RetryLimit():
		if err := j.Move(job.Failed, fmt.Sprintf("%s; retries spent (%d)", why, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
	default:
		if err := j.Move(job.Queued, fmt.Sprintf("%s; retry %d of %d", why, j.RetriesUsed()+1, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
		requeue(j)
	}
	ok, err := s.write(ctx, j, from, ops...)
	if ok {
		s.freed(w, j)
		dropSlot(w, j.Pool, j.ID, lostAttempt)
		s.log.WarnContext(ctx, "instance lost", "job", j.ID, "state", j.State, "attempt", j.Attempt, "why", why)
		s.ended(ctx, j) // when its retries are spent, it ended FAILED
	}
	return err
}

// requeue starts j's next attempt, moved back to the queue.
func requeue(j *job.Job) {
	j.Attempt++
	j.LaunchTry = 0
	j.InstanceID, j.InstanceType, j.CommandID, j.LogStream = "", "", "", ""
	j.DispatchedAt = time.Time{}
}

// resumes reports whether the lost attempt of j resumes from its
// checkpoint without using a retry: j keeps a checkpoint, its attempt ran
// (from the command's start to now) at least the checkpoint's every — so
// the wrapper synced it at least once after the restore, on top of the
// sync an interruption notice makes — and j has resumed fewer than
// job.MaxResumes times. An attempt lost sooner made no progress that
// nightshift can vouch for (a restore that crashes the job at once, say),
// and counts against retries like any lost attempt.
func resumes(j *job.Job, now time.Time) bool {
	c := j.Spec.Checkpoint
	if c == nil || j.StartedAt.IsZero() || j.Resumes >= job.MaxResumes {
		return false
	}
	every := c.Every.D()
	if every <= 0 {
		every = job.DefaultCheckpointEvery
	}
	return now.Sub(j.StartedAt) >= every
}

// ended publishes j's end, once its record is written, when its notify
// asks for it: through the notifier, to the stack's topic. It names no
// instance: the notice is about the job, and the instance keeps its
// last-action tag for what was done to it. A notice that fails is logged,
// not returned: the end is recorded, and an error here would hold up the
// reconcile that hands the instance to the next job.
func (s *Scheduler) ended(ctx context.Context, j *job.Job) {
	if !j.Spec.NotifyOn(j.State) {
		return
	}
	why := j.Reason
	if j.ExitCode != nil && !strings.Contains(why, "exit code") {
		why += fmt.Sprintf("; exit code %d", *j.ExitCode)
	}
	why += fmt.Sprintf("; attempt %d", j.Attempt)
	if j.InstanceID != "" {
		why += fmt.Sprintf(" on %s (%s)", j.InstanceID, j.InstanceType)
	}
	if !j.StartedAt.IsZero() && !j.EndedAt.IsZero() {
		why += fmt.Sprintf(", ran %v", j.EndedAt.Sub(j.StartedAt).Round(time.Second))
	}
	why += fmt.Sprintf("; estimated cost $%.4f (on-demand, from placement to end)", j.Cost)
	if err := s.say(ctx, notice.Action{Verb: fmt.Sprintf("job %s %s", j.ID, j.State), Why: why}); err != nil {
		s.log.WarnContext(ctx, "job end not published", "job", j.ID, "state", j.State, "err", err)
	}
}

// undelivered re-queues j, whose command SSM never delivered to the
// instance's agent. A command still waiting is cancelled first, so that it
// can never reach the agent later and run beside the next attempt. The
// instance, if its agent is still not online, is stopped: a new boot brings
// a new agent, and left running it would be the next placement's first
// choice, only to time out waiting for its agent.
func (s *Scheduler) undelivered(ctx context.Context, w *world, j *job.Job, res runner.Result) error {
	if !res.Status.Final() {
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
	}
	inst, known := w.instances[j.InstanceID]
	if err := s.lose(ctx, w, j, fmt.Sprintf("its command never reached the SSM agent on %s (gone since it last reported Online)", inst.ID), false); err != nil {
		return err
	}
	if !known || !inst.Up() || w.online[inst.ID] {
		return nil // not in this snapshot (an event's), already down, or back
	}
	return s.stopBroken(ctx, w, inst, j.ID, "its SSM agent went away: a command sent to it was never delivered")
}
