package runner_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// orderRuns is how many times TestWrapperOutputOrder runs the wrapper: a
// race between the job's output and the wrapper's exit line shows up in
// some runs only.
const orderRuns = 20

// TestWrapperOutputOrder: the log ends with the job's own output, every line
// of it, then the wrapper's exit line — however fast the job writes, to
// stdout and to stderr. Checked many times over, with the two streams apart
// (as SSM keeps them) and as one (as a terminal and the local run show them).
func TestWrapperOutputOrder(t *testing.T) {
	const lines = 300
	command := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; echo "last out"; echo "last err" >&2`, lines)
	in := newInstance(t)
	for run := range orderRuns {
		j := newJob(fmt.Sprintf("order-%d", run), command, time.Hour, nil)
		exit := fmt.Sprintf("nightshift: job %s attempt 1 exited with code 0", j.ID)

		var stdout, stderr bytes.Buffer
		if code := in.runTo(t, j, 10*time.Minute, &stdout, &stderr); code != 0 {
			t.Fatalf("run %d: wrapper exit code = %d; want 0; stderr:\n%s", run, code, stderr.String())
		}
		for _, s := range []struct {
			name, text, prefix, last string
		}{
			{"stdout", stdout.String(), "out", "last out"},
			{"stderr", stderr.String(), "err", exit},
		} {
			all := strings.Split(strings.TrimSuffix(s.text, "\n"), "\n")
			if got := all[len(all)-1]; got != s.last {
				t.Fatalf("run %d: %s ends %q; want %q; its last lines:\n%s", run, s.name, got, s.last, strings.Join(all[max(0, len(all)-6):], "\n"))
			}
			n := 0
			for _, l := range all {
				if strings.HasPrefix(l, s.prefix+" ") || l == "last "+s.prefix {
					n++
				}
			}
			if n != lines+1 {
				t.Fatalf("run %d: %d of the job's %d lines on %s; want every one", run, n, lines+1, s.name)
			}
		}

		j.Attempt = 2 // the same job again, both streams on one pipe
		exit = fmt.Sprintf("nightshift: job %s attempt 2 exited with code 0", j.ID)
		code, out := in.run(t, j, 10*time.Minute)
		if code != 0 || !strings.HasSuffix(out, "\n"+exit+"\n") {
			t.Fatalf("run %d: exit code %d, output ends %q; want 0 and the exit line last", run, code, out[max(0, len(out)-200):])
		}
		// One pipe may cut a line of one stream into the other's; the job's
		// last line on each still comes before the exit line.
		for _, last := range []string{"last out", "last err"} {
			if at := strings.LastIndex(out, last); at < 0 || at > len(out)-len(exit)-1 {
				t.Fatalf("run %d: %q at %d of %d bytes; want it before the exit line", run, last, at, len(out))
			}
		}
	}
}
