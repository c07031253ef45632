package runner_test

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// fakeJupyter is a jupyter-lab that answers the two REST calls the
// notebook's wrapper makes, /api/status and /api/kernels, from a JSON file
// the test rewrites beside its bin directory, jupyter.json:
// {"status": {...}, "kernels": [...]}. It checks the
// token, and listens where the wrapper asks (--ip, --port).
const fakeJupyter = `#!/usr/bin/env python3
import http.server, json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
token = os.environ["JUPYTER_TOKEN"]
state = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jupyter.json")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.headers.get("Authorization") != "token " + token:
            self.send_response(403); self.end_headers(); return
        with open(state) as f:
            s = json.load(f)
        body = json.dumps(s["status"] if self.path == "/api/status" else s["kernels"]).encode()
        self.send_response(200); self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
print("fake jupyter-lab on", args["ip"], args["port"], "root", args.get("ServerApp.root_dir"), file=sys.stderr, flush=True)
http.server.HTTPServer((args["ip"], int(args["port"])), H).serve_forever()
`

// notebookInstance is a scratch instance with the fake jupyter-lab and a
// fake nvidia-smi that prints the GPU utilization in the file gpu.
type notebookInstance struct {
	*instance
	jupyter, gpu string
	port         int
}

func newNotebookInstance(t *testing.T) *notebookInstance {
	t.Helper()
	in := &notebookInstance{instance: newInstance(t)}
	in.jupyter, in.gpu = filepath.Join(in.dir, "jupyter.json"), filepath.Join(in.dir, "gpu")
	for name, text := range map[string]string{
		"jupyter-lab": fakeJupyter,
		"nvidia-smi":  "#!/bin/sh\ncat " + runner.Quote(in.gpu) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(in.bin, name), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	in.set(t, 0, false, 0)
	return in
}

// set says what the fake Jupyter and GPU show: browser connections, a
// kernel busy or idle (its last activity long ago), the GPU's utilization.
func (in *notebookInstance) set(t *testing.T, connections int, busy bool, gpu int) {
	t.Helper()
	old := time.Now().UTC().Add(-time.Hour).Format(time.RFC3339Nano)
	st := "idle"
	if busy {
		st = "busy"
	}
	b, _ := json.Marshal(map[string]any{
		"status":  map[string]any{"connections": connections, "kernels": 1, "last_activity": old, "started": old},
		"kernels": []map[string]any{{"id": "k1", "name": "python3", "execution_state": st, "connections": connections, "last_activity": old}},
	})
	// Each file replaced whole (a look never reads one half written), the
	// GPU first: a look between the two never sees the old GPU figure
	// beside the new Jupyter state when the new state is the busier.
	replace := func(path string, b []byte) {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace(in.gpu, []byte(strconv.Itoa(gpu)+"\n"))
	replace(in.jupyter, b)
}

func notebookJob(idle, connected time.Duration) *job.Job {
	j := job.New(job.Spec{ID: "nb-alice-1", MaxRuntime: job.Duration(time.Hour),
		Notebook: &job.Notebook{Name: "alice", Idle: job.Duration(idle), IdleConnected: job.Duration(connected)}}, job.NotebookPool("alice"), time.Now())
	return j
}

func (in *notebookInstance) start(t *testing.T, j *job.Job) *running {
	t.Helper()
	return in.instance.start(t, j, runner.ScriptOptions{StateDir: in.stateDir, NotebookLook: time.Second, NotebookPort: in.port}, nil)
}

// readyURL waits for the ready line and returns its URL.
func (x *running) readyURL(t *testing.T) string {
	t.Helper()
	return x.waitPrefix(t, job.NotebookReady)
}

// waitPrefix reads the wrapper's stdout until a line that starts with
// prefix, and returns the rest of it.
func (x *running) waitPrefix(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		select {
		case l := <-x.lines:
			if rest, ok := strings.CutPrefix(l, prefix); ok {
				return rest
			}
		case <-x.closed:
			t.Fatalf("the wrapper's output closed before a line %q…; stdout:\n%s", prefix, x.out())
		case <-timeout:
			t.Fatalf("no line %q… within %v; stderr:\n%s", prefix, waitBound, x.killedStderr())
		}
	}
}

func TestNotebookEndsWhenItsPersonHasLeft(t *testing.T) {
	in := newNotebookInstance(t)
	in.set(t, 1, false, 0) // a browser connected
	x := in.start(t, notebookJob(2*time.Second, time.Hour))
	u := x.readyURL(t)
	prefix := "http://127.0.0.1:" + strconv.Itoa(in.port) + "/lab?token="
	if tok, ok := strings.CutPrefix(u, prefix); !ok || len(tok) != 48 {
		t.Errorf("ready URL %q; want %s and a 48-digit fresh token", u, prefix)
	}
	// Connected, then a kernel busy with the laptop closed, then the GPU
	// busy: never idle, for several idle timeouts.
	time.Sleep(3 * time.Second)
	in.set(t, 0, true, 0)
	time.Sleep(3 * time.Second)
	in.set(t, 0, false, 90)
	time.Sleep(3 * time.Second)
	if out := x.out(); strings.Contains(out, "notebook idle") {
		t.Fatalf("the notebook ended while its person was connected or its kernel or GPU busy:\n%s", out)
	}
	// The laptop closed, nothing running: it ends itself, exit 0.
	in.set(t, 0, false, 0)
	x.waitPrefix(t, "nightshift: notebook idle: nobody connected and nothing running for ")
	if code := x.wait(t); code != 0 {
		t.Errorf("exit code %d; want 0: a notebook whose person left has ended as it should", code)
	}
	if _, err := os.Stat(filepath.Join(in.state, "notebooks", "alice")); err != nil {
		t.Errorf("the notebook's own directory: %v; want state/notebooks/alice, the same for every session", err)
	}
}

func TestNotebookConnectedGetsTheLongTimeout(t *testing.T) {
	in := newNotebookInstance(t)
	in.set(t, 1, false, 0)
	x := in.start(t, notebookJob(time.Second, 3*time.Second))
	x.readyURL(t)
	x.waitPrefix(t, "nightshift: notebook idle: a browser connected but nothing running for ")
	if code := x.wait(t); code != 0 {
		t.Errorf("exit code %d; want 0", code)
	}
}

func TestNotebookStop(t *testing.T) {
	in := newNotebookInstance(t)
	in.set(t, 1, true, 0)
	j := notebookJob(time.Hour, time.Hour)
	x := in.start(t, j)
	x.readyURL(t)
	in.stop(t, j, runner.ScriptOptions{StateDir: in.stateDir})
	if code := x.wait(t); code != runner.StopExitCode {
		t.Errorf("exit code %d after a stop; want %d", code, runner.StopExitCode)
	}
}

func TestNotebookHeader(t *testing.T) {
	j := notebookJob(5*time.Minute, time.Hour)
	l, err := runner.Launcher(j, "i-0123456789abcdef0", 0, runner.ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := runner.ParseHeader(l)
	if err != nil {
		t.Fatalf("ParseHeader = %v", err)
	}
	want := runner.HeaderNotebook{Name: "alice", Port: job.NotebookPort, IdleSeconds: 300, IdleConnectedSeconds: 3600, LookSeconds: 15, GPUPercent: runner.NotebookGPUPercent}
	if h.Notebook == nil || *h.Notebook != want || h.Workdir != "/var/lib/nightshift/notebooks/alice" {
		t.Errorf("header notebook %+v, workdir %q; want %+v in /var/lib/nightshift/notebooks/alice", h.Notebook, h.Workdir, want)
	}
	// A command job's header has none.
	c := job.New(job.Spec{ID: "x", Command: "true", MaxRuntime: job.Duration(time.Hour)}, "default", time.Now())
	if l, err = runner.Launcher(c, "i-0123456789abcdef0", 0, runner.ScriptOptions{}); err != nil {
		t.Fatal(err)
	}
	if h, err := runner.ParseHeader(l); err != nil || h.Notebook != nil {
		t.Errorf("command job's header notebook = %+v, %v; want none", h.Notebook, err)
	}
}

// TestNotebookBrokenLookIsNotAway: a look that fails (Jupyter answers
// something the wrapper cannot read) is never taken as its person gone:
// only the connected timeout ends the notebook.
func TestNotebookBrokenLookIsNotAway(t *testing.T) {
	in := newNotebookInstance(t)
	if err := os.WriteFile(in.jupyter, []byte(`{"status": {}, "kernels": "?"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	x := in.start(t, notebookJob(time.Second, 4*time.Second))
	x.readyURL(t)
	x.waitPrefix(t, "nightshift: notebook idle: a browser connected but nothing running for ")
	if code := x.wait(t); code != 0 {
		t.Errorf("exit code %d; want 0", code)
	}
}
