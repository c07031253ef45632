package runner_test

import (
	"encoding/base64"
	"errors"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// The timers as the wrapper arms them: minutes to shutdown -P.
var (
	armDeadman   = regexp.MustCompile(`(?m)^ns_arm (\d+) "dead-man timer for job "`)
	armIdle      = regexp.MustCompile(`(?m)^ns_arm (\d+) "idle timer after job "`)
	armAbortIdle = regexp.MustCompile(`(?m)^\tns_arm (\d+) "idle timer after job "`)
)

// armed returns the minutes of every match of re in script.
func armed(t *testing.T, re *regexp.Regexp, script string) []int {
	t.Helper()
	var minutes []int
	for _, m := range re.FindAllStringSubmatch(script, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		minutes = append(minutes, n)
	}
	return minutes
}

// TestHeader: the launcher's first line reads back, over the generated
// jobs, as the attempt and the very timers, state directory and workdir
// its wrapper uses; the rest of the launcher runs that wrapper.
func TestHeader(t *testing.T) {
	for i, c := range scriptCases(scriptSeed, 1000) {
		launcher, err := runner.Launcher(c.job, c.instanceID, c.keepWarm, c.opts)
		if err != nil {
			t.Fatalf("Launcher(case %d: %v) = %v", i, c, err)
		}
		got, err := runner.ParseHeader(launcher)
		if err != nil {
			t.Fatalf("ParseHeader(Launcher(case %d: %v)) = %v; first line %q", i, c, err, strings.SplitN(launcher, "\n", 2)[0])
		}
		script, err := runner.Script(c.job, c.instanceID, c.keepWarm, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(launcher, "\necho "+base64.StdEncoding.EncodeToString([]byte(script))+" | base64 -d") {
			t.Fatalf("Launcher(case %d: %v) does not carry Script's wrapper", i, c)
		}
		deadman, idle, abortIdle := armed(t, armDeadman, script), armed(t, armIdle, script), armed(t, armAbortIdle, script)
		if len(deadman) != 1 || len(idle) != 1 || len(abortIdle) != 1 {
			t.Fatalf("case %d: script arms dead-man %v, idle %v, after an abort %v; want one each", i, deadman, idle, abortIdle)
		}
		want := runner.Header{
			Job: c.job.ID, Attempt: c.job.Attempt,
			DeadmanSeconds: 60 * deadman[0], IdleSeconds: 60 * idle[0],
			StateDir: c.opts.StateDir, Workdir: c.job.Spec.Workdir,
			MaxRuntimeSeconds: int(c.job.Spec.MaxRuntime.D() / time.Second),
		}
		if want.StateDir == "" {
			want.StateDir = runner.DefaultStateDir
		}
		if !path.IsAbs(want.Workdir) {
			want.Workdir = path.Join(want.StateDir, "work", c.job.ID, want.Workdir)
		}
		for name, v := range c.job.Spec.Env {
			if v.Secret() {
				if want.Secrets == nil {
					want.Secrets = map[string]string{}
				}
				want.Secrets[name] = v.SSM
			}
		}
		if ck := c.job.Spec.Checkpoint; ck != nil {
			// The checkpoint directory is under the workdir unless absolute;
			// every in whole seconds, rounded up (the default when none).
			dir := ck.Path
			if dir == "" {
				dir = job.DefaultCheckpointPath
			}
			wrapperDir := dir
			if !path.IsAbs(dir) {
				dir = path.Join(want.Workdir, dir)
			}
			every := ck.Every.D()
			if every == 0 {
				every = job.DefaultCheckpointEvery
			}
			want.Checkpoint = &runner.HeaderCheckpoint{Dir: dir, S3: ck.S3, EverySeconds: max(1, int((every+time.Second-1)/time.Second)),
				LookSeconds: int(runner.CheckpointLook / time.Second), MarginSeconds: int(runner.InterruptionMargin / time.Second)}
			if !strings.Contains(script, "\nns_ckpt_s3="+runner.Quote(ck.S3)+" ns_ckpt_dir="+runner.Quote(wrapperDir)+"\n") {
				t.Errorf("case %d: the script's checkpoint is not the header's %q in %q", i, ck.S3, wrapperDir)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("ParseHeader(Launcher(case %d: %v)) (-want +got):\n%s", i, c, diff)
		}
		if 60*abortIdle[0] != got.IdleSeconds {
			t.Errorf("case %d: an attempt that cannot run (no workdir, a failed input sync) arms %d min; want the header's idle timer, %d s", i, abortIdle[0], got.IdleSeconds)
		}
		// The wrapper's own lines use the header's state directory and workdir.
		if !strings.Contains(script, "\nns_state="+runner.Quote(got.StateDir)+"\n") || !strings.Contains(script, "\nns_work="+runner.Quote(got.Workdir)+"\n") {
			t.Errorf("case %d: the script's state dir or workdir is not the header's %q, %q", i, got.StateDir, got.Workdir)
		}
		// The timers mean what they say: the dead-man timer covers the
		// job's whole max runtime plus grace, the idle timer keep-warm plus
		// one period, each rounded up to the minute.
		maxRuntime, deadmanAt := c.job.Spec.MaxRuntime.D(), time.Duration(got.DeadmanSeconds)*time.Second
		if deadmanAt < maxRuntime+runner.DeadmanGrace || deadmanAt >= maxRuntime+runner.DeadmanGrace+time.Minute {
			t.Errorf("case %d: dead-man timer %v for max runtime %v; want it plus %v, rounded up to the minute", i, deadmanAt, maxRuntime, runner.DeadmanGrace)
		}
		if idleAt := time.Duration(got.IdleSeconds) * time.Second; idleAt < c.keepWarm+time.Minute || idleAt >= max(c.keepWarm, time.Minute)+2*time.Minute {
			t.Errorf("case %d: idle timer %v for keep-warm %v; want keep-warm plus a minute, rounded up", i, idleAt, c.keepWarm)
		}
	}
}

// TestHeaderOfRun: on a scratch instance, the wrapper arms the header's
// timers and leaves the exit code in the header's attempt directory.
func TestHeaderOfRun(t *testing.T) {
	in := newInstance(t)
	j := newJob("header-run", "exit 4", 90*time.Minute, nil)
	keepWarm := 7 * time.Minute
	code, out := in.run(t, j, keepWarm)
	if code != 4 {
		t.Fatalf("wrapper exit code = %d; want 4; output:\n%s", code, out)
	}
	launcher, err := runner.Launcher(j, "i-0123456789abcdef0", keepWarm, runner.ScriptOptions{StateDir: in.state, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	h, err := runner.ParseHeader(launcher)
	if err != nil {
		t.Fatalf("ParseHeader = %v", err)
	}
	want := []string{"-c", "-P +" + strconv.Itoa(h.DeadmanSeconds/60), "-c", "-P +" + strconv.Itoa(h.IdleSeconds/60)}
	if diff := cmp.Diff(want, in.shutdowns(t)); diff != "" {
		t.Errorf("shutdown calls (-header's timers +got):\n%s", diff)
	}
	if b, err := os.ReadFile(filepath.Join(h.AttemptDir(), "exit_code")); err != nil || strings.TrimSpace(string(b)) != "4" {
		t.Errorf("exit_code in the header's AttemptDir %s = %q, %v; want 4", h.AttemptDir(), b, err)
	}
}

// TestHeaderInert: the header is one comment line whatever the values: a
// newline in the workdir does not end it and run as shell.
func TestHeaderInert(t *testing.T) {
	in := newInstance(t)
	pwned := filepath.Join(in.dir, "pwned")
	j := newJob("inert", "true", time.Hour, nil)
	j.Spec.Workdir = filepath.Join(in.dir, "nowhere\ntouch "+pwned+"\n#")
	launcher, err := runner.Launcher(j, "i-0abc", time.Minute, runner.ScriptOptions{StateDir: in.state})
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(launcher, "\n"); !strings.HasPrefix(first, "# nightshift-wrapper/v2 {") || strings.Contains(first, "touch "+pwned+"\n") {
		t.Fatalf("Launcher first line = %q; want one comment line", first)
	}
	if code, out := in.run(t, j, time.Minute); code != 99 {
		t.Errorf("wrapper exit code = %d; want 99 (no such workdir); output:\n%s", code, out)
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Errorf("%s exists: a header value ran as shell", pwned)
	}
}

// TestParseHeaderErrors: a command with no header, of another version, or
// with a header that cannot be read, each has its own error.
func TestParseHeaderErrors(t *testing.T) {
	const ok = `{"job":"j","attempt":1,"deadman_seconds":7800,"idle_seconds":660,"state_dir":"/var/lib/nightshift","workdir":"/var/lib/nightshift/work/j","max_runtime_seconds":7200}`
	tests := []struct {
		name string
		give string
		want error // nil: reads
	}{
		{name: "valid", give: "# nightshift-wrapper/v2 " + ok + "\nset -e\n", want: nil},
		{name: "valid, alone", give: "# nightshift-wrapper/v2 " + ok, want: nil},
		{name: "valid with a field added", give: `# nightshift-wrapper/v2 {"gpu":true,` + ok[1:] + "\n", want: nil},
		{name: "empty", give: "", want: runner.ErrNoHeader},
		{name: "a plain script", give: "set -e\necho hi\n", want: runner.ErrNoHeader},
		{name: "the wrapper's own comment", give: "# nightshift wrapper: job 'j', attempt 1.\n", want: runner.ErrNoHeader},
		{name: "not on the first line", give: "set -e\n# nightshift-wrapper/v2 " + ok + "\n", want: runner.ErrNoHeader},
		{name: "indented", give: " # nightshift-wrapper/v2 " + ok + "\n", want: runner.ErrNoHeader},
		{name: "the version before", give: "# nightshift-wrapper/v1 " + ok + "\n", want: runner.ErrHeaderVersion},
		{name: "a later version", give: "# nightshift-wrapper/v3 " + ok + "\n", want: runner.ErrHeaderVersion},
		{name: "no version", give: "# nightshift-wrapper/ " + ok + "\n", want: runner.ErrHeaderVersion},
		{name: "no JSON", give: "# nightshift-wrapper/v2\nset -e\n", want: runner.ErrBadHeader},
		{name: "JSON cut short", give: "# nightshift-wrapper/v2 " + ok[:40] + "\n", want: runner.ErrBadHeader},
		{name: "JSON cut by a newline", give: "# nightshift-wrapper/v2 " + ok[:40] + "\n" + ok[40:] + "\n", want: runner.ErrBadHeader},
		{name: "text after the JSON", give: "# nightshift-wrapper/v2 " + ok + " x\n", want: runner.ErrBadHeader},
		{name: "a field of the wrong type", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"attempt":1`, `"attempt":"1"`, 1) + "\n", want: runner.ErrBadHeader},
		{name: "a field missing", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"idle_seconds":660,`, ``, 1) + "\n", want: runner.ErrBadHeader},
		{name: "a null field", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"workdir":"/var/lib/nightshift/work/j"`, `"workdir":null`, 1) + "\n", want: runner.ErrBadHeader},
		{name: "no dead-man timer", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"deadman_seconds":7800`, `"deadman_seconds":0`, 1) + "\n", want: runner.ErrBadHeader},
		{name: "attempt 0", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"attempt":1`, `"attempt":0`, 1) + "\n", want: runner.ErrBadHeader},
		{name: "empty job", give: "# nightshift-wrapper/v2 " + strings.Replace(ok, `"job":"j"`, `"job":""`, 1) + "\n", want: runner.ErrBadHeader},
		{name: "an array", give: "# nightshift-wrapper/v2 []\n", want: runner.ErrBadHeader},
		{name: "no secrets", give: `# nightshift-wrapper/v2 {"secrets":{},` + ok[1:] + "\n", want: nil},
		{name: "a secret without its parameter", give: `# nightshift-wrapper/v2 {"secrets":{"KEY":""},` + ok[1:] + "\n", want: runner.ErrBadHeader},
		{name: "secrets not an object", give: `# nightshift-wrapper/v2 {"secrets":["/p"],` + ok[1:] + "\n", want: runner.ErrBadHeader},
	}
	wantOK := runner.Header{Job: "j", Attempt: 1, DeadmanSeconds: 7800, IdleSeconds: 660, StateDir: "/var/lib/nightshift", Workdir: "/var/lib/nightshift/work/j", MaxRuntimeSeconds: 7200}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runner.ParseHeader(tt.give)
			if tt.want == nil {
				if err != nil || !cmp.Equal(got, wantOK) {
					t.Errorf("ParseHeader(%q) = %+v, %v; want %+v", tt.give, got, err, wantOK)
				}
				return
			}
			if !errors.Is(err, tt.want) || !cmp.Equal(got, runner.Header{}) {
				t.Errorf("ParseHeader(%q) = %+v, %v; want %v", tt.give, got, err, tt.want)
			}
			for _, other := range []error{runner.ErrNoHeader, runner.ErrHeaderVersion, runner.ErrBadHeader} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("ParseHeader(%q) = %v; is %v too", tt.give, err, other)
				}
			}
		})
	}
}

// TestAttemptDir is where the wrapper's per-attempt lock is.
func TestAttemptDir(t *testing.T) {
	h := runner.Header{Job: "resnet", Attempt: 3, StateDir: "/var/lib/nightshift/"}
	if got, want := h.AttemptDir(), "/var/lib/nightshift/jobs/resnet/3"; got != want {
		t.Errorf("%+v.AttemptDir() = %q; want %q", h, got, want)
	}
}
