package runner_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/document"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// ignoreNoSerde lets cmp compare SDK structs, which carry an unexported marker.
var ignoreNoSerde = cmpopts.IgnoreTypes(document.NoSerde{})

// outputCloseTimeout bounds how long a test waits for the wrapper's output
// to close after it exits. SSM waits for every writer of the output to close,
// so a background process that keeps it open would hold the command open.
const outputCloseTimeout = 10 * time.Second

// instance is a scratch directory that stands in for a GPU instance: the
// wrapper's state directory, and a fake shutdown on PATH that records its
// arguments instead of powering anything off.
type instance struct {
	dir, state, bin, shutdownLog string
	// stateDir is the wrapper's state directory as the runner is
	// configured with it: state, unless a test says otherwise.
	stateDir string
	// extraEnv is added to the wrapper's environment (a fake IMDS's address).
	extraEnv []string
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	dir := t.TempDir()
	in := &instance{dir: dir, state: filepath.Join(dir, "state"), bin: filepath.Join(dir, "bin"), shutdownLog: filepath.Join(dir, "shutdown.log")}
	in.stateDir = in.state
	if err := os.Mkdir(in.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fake := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>" + runner.Quote(in.shutdownLog) + "\n"
	if err := os.WriteFile(filepath.Join(in.bin, "shutdown"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	// Never run the machine's own shutdown.
	cmd := exec.Command("/bin/sh", "-c", "command -v shutdown")
	cmd.Env = in.env()
	out, err := cmd.Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != filepath.Join(in.bin, "shutdown") {
		t.Fatalf("shutdown resolves to %q (%v); want the fake in %s", got, err, in.bin)
	}
	return in
}

// env is the wrapper's whole environment: SSM runs it as root with a short one.
func (in *instance) env() []string {
	return append([]string{"PATH=" + in.bin + ":" + os.Getenv("PATH"), "HOME=" + in.dir, "LANG=C"}, in.extraEnv...)
}

// run renders the wrapper for j and runs its launcher with /bin/sh (dash on
// Ubuntu), as SSM's AWS-RunShellScript does, from the scratch directory, as
// the agent does from its own working directory when it is given none. It
// returns the exit code and the combined output, read until every writer
// has closed it.
func (in *instance) run(t *testing.T, j *job.Job, keepWarm time.Duration) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := in.runTo(t, j, keepWarm, &out, &out)
	return code, out.String()
}

// runTo is run with the wrapper's stdout and stderr kept apart, as SSM
// keeps them; one writer for both makes them one pipe.
func (in *instance) runTo(t *testing.T, j *job.Job, keepWarm time.Duration, stdout, stderr io.Writer) int {
	t.Helper()
	launcher, err := runner.Launcher(j, "i-0123456789abcdef0", keepWarm, runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1"})
	if err != nil {
		t.Fatalf("Launcher(%s) = %v", j.ID, err)
	}
	cmd := exec.Command("/bin/sh", "-c", launcher)
	cmd.Dir = in.dir
	cmd.Env = in.env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	closed := pipeOutput(t, cmd, stdout, stderr)
	err = cmd.Wait()
	// SSM ends a command when every writer of its output has closed it,
	// whatever the exit code: a process that keeps it open holds the
	// command open. (exec's WaitDelay says so only of a command that
	// succeeded.)
	select {
	case <-closed:
	case <-time.After(outputCloseTimeout):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("wrapper for %s exited (%v) but its output stayed open for %v: SSM would wait for it", j.ID, err, outputCloseTimeout)
	}
	// The heartbeat loop's sleep outlives the wrapper; end it.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode()
	case err != nil:
		t.Fatalf("run wrapper for %s: %v", j.ID, err)
	}
	return 0
}

// pipeOutput starts cmd with a pipe of its own for stdout and one for
// stderr (one for both when they are one writer, as exec makes them),
// copied to the writers. The channel it returns is closed when every
// holder of the pipes, the command's children among them, has closed them.
func pipeOutput(t *testing.T, cmd *exec.Cmd, stdout, stderr io.Writer) <-chan struct{} {
	t.Helper()
	var writers []*os.File
	var copies sync.WaitGroup
	pipe := func(to io.Writer) *os.File {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
		copies.Go(func() {
			defer r.Close()
			_, _ = io.Copy(to, r)
		})
		return w
	}
	out := pipe(stdout)
	cmd.Stdout, cmd.Stderr = out, out
	if stderr != stdout {
		cmd.Stderr = pipe(stderr)
	}
	err := cmd.Start()
	for _, w := range writers {
		w.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		copies.Wait()
		close(closed)
	}()
	return closed
}

// shutdowns returns the recorded shutdown calls, each as its first two
// arguments ("-c", or "-P +130").
func (in *instance) shutdowns(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(in.shutdownLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var calls []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		calls = append(calls, strings.Join(f[:min(2, len(f))], " "))
	}
	return calls
}

// attemptDir is the wrapper's state directory of one attempt.
func (in *instance) attemptDir(j *job.Job) string {
	return filepath.Join(in.state, "jobs", j.ID, strconv.Itoa(j.Attempt))
}

// newJob returns attempt 1 of a job with env values (never secrets).
func newJob(id, command string, maxRuntime time.Duration, env map[string]string) *job.Job {
	var e job.Env
	if env != nil {
		e = job.Env{}
		for k, v := range env {
			e[k] = job.EnvValue{Value: v}
		}
	}
	return &job.Job{ID: id, Attempt: 1, Spec: job.Spec{ID: id, Command: command, MaxRuntime: job.Duration(maxRuntime), Env: e}}
}

// TestWrapperEnv: env values reach the command literally: quotes, spaces,
// newlines, $(…), backquotes and semicolons are data, never shell.
func TestWrapperEnv(t *testing.T) {
	in := newInstance(t)
	out := filepath.Join(in.dir, "values")
	env := map[string]string{
		"SPACES":   "a b  c ",
		"QUOTES":   `it's "quoted" \ backslash`,
		"SUBST":    "$(touch " + filepath.Join(in.dir, "pwned1") + ") `touch " + filepath.Join(in.dir, "pwned2") + "` ${HOME} $0",
		"NEWLINE":  "line 1\nline 2",
		"SEMI":     "x'; touch " + filepath.Join(in.dir, "pwned3") + "; echo '",
		"EMPTY":    "",
		"OUT_FILE": out,
	}
	j := newJob("env-test", `printf '%s\0' "$SPACES" "$QUOTES" "$SUBST" "$NEWLINE" "$SEMI" "$EMPTY" "$NIGHTSHIFT_JOB_ID" "$NIGHTSHIFT_ATTEMPT" >"$OUT_FILE"`, time.Hour, env)
	if code, output := in.run(t, j, 10*time.Minute); code != 0 {
		t.Fatalf("wrapper exit code = %d; want 0; output:\n%s", code, output)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	want := []string{env["SPACES"], env["QUOTES"], env["SUBST"], env["NEWLINE"], env["SEMI"], "", "env-test", "1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values the command saw (-want +got):\n%s", diff)
	}
	for _, f := range []string{"pwned1", "pwned2", "pwned3"} {
		if _, err := os.Stat(filepath.Join(in.dir, f)); err == nil {
			t.Errorf("%s exists: an env value ran as shell", f)
		}
	}
}

// TestWrapperWorkdir: setup and command run in the job's workdir, setup
// first (environment activation), in the same shell. With no workdir that is
// nightshift's own directory for the job under the state directory, created
// for it; a relative workdir goes under that directory; an absolute one is
// used as it is. Never the directory the command was started from (the SSM
// agent's own). An absolute workdir that does not exist fails the job with
// its own exit code, recorded, and the idle timer armed.
func TestWrapperWorkdir(t *testing.T) {
	tests := []struct {
		name     string
		give     string // workdir; an absolute one is under the scratch directory
		create   bool
		wantCode int
		wantPwd  string // relative: under the scratch directory
	}{
		{name: "workdir with a space", give: "/my project", create: true, wantCode: 0, wantPwd: "my project"},
		{name: "no workdir", give: "", wantCode: 0, wantPwd: "state/work/workdir-test"},
		{name: "relative workdir", give: "sub/it's here", wantCode: 0, wantPwd: "state/work/workdir-test/sub/it's here"},
		{name: "missing workdir", give: "/gone", create: false, wantCode: 99},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			out := filepath.Join(in.dir, "pwd")
			j := newJob("workdir-test", `pwd >"$OUT_FILE"; echo "$FROM_SETUP" >>"$OUT_FILE"`, time.Hour, map[string]string{"OUT_FILE": out})
			j.Spec.Setup = "export FROM_SETUP=activated"
			j.Spec.Workdir = tt.give
			if strings.HasPrefix(tt.give, "/") {
				j.Spec.Workdir = filepath.Join(in.dir, tt.give)
				if tt.create {
					if err := os.Mkdir(j.Spec.Workdir, 0o755); err != nil {
						t.Fatal(err)
					}
				}
			}
			code, output := in.run(t, j, 10*time.Minute)
			if code != tt.wantCode {
				t.Fatalf("wrapper exit code = %d; want %d; output:\n%s", code, tt.wantCode, output)
			}
			if tt.wantCode != 0 {
				if b, err := os.ReadFile(filepath.Join(in.attemptDir(j), "exit_code")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(tt.wantCode) {
					t.Errorf("exit_code file = %q, %v; want %d", b, err, tt.wantCode)
				}
				if calls := in.shutdowns(t); len(calls) == 0 || calls[len(calls)-1] != "-P +11" {
					t.Errorf("shutdown calls %v; want the idle timer armed last (-P +11)", calls)
				}
				if _, err := os.Stat(out); err == nil {
					t.Errorf("the command ran")
				}
				return
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(in.dir, tt.wantPwd) + "\nactivated\n"
			if string(b) != want {
				t.Errorf("command saw pwd and setup %q; want %q", b, want)
			}
		})
	}
}

// TestWrapperPathsAbsolute: every path the wrapper hands the job is
// absolute, even with a relative state directory (as the local run has),
// so the job can cd anywhere and still touch its heartbeat.
func TestWrapperPathsAbsolute(t *testing.T) {
	in := newInstance(t)
	in.stateDir = "state" // relative to where the command starts: the scratch directory
	out := filepath.Join(in.dir, "paths")
	j := newJob("paths-test", `{ pwd; echo "$NIGHTSHIFT_HEARTBEAT"; } >"$OUT_FILE"; cd / && touch "$NIGHTSHIFT_HEARTBEAT"`, time.Hour, map[string]string{"OUT_FILE": out})
	if code, output := in.run(t, j, 10*time.Minute); code != 0 {
		t.Fatalf("wrapper exit code = %d; want 0; output:\n%s", code, output)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(in.state, "work", j.ID) + "\n" + filepath.Join(in.attemptDir(j), "progress") + "\n"
	if string(b) != want {
		t.Errorf("the job's workdir and heartbeat = %q; want %q", b, want)
	}
}

// TestWrapperTimers: the exit code is the command's; the dead-man timer is
// armed for max runtime + 10 min before the command, and after it the idle
// timer for the keep-warm window plus one watchdog period; the heartbeat
// and the output are written.
func TestWrapperTimers(t *testing.T) {
	tests := []struct {
		name       string
		command    string
		maxRuntime time.Duration
		keepWarm   time.Duration
		wantCode   int
		want       []string // shutdown calls
	}{
		{name: "exit 3", command: "echo training; exit 3", maxRuntime: 2 * time.Hour, keepWarm: 7 * time.Minute, wantCode: 3,
			want: []string{"-c", "-P +130", "-c", "-P +8"}},
		{name: "success", command: "echo training", maxRuntime: 90 * time.Minute, keepWarm: 10 * time.Minute, wantCode: 0,
			want: []string{"-c", "-P +100", "-c", "-P +11"}},
		{name: "minutes round up", command: "echo training; false", maxRuntime: 90 * time.Second, keepWarm: 30 * time.Second, wantCode: 1,
			want: []string{"-c", "-P +12", "-c", "-P +2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			j := newJob("timer-test", tt.command, tt.maxRuntime, nil)
			before := time.Now().Unix()
			code, output := in.run(t, j, tt.keepWarm)
			if code != tt.wantCode {
				t.Errorf("wrapper exit code = %d; want %d; output:\n%s", code, tt.wantCode, output)
			}
			if diff := cmp.Diff(tt.want, in.shutdowns(t)); diff != "" {
				t.Errorf("shutdown calls (-want +got):\n%s", diff)
			}
			if !strings.Contains(output, "training") {
				t.Errorf("output = %q; want the command's own output", output)
			}
			dir := in.attemptDir(j)
			for _, f := range []string{"started", "heartbeat"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if err != nil {
					t.Errorf("%s file: %v", f, err)
					continue
				}
				if s, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || s < before-1 {
					t.Errorf("%s file = %q; want the start time in Unix seconds", f, b)
				}
			}
			if b, err := os.ReadFile(filepath.Join(dir, "exit_code")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(tt.wantCode) {
				t.Errorf("exit_code file = %q, %v; want %d", b, err, tt.wantCode)
			}
		})
	}
}

// TestWrapperOncePerAttempt: a second copy of the same attempt (a duplicate
// SendCommand) does not run the command or touch the timers; it reports the
// first copy's exit code. The next attempt runs.
func TestWrapperOncePerAttempt(t *testing.T) {
	in := newInstance(t)
	count := filepath.Join(in.dir, "runs")
	j := newJob("once-test", `echo run >>"$RUNS"; exit 3`, time.Hour, map[string]string{"RUNS": count})
	runs := func() int {
		b, _ := os.ReadFile(count)
		return strings.Count(string(b), "run\n")
	}

	if code, out := in.run(t, j, 10*time.Minute); code != 3 {
		t.Fatalf("first copy: exit code %d; want 3; output:\n%s", code, out)
	}
	timers := in.shutdowns(t)
	if code, out := in.run(t, j, 10*time.Minute); code != 3 {
		t.Errorf("second copy: exit code %d; want 3, the first copy's; output:\n%s", code, out)
	}
	if n := runs(); n != 1 {
		t.Errorf("command runs after two copies of attempt 1 = %d; want 1", n)
	}
	if diff := cmp.Diff(timers, in.shutdowns(t)); diff != "" {
		t.Errorf("the second copy changed the timers (-after first +after second):\n%s", diff)
	}

	j.Attempt = 2
	if code, out := in.run(t, j, 10*time.Minute); code != 3 {
		t.Errorf("attempt 2: exit code %d; want 3; output:\n%s", code, out)
	}
	if n := runs(); n != 2 {
		t.Errorf("command runs after attempt 2 = %d; want 2", n)
	}
}

func ssmJob() *job.Job {
	return &job.Job{ID: "resnet-cifar10", Attempt: 2, Spec: job.Spec{ID: "resnet-cifar10", Command: "python train.py --epochs 10", MaxRuntime: job.Duration(2 * time.Hour)}}
}

// TestSend: the attempt's wrapper goes to exactly one instance with the
// attempt in the comment, SSM's execution timeout at the job's max
// runtime, and the output to CloudWatch Logs (and S3 when configured).
// SSM accepts it and runs it there, under the id Send returns.
func TestSend(t *testing.T) {
	opts := runner.ScriptOptions{StateDir: "/var/lib/nightshift", Region: "us-east-1"}
	j := ssmJob()
	c := newTestCloud()
	iid, bystander := c.ready(), c.ready()
	commands, err := runner.Launcher(j, iid, 10*time.Minute, opts)
	if err != nil {
		t.Fatal(err)
	}
	base := ssm.SendCommandInput{
		DocumentName:   aws.String("AWS-RunShellScript"),
		InstanceIds:    []string{iid},
		Comment:        aws.String("nightshift resnet-cifar10 #2"),
		TimeoutSeconds: aws.Int32(600),
		Parameters: map[string][]string{
			"commands":         {commands},
			"executionTimeout": {"7200"},
			// Not the agent's own working directory, and one that exists
			// on every instance: the wrapper makes and enters the job's.
			"workingDirectory": {"/"},
		},
		CloudWatchOutputConfig: &types.CloudWatchOutputConfig{CloudWatchOutputEnabled: true, CloudWatchLogGroupName: aws.String("/nightshift/jobs")},
	}
	withS3 := base
	withS3.OutputS3BucketName = aws.String("nightshift-output")
	withS3.OutputS3KeyPrefix = aws.String("runs/resnet-cifar10/2")
	// A relative state directory is relative to where the command starts:
	// the caller's choice, which a workingDirectory would change.
	relative := runner.ScriptOptions{StateDir: ".nightshift", Region: "us-east-1"}
	relCommands, err := runner.Launcher(j, iid, 10*time.Minute, relative)
	if err != nil {
		t.Fatal(err)
	}
	relState := base
	relState.CloudWatchOutputConfig = nil
	relState.Parameters = map[string][]string{"commands": {relCommands}, "executionTimeout": {"7200"}}
	tests := []struct {
		name string
		give runner.Config
		want *ssm.SendCommandInput
	}{
		{name: "CloudWatch", give: runner.Config{LogGroup: "/nightshift/jobs", Script: opts}, want: &base},
		{name: "CloudWatch and S3", give: runner.Config{LogGroup: "/nightshift/jobs", Bucket: "nightshift-output", KeyPrefix: "runs/", Script: opts}, want: &withS3},
		{name: "relative state directory", give: runner.Config{Script: relative}, want: &relState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.forget()
			id, err := runner.New(c, tt.give).Send(context.Background(), j, iid, 10*time.Minute)
			if err != nil || id == "" {
				t.Fatalf("Send(%s, %s) = %q, %v; want a command id", j.ID, iid, id, err)
			}
			if diff := cmp.Diff([]*ssm.SendCommandInput{tt.want}, c.sent, ignoreNoSerde); diff != "" {
				t.Errorf("SendCommand input (-want +got):\n%s", diff)
			}
			type run struct{ Instance, Comment, Commands string }
			var ran []run
			for _, inv := range c.Invocations() {
				if inv.CommandID == id {
					ran = append(ran, run{inv.InstanceID, inv.Comment, inv.Commands})
				}
			}
			if diff := cmp.Diff([]run{{iid, j.Comment(), tt.want.Parameters["commands"][0]}}, ran); diff != "" {
				t.Errorf("what command %s runs, and where (bystander %s) (-want +got):\n%s", id, bystander, diff)
			}
		})
	}

	// The longest id at a two-digit attempt still fits SSM's comment, and
	// SSM takes it.
	long := &job.Job{ID: strings.Repeat("x", 64), Attempt: 10, Spec: j.Spec}
	if c := long.Comment(); len(c) > 100 || !strings.Contains(c, long.ID) || !strings.Contains(c, "#10") {
		t.Errorf("Comment() = %q (%d chars); want the id and attempt in at most 100 characters", c, len(c))
	}
	mustSend(t, runner.New(c, runner.Config{Script: opts}), long, iid)
}

// TestSendErrors: an instance whose agent is not online (unknown, still
// booting, not registered yet, never registering, stopped) is not ready;
// throttling is retried later; other errors pass through. A refused send
// runs nothing.
func TestSendErrors(t *testing.T) {
	inject := func(code string) func(*testing.T, *testCloud) string {
		return func(_ *testing.T, c *testCloud) string {
			c.fail["SendCommand"] = code
			return c.ready()
		}
	}
	tests := []struct {
		name     string
		give     func(*testing.T, *testCloud) string // sets the cloud up; returns the instance to send to
		wantCode string
		want     error
	}{
		{name: "unknown instance", give: func(*testing.T, *testCloud) string { return "i-0123456789abcdef0" }, wantCode: "InvalidInstanceId", want: runner.ErrNotReady},
		{name: "booting", give: func(_ *testing.T, c *testCloud) string { return c.launch() }, wantCode: "InvalidInstanceId", want: runner.ErrNotReady},
		{name: "running, agent not registered yet", give: func(_ *testing.T, c *testCloud) string {
			id := c.launch()
			c.clock.Advance(awssim.DefaultBoot)
			return id
		}, wantCode: "InvalidInstanceId", want: runner.ErrNotReady},
		{name: "agent never online", give: func(_ *testing.T, c *testCloud) string {
			c.AgentDelay = func(string) (time.Duration, bool) { return -1, true }
			id := c.launch()
			c.clock.Advance(time.Hour)
			return id
		}, wantCode: "InvalidInstanceId", want: runner.ErrNotReady},
		{name: "stopped", give: func(t *testing.T, c *testCloud) string {
			id := c.ready()
			if err := c.ByHand(id, "stop"); err != nil {
				t.Fatal(err)
			}
			c.clock.Advance(awssim.DefaultStop)
			return id
		}, wantCode: "InvalidInstanceId", want: runner.ErrNotReady},
		{name: "throttled", give: inject("ThrottlingException"), wantCode: "ThrottlingException", want: runner.ErrThrottled},
		{name: "throttled, query protocol", give: inject("Throttling"), wantCode: "Throttling", want: runner.ErrThrottled},
		{name: "too many updates", give: inject("TooManyUpdates"), wantCode: "TooManyUpdates", want: runner.ErrThrottled},
		{name: "denied by IAM", give: func(_ *testing.T, c *testCloud) string {
			c.Policy = func(awssim.Request) bool { return false }
			return c.ready()
		}, wantCode: "AccessDeniedException", want: nil},
		{name: "EC2's code, not SSM's", give: inject("InvalidInstanceID.NotFound"), wantCode: "InvalidInstanceID.NotFound", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCloud()
			iid := tt.give(t, c)
			_, err := runner.New(c, runner.Config{}).Send(context.Background(), ssmJob(), iid, 10*time.Minute)
			var api smithy.APIError
			if err == nil || !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
				t.Errorf("Send(%s) = %v; want the AWS error %s inside", iid, err, tt.wantCode)
			}
			for _, kind := range []error{runner.ErrNotReady, runner.ErrThrottled} {
				if got := errors.Is(err, kind); got != (kind == tt.want) {
					t.Errorf("Send(%s) = %v; errors.Is(%v) = %v", iid, err, kind, got)
				}
			}
			if n, runs := c.Calls["SendCommand"], len(c.Invocations()); n != 1 || runs != 0 {
				t.Errorf("Send(%s): %d SendCommand calls, %d invocations; want 1, 0", iid, n, runs)
			}
		})
	}
}

// TestFind: a command sent for the attempt is found by its comment in the
// instance's recent history, across pages and within three of them, and
// nothing else is taken for it: not the same job's earlier attempt, not
// the attempt's command on another instance.
func TestFind(t *testing.T) {
	j := ssmJob()
	other := &job.Job{ID: "other", Attempt: 1, Spec: j.Spec}
	earlier := &job.Job{ID: j.ID, Attempt: 1, Spec: j.Spec}
	tests := []struct {
		name      string
		before    int  // commands of other jobs sent before the attempt's
		sent      bool // whether the attempt's command was sent
		after     int  // commands of other jobs sent after it
		want      bool // whether Find finds it
		wantPages int  // ListCommandInvocations calls
	}{
		{name: "newest", before: 3, sent: true, after: 0, want: true, wantPages: 1},
		{name: "on the second page", sent: true, after: 70, want: true, wantPages: 2},
		{name: "last on the third page", sent: true, after: 149, want: true, wantPages: 3},
		// Find reads three pages of history: older intents are long dead.
		{name: "past three pages", sent: true, after: 150, want: false, wantPages: 3},
		{name: "never sent", before: 20, sent: false, after: 20, want: false, wantPages: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCloud()
			iid, elsewhere := c.ready(), c.ready()
			r := runner.New(c, runner.Config{})
			mustSend(t, r, j, elsewhere) // the attempt on another instance: not this one's
			for range tt.before {
				mustSend(t, r, other, iid)
			}
			mustSend(t, r, earlier, iid) // the same job's earlier attempt: not this one
			want := ""
			if tt.sent {
				want = mustSend(t, r, j, iid)
			}
			for range tt.after {
				mustSend(t, r, other, iid)
			}
			if !tt.want {
				want = ""
			}
			c.forget()
			got, err := r.Find(context.Background(), j, iid)
			if err != nil || got != want {
				t.Errorf("Find(%s, %s) = %q, %v; want %q", j.Comment(), iid, got, err, want)
			}
			for _, in := range c.listed {
				if aws.ToString(in.InstanceId) != iid || aws.ToInt32(in.MaxResults) != 50 {
					t.Errorf("ListCommandInvocations(instance %s, max %d); want %s, 50", aws.ToString(in.InstanceId), aws.ToInt32(in.MaxResults), iid)
				}
			}
			if len(c.listed) != tt.wantPages {
				t.Errorf("Find(%s, %s) read %d pages; want %d", j.Comment(), iid, len(c.listed), tt.wantPages)
			}
		})
	}
}

func mustSend(t *testing.T, r *runner.Runner, j *job.Job, instanceID string) string {
	t.Helper()
	id, err := r.Send(context.Background(), j, instanceID, 10*time.Minute)
	if err != nil {
		t.Fatalf("Send(%s, %s) = %v", j.ID, instanceID, err)
	}
	return id
}

// TestResult: an invocation's status, exit code and times as SSM reports
// the command's run; an invocation that does not exist, as right after
// SendCommand, reads as Pending.
func TestResult(t *testing.T) {
	sent := time.Date(2026, 11, 25, 21, 3, 10, 512e6, time.UTC)
	tests := []struct {
		name      string
		give      awssim.Outcome // what the command does on the instance
		after     time.Duration  // when Result reads it, after the send
		cancelAt  time.Duration  // when set, the command is cancelled this long after the send
		elsewhere bool           // Result asks about an instance the command did not go to
		delayed   bool           // SSM is retrying the delivery
		gone      bool           // the agent went away after it reported Online
		giveErr   string         // GetCommandInvocation is refused with this code
		want      runner.Result  // the command id is the one sent
		wantKind  error
	}{
		{name: "no such invocation", elsewhere: true, want: runner.Result{Status: runner.Pending, Undelivered: true}},
		{name: "in progress", give: awssim.Outcome{Duration: time.Hour}, after: 10 * time.Minute,
			want: runner.Result{Status: runner.Pending, ExitCode: -1, Started: sent}},
		{name: "delayed", give: awssim.Outcome{Duration: time.Hour}, after: 10 * time.Minute, delayed: true,
			want: runner.Result{Status: runner.Pending, Undelivered: true, ExitCode: -1}},
		{name: "agent gone, waiting", give: awssim.Outcome{Duration: time.Minute}, after: 10 * time.Minute, gone: true,
			want: runner.Result{Status: runner.Pending, Undelivered: true, ExitCode: -1}},
		// SSM gives up after the delivery timeout (10 min) plus the
		// execution timeout (2 h): TimedOut, but the command never ran.
		{name: "delivery timed out", give: awssim.Outcome{Duration: time.Minute}, after: 3 * time.Hour, gone: true,
			want: runner.Result{Status: runner.TimedOut, Undelivered: true, ExitCode: -1}},
		{name: "success", give: awssim.Outcome{Duration: 41*time.Minute + 52488*time.Millisecond}, after: time.Hour,
			want: runner.Result{Status: runner.Success, Started: sent, Ended: time.Date(2026, 11, 25, 21, 45, 3, 0, time.UTC)}},
		{name: "failed", give: awssim.Outcome{Exit: 3, Duration: 10 * time.Minute}, after: time.Hour,
			want: runner.Result{Status: runner.Failed, ExitCode: 3, Started: sent, Ended: sent.Add(10 * time.Minute)}},
		// The job's max runtime, 2 h, is the command's execution timeout.
		{name: "timed out", give: awssim.Outcome{Hang: true}, after: 3 * time.Hour,
			want: runner.Result{Status: runner.TimedOut, ExitCode: -1, Started: sent, Ended: sent.Add(2 * time.Hour)}},
		{name: "cancelled", give: awssim.Outcome{Duration: time.Hour}, cancelAt: 5 * time.Minute, after: 10 * time.Minute,
			want: runner.Result{Status: runner.Cancelled, ExitCode: -1, Started: sent, Ended: sent.Add(5 * time.Minute)}},
		{name: "throttled", giveErr: "ThrottlingException", wantKind: runner.ErrThrottled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			c := newTestCloud()
			c.Exec = awssim.ExecFunc(func(*awssim.Host, awssim.Run) awssim.Outcome { return tt.give })
			iid, bystander := c.ready(), c.ready()
			c.AgentGone = func(string) bool { return tt.gone }
			var api runner.SSM = c.Cloud
			if tt.delayed {
				api = delayed{c.Cloud}
			}
			r := runner.New(api, runner.Config{})
			c.clock.AdvanceTo(sent)
			id := mustSend(t, r, ssmJob(), iid)
			if tt.cancelAt > 0 {
				c.clock.Advance(tt.cancelAt)
				if _, err := c.CancelCommand(ctx, &ssm.CancelCommandInput{CommandId: aws.String(id), InstanceIds: []string{iid}}); err != nil {
					t.Fatal(err)
				}
			}
			c.clock.AdvanceTo(sent.Add(tt.after))
			if tt.giveErr != "" {
				c.fail["GetCommandInvocation"] = tt.giveErr
			}
			asked := iid
			if tt.elsewhere {
				asked = bystander
			}
			got, err := r.Result(ctx, id, asked)
			if tt.wantKind != nil {
				if !errors.Is(err, tt.wantKind) {
					t.Errorf("Result(%s, %s) = %v; want %v", id, asked, err, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatalf("Result(%s, %s) = %v", id, asked, err)
			}
			want := tt.want
			want.CommandID = id
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Result(%s, %s) (-want +got):\n%s", id, asked, diff)
			}
		})
	}
}

// TestOnline: only agents reporting Online count; ids go to SSM in chunks of
// at most 50, MaxResults 50, each chunk read through all its pages, the
// short and the empty ones too.
func TestOnline(t *testing.T) {
	c := newTestCloud()
	c.FilterAfterPage = true
	agent := map[string]time.Duration{}
	c.AgentDelay = func(id string) (time.Duration, bool) {
		d, ok := agent[id]
		return d, ok
	}
	var ids, lost []string
	want := map[string]bool{}
	for i := range 120 {
		id := c.launch()
		ids = append(ids, id)
		switch i % 3 {
		case 0:
			want[id] = true // online after awssim.DefaultAgent
		case 1:
			lost = append(lost, id) // registers, then its instance stops: ConnectionLost
		case 2:
			agent[id] = -1 // never registers: SSM does not list it at all
		}
	}
	c.clock.Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	for _, id := range lost {
		if err := c.ByHand(id, "stop"); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(map[types.PingStatus]int{types.PingStatusOnline: 40, types.PingStatusConnectionLost: 40}, c.pings(t)); diff != "" {
		t.Fatalf("agents set up (-want +got):\n%s", diff)
	}
	c.forget()

	got, err := runner.New(c, runner.Config{}).Online(context.Background(), ids)
	if err != nil {
		t.Fatalf("Online(120 ids) = %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Online(120 ids) (-want +got):\n%s", diff)
	}
	var chunks, pages []int
	var asked []string
	for _, in := range c.described {
		if aws.ToInt32(in.MaxResults) != 50 {
			t.Errorf("DescribeInstanceInformation(MaxResults %d); want 50", aws.ToInt32(in.MaxResults))
		}
		if in.NextToken != nil {
			pages[len(pages)-1]++ // a further page of the same chunk
			continue
		}
		chunks = append(chunks, len(in.Filters[0].Values))
		pages = append(pages, 1)
		asked = append(asked, in.Filters[0].Values...)
	}
	if diff := cmp.Diff([]int{50, 50, 20}, chunks); diff != "" {
		t.Errorf("InstanceIds per chunk (-want +got):\n%s", diff)
	}
	// SSM pages through all 80 registered nodes, 50 a page, before the
	// filter: every chunk takes two pages, and the last chunk's first one
	// comes back empty with a NextToken.
	if diff := cmp.Diff([]int{2, 2, 2}, pages); diff != "" {
		t.Errorf("pages per chunk (-want +got):\n%s", diff)
	}
	if !slices.Equal(ids, asked) {
		t.Errorf("ids asked about differ from the ids given")
	}

	c.forget()
	got, err = runner.New(c, runner.Config{}).Online(context.Background(), nil)
	if n := c.Calls["DescribeInstanceInformation"]; err != nil || len(got) != 0 || n != 0 {
		t.Errorf("Online(none) = %v, %v after %d calls; want empty after none", got, err, n)
	}
}

// TestCancel cancels the command on the one instance: SSM ends it there,
// and only there.
func TestCancel(t *testing.T) {
	ctx := context.Background()
	c := newTestCloud()
	c.Exec = awssim.ExecFunc(func(*awssim.Host, awssim.Run) awssim.Outcome { return awssim.Outcome{Duration: time.Hour} })
	iid, other := c.ready(), c.ready()
	// One command on two instances, as SSM allows.
	out, err := c.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String(runner.Document), InstanceIds: []string{iid, other},
		Parameters: map[string][]string{"commands": {"python train.py"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := aws.ToString(out.Command.CommandId)
	c.clock.Advance(5 * time.Minute)
	c.forget()
	if err := runner.New(c, runner.Config{}).Cancel(ctx, cmd, iid); err != nil {
		t.Fatalf("Cancel(%s, %s) = %v", cmd, iid, err)
	}
	want := []*ssm.CancelCommandInput{{CommandId: aws.String(cmd), InstanceIds: []string{iid}}}
	if diff := cmp.Diff(want, c.cancels, ignoreNoSerde); diff != "" {
		t.Errorf("CancelCommand input (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		give string // instance
		want string // status
	}{{give: iid, want: "Cancelled"}, {give: other, want: "InProgress"}} {
		if got := c.invocation(t, cmd, tt.give).Status; got != tt.want {
			t.Errorf("after Cancel(%s, %s): invocation on %s = %s; want %s", cmd, iid, tt.give, got, tt.want)
		}
	}
}

// TestParseStatus reads both the API's and EventBridge's spellings.
func TestParseStatus(t *testing.T) {
	tests := []struct {
		give string
		want runner.Status
	}{
		{give: "Success", want: runner.Success},
		{give: "Failed", want: runner.Failed},
		{give: "TimedOut", want: runner.TimedOut},
		{give: "ExecutionTimedOut", want: runner.TimedOut},
		{give: "DeliveryTimedOut", want: runner.Failed},
		{give: "Undeliverable", want: runner.Failed},
		{give: "Terminated", want: runner.Failed},
		{give: "Cancelled", want: runner.Cancelled},
		{give: "Cancelling", want: runner.Pending},
		{give: "InProgress", want: runner.Pending},
		{give: "Pending", want: runner.Pending},
		{give: "Delayed", want: runner.Pending},
		{give: "", want: runner.Pending},
	}
	for _, tt := range tests {
		if got := runner.ParseStatus(tt.give); got != tt.want {
			t.Errorf("ParseStatus(%q) = %s; want %s", tt.give, got, tt.want)
		}
	}
}

// TestWrapperSyncsInWorkdir: inputs and outputs are synced relative to the
// job's workdir, and a job whose outputs could not be saved does not succeed.
func TestWrapperSyncsInWorkdir(t *testing.T) {
	tests := []struct {
		name     string
		failSync string // the aws stub fails for this direction: "up" or ""
		command  string
		want     int
	}{
		{"both syncs in workdir", "", "test -f data/in.txt && mkdir -p out && echo ok > out/result", 0},
		{"output sync fails after success", "up", "mkdir -p out", 97},
		{"output sync fails after failure keeps the job's code", "up", "exit 3", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t)
			wd := filepath.Join(in.dir, "work dir")
			if err := os.Mkdir(wd, 0o755); err != nil {
				t.Fatal(err)
			}
			log := filepath.Join(in.dir, "aws.log")
			// The stub records its working directory; a download creates the file.
			// aws s3 sync --only-show-errors SRC DST: $4 is the source, $5 the destination.
			stub := "#!/bin/sh\nprintf '%s %s\\n' \"$(pwd)\" \"$4\" >>" + runner.Quote(log) + "\n" +
				"case \"$4\" in s3://*) mkdir -p \"$5\" && echo data > \"$5/in.txt\";; *) [ " + runner.Quote(tt.failSync) + " = up ] && exit 1;; esac\nexit 0\n"
			if err := os.WriteFile(filepath.Join(in.bin, "aws"), []byte(stub), 0o755); err != nil {
				t.Fatal(err)
			}
			j := newJob("sync-"+strings.ReplaceAll(tt.name, " ", "-"), tt.command, time.Hour, nil)
			j.Spec.Workdir = wd
			j.Spec.Inputs = []job.Sync{{S3: "s3://b/data", Path: "data"}}
			j.Spec.Outputs = []job.Sync{{S3: "s3://b/out", Path: "out"}}
			code, out := in.run(t, j, 5*time.Minute)
			if code != tt.want {
				t.Fatalf("exit code %d; want %d\n%s", code, tt.want, out)
			}
			b, err := os.ReadFile(log)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if !strings.HasPrefix(line, wd+" ") {
					t.Errorf("aws ran in %q; want the workdir %q", line, wd)
				}
			}
		})
	}
}
