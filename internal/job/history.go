package job

import (
	"slices"
	"time"
	"unicode/utf8"
)

// MaxHistory bounds a job's History. A job's record is one DynamoDB item,
// at most 400 KB: the spec takes up to MaxMessageBytes (64 KiB) of it, and
// 64 entries of at most MaxHistoryReason bytes of reason and about 300 of
// the rest (ids, times, attribute names) take under 90 KB, which leaves
// room for everything else however often the job is re-queued (a job
// moves about 4 times per attempt, and has at most MaxRetries+1 attempts,
// but a launch refused for capacity re-queues it without limit). The
// store's TestLargestJobSize measures the largest record against the limit
// (about 154 KB, 82 KB of it history).
const MaxHistory = 64

// MaxHistoryReason bounds the reason kept in a History entry, in bytes:
// enough for any reason nightshift writes, including an AWS error message,
// and small enough for MaxHistory entries to fit in the job's item. The
// job's own Reason is kept whole.
const MaxHistoryReason = 1024

// Transition is one entry of a job's timeline: a move from one state to
// another, and where the job's attempt stood when it was made.
//
// The attempt fields are the job's as they are at the move: Move records
// them after the caller has set what it knew before moving (the scheduler
// sets the command id and log stream, then moves to RUNNING). So the entry
// of a move to PLACED for a new instance has no instance (it is launched
// after the intent is written, and recorded on the job without a move),
// and the entry of a move back to QUEUED names the attempt that was lost,
// and its instance, before the next attempt clears them.
type Transition struct {
	// At is when the move was made. For a job that ended, EndedAt may be
	// earlier: it is when the command itself ended, when SSM says so.
	At time.Time `json:"at"`
	// From is the state the job left; empty for the entry of its submission.
	From State `json:"from,omitempty"`
	To   State `json:"to"`
	// Reason is the job's reason after the move, cut to MaxHistoryReason bytes.
	Reason       string `json:"reason,omitempty"`
	Attempt      int    `json:"attempt"`
	InstanceID   string `json:"instance_id,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	CommandID    string `json:"command_id,omitempty"`
	LogStream    string `json:"log_stream,omitempty"`
}

// record appends to j's history the move from state from to j's current
// state, dropping the oldest entries past MaxHistory.
func (j *Job) record(from State, now time.Time) {
	t := Transition{
		At:           now.UTC(),
		From:         from,
		To:           j.State,
		Reason:       cut(j.Reason, MaxHistoryReason),
		Attempt:      j.Attempt,
		InstanceID:   j.InstanceID,
		InstanceType: j.InstanceType,
		CommandID:    j.CommandID,
		LogStream:    j.LogStream,
	}
	h := j.History
	if over := len(h) + 1 - MaxHistory; over > 0 {
		h = h[over:]
		j.HistoryDropped += over
	}
	// Always a new array: a copy of the job (c := *j, as callers make to
	// try a move) shares the old one, and an append in place would write
	// into the copy's history.
	j.History = append(slices.Clip(h), t)
}

// cut returns s shortened to at most n bytes, on a rune boundary, with an
// ellipsis when anything was cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	i := n - len(ellipsis)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}
