package job

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func defaults() Defaults {
	return Defaults{
		Pool: "default", MaxRuntime: 2 * time.Hour, Retries: 2, Setup: ". /opt/pytorch/bin/activate",
		Market: OnDemand, Pools: []string{"default", "big"},
		KnownType: func(t string) bool { return t == "g5.xlarge" || t == "g4dn.xlarge" },
	}
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse([]byte(`{"command": "python train.py --epochs 10"}`), defaults())
	if err != nil {
		t.Fatalf("Parse(smallest message) = %v", err)
	}
	two := 2
	want := Spec{
		Command: "python train.py --epochs 10", Setup: ". /opt/pytorch/bin/activate",
		Instance: Instance{Pool: "default", Market: OnDemand}, MaxRuntime: Duration(2 * time.Hour), Retries: &two,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(smallest message) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseFull(t *testing.T) {
	msg := `{"id": "resnet-1", "name": "resnet", "command": "python train.py", "workdir": "/opt/dlami/nvme",
	  "setup": "source activate pytorch", "env": {"LR": "0.1", "_X": "a b"},
	  "instance": {"pool": "big", "types": ["g5.xlarge", "g4dn.xlarge"], "market": "spot-then-on-demand", "volume_gb": 200},
	  "max_runtime": "90m", "inputs": [{"s3": "s3://b/data", "path": "data"}], "outputs": [{"s3": "s3://b/out", "path": "out"}],
	  "retries": 0, "priority": 7, "notify": "failure"}`
	got, err := Parse([]byte(msg), defaults())
	if err != nil {
		t.Fatalf("Parse(full) = %v", err)
	}
	if got.Instance.Pool != "big" || got.MaxRuntime.D() != 90*time.Minute || got.RetryLimit() != 0 || got.Priority != 7 || len(got.Instance.Types) != 2 {
		t.Errorf("Parse(full) = %+v; want pool big, 90m, retries 0 (explicit), priority 7, two types", got)
	}
	if got, err := Parse([]byte(`{"command": "x", "instance": "big", "max_runtime": 3600}`), defaults()); err != nil || got.Instance.Pool != "big" || got.MaxRuntime.D() != time.Hour {
		t.Errorf("Parse(pool as string, seconds) = %+v, %v; want pool big, 1h", got, err)
	}
}

func TestParseScheduled(t *testing.T) {
	got, err := Parse([]byte(`{"id": "nightly-train", "scheduled_at": "2026-11-25T02:00:00Z", "command": "x"}`), defaults())
	if err != nil || got.ID != "nightly-train-2026-11-25T020000Z" {
		t.Errorf("Parse(scheduled) = %q, %v; want id nightly-train-2026-11-25T020000Z", got.ID, err)
	}
}

func TestParseBadInput(t *testing.T) {
	tests := []struct {
		name string
		give string
		want error
		// wantText must appear in the message a user reads.
		wantText string
	}{
		{"malformed", `{"command": "x"`, ErrMalformed, "truncated"},
		{"not json", `python train.py`, ErrMalformed, "invalid character"},
		{"array", `["x"]`, ErrMalformed, "want a JSON object"},
		{"empty", ``, ErrMalformed, "empty"},
		{"trailing", `{"command": "x"} {}`, ErrMalformed, "after the JSON object"},
		{"unknown field", `{"comand": "python train.py"}`, ErrUnknownField, `"comand"`},
		{"unknown field hint", `{"comand": "python train.py"}`, ErrUnknownField, `did you mean "command"`},
		{"unknown instance field", `{"command": "x", "instance": {"typ": ["g5.xlarge"]}}`, ErrUnknownField, `"typ"`},
		{"missing command", `{"name": "x"}`, ErrMissingCommand, "needs a command"},
		{"blank command", `{"command": "   "}`, ErrMissingCommand, "needs a command"},
		{"bad id", `{"id": "my job!", "command": "x"}`, ErrBadID, `"my job!"`},
		{"long id", `{"id": "` + strings.Repeat("a", 65) + `", "command": "x"}`, ErrBadID, "1-64"},
		{"scheduled without id", `{"scheduled_at": "2026-11-25T02:00:00Z", "command": "x"}`, ErrBadID, "scheduled job needs an id"},
		{"bad env name", `{"command": "x", "env": {"1BAD": "v"}}`, ErrBadEnvName, `"1BAD"`},
		{"env injection", `{"command": "x", "env": {"A;rm -rf /": "v"}}`, ErrBadEnvName, "shell variable name"},
		{"bad duration", `{"command": "x", "max_runtime": "2 hours"}`, ErrBadDuration, `max_runtime: want a duration such as "2h" or "90m", got "2 hours"`},
		{"too long", `{"command": "x", "max_runtime": "49h"}`, ErrBadDuration, "48h"},
		{"bad stall timeout", `{"command": "x", "max_runtime": "2h", "stall_timeout": "soon"}`, ErrBadDuration, `stall_timeout: want a duration`},
		{"short stall timeout", `{"command": "x", "stall_timeout": "1m"}`, ErrBadDuration, "at least 5m"},
		{"bad on_stall", `{"command": "x", "on_stall": "panic"}`, ErrInvalid, "notify or cancel"},
		{"notify an address", `{"command": "x", "notify": "me@example.com"}`, ErrInvalid, `notify: "me@example.com": want end, failure or never`},
		{"notify a topic", `{"command": "x", "notify": "arn:aws:sns:us-east-1:123456789012:t"}`, ErrInvalid, "the stack's SNS topic"},
		{"too short", `{"command": "x", "max_runtime": "5s"}`, ErrBadDuration, "1m0s"},
		{"unknown type", `{"command": "x", "instance": {"types": ["t2.micro"]}}`, ErrUnknownInstance, `"t2.micro"`},
		{"unknown pool", `{"command": "x", "instance": "huge"}`, ErrUnknownInstance, `no pool "huge"`},
		{"bad market", `{"command": "x", "instance": {"market": "cheap"}}`, ErrInvalid, "spot-then-on-demand"},
		{"bad retries", `{"command": "x", "retries": 99}`, ErrInvalid, "retries"},
		{"wrong type", `{"command": 42}`, ErrInvalid, "command"},
		{"bad sync", `{"command": "x", "inputs": [{"s3": "bucket/x", "path": "d"}]}`, ErrInvalid, "s3://"},
		{"oversized", `{"command": "` + strings.Repeat("x", MaxMessageBytes) + `"}`, ErrOversized, "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.give), defaults())
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse(%.60q) = %v; want %v", tt.give, err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%.60q) = %T; want *Error", tt.give, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Parse(%.60q) = %q; want it to say %q", tt.give, err, tt.wantText)
			}
		})
	}
}

func TestMove(t *testing.T) {
	now := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	j := New(Spec{ID: "a", Command: "x"}, "default", now)
	steps := []State{Placed, Running, Queued, Placed, Running, Succeeded}
	for _, s := range steps {
		if err := j.Move(s, "", now); err != nil {
			t.Fatalf("Move(%s) = %v", s, err)
		}
	}
	if err := j.Move(Running, "", now); !errors.Is(err, ErrBadTransition) {
		t.Errorf("Move(SUCCEEDED → RUNNING) = %v; want ErrBadTransition", err)
	}
	if j.EndedAt.IsZero() {
		t.Errorf("a terminal job has no end time")
	}
}

func TestClientToken(t *testing.T) {
	j := &Job{ID: strings.Repeat("z", 64), Attempt: 1}
	a := j.ClientToken()
	if len(a) > 64 || a != j.ClientToken() {
		t.Fatalf("ClientToken() = %q; want ≤ 64 chars and stable", a)
	}
	j.Attempt = 2
	if j.ClientToken() == a {
		t.Errorf("ClientToken() is the same for another attempt")
	}
	j.LaunchTry = 1
	if b := j.ClientToken(); b == a || len(j.Comment()) > 100 {
		t.Errorf("ClientToken() not new for a new launch try, or comment too long")
	}
}

// TestNotifyOn: whether a job's end is published, by its notify and its end.
func TestNotifyOn(t *testing.T) {
	tests := []struct {
		give string // notify
		want map[State]bool
	}{
		{give: "", want: map[State]bool{}},
		{give: NotifyNever, want: map[State]bool{}},
		{give: NotifyFailure, want: map[State]bool{Failed: true, TimedOut: true, Cancelled: true}},
		{give: NotifyEnd, want: map[State]bool{Succeeded: true, Failed: true, TimedOut: true, Cancelled: true}},
	}
	for _, tt := range tests {
		for _, st := range []State{Queued, Placed, Running, Succeeded, Failed, TimedOut, Cancelled, Rejected} {
			s := Spec{Notify: tt.give}
			if got := s.NotifyOn(st); got != tt.want[st] {
				t.Errorf("Spec{Notify: %q}.NotifyOn(%s) = %v; want %v", tt.give, st, got, tt.want[st])
			}
		}
	}
}
