package job

import (
	"encoding/json"
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
		KnownType:     func(t string) bool { return t == "g5.xlarge" || t == "g4dn.xlarge" },
		SecretsPrefix: "/nightshift/secrets/",
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

// TestParseSecrets: an env value is a string or a reference {"ssm": NAME}
// to a parameter under the deployment's secrets prefix; the spec keeps the
// reference, and a bad one is rejected with an error that names the
// variable and the parameter.
func TestParseSecrets(t *testing.T) {
	tests := []struct {
		name   string
		give   string // the env object
		prefix string // the deployment's SecretsPrefix
		want   Env
		// wantErr and wantText, when set: the rejection.
		wantErr  error
		wantText string
	}{
		{name: "a reference", give: `{"WANDB_API_KEY": {"ssm": "/nightshift/secrets/wandb"}}`, prefix: "/nightshift/secrets/",
			want: Env{"WANDB_API_KEY": {SSM: "/nightshift/secrets/wandb"}}},
		{name: "a deeper reference, prefix without its slash", give: `{"K": {"ssm": "/team/ml/wandb/key_1.v-2"}}`, prefix: "/team/ml",
			want: Env{"K": {SSM: "/team/ml/wandb/key_1.v-2"}}},
		{name: "strings and references mixed", give: `{"LR": "0.1", "EMPTY": "", "NULL": null, "KEY": {"ssm": "/nightshift/secrets/k"}}`, prefix: "/nightshift/secrets/",
			want: Env{"LR": {Value: "0.1"}, "EMPTY": {}, "NULL": {}, "KEY": {SSM: "/nightshift/secrets/k"}}},
		{name: "strings only, secrets off", give: `{"LR": "0.1"}`, prefix: "", want: Env{"LR": {Value: "0.1"}}},
		{name: "secrets off", give: `{"WANDB_API_KEY": {"ssm": "/nightshift/secrets/wandb"}}`, prefix: "",
			wantErr: ErrInvalid, wantText: `env: "WANDB_API_KEY": parameter "/nightshift/secrets/wandb": this deployment reads no secrets (its SecretsPrefix is empty)`},
		{name: "outside the prefix", give: `{"K": {"ssm": "/team/wandb"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `env: "K": parameter "/team/wandb": not under this deployment's secrets prefix "/nightshift/secrets/"`},
		{name: "a sibling of the prefix", give: `{"K": {"ssm": "/nightshift/secrets-other/k"}}`, prefix: "/nightshift/secrets",
			wantErr: ErrInvalid, wantText: `not under this deployment's secrets prefix "/nightshift/secrets/"`},
		{name: "the prefix itself", give: `{"K": {"ssm": "/nightshift/secrets"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `parameter "/nightshift/secrets": not under`},
		{name: "no leading slash", give: `{"K": {"ssm": "nightshift/secrets/k"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `env: "K": parameter "nightshift/secrets/k": want a parameter path`},
		{name: "a space", give: `{"K": {"ssm": "/nightshift/secrets/my key"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `parameter "/nightshift/secrets/my key": want a parameter path`},
		{name: "an empty level", give: `{"K": {"ssm": "/nightshift/secrets//k"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "want a parameter path"},
		{name: "a trailing slash", give: `{"K": {"ssm": "/nightshift/secrets/"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "want a parameter path"},
		{name: "an ARN", give: `{"K": {"ssm": "arn:aws:ssm:us-east-1:123456789012:parameter/nightshift/secrets/k"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "want a parameter path"},
		{name: "too deep", give: `{"K": {"ssm": "/nightshift/secrets` + strings.Repeat("/a", 14) + `"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "more than 15 levels"},
		{name: "too long", give: `{"K": {"ssm": "/nightshift/secrets/` + strings.Repeat("a", 1000) + `"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "at most 1011 characters"},
		{name: "an empty name", give: `{"K": {"ssm": ""}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `env: "K": want a string or {"ssm": "/parameter/name"}`},
		{name: "a value where the name goes", give: `{"K": {"value": "sk-live-123"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `env: "K": want a string or {"ssm": "/parameter/name"}, got an object without a parameter name or with other fields`},
		{name: "another field", give: `{"K": {"ssm": "/nightshift/secrets/k", "version": 2}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "with other fields"},
		{name: "a number", give: `{"K": 42}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: `env: "K": want a string or {"ssm": "/parameter/name"}, got a number`},
		{name: "a list", give: `{"K": ["/nightshift/secrets/k"]}`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "got a list"},
		{name: "not an object", give: `"A=1"`, prefix: "/nightshift/secrets/",
			wantErr: ErrInvalid, wantText: "env: want an object"},
		{name: "a bad name still comes first", give: `{"1K": {"ssm": "/elsewhere/k"}}`, prefix: "/nightshift/secrets/",
			wantErr: ErrBadEnvName, wantText: `"1K"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := defaults()
			d.SecretsPrefix = tt.prefix
			msg := `{"command": "python train.py", "env": ` + tt.give + `}`
			got, err := Parse([]byte(msg), d)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Parse(%s) = %v; want it accepted", msg, err)
				}
				if diff := cmp.Diff(tt.want, got.Env); diff != "" {
					t.Errorf("Parse(%s).Env (-want +got):\n%s", msg, diff)
				}
				return
			}
			var e *Error
			if !errors.Is(err, tt.wantErr) || !errors.As(err, &e) {
				t.Fatalf("Parse(%.80s) = %v; want %v as an *Error", msg, err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("Parse(%.80s) = %q; want it to say %q", msg, err, tt.wantText)
			}
			if strings.Contains(err.Error(), "sk-live-123") {
				t.Errorf("Parse(%.80s) = %q; the error repeats a value given where a name goes", msg, err)
			}
		})
	}
}

// TestEnvJSON: an env marshals as a message has it, a reference as
// {"ssm": NAME}, and reads back the same.
func TestEnvJSON(t *testing.T) {
	give := Env{"A": {Value: "1"}, "E": {}, "K": {SSM: "/nightshift/secrets/k"}}
	b, err := json.Marshal(give)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"A":"1","E":"","K":{"ssm":"/nightshift/secrets/k"}}`; string(b) != want {
		t.Errorf("json.Marshal(%v) = %s; want %s", give, b, want)
	}
	var got Env
	if err := json.Unmarshal(b, &got); err != nil || !cmp.Equal(give, got) {
		t.Errorf("json.Unmarshal(%s) = %v, %v; want %v", b, got, err, give)
	}
}

func TestParseMaxWait(t *testing.T) {
	got, err := Parse([]byte(`{"command": "x", "max_wait": "6h"}`), defaults())
	if err != nil || got.MaxWait.D() != 6*time.Hour {
		t.Errorf("Parse(max_wait 6h) = %v, %v; want 6h", got.MaxWait.D(), err)
	}
	d := defaults()
	d.MaxWait = 24 * time.Hour
	if got, err := Parse([]byte(`{"command": "x"}`), d); err != nil || got.MaxWait.D() != 24*time.Hour {
		t.Errorf("Parse(no max_wait, deployment 24h) = %v, %v; want the deployment's 24h", got.MaxWait.D(), err)
	}
	if got, err := Parse([]byte(`{"command": "x"}`), defaults()); err != nil || got.MaxWait != 0 {
		t.Errorf("Parse(no max_wait, none deployed) = %v, %v; want 0: for ever", got.MaxWait.D(), err)
	}
	for _, bad := range []string{`{"command": "x", "max_wait": "1m"}`, `{"command": "x", "max_wait": "1000h"}`, `{"command": "x", "max_wait": "soon"}`} {
		var e *Error
		if _, err := Parse([]byte(bad), defaults()); !errors.As(err, &e) || !errors.Is(err, ErrBadDuration) || e.Field != "max_wait" {
			t.Errorf("Parse(%s) = %v; want a bad duration on max_wait", bad, err)
		}
	}
}

func TestQueuedSince(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	j := New(Spec{ID: "a", Command: "x"}, "default", t0)
	if got := j.QueuedSince(); !got.Equal(t0) {
		t.Errorf("QueuedSince of a new job = %v; want its submission %v", got, t0)
	}
	_ = j.Move(Placed, "launching", t0.Add(time.Minute))
	_ = j.Move(Queued, "capacity", t0.Add(2*time.Minute))
	if got := j.QueuedSince(); !got.Equal(t0) {
		t.Errorf("QueuedSince after a launch refused for capacity = %v; want the submission %v: the wait goes on", got, t0)
	}
	_ = j.Move(Placed, "launching", t0.Add(3*time.Minute))
	_ = j.Move(Running, "running", t0.Add(4*time.Minute))
	_ = j.Move(Queued, "instance lost", t0.Add(time.Hour)) // as the scheduler's lost does: the move, then the count
	j.Attempt++
	_ = j.Move(Placed, "launching", t0.Add(61*time.Minute))
	_ = j.Move(Queued, "capacity", t0.Add(62*time.Minute))
	if got := j.QueuedSince(); !got.Equal(t0.Add(time.Hour)) {
		t.Errorf("QueuedSince of attempt 2 = %v; want %v, when its instance was lost", got, t0.Add(time.Hour))
	}
}
