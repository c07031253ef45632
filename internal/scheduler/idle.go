package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// tidyLeases gives every managed instance a lease record, deletes free
// leases whose instance is gone, and frees leases their job left behind.
func (s *Scheduler) tidyLeases(ctx context.Context, w *world) error {
	var errs []error
	errs = append(errs, s.freeLeftLeases(ctx, w))
	// Sorted: the order of calls is part of a simulated history, which must
	// replay exactly.
	for _, id := range slices.Sorted(maps.Keys(w.instances)) {
		i := w.instances[id]
		if _, ok := w.leases[id]; ok {
			continue
		}
		if mine, err := s.launchedForPlaced(ctx, w, i); err != nil || mine {
			// Launched for an attempt still placed without it: that
			// attempt's own pass records it. A free lease would hand it to
			// another job.
			errs = append(errs, err)
			continue
		}
		// No job has held it: it has been free since it was launched (for a
		// job whose write of it failed, or that was cancelled before it
		// could), and its keep-warm counts from then, not from this pass —
		// adopted minutes late, it would otherwise run a keep-warm too long.
		idle := w.now
		if !i.LaunchTime.IsZero() && i.LaunchTime.Before(idle) {
			idle = i.LaunchTime
		}
		l := store.Lease{InstanceID: id, Pool: i.Pool, IdleSince: idle}
		if err := s.store.PutLease(ctx, l); err != nil {
			errs = append(errs, err)
			continue
		}
		w.leases[id] = l
		s.log.InfoContext(ctx, "adopted instance", "instance", id, "pool", i.Pool, "state", i.State)
	}
	for _, id := range slices.Sorted(maps.Keys(w.leases)) {
		l := w.leases[id]
		if _, ok := w.instances[id]; ok || l.Held() {
			continue
		}
		if err := s.store.DeleteLease(ctx, id); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		delete(w.leases, id)
	}
	return errors.Join(errs...)
}

// launchedForPlaced reports whether i was launched for an attempt that is
// still placed and has not recorded an instance (or has recorded i). The
// snapshot's jobs are older than its instances, so the job is read again
// when the snapshot does not say.
func (s *Scheduler) launchedForPlaced(ctx context.Context, w *world, i fleet.Instance) (bool, error) {
	if i.Job == "" {
		return false, nil
	}
	var j *job.Job
	for _, p := range w.jobs[job.Placed] {
		if p.ID == i.Job {
			j = p
		}
	}
	if j == nil || j.Attempt != i.Attempt {
		var err error
		switch j, err = s.store.Job(ctx, i.Job); {
		case errors.Is(err, store.ErrNotFound):
			return false, nil
		case err != nil:
			return false, err
		}
	}
	return j.State == job.Placed && j.Attempt == i.Attempt && (j.InstanceID == "" || j.InstanceID == i.ID), nil
}

// freeLeftLeases frees each lease held by a job that is no longer placed on
// or running on its instance — a job moved on by a write that could not
// release the lease (a crash, a failed read). Left alone, such a lease would
// keep the instance from every other job for ever. The job is read again
// first: the snapshot's jobs are older than its leases.
func (s *Scheduler) freeLeftLeases(ctx context.Context, w *world) error {
	holds := map[string]bool{}
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range w.jobs[st] {
			holds[fmt.Sprintf("%s/%s#%d", j.InstanceID, j.ID, j.Attempt)] = true
		}
	}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(w.leases)) {
		l := w.leases[id]
		if !l.Held() || holds[fmt.Sprintf("%s/%s#%d", id, l.JobID, l.Attempt)] {
			continue
		}
		j, err := s.store.Job(ctx, l.JobID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, err)
			continue
		case (j.State == job.Placed || j.State == job.Running) && j.InstanceID == id && j.Attempt == l.Attempt:
			continue // placed after the snapshot read its jobs
		}
		if err := s.store.FreeLease(ctx, l, w.now); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		s.log.WarnContext(ctx, "freed a lease its job left behind", "instance", id, "job", l.JobID)
		l.JobID, l.Attempt, l.IdleSince = "", 0, w.now
		l.Version++
		w.leases[id] = l
	}
	return errors.Join(errs...)
}

// stopIdle stops free instances idle past their pool's keep-warm window, and
// clears the stop mark of those that have stopped.
func (s *Scheduler) stopIdle(ctx context.Context, w *world) error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(w.leases)) {
		l := w.leases[id]
		i, ok := w.instances[id]
		if !ok || l.Held() || w.taken[id] {
			continue
		}
		if !l.StoppingAt.IsZero() {
			switch {
			case i.State == fleet.StateStopped:
				errs = append(errs, s.store.ClearStopping(ctx, id))
			case i.Up() && w.now.Sub(l.StoppingAt) >= Period:
				// The stop was decided but did not happen (the call failed,
				// or the invocation died after the mark): stop again.
				errs = append(errs, s.fleet.Stop(ctx, i))
			}
			continue
		}
		keep := s.keepWarm(i)
		if w.budget != "" {
			keep = 0
		}
		if !i.Up() || w.now.Sub(l.IdleSince) < keep {
			continue
		}
		// The mark is a conditional write on the free lease: a placement
		// that took the instance meanwhile wins, and the stop is skipped.
		if err := s.store.MarkStopping(ctx, l, w.now); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.fleet.Stop(ctx, i); err != nil {
			errs = append(errs, err)
			continue
		}
		why := fmt.Sprintf("no job for %v (keep-warm %v)", w.now.Sub(l.IdleSince).Round(time.Second), keep)
		if s.cfg.Pools[i.Pool].KeepWarmAuto {
			why = fmt.Sprintf("no job for %v (keep-warm auto: %v, its measured start-to-ready time)", w.now.Sub(l.IdleSince).Round(time.Second), keep)
		}
		if w.budget != "" {
			why = w.budget
		}
		errs = append(errs, s.say(ctx, notice.Action{Instance: id, Verb: "stop", Why: why}))
	}
	return errors.Join(errs...)
}

// keepWarm is how long instance i may wait free for its next job: its
// pool's window, or with "auto" the instance's own measured start-to-ready
// time (tag nightshift:ready-seconds), bounded.
func (s *Scheduler) keepWarm(i fleet.Instance) time.Duration {
	if isNotebookPool(i.Pool) {
		return 0 // a notebook's instance waits for no one: its next session starts it again
	}
	p := s.cfg.Pools[i.Pool]
	if !p.KeepWarmAuto {
		if d := p.KeepWarm.D(); d > 0 {
			return d
		}
		return DefaultKeepWarm
	}
	secs, err := strconv.Atoi(i.Tags[fleet.TagReady])
	if err != nil || secs <= 0 {
		return DefaultKeepWarm // not measured yet
	}
	return min(max(time.Duration(secs)*time.Second, MinAutoKeepWarm), MaxAutoKeepWarm)
}
