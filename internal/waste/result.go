package waste

import (
	"math"
	"slices"
	"time"
)

// Result is what one policy did with one trace.
type Result struct {
	// Billed is GPU instance time billed, pool and notebooks.
	Billed time.Duration
	// Training is time a job's command ran, plus time a notebook's user
	// was active. It is the same for every policy on one trace.
	Training time.Duration
	// Killed is command time lost to a stop that did not wait for the job
	// to end (the nightly stop); the job ran again later. It is billed and
	// is not training.
	Killed time.Duration
	// Starts counts instance launches and starts.
	Starts int
	// Waits holds, per job, the time from its submission to its command
	// starting (the last attempt's start, for a job run twice).
	Waits []time.Duration
	// USD is Billed at the on-demand price.
	USD float64
}

// Idle is billed time that was not training.
func (r Result) Idle() time.Duration { return r.Billed - r.Training }

// Wait returns the p-th percentile (0-100) of the waits, nearest rank.
func (r Result) Wait(p float64) time.Duration {
	if len(r.Waits) == 0 {
		return 0
	}
	w := slices.Clone(r.Waits)
	slices.Sort(w)
	k := int(math.Ceil(float64(len(w))*p/100)) - 1
	return w[min(max(k, 0), len(w)-1)]
}
