package job

import (
	"fmt"
	"time"
)

// State is where a job is in its life.
type State string

// The states of a job. QUEUED → PLACED → RUNNING → a terminal state; REJECTED
// is the terminal state of a message that failed validation.
const (
	Queued    State = "QUEUED"
	Placed    State = "PLACED"
	Running   State = "RUNNING"
	Succeeded State = "SUCCEEDED"
	Failed    State = "FAILED"
	TimedOut  State = "TIMED_OUT"
	Cancelled State = "CANCELLED"
	Rejected  State = "REJECTED"
)

// Live lists the non-terminal states, in the order Reconcile reads them.
var Live = []State{Queued, Placed, Running}

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool {
	switch s {
	case Succeeded, Failed, TimedOut, Cancelled, Rejected:
		return true
	}
	return false
}

// transitions lists, for each state, the states it may move to. PLACED and
// RUNNING may return to QUEUED: a placement that found no capacity, or an
// attempt whose instance was lost.
var transitions = map[State][]State{
	Queued:  {Placed, Cancelled, Failed},
	Placed:  {Placed, Queued, Running, Failed, Cancelled, TimedOut},
	Running: {Running, Queued, Succeeded, Failed, TimedOut, Cancelled},
}

// CanMove reports whether a job in state from may move to state to.
func CanMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// Move checks and applies a transition, recording when the new state began
// and appending the move to the job's History, with the attempt, instance,
// command and log stream as the job has them now: set them before Move to
// have them in the entry.
func (j *Job) Move(to State, reason string, now time.Time) error {
	if !CanMove(j.State, to) {
		return fmt.Errorf("job %s: %s → %s: %w", j.ID, j.State, to, ErrBadTransition)
	}
	from := j.State
	j.State = to
	j.Reason = reason
	j.UpdatedAt = now.UTC()
	switch to {
	case Placed:
		if j.PlacedAt.IsZero() {
			j.PlacedAt = now.UTC()
		}
	case Running:
		if j.StartedAt.IsZero() {
			j.StartedAt = now.UTC()
		}
	case Queued:
		j.PlacedAt, j.StartedAt = time.Time{}, time.Time{}
	}
	if to.Terminal() {
		j.EndedAt = now.UTC()
	}
	j.record(from, now)
	return nil
}
