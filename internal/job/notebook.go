package job

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Notebook asks for a JupyterLab server instead of a command. It runs on
// the notebook's own instance — one per name, started again for each
// session, so that its disk keeps the person's files — bound to localhost
// on the instance, reached through Session Manager port forwarding, and
// ended when its person has left: nobody connected and nothing running for
// Idle, or a browser connected but nothing running for IdleConnected. A
// busy kernel or a busy GPU is never idle.
type Notebook struct {
	Name string `json:"name"`
	// Idle is how long the notebook may sit with nobody connected (no
	// browser, no Session Manager session) and nothing running.
	Idle Duration `json:"idle,omitzero"`
	// IdleConnected is how long it may sit with a browser connected but
	// nothing running: its person may be reading.
	IdleConnected Duration `json:"idle_connected,omitzero"`
}

// Defaults of a notebook, each with its reason.
const (
	// DefaultNotebookIdle: with the laptop closed and no kernel busy, the
	// person has left; five minutes covers a dropped connection or a short
	// walk without holding a GPU for long. `make bench-waste` weighs it.
	DefaultNotebookIdle = 5 * time.Minute
	// DefaultNotebookIdleConnected: a browser connected to an idle kernel is
	// a person reading, or a tab left open; an hour, as JupyterHub's culler
	// and SageMaker's idle samples do.
	DefaultNotebookIdleConnected = 60 * time.Minute
	// DefaultNotebookMaxRuntime bounds a notebook session that names no
	// max_runtime: a working day.
	DefaultNotebookMaxRuntime = 12 * time.Hour
	// NotebookPort is the port JupyterLab listens on, on the instance's
	// loopback interface only.
	NotebookPort = 8888
)

// Bounds of the notebook idle timeouts: at least a minute (the watchdog's
// period, and the instance's own look), at most a day.
const (
	MinNotebookIdle = time.Minute
	MaxNotebookIdle = 24 * time.Hour
)

// NotebookPoolPrefix starts the name of a notebook's own pool: each
// notebook is a pool of one instance, never given to another job. A pool
// name the deployment configures cannot contain ":", so none clashes.
const NotebookPoolPrefix = "notebook:"

// NotebookPool is the pool of notebook name's own instance.
func NotebookPool(name string) string { return NotebookPoolPrefix + name }

// NotebookOf returns the notebook name of a notebook's pool.
func NotebookOf(pool string) (string, bool) { return strings.CutPrefix(pool, NotebookPoolPrefix) }

var notebookName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// ValidNotebookName reports whether name may name a notebook: 1–32 of
// A-Z a-z 0-9 . _ -, starting with a letter or digit.
func ValidNotebookName(name string) bool { return notebookName.MatchString(name) }

// UnmarshalJSON accepts a name ("alice") or the full object.
func (n *Notebook) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, &n.Name)
	}
	type plain Notebook
	var p plain
	if err := decodeStrict(b, &p); err != nil {
		return &Error{Kind: ErrInvalid, Field: "notebook", Msg: `want a name such as "alice" or {"name": "alice", "idle": "5m", "idle_connected": "1h"}: ` + trimJSON(err.Error())}
	}
	*n = Notebook(p)
	return nil
}

// validate checks a notebook request within its message.
func (n *Notebook) validate(s *Spec) error {
	bad := func(field, format string, args ...any) error {
		return &Error{Kind: ErrInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	switch {
	case !ValidNotebookName(n.Name):
		return bad("notebook.name", "%q: want 1-32 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", n.Name)
	case strings.TrimSpace(s.Command) != "":
		return bad("command", "a notebook runs JupyterLab, not a command: leave command out (setup activates its environment)")
	case n.Idle != 0 && (n.Idle.D() < MinNotebookIdle || n.Idle.D() > MaxNotebookIdle):
		return &Error{Kind: ErrBadDuration, Field: "notebook.idle", Msg: fmt.Sprintf("%v: want between %v and %v", n.Idle.D(), MinNotebookIdle, MaxNotebookIdle)}
	case n.IdleConnected != 0 && (n.IdleConnected.D() < MinNotebookIdle || n.IdleConnected.D() > MaxNotebookIdle):
		return &Error{Kind: ErrBadDuration, Field: "notebook.idle_connected", Msg: fmt.Sprintf("%v: want between %v and %v", n.IdleConnected.D(), MinNotebookIdle, MaxNotebookIdle)}
	case n.Idle != 0 && n.IdleConnected != 0 && n.IdleConnected < n.Idle:
		return &Error{Kind: ErrBadDuration, Field: "notebook.idle_connected", Msg: fmt.Sprintf("%v: want at least notebook.idle (%v): a person connected gets no less time than one who has left", n.IdleConnected.D(), n.Idle.D())}
	case s.OnStall != "" || s.StallTimeout != 0:
		return bad("on_stall", "a notebook is never stalled: it is idle, and ends when its person has left")
	}
	return nil
}

// applyDefaults fills what the notebook request leaves out, and the
// message's fields a notebook implies.
func (n *Notebook) applyDefaults(s *Spec, d Defaults) {
	if n.Idle == 0 {
		n.Idle = Duration(cmpOr(d.NotebookIdle, DefaultNotebookIdle))
	}
	if n.IdleConnected == 0 {
		n.IdleConnected = Duration(max(cmpOr(d.NotebookIdleConnected, DefaultNotebookIdleConnected), n.Idle.D()))
	}
	if s.Name == "" {
		s.Name = n.Name
	}
}

func cmpOr(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// IsNotebook reports whether the spec asks for a notebook.
func (s *Spec) IsNotebook() bool { return s.Notebook != nil }

// NotebookReady starts the line a notebook's wrapper prints (to the
// command's output, so to its log stream) once JupyterLab answers, followed
// by its URL on the instance: http://127.0.0.1:PORT/lab?token=TOKEN. The
// token is made afresh on the instance for each session; whoever may read
// the command's output may open the notebook, as whoever may start a
// Session Manager session to the instance may reach its port.
const NotebookReady = "nightshift: notebook ready: "
