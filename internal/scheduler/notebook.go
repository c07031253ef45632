package scheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// A notebook is a pool of its own: job.NotebookPool(name), at most one
// instance, never given to another pool's jobs, stopped the moment no
// notebook session holds it (its disk, with the person's files, is kept),
// and started again for the next session of the same name. Its instance
// type, AMI and volume come from the pool the message names (or the
// default pool) when it is first launched; later sessions get the same
// instance whatever types they name. The slot that holds a pool's cap in
// DynamoDB holds the notebook's one instance the same way, so that two
// sessions submitted at once launch one instance between them.

// notebookPool returns the settings of a notebook's own pool, made from
// the pool its instance is launched like: one instance. (Its keep-warm, 0,
// is keepWarm's, which knows a notebook's instance by its pool.)
func notebookPool(base Pool) Pool {
	base.MaxInstances = 1
	return base
}

// isNotebookPool reports whether pool is a notebook's own.
func isNotebookPool(pool string) bool {
	_, ok := job.NotebookOf(pool)
	return ok
}

// readNotebookSlots reads the slots of the notebook pools this pass may act
// on: those of live notebook sessions, and those whose instance is gone
// (so that its slot is freed). A notebook nobody uses costs no read.
func (s *Scheduler) readNotebookSlots(ctx context.Context, w *world) error {
	pools := map[string]bool{}
	for _, js := range w.jobs {
		for _, j := range js {
			if isNotebookPool(j.Pool) {
				pools[j.Pool] = true
			}
		}
	}
	for _, p := range w.gonePools {
		if isNotebookPool(p) {
			pools[p] = true
		}
	}
	for _, p := range slices.Sorted(maps.Keys(pools)) {
		if _, ok := w.slots[p]; ok {
			continue
		}
		sl, err := s.store.Slots(ctx, p)
		if err != nil {
			return fmt.Errorf("read slots of %s: %w", p, err)
		}
		w.slots[p] = sl
	}
	return nil
}
