package job

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseNotebook(t *testing.T) {
	two := 2
	got, err := Parse([]byte(`{"notebook": "alice"}`), defaults())
	if err != nil {
		t.Fatalf("Parse(smallest notebook) = %v", err)
	}
	want := Spec{
		Name: "alice", Setup: ". /opt/pytorch/bin/activate",
		Instance: Instance{Pool: "default", Market: OnDemand}, MaxRuntime: Duration(DefaultNotebookMaxRuntime), Retries: &two,
		Notebook: &Notebook{Name: "alice", Idle: Duration(DefaultNotebookIdle), IdleConnected: Duration(DefaultNotebookIdleConnected)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(smallest notebook) mismatch (-want +got):\n%s", diff)
	}

	d := defaults()
	d.NotebookIdle, d.NotebookIdleConnected = 10*time.Minute, 90*time.Minute
	got, err = Parse([]byte(`{"name": "thesis", "notebook": {"name": "bob.v2", "idle": "15m"}, "instance": {"pool": "big", "types": ["g5.xlarge"]}, "max_runtime": "4h"}`), d)
	if err != nil {
		t.Fatalf("Parse(full notebook) = %v", err)
	}
	if n := got.Notebook; n.Name != "bob.v2" || n.Idle.D() != 15*time.Minute || n.IdleConnected.D() != 90*time.Minute || got.Name != "thesis" || got.MaxRuntime.D() != 4*time.Hour || got.Instance.Pool != "big" {
		t.Errorf("Parse(full notebook) = %+v (notebook %+v); want bob.v2, idle 15m, connected 90m (the deployment's), name thesis, 4h, pool big", got, *n)
	}
	// An idle timeout longer than the deployment's connected one raises the
	// connected one with it: a connected person never gets less time than
	// one who has left.
	got, err = Parse([]byte(`{"notebook": {"name": "c", "idle": "2h"}}`), defaults())
	if err != nil || got.Notebook.IdleConnected.D() != 2*time.Hour {
		t.Errorf("Parse(idle 2h) = %+v, %v; want idle_connected raised to 2h", got.Notebook, err)
	}
}

func TestParseNotebookBadInput(t *testing.T) {
	for _, c := range []struct {
		msg, field string
		kind       error
	}{
		{`{"notebook": ""}`, "notebook.name", ErrInvalid},
		{`{"notebook": "-x"}`, "notebook.name", ErrInvalid},
		{`{"notebook": "a/b"}`, "notebook.name", ErrInvalid},
		{`{"notebook": "` + strings.Repeat("a", 33) + `"}`, "notebook.name", ErrInvalid},
		{`{"notebook": "alice", "command": "python train.py"}`, "command", ErrInvalid},
		{`{"notebook": {"name": "alice", "idle": "10s"}}`, "notebook.idle", ErrBadDuration},
		{`{"notebook": {"name": "alice", "idle_connected": "48h"}}`, "notebook.idle_connected", ErrBadDuration},
		{`{"notebook": {"name": "alice", "idel": "5m"}}`, "notebook", ErrInvalid},
		{`{"notebook": {"name": "alice", "idle": "2h", "idle_connected": "1h"}}`, "notebook.idle_connected", ErrBadDuration},
		{`{"notebook": {"name": "alice", "idle": "5x"}}`, "notebook", ErrInvalid},
		{`{"notebook": 7}`, "notebook", ErrInvalid},
		{`{"notebook": "alice", "on_stall": "cancel"}`, "on_stall", ErrInvalid},
		{`{"notebok": "alice"}`, "", ErrUnknownField},
	} {
		_, err := Parse([]byte(c.msg), defaults())
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, c.kind) || e.Field != c.field {
			t.Errorf("Parse(%s) = %v; want a %v error on field %q", c.msg, err, c.kind, c.field)
		}
	}
	// A message with neither command nor notebook still says what it needs.
	if _, err := Parse([]byte(`{}`), defaults()); !errors.Is(err, ErrMissingCommand) {
		t.Errorf("Parse({}) = %v; want %v", err, ErrMissingCommand)
	}
}

func TestNotebookPool(t *testing.T) {
	p := NotebookPool("alice")
	if name, ok := NotebookOf(p); !ok || name != "alice" {
		t.Errorf("NotebookOf(%q) = %q, %v; want alice, true", p, name, ok)
	}
	if _, ok := NotebookOf("default"); ok {
		t.Error("NotebookOf(default) = true; want false: a configured pool is no notebook's")
	}
}
