package job

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// parseKinds are the kinds a Parse error may have: every declared sentinel
// but ErrBadTransition, which belongs to Move.
var parseKinds = []error{
	ErrMalformed, ErrUnknownField, ErrMissingCommand, ErrBadID, ErrBadEnvName,
	ErrBadDuration, ErrUnknownInstance, ErrOversized, ErrInvalid,
}

// parseSeeds are job messages from the README (the smallest job, the
// scheduled job, the field table's forms and every documented bad input)
// and the table tests' inputs.
var parseSeeds = []string{
	`{"command": "python train.py --epochs 10"}`,
	`{"id": "nightly-train", "scheduled_at": "2026-11-25T02:00:00Z", "command": "python train.py --epochs 10", "max_runtime": "2h"}`,
	`{"id":"nightly-train","scheduled_at":"2026-11-25T02:00:00+01:00","command":"python train.py"}`,
	`{"id": "resnet-1", "name": "resnet", "command": "python train.py", "workdir": "/opt/dlami/nvme",
	  "setup": "source activate pytorch", "env": {"LR": "0.1", "_X": "a b"},
	  "instance": {"pool": "big", "types": ["g5.xlarge", "g4dn.xlarge"], "market": "spot-then-on-demand", "volume_gb": 200, "ami": "resolve:ssm:/param"},
	  "max_runtime": "90m", "inputs": [{"s3": "s3://b/data", "path": "data"}], "outputs": [{"s3": "s3://b/out", "path": "out"}],
	  "retries": 0, "priority": 7, "notify": "arn:aws:sns:us-east-1:123456789012:t", "on_stall": "cancel", "stall_timeout": "45m"}`,
	`{"command": "x", "instance": "big", "max_runtime": 3600}`,
	`{"command": "x", "env": {"LR": "0.1", "WANDB_API_KEY": {"ssm": "/nightshift/secrets/wandb"}, "N": null}}`,
	`{"command": "x", "env": {"K": {"ssm": "/team/wandb"}}}`,
	`{"command": "x", "env": {"K": {"ssm": "nightshift/secrets/k"}}}`,
	`{"command": "x", "env": {"K": {"ssm": ""}}}`,
	`{"command": "x", "env": {"K": {"value": "v"}}}`,
	`{"command": "x", "env": {"K": 1}}`,
	`{"command": "x", "env": []}`,
	`{"command": "x", "instance": {"ami": "ami-0123456789abcdef0", "volume_gb": 8}, "max_runtime": "2h30m", "priority": 999, "retries": 10}`,
	`{"command": "x", "max_runtime": 3600.5, "stall_timeout": 300}`,
	`python train.py`,
	`{"command": "x"`,
	`["x"]`,
	``,
	`{"command": "x"} {}`,
	`{"comand": "python train.py"}`,
	`{"command": "x", "instance": {"typ": ["g5.xlarge"]}}`,
	`{"name": "x"}`,
	`{"command": "   "}`,
	`{"id": "my job!", "command": "x"}`,
	`{"id": "` + strings.Repeat("a", 65) + `", "command": "x"}`,
	`{"scheduled_at": "2026-11-25T02:00:00Z", "command": "x"}`,
	`{"id": "x", "scheduled_at": "tonight", "command": "x"}`,
	`{"command": "x", "env": {"1X": "v"}}`,
	`{"command": "x", "env": {"A;rm -rf /": "v"}}`,
	`{"command": "x", "max_runtime": "forever"}`,
	`{"command": "x", "max_runtime": "49h"}`,
	`{"command": "x", "max_runtime": "5s"}`,
	`{"command": "x", "max_runtime": "2h", "stall_timeout": "soon"}`,
	`{"command": "x", "stall_timeout": "1m"}`,
	`{"command": "x", "on_stall": "panic"}`,
	`{"command": "x", "instance": {"types": ["m5.large"]}}`,
	`{"command": "x", "instance": "huge"}`,
	`{"command": "x", "instance": {"market": "cheap"}}`,
	`{"command": "x", "instance": {"volume_gb": 4}}`,
	`{"command": "x", "instance": {"ami": "ubuntu"}}`,
	`{"command": "x", "retries": 99}`,
	`{"command": "x", "priority": -1}`,
	`{"command": 42}`,
	`{"command": "a\u0000b"}`,
	`{"command": "x", "inputs": [{"s3": "bucket/x", "path": "d"}]}`,
	`{"command": "x", "outputs": [{"s3": "s3://b/x"}]}`,
	`{"command": "` + strings.Repeat("x", MaxMessageBytes) + `"}`,
}

// sqsBodies returns the body of every SQS record in events/.
func sqsBodies(f *testing.F) []string {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "events", "sqs-*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("events/sqs-*.json: %v, %d files", err, len(files))
	}
	var bodies []string
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		var ev struct {
			Records []struct {
				Body string `json:"body"`
			}
		}
		if err := json.Unmarshal(b, &ev); err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		for _, r := range ev.Records {
			bodies = append(bodies, r.Body)
		}
	}
	return bodies
}

// FuzzParse holds Parse to its contract on any input: no panic; an error is
// an *Error of a declared kind with a message; an accepted message is valid
// and survives a JSON round trip.
func FuzzParse(f *testing.F) {
	for _, s := range append(sqsBodies(f), parseSeeds...) {
		f.Add([]byte(s))
	}
	d := defaults()
	f.Fuzz(func(t *testing.T, raw []byte) {
		s, err := Parse(raw, d)
		if err != nil {
			checkParseError(t, raw, err)
			return
		}
		checkSpec(t, raw, s, d)
		checkRoundTrip(t, s, d)
	})
}

func checkParseError(t *testing.T, raw []byte, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Parse(%q) = %T %v; want *Error", raw, err, err)
	}
	known := false
	for _, k := range parseKinds {
		known = known || e.Kind == k
	}
	if !known || !errors.Is(err, e.Kind) {
		t.Errorf("Parse(%q) kind = %v; want one of %v", raw, e.Kind, parseKinds)
	}
	if strings.TrimSpace(e.Msg) == "" {
		t.Errorf("Parse(%q) = %q; want a message that says what is wrong", raw, err)
	}
}

// checkSpec checks what every accepted message must be, by rules written
// out here rather than by the validator's own patterns.
func checkSpec(t *testing.T, raw []byte, s Spec, d Defaults) {
	t.Helper()
	if s.ID != "" && (!ValidID(s.ID) || len(s.ID) > 64 || !isIDText(s.ID)) {
		t.Errorf("Parse(%q).ID = %q; want 1-64 of A-Z a-z 0-9 . _ -", raw, s.ID)
	}
	if s.ScheduledAt != "" {
		at, err := time.Parse(time.RFC3339, s.ScheduledAt)
		if suffix := "-" + at.UTC().Format("2006-01-02T150405Z"); err != nil || !strings.HasSuffix(s.ID, suffix) {
			t.Errorf("Parse(%q).ID = %q, scheduled_at %q (%v); want the id to end in %q", raw, s.ID, s.ScheduledAt, err, suffix)
		}
	}
	for name, v := range s.Env {
		if !isEnvName(name) {
			t.Errorf("Parse(%q) env name %q; want [A-Za-z_][A-Za-z0-9_]*", raw, name)
		}
		if v.Secret() && (v.Value != "" || !strings.HasPrefix(v.SSM, d.SecretsPrefix) || len(v.SSM) == len(d.SecretsPrefix) || strings.Contains(v.SSM, "//")) {
			t.Errorf("Parse(%q) env %s = %+v; want a value, or a parameter path under %q", raw, name, v, d.SecretsPrefix)
		}
	}
	if rt := s.MaxRuntime.D(); rt < MinRuntime || rt > MaxRuntimeLimit {
		t.Errorf("Parse(%q).MaxRuntime = %v; want %v to %v", raw, rt, MinRuntime, MaxRuntimeLimit)
	}
	if st := s.StallTimeout.D(); st != 0 && st < 5*time.Minute {
		t.Errorf("Parse(%q).StallTimeout = %v; want 0 or at least 5m", raw, st)
	}
	if s.Retries == nil || *s.Retries < 0 || *s.Retries > MaxRetries {
		t.Errorf("Parse(%q).Retries = %v; want 0 to %d", raw, s.Retries, MaxRetries)
	}
	if s.Priority < 0 || s.Priority > MaxPriority {
		t.Errorf("Parse(%q).Priority = %d; want 0 to %d", raw, s.Priority, MaxPriority)
	}
	switch n := s.Notebook; {
	case n != nil:
		if s.Command != "" || !ValidNotebookName(n.Name) || s.Name == "" ||
			n.Idle.D() < MinNotebookIdle || n.Idle.D() > MaxNotebookIdle || n.IdleConnected.D() < n.Idle.D() || n.IdleConnected.D() > MaxNotebookIdle {
			t.Errorf("Parse(%q) = command %q, name %q, notebook %+v; want no command, a valid notebook name and name, idle timeouts within bounds, connected ≥ idle", raw, s.Command, s.Name, *n)
		}
	case strings.TrimSpace(s.Command) == "" || strings.ContainsRune(s.Command, 0):
		t.Errorf("Parse(%q).Command = %q; want a command without NUL", raw, s.Command)
	}
	switch s.Instance.Market {
	case OnDemand, Spot, SpotThenOnDemand:
	default:
		t.Errorf("Parse(%q).Instance.Market = %q; want a market", raw, s.Instance.Market)
	}
	poolOK := false
	for _, p := range d.Pools {
		poolOK = poolOK || p == s.Instance.Pool
	}
	if !poolOK {
		t.Errorf("Parse(%q).Instance.Pool = %q; want one of %v", raw, s.Instance.Pool, d.Pools)
	}
	for _, it := range s.Instance.Types {
		if !d.KnownType(it) {
			t.Errorf("Parse(%q).Instance.Types has %q; want known types", raw, it)
		}
	}
}

// checkRoundTrip marshals an accepted spec and parses it again. scheduled_at
// cannot round-trip: Parse folds it into the id (so that every delivery of
// one scheduled run has the same id), and folding twice would append it
// twice; the spec is marshalled without it and everything else must come
// back. Empty and absent lists and maps are the same (omitempty). A spec
// whose JSON outgrows MaxMessageBytes (escaping, a default setup line,
// invalid UTF-8 read as U+FFFD) must be refused for its size, nothing else.
func checkRoundTrip(t *testing.T, s Spec, d Defaults) {
	t.Helper()
	want := s
	want.ScheduledAt = ""
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatalf("json.Marshal(%+v) = %v", want, err)
	}
	got, err := Parse(b, d)
	if len(b) > MaxMessageBytes {
		if !errors.Is(err, ErrOversized) {
			t.Errorf("Parse(marshalled spec of %d bytes) = %v; want ErrOversized", len(b), err)
		}
		return
	}
	if err != nil {
		t.Fatalf("Parse(%s) = %v; want the spec it was marshalled from", b, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Parse(%s) round trip mismatch (-want +got):\n%s", b, diff)
	}
}

func isIDText(s string) bool {
	for _, c := range []byte(s) {
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return false
		}
	}
	return s != ""
}

func isEnvName(s string) bool {
	for i, c := range []byte(s) {
		if !isAlnum(c) && c != '_' || i == 0 && c >= '0' && c <= '9' {
			return false
		}
	}
	return s != ""
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
