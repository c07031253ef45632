// Package job defines the job message, its validation, and the job record's
// states and transitions. It knows nothing of AWS.
package job

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Job is the record of one job: what was asked, and everything that happened to it.
type Job struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Spec    Spec   `json:"spec"`
	State   State  `json:"state"`
	Version int64  `json:"version"`
	// Reason says, in words a person can act on, why the job is where it is.
	Reason string `json:"reason,omitempty"`
	// Attempt counts from 1; it grows when an instance is lost under the job.
	Attempt int `json:"attempt"`
	// Resumes counts the lost attempts of a checkpointed job that resumed
	// from its checkpoint without using a retry: each ran long enough to
	// have synced it at least once (see RetriesUsed).
	Resumes int    `json:"resumes,omitempty"`
	Pool    string `json:"pool"`
	// Priority and SubmittedAt order the queue: higher priority first, then older first.
	Priority    int       `json:"priority"`
	SubmittedAt time.Time `json:"submitted_at"`

	InstanceID   string `json:"instance_id,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	Market       string `json:"market,omitempty"`
	// LaunchTry counts RunInstances tries within an attempt; with ID and
	// Attempt it derives the client token, so a retried launch after a crash
	// gets the same instance back while a launch after a capacity error is new.
	LaunchTry int `json:"launch_try,omitempty"`
	// DispatchedAt is the intent to send the command, written before SendCommand.
	DispatchedAt time.Time `json:"dispatched_at,omitempty"`
	CommandID    string    `json:"command_id,omitempty"`
	LogStream    string    `json:"log_stream,omitempty"`
	ExitCode     *int      `json:"exit_code,omitempty"`
	// StalledAt is when the watchdog found the running attempt stalled.
	StalledAt time.Time `json:"stalled_at,omitempty"`

	// CancelRequestedAt is when a cancel message asked for the job to end;
	// CancelReason is what it said. Once set, no attempt of the job starts.
	CancelRequestedAt time.Time `json:"cancel_requested_at,omitempty"`
	CancelReason      string    `json:"cancel_reason,omitempty"`
	// StopCommandID is the command that asked the running attempt's wrapper
	// to stop (its outputs synced); StopSentAt is when it was sent. Past
	// scheduler.StopGrace the job's command is cancelled outright.
	StopCommandID string    `json:"stop_command_id,omitempty"`
	StopSentAt    time.Time `json:"stop_sent_at,omitempty"`

	PlacedAt  time.Time `json:"placed_at,omitempty"`
	StartedAt time.Time `json:"started_at,omitempty"`
	EndedAt   time.Time `json:"ended_at,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// Cost is the estimated USD spent on this job's instance time.
	Cost float64 `json:"cost,omitempty"`
	// Source names where the message came from (the SQS message id).
	Source string `json:"source,omitempty"`

	// History is the job's timeline, oldest first: its submission, then
	// every move between states (see Move), at most MaxHistory entries.
	History []Transition `json:"history,omitempty"`
	// HistoryDropped counts the oldest entries left out of History to keep
	// it within MaxHistory.
	HistoryDropped int `json:"history_dropped,omitempty"`
}

// New returns a QUEUED job for a validated spec. Its history starts with
// its submission: an entry from no state to QUEUED.
func New(s Spec, pool string, now time.Time) *Job {
	now = now.UTC()
	j := &Job{
		ID:          s.ID,
		Name:        s.Name,
		Spec:        s,
		State:       Queued,
		Attempt:     1,
		Pool:        pool,
		Priority:    s.Priority,
		SubmittedAt: now,
		UpdatedAt:   now,
		Reason:      "waiting for placement",
	}
	j.record("", now)
	return j
}

// NewRejected returns the REJECTED record of a message that failed
// validation; its history is the one entry from no state to REJECTED.
func NewRejected(id string, err error, now time.Time) *Job {
	now = now.UTC()
	j := &Job{
		ID:          id,
		State:       Rejected,
		Attempt:     1,
		Reason:      err.Error(),
		SubmittedAt: now,
		UpdatedAt:   now,
		EndedAt:     now,
	}
	j.record("", now)
	return j
}

// ClientToken is the EC2 idempotency token of this job's current launch try:
// at most 64 ASCII characters, the same for the same job, attempt and try.
func (j *Job) ClientToken() string {
	sum := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%d", j.ID, j.Attempt, j.LaunchTry))
	return "ns-" + hex.EncodeToString(sum[:16])
}

// Comment is the SSM command comment that names this attempt, so a command
// sent before a crash can be found again (SSM has no idempotency token).
// SSM comments are at most 100 characters; an id is at most 64.
func (j *Job) Comment() string {
	return fmt.Sprintf("nightshift %s #%d", j.ID, j.Attempt)
}

// RetriesUsed is how many of the job's retries its lost attempts have
// used: every lost attempt but those that resumed from a checkpoint.
func (j *Job) RetriesUsed() int { return max(0, j.Attempt-1-j.Resumes) }

// CancelRequested reports whether a cancel message asked for the job to end.
func (j *Job) CancelRequested() bool { return !j.CancelRequestedAt.IsZero() }

// CancelledReason is the reason of a job cancelled by a cancel message, with
// what happened to it when it was (why), if anything.
func (j *Job) CancelledReason(why string) string {
	r := "cancelled"
	if j.CancelReason != "" {
		r += ": " + j.CancelReason
	}
	if why != "" {
		r += " (" + why + ")"
	}
	return r
}

// Deadline is when the current attempt must have ended.
func (j *Job) Deadline() time.Time {
	if j.StartedAt.IsZero() {
		return time.Time{}
	}
	return j.StartedAt.Add(j.Spec.MaxRuntime.D())
}

// QueuedSince is when the job's current attempt began to wait: its
// submission, or the move back to the queue that began a later attempt (a
// lost instance). A launch refused for capacity or quota sends the job
// back to the queue within its attempt: that wait goes on.
func (j *Job) QueuedSince() time.Time {
	if j.Attempt <= 1 {
		return j.SubmittedAt
	}
	// The move that lost the previous attempt is its last entry, to QUEUED
	// (recorded before the attempt count grew).
	for k := len(j.History) - 1; k >= 0; k-- {
		if h := j.History[k]; h.Attempt < j.Attempt {
			if h.To == Queued {
				return h.At
			}
			break
		}
	}
	return j.UpdatedAt // its history does not reach back so far
}
