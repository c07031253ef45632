package scheduler

import (
	"context"
	"errors"
	"fmt"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// CommandEvent records a command's status change, then reconciles. Only a
// final status of the command the job's record names counts: events for an
// older attempt, a duplicate command, or a duplicate event change nothing.
func (s *Scheduler) CommandEvent(ctx context.Context, commandID, instanceID, status string) error {
	if !runner.ParseStatus(status).Final() {
		return nil
	}
	j, err := s.holder(ctx, instanceID)
	if err != nil || j == nil {
		return err
	}
	if j.CommandID != commandID {
		s.log.InfoContext(ctx, "ignored event for another command", "job", j.ID, "command", commandID, "job_command", j.CommandID)
		return s.Reconcile(ctx, Options{})
	}
	res, err := s.runner.Result(ctx, commandID, instanceID)
	if err != nil {
		return err
	}
	if !res.Status.Final() {
		// The event ran ahead of GetCommandInvocation: its exit code is not
		// known yet. Recording the event's status without it could take a
		// non-zero exit for a lost instance; the watchdog's poll records it
		// with its exit code within a minute.
		s.log.InfoContext(ctx, "command ended; result not readable yet", "job", j.ID, "command", commandID, "status", status)
		return nil
	}
	// Recording the result needs only the lease, not a whole snapshot; the
	// Reconcile that follows reads the world and hands the instance on.
	w := &world{now: s.now(), leases: map[string]store.Lease{}, instances: map[string]fleet.Instance{}, taken: map[string]bool{}}
	l, err := s.store.Lease(ctx, instanceID)
	if err != nil {
		// Without the lease the job could not release it: leave the whole
		// event to the next pass rather than strand the instance.
		return err
	}
	w.leases[instanceID] = l
	if err := s.complete(ctx, w, j, res); err != nil {
		return err
	}
	return s.Reconcile(ctx, Options{})
}

// holder returns the live job that holds the instance's lease, or nil.
func (s *Scheduler) holder(ctx context.Context, instanceID string) (*job.Job, error) {
	l, err := s.store.Lease(ctx, instanceID)
	if errors.Is(err, store.ErrNotFound) || err == nil && !l.Held() {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	j, err := s.store.Job(ctx, l.JobID)
	if err != nil {
		return nil, fmt.Errorf("lease holder of %s: %w", instanceID, err)
	}
	if j.State != job.Running || j.Attempt != l.Attempt {
		return nil, nil
	}
	return j, nil
}

// InstanceEvent records an EC2 state change, then reconciles with the new
// state as a hint: DescribeInstances may not show it yet.
func (s *Scheduler) InstanceEvent(ctx context.Context, instanceID, state string) error {
	if state == fleet.StatePending {
		return nil // nothing can be done with a booting instance; "running" follows
	}
	// EventBridge cannot filter EC2 events by tag: every instance in the
	// account and Region comes through here. One read of the lease tells
	// nightshift's own apart; an instance of ours that has no lease yet is
	// adopted by the watchdog's next tick.
	if _, err := s.store.Lease(ctx, instanceID); errors.Is(err, store.ErrNotFound) {
		s.log.DebugContext(ctx, "ignored state change of an instance nightshift does not track", "instance", instanceID, "state", state)
		return nil
	} else if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "instance state", "instance", instanceID, "state", state)
	return s.Reconcile(ctx, Options{Hints: map[string]string{instanceID: state}})
}

// SpotWarning notes a spot interruption warning on the job that holds the
// instance; the interruption itself re-queues the job when it comes.
func (s *Scheduler) SpotWarning(ctx context.Context, instanceID, action string) error {
	j, err := s.holder(ctx, instanceID)
	if err != nil || j == nil {
		return err
	}
	s.log.WarnContext(ctx, "spot interruption warning", "job", j.ID, "instance", instanceID, "action", action)
	return s.setReason(ctx, j, fmt.Sprintf("running on %s; spot interruption warning (%s): the job will be re-queued if the instance goes", instanceID, action))
}

// Rebalance answers an EC2 rebalance recommendation for the instance (at
// elevated risk of a spot interruption): the checkpointed job running
// there is asked to sync its checkpoint now (runner.SyncNow), so that an
// interruption that follows loses as little as possible. The job itself
// goes on where it is. An instance nightshift does not hold, or whose job
// keeps no checkpoint, is left alone; a second recommendation asks again,
// which costs one sync of what changed.
func (s *Scheduler) Rebalance(ctx context.Context, instanceID string) error {
	j, err := s.holder(ctx, instanceID)
	if err != nil || j == nil {
		return err
	}
	if !j.Spec.Checkpointed() {
		s.log.InfoContext(ctx, "rebalance recommendation for a job without a checkpoint; nothing to sync", "job", j.ID, "instance", instanceID)
		return nil
	}
	cmd, err := s.runner.SyncNow(ctx, j, instanceID)
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "rebalance recommendation: checkpoint sync asked", "job", j.ID, "instance", instanceID, "command", cmd)
	return s.setReason(ctx, j, fmt.Sprintf("running on %s; rebalance recommendation (elevated risk of a spot interruption): checkpoint sync asked", instanceID))
}
