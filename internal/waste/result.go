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
	// Training is time a job's command ran, plus the time in notebook
	// sessions' phases (work, read, busy). It is the same for every policy on one trace.
	Training time.Duration
	// Killed is command time lost to a stop that did not wait for the job
	// to end (the nightly stop), or a busy notebook phase's run lost to a
	// stop under it; the job or the phase ran again later. It is billed and
	// is not training.
	Killed time.Duration
	// Starts counts instance launches and starts.
	Starts int
	// Interruptions counts stops of a notebook instance while its person
	// was in a session, or whose person came back (the notebook's next
	// session arrived) within ReturnWindow of the stop.
	Interruptions int
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
