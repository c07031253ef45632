package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// slotGrace is how long a slot outlives its instance's absence from
// DescribeInstances before it is freed: DescribeInstances is eventually
// consistent, and a just-launched instance may be missing from it for a
// while. Freeing the slot then would let another launch past the cap. An
// instance listed terminated frees its slot at once.
const slotGrace = 5 * time.Minute

// slotOf returns the slot j's current attempt took, if the snapshot has one.
func slotOf(w *world, j *job.Job) (store.Slot, bool) {
	for _, sl := range w.slots[j.Pool] {
		if sl.Holds(j.ID, j.Attempt) {
			return sl, true
		}
	}
	return store.Slot{}, false
}

// freeSlot returns the lowest index below the cap that no slot holds.
func freeSlot(w *world, pool string, cap int) (int, bool) {
	held := map[int]bool{}
	for _, sl := range w.slots[pool] {
		held[sl.Index] = true
	}
	for i := range cap {
		if !held[i] {
			return i, true
		}
	}
	return 0, false
}

// releaseSlot returns the op that gives back j's slot, if its attempt holds
// one and no instance is recorded on it: the launch is over without one.
func releaseSlot(w *world, j *job.Job) []store.Op {
	if sl, ok := slotOf(w, j); ok && sl.InstanceID == "" {
		return []store.Op{store.SlotOp{Kind: store.ReleaseSlot, Pool: sl.Pool, Index: sl.Index, Attempt: j.Attempt}}
	}
	return nil
}

// dropSlot removes from the snapshot the unbound slot of j's attempt, once
// its release is written.
func dropSlot(w *world, pool, jobID string, attempt int) {
	if w.slots == nil {
		return // a partial snapshot (CommandEvent's) that read no slots
	}
	out := w.slots[pool][:0]
	for _, sl := range w.slots[pool] {
		if !sl.Holds(jobID, attempt) || sl.InstanceID != "" {
			out = append(out, sl)
		}
	}
	w.slots[pool] = out
}

// tidySlots gives back the slots whose launch is over: the instance is
// gone (past slotGrace), or the launch ended without one. A slot whose
// launch made an instance its job never recorded gets that instance.
func (s *Scheduler) tidySlots(ctx context.Context, w *world) error {
	placed := map[string]*job.Job{}
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range w.jobs[st] {
			placed[j.ID] = j
		}
	}
	var errs []error
	// The configured pools, and the notebook pools the snapshot read.
	for _, pool := range slices.Sorted(maps.Keys(w.slots)) {
		for _, sl := range w.slots[pool] {
			errs = append(errs, s.tidySlot(ctx, w, sl, placed[sl.JobID]))
		}
	}
	return errors.Join(errs...)
}

func (s *Scheduler) tidySlot(ctx context.Context, w *world, sl store.Slot, j *job.Job) error {
	if sl.InstanceID != "" {
		_, live := w.instances[sl.InstanceID]
		switch {
		case live:
			return nil
		case w.gone[sl.InstanceID]:
		case w.now.Sub(sl.BoundAt) < slotGrace:
			return nil // not listed yet, perhaps: DescribeInstances lags
		}
		return s.freeSlotOf(ctx, sl, fmt.Sprintf("its instance %s is gone", sl.InstanceID))
	}
	for _, id := range slices.Sorted(maps.Keys(w.instances)) {
		if i := w.instances[id]; i.Job == sl.JobID && i.Attempt == sl.Attempt && i.Pool == sl.Pool {
			return s.adoptSlot(ctx, sl, i.ID, w.now)
		}
	}
	if j == nil || j.Attempt != sl.Attempt {
		// The snapshot's jobs are older than its slots: read the job again.
		var err error
		if j, err = s.store.Job(ctx, sl.JobID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	switch {
	case j != nil && j.Attempt == sl.Attempt && j.State == job.Placed && j.InstanceID == "":
		return nil // its launch is under way, or to be repeated
	case j != nil && j.Attempt == sl.Attempt && j.InstanceID != "":
		return s.adoptSlot(ctx, sl, j.InstanceID, w.now)
	case w.now.Sub(sl.TakenAt) < slotGrace:
		return nil // DescribeInstances may not list its instance yet
	}
	return s.freeSlotOf(ctx, sl, "its launch ended without an instance")
}

func (s *Scheduler) freeSlotOf(ctx context.Context, sl store.Slot, why string) error {
	if err := s.store.FreeSlot(ctx, sl); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // changed meanwhile: the next pass looks again
		}
		return err
	}
	s.log.InfoContext(ctx, "freed a slot", "pool", sl.Pool, "slot", sl.Index, "job", sl.JobID, "attempt", sl.Attempt, "why", why)
	return nil
}

func (s *Scheduler) adoptSlot(ctx context.Context, sl store.Slot, instanceID string, now time.Time) error {
	if err := s.store.AdoptSlot(ctx, sl, instanceID, now); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	return nil
}
