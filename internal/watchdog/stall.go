package watchdog

import (
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// StallTimeout returns a job's stall timeout: its own, else def.
func StallTimeout(j *job.Job, def time.Duration) time.Duration {
	if d := j.Spec.StallTimeout.D(); d > 0 {
		return d
	}
	return def
}

// StallInput is what the stall rule looks at for one running job.
type StallInput struct {
	Now     time.Time
	Started time.Time
	// Reported: this attempt was found stalled already (job.StalledAt);
	// a stall is reported once.
	Reported bool
	Timeout  time.Duration
	// GPU and Progress are the job's instance's series as read, oldest
	// first; GPU points from before the window are ignored.
	GPU, Progress Series
	GPUPercent    float64
}

// Due reports whether the job is to be judged: not reported yet, and
// running for at least its stall timeout. A sweep reads no metrics for the rest.
func (in StallInput) Due() bool {
	return !in.Reported && in.Now.Sub(in.Started) >= in.Timeout
}

// Stalled decides whether a running job stalled: both signals there and in
// agreement, no GPU use over the whole timeout and no progress for as long
// (less two of the wrapper's publishing periods). It says why, either way.
func Stalled(in StallInput) (why string, stalled bool) {
	if in.Reported {
		return "reported already", false
	}
	if !in.Due() {
		return fmt.Sprintf("running %v of a %v stall timeout", in.Now.Sub(in.Started), in.Timeout), false
	}
	from := in.Now.Add(-in.Timeout)
	gpu := in.GPU.since(from)
	switch {
	case !gpu.Covers(from, in.Now, GPU.Period):
		return "no GPU data over the window", false
	case gpu.Max() >= in.GPUPercent:
		return fmt.Sprintf("GPU max %.0f%% (>= %.0f%%)", gpu.Max(), in.GPUPercent), false
	case len(in.Progress) == 0:
		return "no progress data", false
	case in.Progress.Last() < (in.Timeout - 2*Progress.Period).Seconds():
		return fmt.Sprintf("progress %.0f s ago", in.Progress.Last()), false
	}
	return fmt.Sprintf("stalled: GPU max %.0f%% and no output or heartbeat for %v", gpu.Max(), time.Duration(in.Progress.Last())*time.Second), true
}
