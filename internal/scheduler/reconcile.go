package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// Options tune one Reconcile.
type Options struct {
	// Poll asks SSM for the status of every running command, catching
	// completion events that were lost. The watchdog's tick sets it.
	Poll bool
	// Hints are instance states just reported by events, newer than what
	// DescribeInstances may show yet (it is eventually consistent).
	Hints map[string]string
	// Fresh are jobs this invocation has just written. The live index is
	// eventually consistent and may not list them yet; they are considered
	// anyway, so a job submitted to a warm pool is placed at once.
	Fresh []*job.Job
}

// Reconcile moves the world one step toward the desired state. Errors on one
// job or instance do not stop the others; they are joined and returned.
func (s *Scheduler) Reconcile(ctx context.Context, o Options) error {
	_, err := s.reconcile(ctx, o)
	return err
}

// reconcile is Reconcile, returning the pass's world as it left it; nil
// when it could not be read.
func (s *Scheduler) reconcile(ctx context.Context, o Options) (*world, error) {
	w, err := s.snapshot(ctx, o)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, j := range w.jobs[job.Running] {
		errs = append(errs, s.follow(ctx, w, j, o.Poll))
	}
	for _, j := range w.jobs[job.Placed] {
		errs = append(errs, s.advance(ctx, w, j))
	}
	errs = append(errs, s.tidyLeases(ctx, w))
	errs = append(errs, s.tidySlots(ctx, w))
	for _, j := range w.jobs[job.Queued] {
		errs = append(errs, s.place(ctx, w, j))
	}
	errs = append(errs, s.stopIdle(ctx, w))
	if o.Poll {
		errs = append(errs, s.followOpenQuotas(ctx, w))
		errs = append(errs, s.expireDeepWaits(ctx, w))
	}
	s.recheckFreed(ctx, w)
	return w, errors.Join(errs...)
}

// write saves j if it moved from state from; a lost race is not an error:
// another invocation moved the job first, and the next pass reads its work.
func (s *Scheduler) write(ctx context.Context, j *job.Job, from job.State, ops ...store.Op) (bool, error) {
	err := s.store.Update(ctx, j, from, ops...)
	switch {
	case errors.Is(err, store.ErrConflict):
		s.log.DebugContext(ctx, "lost a race", "job", j.ID, "state", j.State)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("write %s: %w", j.ID, err)
	}
	return true, nil
}

// setReason records a new reason for a waiting job, once: unchanged reasons
// are not written again on every pass.
func (s *Scheduler) setReason(ctx context.Context, j *job.Job, reason string) error {
	if j.Reason == reason {
		return nil
	}
	j.Reason = reason
	j.UpdatedAt = s.now().UTC()
	_, err := s.write(ctx, j, j.State)
	return err
}

// release returns the op that frees j's lease, if j holds one.
func release(w *world, j *job.Job) []store.Op {
	if j.InstanceID == "" {
		return nil
	}
	if l, ok := w.leases[j.InstanceID]; ok && l.JobID == j.ID {
		return []store.Op{store.LeaseOp{InstanceID: j.InstanceID, Pool: l.Pool, At: w.now}}
	}
	return nil
}

// say reports an action through the notifier, or the log when there is none.
func (s *Scheduler) say(ctx context.Context, a notice.Action) error {
	if s.notice == nil {
		s.log.InfoContext(ctx, "action", "verb", a.Verb, "instance", a.Instance, "job", a.Job, "why", a.Why)
		return nil
	}
	return s.notice.Say(ctx, a)
}
