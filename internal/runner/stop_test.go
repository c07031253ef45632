package runner_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// waitBound bounds how long a test waits for a real process to reach a
// point (print a line, close a pipe); reaching it takes milliseconds.
const waitBound = 10 * time.Second

// running is a wrapper started on a scratch instance, not waited for yet.
type running struct {
	cmd    *exec.Cmd
	lines  chan string     // the wrapper's stdout, line by line
	closed <-chan struct{} // every writer of its output has closed it
	mu     sync.Mutex
	stdout strings.Builder
	line   []byte // the part of stdout's last line written yet
	stderr bytes.Buffer
}

// Write takes the wrapper's stdout, and sends each line to lines.
func (x *running) Write(p []byte) (int, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.stdout.Write(p)
	x.line = append(x.line, p...)
	for {
		i := bytes.IndexByte(x.line, '\n')
		if i < 0 {
			return len(p), nil
		}
		x.lines <- string(x.line[:i])
		x.line = x.line[i+1:]
	}
}

// lockedStderr writes the wrapper's stderr under its lock, so that a test
// may read it while the wrapper runs (stderrText).
type lockedStderr struct{ x *running }

func (w lockedStderr) Write(p []byte) (int, error) {
	w.x.mu.Lock()
	defer w.x.mu.Unlock()
	return w.x.stderr.Write(p)
}

// start runs j's launcher as run does, in the background. extra, when set,
// is given to the wrapper as file descriptor 3 (and so to every process it
// starts).
func (in *instance) start(t *testing.T, j *job.Job, opts runner.ScriptOptions, extra *os.File) *running {
	t.Helper()
	launcher, err := runner.Launcher(j, "i-0123456789abcdef0", 10*time.Minute, opts)
	if err != nil {
		t.Fatalf("Launcher(%s) = %v", j.ID, err)
	}
	x := &running{lines: make(chan string, 1000)}
	x.cmd = exec.Command("/bin/sh", "-c", launcher)
	x.cmd.Dir, x.cmd.Env = in.dir, in.env()
	x.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if extra != nil {
		x.cmd.ExtraFiles = []*os.File{extra}
	}
	x.closed = pipeOutput(t, x.cmd, x, lockedStderr{x})
	t.Cleanup(func() { _ = syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL) })
	return x
}

// waitFor reads the wrapper's stdout until a line that is want.
func (x *running) waitFor(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(waitBound)
	for {
		select {
		case l := <-x.lines:
			if l == want {
				return
			}
		case <-x.closed:
			for len(x.lines) > 0 {
				if <-x.lines == want {
					return
				}
			}
			t.Fatalf("the wrapper's output closed before %q; stdout:\n%s\nstderr:\n%s", want, x.out(), x.stderr.String())
		case <-timeout:
			t.Fatalf("no %q from the wrapper within %v; stderr:\n%s", want, waitBound, x.killedStderr())
		}
	}
}

// wait waits for the wrapper to exit and its output to close; it returns
// the exit code.
func (x *running) wait(t *testing.T) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- x.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(waitBound):
		t.Fatalf("the wrapper has not exited %v after it was stopped\nstderr so far:\n%s", waitBound, x.killedStderr())
	}
	select {
	case <-x.closed:
	case <-time.After(waitBound):
		t.Fatalf("the wrapper's output stayed open %v after it exited (%v): SSM would wait for it", waitBound, err)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (x *running) out() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stdout.String()
}

// killedStderr ends the wrapper and all it started (a test that gives
// up on it), and returns its stderr once the pipe has closed.
func (x *running) killedStderr() string {
	_ = syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-x.closed:
		return x.stderr.String()
	case <-time.After(waitBound):
		return "(still open: a process outside the wrapper's group holds it)"
	}
}

// stop runs the stop command of j's current attempt with /bin/sh, as SSM
// runs it, and returns its output; the command itself always succeeds.
func (in *instance) stop(t *testing.T, j *job.Job, opts runner.ScriptOptions) string {
	t.Helper()
	commands, err := runner.StopCommand(j, opts)
	if err != nil {
		t.Fatalf("StopCommand(%s) = %v", j.ID, err)
	}
	cmd := exec.Command("/bin/sh", "-c", commands)
	cmd.Dir, cmd.Env = in.dir, in.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("stop command for %s: %v\n%s", j.ID, err, out)
	}
	return string(out)
}

// stubSync puts an aws on PATH that logs each call with whether the synced
// directory holds a checkpoint, and succeeds. An input sync (from s3://)
// first runs onInput, when set, in the wrapper's stead ($PPID).
func stubSync(t *testing.T, in *instance, onInput string) string {
	t.Helper()
	log := filepath.Join(in.dir, "aws.log")
	if onInput == "" {
		onInput = ":"
	}
	stub := "#!/bin/sh\nckpt=no; [ -f \"$4/checkpoint\" ] && ckpt=yes\nprintf '%s checkpoint=%s\\n' \"$*\" \"$ckpt\" >>" + runner.Quote(log) + "\n" +
		"case \"$4\" in s3://*) " + onInput + " ;; esac\nexit 0\n"
	if err := os.WriteFile(filepath.Join(in.bin, "aws"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	return log
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// TestStop: a stop of a running attempt sends the job TERM; the job's own
// handler runs and its output is kept; the wrapper then syncs the outputs
// (the checkpoint the handler wrote among them), records exit code 143 and
// arms the idle timer, and the attempt's command ends with 143. A second
// stop then does nothing.
func TestStop(t *testing.T) {
	in := newInstance(t)
	log := stubSync(t, in, "")
	opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}
	j := newJob("stop-test", `trap 'echo "got TERM"; echo saved >out/checkpoint; exit 7' TERM
mkdir -p out
echo ready
sleep 1000 &
wait`, time.Hour, nil)
	j.Spec.Outputs = []job.Sync{{S3: "s3://b/out", Path: "out"}}

	x := in.start(t, j, opts, nil)
	x.waitFor(t, "ready")
	if got := in.stop(t, j, opts); !strings.Contains(got, "TERM sent to its wrapper") {
		t.Errorf("stop command said %q; want TERM sent", got)
	}
	code := x.wait(t)
	if code != runner.StopExitCode || runner.StopExitCode != 143 {
		t.Fatalf("wrapper exit code = %d (StopExitCode %d); want 143\nstdout:\n%s\nstderr:\n%s", code, runner.StopExitCode, x.out(), x.stderr.String())
	}
	if out := x.out(); !strings.Contains(out, "got TERM\n") {
		t.Errorf("stdout = %q; want the job's own TERM handler's output", out)
	}
	exitLine := "nightshift: job stop-test attempt 1 exited with code 143"
	if errs := x.stderr.String(); !strings.Contains(errs, "stop asked: TERM sent to the job") || !strings.HasSuffix(errs, exitLine+"\n") {
		t.Errorf("stderr = %q; want the stop logged, and %q last", errs, exitLine)
	}
	if got := readFile(t, filepath.Join(in.attemptDir(j), "exit_code")); strings.TrimSpace(got) != "143" {
		t.Errorf("exit_code file = %q; want 143", got)
	}
	if got := readFile(t, log); !strings.Contains(got, "s3 sync --only-show-errors out s3://b/out checkpoint=yes\n") {
		t.Errorf("aws calls:\n%s\nwant the outputs synced, with the checkpoint the job wrote on TERM", got)
	}
	calls := in.shutdowns(t)
	if len(calls) == 0 || calls[len(calls)-1] != "-P +11" {
		t.Errorf("shutdown calls %v; want the idle timer armed last (-P +11)", calls)
	}

	if got := in.stop(t, j, opts); !strings.Contains(got, "has ended already (exit code 143): nothing to stop") {
		t.Errorf("second stop said %q; want nothing to stop", got)
	}
	if diff := cmp.Diff(calls, in.shutdowns(t)); diff != "" {
		t.Errorf("the second stop changed the timers (-before +after):\n%s", diff)
	}
}

// TestStopTwice: a stop sent twice while the job handles the first is one
// stop: one TERM, one grace, exit code 143.
func TestStopTwice(t *testing.T) {
	in := newInstance(t)
	opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}
	marks := filepath.Join(in.dir, "terms")
	// The job counts its TERMs and ends at the first one's handler, a
	// moment later than the second stop comes.
	j := newJob("stop-twice", `trap 'echo term >>"$MARKS"; read -r _ <"$GO"; exit 0' TERM
echo ready
sleep 1000 &
wait`, time.Hour, map[string]string{"MARKS": marks, "GO": filepath.Join(in.dir, "go")})
	if err := syscall.Mkfifo(filepath.Join(in.dir, "go"), 0o600); err != nil {
		t.Fatal(err)
	}
	x := in.start(t, j, opts, nil)
	x.waitFor(t, "ready")
	in.stop(t, j, opts)
	in.stop(t, j, opts)
	// Let the handler finish: open the fifo it reads, and close it.
	f, err := os.OpenFile(filepath.Join(in.dir, "go"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if code := x.wait(t); code != runner.StopExitCode {
		t.Fatalf("wrapper exit code = %d; want %d\nstderr:\n%s", code, runner.StopExitCode, x.stderr.String())
	}
	if got := readFile(t, marks); got != "term\n" {
		t.Errorf("the job got TERM %d times; want once", strings.Count(got, "term"))
	}
	if n := strings.Count(x.stderr.String(), "stop asked"); n != 1 {
		t.Errorf("stderr logs %d stops:\n%s\nwant one", n, x.stderr.String())
	}
}

// TestStopKillsAfterGrace: a job that ignores TERM is killed when the
// grace is over, and the attempt still ends as a stopped one.
func TestStopKillsAfterGrace(t *testing.T) {
	in := newInstance(t)
	opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1", StopGrace: time.Second}
	j := newJob("stop-kill", `trap '' TERM
echo ready
sleep 1000`, time.Hour, nil)
	x := in.start(t, j, opts, nil)
	x.waitFor(t, "ready")
	in.stop(t, j, opts)
	if code := x.wait(t); code != runner.StopExitCode {
		t.Fatalf("wrapper exit code = %d; want %d\nstderr:\n%s", code, runner.StopExitCode, x.stderr.String())
	}
	if errs := x.stderr.String(); !strings.Contains(errs, "the job had not ended 1 s after TERM: killed") {
		t.Errorf("stderr = %q; want the kill logged", errs)
	}
	if got := readFile(t, filepath.Join(in.attemptDir(j), "exit_code")); strings.TrimSpace(got) != "143" {
		t.Errorf("exit_code file = %q; want 143", got)
	}
}

// TestStopBeforeCommand: a stop that comes before the command starts (here
// while an input syncs) ends the attempt with 143 without running it.
func TestStopBeforeCommand(t *testing.T) {
	in := newInstance(t)
	stubSync(t, in, `kill -TERM "$PPID"`) // the stop comes while the input syncs
	ran := filepath.Join(in.dir, "ran")
	j := newJob("stop-early", `touch "$RAN"`, time.Hour, map[string]string{"RAN": ran})
	j.Spec.Inputs = []job.Sync{{S3: "s3://b/data", Path: "data"}}
	code, out := in.run(t, j, 10*time.Minute)
	if code != runner.StopExitCode {
		t.Fatalf("wrapper exit code = %d; want %d; output:\n%s", code, runner.StopExitCode, out)
	}
	if !strings.Contains(out, "stopped before the command started") {
		t.Errorf("output = %q; want it to say the attempt stopped before its command", out)
	}
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the command ran")
	}
	if got := readFile(t, filepath.Join(in.attemptDir(j), "exit_code")); strings.TrimSpace(got) != "143" {
		t.Errorf("exit_code file = %q; want 143", got)
	}
	if calls := in.shutdowns(t); len(calls) == 0 || calls[len(calls)-1] != "-P +11" {
		t.Errorf("shutdown calls %v; want the idle timer armed last (-P +11)", calls)
	}
}

// TestStopNothingToStop: a stop for an attempt that has ended, that is not
// on the instance, or whose recorded pid is now another process's, signals
// nothing and changes nothing of the attempt.
func TestStopNothingToStop(t *testing.T) {
	t.Run("ended", func(t *testing.T) {
		in := newInstance(t)
		opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}
		j := newJob("ended", "exit 3", time.Hour, nil)
		if code, out := in.run(t, j, 10*time.Minute); code != 3 {
			t.Fatalf("wrapper exit code = %d; want 3; output:\n%s", code, out)
		}
		calls := in.shutdowns(t)
		if got := in.stop(t, j, opts); !strings.Contains(got, "has ended already (exit code 3): nothing to stop") {
			t.Errorf("stop said %q; want nothing to stop", got)
		}
		if got := readFile(t, filepath.Join(in.attemptDir(j), "exit_code")); strings.TrimSpace(got) != "3" {
			t.Errorf("exit_code file = %q; want 3, the job's own", got)
		}
		if _, err := os.Stat(filepath.Join(in.attemptDir(j), "stop")); err == nil {
			t.Errorf("the stop left a stop file in an ended attempt")
		}
		if diff := cmp.Diff(calls, in.shutdowns(t)); diff != "" {
			t.Errorf("the stop changed the timers (-before +after):\n%s", diff)
		}
	})
	t.Run("not on this instance", func(t *testing.T) {
		in := newInstance(t)
		opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}
		j := newJob("elsewhere", "true", time.Hour, nil)
		if got := in.stop(t, j, opts); !strings.Contains(got, "attempt 1 of job elsewhere is not on this instance: nothing to stop") {
			t.Errorf("stop said %q; want nothing to stop", got)
		}
		// The attempt's directory is its lock: a stop must not take it.
		if _, err := os.Stat(in.attemptDir(j)); err == nil {
			t.Errorf("the stop created the attempt's directory %s", in.attemptDir(j))
		}
	})
	t.Run("pid now another process's", func(t *testing.T) {
		in := newInstance(t)
		opts := runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}
		j := newJob("stale", "true", time.Hour, nil)
		// A wrapper SSM killed left its directory and pid, and no exit
		// code; the pid now belongs to an unrelated process.
		other := exec.Command("sleep", "1000")
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
		if err := os.MkdirAll(in.attemptDir(j), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(in.attemptDir(j), "pid"), []byte(strconv.Itoa(other.Process.Pid)+" 1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := in.stop(t, j, opts); !strings.Contains(got, "has no running wrapper on this instance: nothing to stop") {
			t.Errorf("stop said %q; want nothing to stop", got)
		}
		if err := other.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("the unrelated process %d is gone (%v): the stop signalled it", other.Process.Pid, err)
		}
	})
}

// TestWrapperGuard: when SSM kills the wrapper's process group (a cancel,
// the execution timeout), the job, in a group of its own, goes too; and
// what a job leaves running when it ends is ended with it. Both are seen
// as the last holder of a pipe every process inherits closing it.
func TestWrapperGuard(t *testing.T) {
	tests := []struct {
		name    string
		command string
		killed  bool // SSM kills the wrapper's group once the job is ready
	}{
		{name: "SSM kills the wrapper", command: "echo ready; sleep 1000", killed: true},
		{name: "the job leaves a process", command: "sleep 1000 >/dev/null 2>&1 & echo ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			j := newJob("guard", tt.command, time.Hour, nil)
			x := in.start(t, j, runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"}, w)
			w.Close()
			x.waitFor(t, "ready")
			if tt.killed {
				if err := syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
			x.wait(t)
			// The heartbeat's sleep outlives the wrapper, in the wrapper's
			// group; end that group, as runTo does.
			_ = syscall.Kill(-x.cmd.Process.Pid, syscall.SIGKILL)
			closed := make(chan error, 1)
			go func() {
				_, err := io.Copy(io.Discard, r)
				closed <- err
			}()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(waitBound):
				t.Fatalf("a process of the job still runs %v after its wrapper ended", waitBound)
			}
		})
	}
}

// TestStopSend: the stop goes to the one instance as a small command of its
// own, with its own comment (Find does not take it for the attempt) and a
// header ParseStopHeader reads and ParseHeader does not.
func TestStopSend(t *testing.T) {
	ctx := context.Background()
	c := newTestCloud()
	iid, bystander := c.ready(), c.ready()
	j := ssmJob()
	opts := runner.ScriptOptions{StateDir: "/var/lib/nightshift", Region: "us-east-1"}
	r := runner.New(c, runner.Config{LogGroup: "/nightshift/jobs", Bucket: "nightshift-output", KeyPrefix: "runs/", Script: opts})
	c.forget()
	id, err := r.Stop(ctx, j, iid)
	if err != nil || id == "" {
		t.Fatalf("Stop(%s, %s) = %q, %v; want a command id", j.ID, iid, id, err)
	}
	commands, err := runner.StopCommand(j, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := []*ssm.SendCommandInput{{
		DocumentName:   aws.String("AWS-RunShellScript"),
		InstanceIds:    []string{iid},
		Comment:        aws.String("nightshift stop resnet-cifar10 #2"),
		TimeoutSeconds: aws.Int32(600),
		Parameters: map[string][]string{
			"commands":         {commands},
			"executionTimeout": {"60"},
			"workingDirectory": {"/"},
		},
		CloudWatchOutputConfig: &types.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String("/nightshift/jobs")},
	}}
	if diff := cmp.Diff(want, c.sent, ignoreNoSerde); diff != "" {
		t.Errorf("SendCommand input (-want +got):\n%s", diff)
	}
	if inv := c.invocation(t, id, iid); inv.Comment != runner.StopComment(j) {
		t.Errorf("invocation on %s = %+v; want the stop's", iid, inv)
	}
	if n := len(c.Invocations()); n != 1 {
		t.Errorf("%d invocations; want the stop on %s alone (not %s)", n, iid, bystander)
	}
	h, err := runner.ParseStopHeader(commands)
	if want := (runner.StopHeader{Job: j.ID, Attempt: 2, StateDir: "/var/lib/nightshift"}); err != nil || h != want {
		t.Errorf("ParseStopHeader(stop command) = %+v, %v; want %+v", h, err, want)
	}
	if got, want := h.AttemptDir(), "/var/lib/nightshift/jobs/resnet-cifar10/2"; got != want {
		t.Errorf("AttemptDir() = %q; want %q", got, want)
	}
	if _, err := runner.ParseHeader(commands); !errors.Is(err, runner.ErrNoHeader) {
		t.Errorf("ParseHeader(stop command) = %v; want ErrNoHeader: a stop is no wrapper", err)
	}
	if got, err := r.Find(ctx, j, iid); err != nil || got != "" {
		t.Errorf("Find(%s, %s) = %q, %v; want none: the stop is not the attempt's command", j.Comment(), iid, got, err)
	}
	if long := (&job.Job{ID: strings.Repeat("x", 64), Attempt: 11}); len(runner.StopComment(long)) > 100 {
		t.Errorf("StopComment(64-character id, attempt 11) = %d characters; SSM takes 100", len(runner.StopComment(long)))
	}

	c.fail["SendCommand"] = "ThrottlingException"
	if _, err := r.Stop(ctx, j, iid); !errors.Is(err, runner.ErrThrottled) {
		t.Errorf("Stop(throttled) = %v; want ErrThrottled", err)
	}
}

// TestParseStopHeaderErrors: a command with no stop header, of another
// version, or with one that cannot be read, each has its own error.
func TestParseStopHeaderErrors(t *testing.T) {
	const ok = `{"job":"j","attempt":1,"state_dir":"/var/lib/nightshift"}`
	tests := []struct {
		name string
		give string
		want error // nil: reads
	}{
		{name: "valid", give: "# nightshift-stop/v1 " + ok + "\nd=x\n"},
		{name: "valid with a field added", give: `# nightshift-stop/v1 {"why":"cancel",` + ok[1:]},
		{name: "a wrapper", give: "# nightshift-wrapper/v2 " + ok + "\n", want: runner.ErrNoStopHeader},
		{name: "empty", give: "", want: runner.ErrNoStopHeader},
		{name: "not on the first line", give: "set -e\n# nightshift-stop/v1 " + ok, want: runner.ErrNoStopHeader},
		{name: "a later version", give: "# nightshift-stop/v2 " + ok, want: runner.ErrHeaderVersion},
		{name: "no JSON", give: "# nightshift-stop/v1\n", want: runner.ErrBadHeader},
		{name: "no state dir", give: `# nightshift-stop/v1 {"job":"j","attempt":1}`, want: runner.ErrBadHeader},
		{name: "attempt 0", give: `# nightshift-stop/v1 {"job":"j","attempt":0,"state_dir":"/s"}`, want: runner.ErrBadHeader},
		{name: "empty job", give: `# nightshift-stop/v1 {"job":"","attempt":1,"state_dir":"/s"}`, want: runner.ErrBadHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runner.ParseStopHeader(tt.give)
			if tt.want == nil {
				if want := (runner.StopHeader{Job: "j", Attempt: 1, StateDir: "/var/lib/nightshift"}); err != nil || got != want {
					t.Errorf("ParseStopHeader(%q) = %+v, %v; want %+v", tt.give, got, err, want)
				}
				return
			}
			if !errors.Is(err, tt.want) || got != (runner.StopHeader{}) {
				t.Errorf("ParseStopHeader(%q) = %+v, %v; want %v", tt.give, got, err, tt.want)
			}
		})
	}
}
