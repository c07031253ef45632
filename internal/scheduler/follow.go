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
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// follow watches a RUNNING job: it completes it when its command has ended
// (polling when asked, or when the instance is gone), re-queues it when its
// instance is lost, and cancels it past its deadline.
func (s *Scheduler) follow(ctx context.Context, w *world, j *job.Job, poll bool) error {
	inst, alive := w.instances[j.InstanceID]
	alive = alive && inst.Up()
	if poll || !alive {
		res, err := s.runner.Result(ctx, j.CommandID, j.InstanceID)
		if err == nil && res.Status.Final() {
			return s.complete(ctx, w, j, res)
		}
		if err != nil && alive {
			return err
		}
	}
	if !alive {
		return s.lost(ctx, w, j, fmt.Sprintf("instance %s %s while the job ran", j.InstanceID, stateWord(inst)))
	}
	if dl := j.Deadline(); !dl.IsZero() && w.now.After(dl.Add(Period)) {
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
		from := j.State
		if err := j.Move(job.TimedOut, fmt.Sprintf("ran past its max runtime of %v; command cancelled", j.Spec.MaxRuntime.D()), w.now); err != nil {
			return err
		}
		s.cost(j, inst)
		if ok, err := s.write(ctx, j, from, release(w, j)...); ok {
			s.freed(w, j)
			s.log.InfoContext(ctx, "timed out", "job", j.ID, "instance", j.InstanceID)
		} else if err != nil {
			return err
		}
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
	if res.Status == runner.Failed && res.ExitCode < 0 {
		// No exit code: the command never finished; its agent or instance
		// went away under it. That is a lost attempt, not the job's failure.
		return s.lost(ctx, w, j, fmt.Sprintf("the command on %s ended without an exit code (instance or agent lost)", j.InstanceID))
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
	}
	return err
}

// freed marks j's instance free in the snapshot, so the same pass can give
// it the next queued job at once.
func (s *Scheduler) freed(w *world, j *job.Job) {
	if l, ok := w.leases[j.InstanceID]; ok && l.JobID == j.ID {
		l.JobID, l.Attempt, l.IdleSince = "", 0, w.now
		l.Version++
		w.leases[j.InstanceID] = l
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

// lost re-queues j after its instance went away, or fails it when its
// retries are spent.
func (s *Scheduler) lost(ctx context.Context, w *world, j *job.Job, why string) error {
	from, lostAttempt := j.State, j.Attempt
	ops := append(release(w, j), releaseSlot(w, j)...)
	s.cost(j, w.instances[j.InstanceID])
	if j.Attempt > j.Spec.RetryLimit() {
		if err := j.Move(job.Failed, fmt.Sprintf("%s; retries spent (%d)", why, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
	} else {
		if err := j.Move(job.Queued, fmt.Sprintf("%s; retry %d of %d", why, j.Attempt, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
		j.Attempt++
		j.LaunchTry = 0
		j.InstanceID, j.InstanceType, j.CommandID, j.LogStream = "", "", "", ""
		j.DispatchedAt = time.Time{}
	}
	ok, err := s.write(ctx, j, from, ops...)
	if ok {
		s.freed(w, j)
		dropSlot(w, j.Pool, j.ID, lostAttempt)
		s.log.WarnContext(ctx, "instance lost", "job", j.ID, "state", j.State, "attempt", j.Attempt, "why", why)
	}
	return err
}
