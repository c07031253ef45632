package chaos

import (
	"maps"
	"slices"
	"time"
)

// k1: a checkpointed job never starts over: each attempt restores at
// least the most progress an earlier attempt of the job saved to its
// checkpoint (the sync on the notice, the periodic one, the one a
// rebalance asked for), whatever crashed, was interrupted or ran twice.
func (c *checker) k1() {
	h := c.h
	for _, id := range slices.Sorted(maps.Keys(h.jobs)) {
		var best time.Duration
		for _, t := range h.w.Training(id) {
			if t.Restored < best {
				c.fail("K1", "job %s attempt %d restored %v of training; an earlier attempt had saved %v", id, t.Attempt, t.Restored, best)
				return
			}
			best = max(best, t.Saved)
		}
	}
}
