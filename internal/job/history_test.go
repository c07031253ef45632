package job

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

func minutes(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func TestNewHistory(t *testing.T) {
	tests := []struct {
		name string
		give *Job
		want []Transition
	}{
		{
			name: "queued",
			give: New(Spec{ID: "a", Command: "true"}, "gpu", t0.In(time.FixedZone("CET", 3600))),
			want: []Transition{{At: t0, To: Queued, Reason: "waiting for placement", Attempt: 1}},
		},
		{
			name: "rejected",
			give: NewRejected("b", errors.New(`unknown field "comand"`), t0),
			want: []Transition{{At: t0, To: Rejected, Reason: `unknown field "comand"`, Attempt: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, tt.give.History); diff != "" {
				t.Errorf("History mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestMoveHistory follows a job through the moves the scheduler makes, set
// up as it sets them up: the fields it knows before each Move are in that
// move's entry; those it sets after are not.
func TestMoveHistory(t *testing.T) {
	j := New(Spec{ID: "a", Command: "true"}, "gpu", t0)
	steps := []struct {
		name   string
		before func(j *Job) // what the caller sets before Move
		to     State
		reason string
		after  func(j *Job) // what the caller sets after Move
	}{
		{
			name: "launch intent", to: Placed, reason: "launching an instance",
			after: func(j *Job) { j.Market = "spot" },
		},
		{
			name: "lost launch", to: Queued, reason: "no capacity",
			after: func(j *Job) { j.LaunchTry++ },
		},
		{
			name:   "placed on a free instance",
			before: func(j *Job) { j.InstanceID, j.InstanceType = "i-1", "g5.xlarge" },
			to:     Placed, reason: "placed on free instance i-1",
		},
		{
			name:   "running",
			before: func(j *Job) { j.CommandID, j.LogStream = "cmd-1", "cmd-1/i-1/aws-runShellScript/stdout" },
			to:     Running, reason: "running on i-1",
		},
		{
			name: "instance lost", to: Queued, reason: "instance i-1 terminated while the job ran; retry 1 of 2",
			after: func(j *Job) {
				j.Attempt++
				j.InstanceID, j.InstanceType, j.CommandID, j.LogStream = "", "", "", ""
			},
		},
		{
			name:   "placed again",
			before: func(j *Job) { j.InstanceID, j.InstanceType = "i-2", "g6.xlarge" },
			to:     Placed, reason: "placed on free instance i-2",
		},
		{
			name:   "running again",
			before: func(j *Job) { j.CommandID, j.LogStream = "cmd-2", "cmd-2/i-2/aws-runShellScript/stdout" },
			to:     Running, reason: "running on i-2",
		},
		{
			name: "succeeded", to: Succeeded, reason: "exit code 0",
			before: func(j *Job) { code := 0; j.ExitCode = &code },
			after:  func(j *Job) { j.EndedAt = minutes(6).Add(-time.Second) },
		},
	}
	for i, st := range steps {
		if st.before != nil {
			st.before(j)
		}
		if err := j.Move(st.to, st.reason, minutes(i+1)); err != nil {
			t.Fatalf("%s: Move(%s) = %v; want nil", st.name, st.to, err)
		}
		if st.after != nil {
			st.after(j)
		}
	}
	want := []Transition{
		{At: t0, To: Queued, Reason: "waiting for placement", Attempt: 1},
		{At: minutes(1), From: Queued, To: Placed, Reason: "launching an instance", Attempt: 1},
		{At: minutes(2), From: Placed, To: Queued, Reason: "no capacity", Attempt: 1},
		{At: minutes(3), From: Queued, To: Placed, Reason: "placed on free instance i-1", Attempt: 1, InstanceID: "i-1", InstanceType: "g5.xlarge"},
		{At: minutes(4), From: Placed, To: Running, Reason: "running on i-1", Attempt: 1, InstanceID: "i-1", InstanceType: "g5.xlarge", CommandID: "cmd-1", LogStream: "cmd-1/i-1/aws-runShellScript/stdout"},
		{At: minutes(5), From: Running, To: Queued, Reason: "instance i-1 terminated while the job ran; retry 1 of 2", Attempt: 1, InstanceID: "i-1", InstanceType: "g5.xlarge", CommandID: "cmd-1", LogStream: "cmd-1/i-1/aws-runShellScript/stdout"},
		{At: minutes(6), From: Queued, To: Placed, Reason: "placed on free instance i-2", Attempt: 2, InstanceID: "i-2", InstanceType: "g6.xlarge"},
		{At: minutes(7), From: Placed, To: Running, Reason: "running on i-2", Attempt: 2, InstanceID: "i-2", InstanceType: "g6.xlarge", CommandID: "cmd-2", LogStream: "cmd-2/i-2/aws-runShellScript/stdout"},
		{At: minutes(8), From: Running, To: Succeeded, Reason: "exit code 0", Attempt: 2, InstanceID: "i-2", InstanceType: "g6.xlarge", CommandID: "cmd-2", LogStream: "cmd-2/i-2/aws-runShellScript/stdout"},
	}
	if diff := cmp.Diff(want, j.History); diff != "" {
		t.Errorf("History mismatch (-want +got):\n%s", diff)
	}
	if j.HistoryDropped != 0 {
		t.Errorf("HistoryDropped = %d; want 0", j.HistoryDropped)
	}

	// A refused move changes nothing, its history included.
	before := len(j.History)
	if err := j.Move(Running, "again", minutes(9)); !errors.Is(err, ErrBadTransition) {
		t.Errorf("Move(%s→%s) = %v; want %v", Succeeded, Running, err, ErrBadTransition)
	}
	if len(j.History) != before {
		t.Errorf("len(History) after a refused move = %d; want %d", len(j.History), before)
	}
}

func TestHistoryBounded(t *testing.T) {
	tests := []struct {
		give        int // moves after the submission
		wantLen     int
		wantDropped int
	}{
		{give: 0, wantLen: 1, wantDropped: 0},
		{give: MaxHistory - 1, wantLen: MaxHistory, wantDropped: 0},
		{give: MaxHistory, wantLen: MaxHistory, wantDropped: 1},
		{give: 1000, wantLen: MaxHistory, wantDropped: 1000 + 1 - MaxHistory},
	}
	for _, tt := range tests {
		j := New(Spec{ID: "a", Command: "true"}, "gpu", t0)
		// A launch refused for capacity, over and over: PLACED, QUEUED, …
		for i := range tt.give {
			to := Placed
			if i%2 == 1 {
				to = Queued
			}
			if err := j.Move(to, "no capacity", minutes(i+1)); err != nil {
				t.Fatalf("Move(%s) = %v; want nil", to, err)
			}
		}
		if len(j.History) != tt.wantLen || j.HistoryDropped != tt.wantDropped {
			t.Errorf("%d moves: len(History), HistoryDropped = %d, %d; want %d, %d", tt.give, len(j.History), j.HistoryDropped, tt.wantLen, tt.wantDropped)
		}
		// The newest entries are the ones kept, oldest first.
		if last := j.History[len(j.History)-1].At; !last.Equal(minutes(tt.give)) {
			t.Errorf("%d moves: last entry at %v; want %v", tt.give, last, minutes(tt.give))
		}
		if first := j.History[0].At; !first.Equal(minutes(tt.wantDropped)) {
			t.Errorf("%d moves: first entry at %v; want %v", tt.give, first, minutes(tt.wantDropped))
		}
	}
}

func TestMoveCopyHistory(t *testing.T) {
	// A caller tries a move on a copy; the original and the copy move on
	// separately, and neither's entries change the other's.
	// Three entries: an array grown by append would have room for a fourth.
	j := New(Spec{ID: "a", Command: "true"}, "gpu", t0)
	for i, to := range []State{Placed, Queued} {
		if err := j.Move(to, "setup", minutes(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	c := *j
	if err := c.Move(Placed, "copy", minutes(10)); err != nil {
		t.Fatal(err)
	}
	if err := j.Move(Cancelled, "original", minutes(11)); err != nil {
		t.Fatal(err)
	}
	if got := c.History[len(c.History)-1].Reason; got != "copy" {
		t.Errorf("copy's last entry reason = %q; want %q", got, "copy")
	}
	if got := j.History[len(j.History)-1].Reason; got != "original" {
		t.Errorf("original's last entry reason = %q; want %q", got, "original")
	}
}

func TestHistoryReasonCut(t *testing.T) {
	long := strings.Repeat("é", MaxHistoryReason) // 2 bytes each
	tests := []struct {
		name string
		give string
		want string
	}{
		{name: "short", give: "exit code 1", want: "exit code 1"},
		{name: "at the limit", give: strings.Repeat("x", MaxHistoryReason), want: strings.Repeat("x", MaxHistoryReason)},
		{name: "one past", give: strings.Repeat("x", MaxHistoryReason+1), want: strings.Repeat("x", MaxHistoryReason-3) + "…"},
		// 1021 bytes would split an "é": the cut falls back to 1020.
		{name: "on a rune boundary", give: long, want: strings.Repeat("é", (MaxHistoryReason-3)/2) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := New(Spec{ID: "a", Command: "true"}, "gpu", t0)
			if err := j.Move(Failed, tt.give, minutes(1)); err != nil {
				t.Fatal(err)
			}
			got := j.History[len(j.History)-1].Reason
			if got != tt.want {
				t.Errorf("entry reason of Move(%d bytes) = %d bytes %q…; want %d bytes", len(tt.give), len(got), got[:min(len(got), 20)], len(tt.want))
			}
			if len(got) > MaxHistoryReason || !utf8.ValidString(got) {
				t.Errorf("entry reason = %d bytes, valid UTF-8 %v; want at most %d, valid", len(got), utf8.ValidString(got), MaxHistoryReason)
			}
			if j.Reason != tt.give {
				t.Errorf("Reason = %d bytes; want the whole %d", len(j.Reason), len(tt.give))
			}
		})
	}
}
