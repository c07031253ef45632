package runner_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// oldWrapper is the wrapper as it was rendered with text/template, kept to
// check the plain renderer against: test binaries may use reflection.
func oldWrapper(t *testing.T) *template.Template {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "wrapper.sh.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	return template.Must(template.New("wrapper").Funcs(template.FuncMap{"q": runner.Quote}).Parse(string(b)))
}

// oldScript renders j the way Script did with text/template.
func oldScript(t *testing.T, tmpl *template.Template, j *job.Job, instanceID string, keepWarm time.Duration, o runner.ScriptOptions) string {
	t.Helper()
	type envVar struct{ Name, Value, Param string }
	s := j.Spec
	d := struct {
		ID, Command, Setup, Workdir, StateDir    string
		CreateWorkdir                            bool
		InstanceID, Region                       string
		Attempt, DeadmanMinutes, KeepWarmMinutes int
		WaitPolls, HeartbeatSeconds, SecretExit  int
		StopExit, StopGraceSeconds, PollSeconds  int
		PollMillis                               int
		Env                                      []envVar
		Inputs, Outputs                          []job.Sync
		IMDS, CheckpointS3, CheckpointDir        string
		CheckpointEvery, CheckpointLook, Margin  int
		InterruptedExit                          int
	}{
		ID: j.ID, Attempt: j.Attempt, Command: s.Command, Setup: s.Setup,
		InstanceID: instanceID, Region: o.Region,
		Workdir: s.Workdir, StateDir: o.StateDir,
		DeadmanMinutes:   int((s.MaxRuntime.D() + runner.DeadmanGrace + time.Minute - 1) / time.Minute),
		KeepWarmMinutes:  max(1, int((keepWarm+time.Minute-1)/time.Minute)) + 1,
		WaitPolls:        int((s.MaxRuntime.D() + runner.DeadmanGrace) / (5 * time.Second)),
		HeartbeatSeconds: 60, SecretExit: 96,
		StopExit: 143, StopGraceSeconds: 30, PollSeconds: 1, PollMillis: 1000,
		Inputs: s.Inputs, Outputs: s.Outputs,
		IMDS: "http://169.254.169.254", CheckpointEvery: 1, CheckpointLook: 1, Margin: 1, InterruptedExit: 95,
	}
	if c := s.Checkpoint; c != nil {
		d.CheckpointS3, d.CheckpointDir, d.CheckpointLook, d.Margin = c.S3, c.Path, 5, 20
		if d.CheckpointDir == "" {
			d.CheckpointDir = "checkpoints"
		}
		d.CheckpointEvery = 600
		if c.Every != 0 {
			d.CheckpointEvery = max(1, int((c.Every.D()+time.Second-1)/time.Second))
		}
	}
	if d.StateDir == "" {
		d.StateDir = runner.DefaultStateDir
	}
	if d.Region == "" {
		d.Region = "us-east-1"
	}
	// A job's workdir is its own directory under the state directory, or
	// a relative workdir under that, unless it is absolute.
	if !path.IsAbs(d.Workdir) {
		d.Workdir, d.CreateWorkdir = path.Join(d.StateDir, "work", j.ID, d.Workdir), true
	}
	for name, v := range s.Env {
		d.Env = append(d.Env, envVar{name, v.Value, v.SSM})
	}
	slices.SortFunc(d.Env, func(a, b envVar) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	if err := tmpl.Execute(&b, d); err != nil {
		t.Fatalf("old template for %s: %v", j.ID, err)
	}
	return b.String()
}

// scriptCase is one generated input of the wrapper.
type scriptCase struct {
	job        *job.Job
	instanceID string
	keepWarm   time.Duration
	opts       runner.ScriptOptions
}

func (c scriptCase) String() string {
	return fmt.Sprintf("job %q attempt %d on %q, keep-warm %v, %+v", c.job.ID, c.job.Attempt, c.instanceID, c.keepWarm, c.opts)
}

// Pieces the generated values are made of: shell metacharacters, quotes,
// substitutions, newlines, unicode, fmt verbs, and the renderers' own hole
// and action syntax, which must come out literally.
var (
	valuePieces = []string{
		"", "a", "plain value", "it's", `"double"`, `\`, `\'`, "$(touch /tmp/pwned)", "`id`", "${HOME}", "$0",
		"line 1\nline 2", "\n", "\t", "\r\n", "; rm -rf /", "&&", "|", ">", "<", "*", "~", "#", "!",
		"héllo", "日本語", "✓", "🚀", "%s", "%d%%", "{{id}}", "{{command}}", "{{", "}}", "{{.ID}}", "{{q .ID}}", "{{end}}",
	}
	idChars   = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
	commands  = []string{"python train.py --epochs 10", "echo training; false", "exit 3", "printf '%s\\n' \"$A\"", "for i in 1 2; do\n\techo $i\ndone", ""}
	setups    = []string{"", ". /opt/pytorch/bin/activate", "source activate pytorch", "export A=1\nexport B=2", "conda activate 'my env'"}
	workdirs  = []string{"", ".", "/home/ubuntu/project", "/home/ubuntu/my project", "/data/it's here", "/données/模型", "rel/dir"}
	regions   = []string{"", "us-east-1", "eu-west-1", "ap-southeast-2"}
	stateDirs = []string{"", "/var/lib/nightshift", "/tmp/state dir", "/tmp/it's", "/opt/ns/état"}
	runtimes  = []time.Duration{0, time.Second, 90 * time.Second, time.Hour, 2 * time.Hour, 48 * time.Hour}
	keepWarms = []time.Duration{0, time.Second, 30 * time.Second, time.Minute, 10 * time.Minute, 61 * time.Minute, 30 * time.Minute}
)

// scriptCases generates n deterministic inputs from seed, the first few
// fixed: the plainest job, and one with every part filled in.
func scriptCases(seed uint64, n int) []scriptCase {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(s []string) string { return s[r.IntN(len(s))] }
	value := func() string {
		var b strings.Builder
		for range r.IntN(5) {
			b.WriteString(pick(valuePieces))
		}
		return b.String()
	}
	id := func() string {
		b := make([]byte, 1+r.IntN(64))
		for i := range b {
			b[i] = idChars[r.IntN(len(idChars))]
		}
		if r.IntN(10) == 0 {
			return string(b) + value() // outside the id syntax: quoting must still agree
		}
		return string(b)
	}
	syncs := func() []job.Sync {
		var s []job.Sync
		for range r.IntN(4) {
			s = append(s, job.Sync{S3: "s3://bucket-" + strings.ToLower(id()) + "/" + value(), Path: pick(workdirs) + value()})
		}
		return s
	}
	cases := []scriptCase{
		{job: &job.Job{ID: "j", Attempt: 1, Spec: job.Spec{Command: "python train.py"}}},
		{
			job: &job.Job{ID: "resnet-cifar10", Attempt: 2, Spec: job.Spec{
				Command: "python train.py --epochs 10", Setup: ". /opt/pytorch/bin/activate", Workdir: "/home/ubuntu/my project",
				Env:        job.Env{"B": {Value: "it's"}, "A": {Value: "$(x)"}, "C": {Value: "line 1\nline 2"}, "D": {SSM: "/nightshift/secrets/wandb"}},
				Inputs:     []job.Sync{{S3: "s3://b/data", Path: "data"}},
				Outputs:    []job.Sync{{S3: "s3://b/out", Path: "out"}, {S3: "s3://b/ckpt", Path: "checkpoints"}},
				MaxRuntime: job.Duration(2 * time.Hour),
			}},
			instanceID: "i-0123456789abcdef0", keepWarm: 10 * time.Minute,
			opts: runner.ScriptOptions{StateDir: "/var/lib/nightshift", Region: "eu-west-1"},
		},
	}
	for len(cases) < n {
		env := job.Env{}
		for range r.IntN(6) {
			name := string(rune('A'+r.IntN(26))) + strings.ToUpper(strings.Trim(id(), ".-0123456789"))
			v := job.EnvValue{Value: value()}
			if r.IntN(4) == 0 {
				// A parameter name is quoted like a value: job.Parse
				// checks its syntax, the wrapper must not rely on it.
				v = job.EnvValue{SSM: "/nightshift/secrets/" + id() + value()}
			}
			env[strings.NewReplacer(".", "_", "-", "_").Replace(name)] = v
		}
		maxRuntime := runtimes[r.IntN(len(runtimes))]
		if r.IntN(2) == 0 {
			maxRuntime = time.Duration(r.Int64N(int64(48 * time.Hour)))
		}
		keepWarm := keepWarms[r.IntN(len(keepWarms))]
		if r.IntN(2) == 0 {
			keepWarm = time.Duration(r.Int64N(int64(2 * time.Hour)))
		}
		command := pick(commands)
		if r.IntN(3) == 0 {
			command += value()
		}
		jid := id()
		var ckpt *job.Checkpoint
		if r.IntN(3) == 0 {
			ckpt = &job.Checkpoint{Path: pick(workdirs), S3: "s3://bucket/" + value(), Every: job.Duration(r.Int64N(int64(24 * time.Hour)))}
		}
		cases = append(cases, scriptCase{
			job: &job.Job{ID: jid, Attempt: 1 + r.IntN(12), Spec: job.Spec{
				ID: jid, Command: command, Setup: pick(setups), Workdir: pick(workdirs), Env: env,
				Inputs: syncs(), Outputs: syncs(), MaxRuntime: job.Duration(maxRuntime), Checkpoint: ckpt,
			}},
			instanceID: fmt.Sprintf("i-%017x", r.Uint64()>>4),
			keepWarm:   keepWarm,
			opts:       runner.ScriptOptions{StateDir: pick(stateDirs), Region: pick(regions)},
		})
	}
	return cases
}

// scriptSeed makes the generated cases the same on every run.
const scriptSeed = 20261125

// TestScriptSameAsTemplate: the plain renderer writes, byte for byte, what
// the text/template wrapper wrote, over generated jobs.
func TestScriptSameAsTemplate(t *testing.T) {
	tmpl := oldWrapper(t)
	cases := scriptCases(scriptSeed, 1000)
	for i, c := range cases {
		got, err := runner.Script(c.job, c.instanceID, c.keepWarm, c.opts)
		if err != nil {
			t.Fatalf("Script(case %d: %v) = %v", i, c, err)
		}
		want := oldScript(t, tmpl, c.job, c.instanceID, c.keepWarm, c.opts)
		if got != want {
			at := 0
			for at < min(len(got), len(want)) && got[at] == want[at] {
				at++
			}
			t.Fatalf("Script(case %d: %v) differs at byte %d of %d: got %q; want %q",
				i, c, at, len(want), got[max(0, at-40):min(len(got), at+40)], want[max(0, at-40):min(len(want), at+40)])
		}
	}
	// The generator must reach the parts that vary: guard against a
	// generator that quietly stopped producing them.
	var env, secrets, inputs, outputs, noWorkdir, noState, checkpoints int
	for _, c := range cases {
		s := c.job.Spec
		env += min(1, len(s.Env))
		for _, v := range s.Env {
			if v.Secret() {
				secrets++
				break
			}
		}
		inputs += min(1, len(s.Inputs))
		outputs += min(1, len(s.Outputs))
		if s.Workdir == "" {
			noWorkdir++
		}
		if c.opts.StateDir == "" {
			noState++
		}
		if s.Checkpoint != nil {
			checkpoints++
		}
	}
	for name, n := range map[string]int{"env": env, "secrets": secrets, "inputs": inputs, "outputs": outputs, "no workdir": noWorkdir, "no state dir": noState, "checkpoint": checkpoints} {
		if n < len(cases)/10 {
			t.Errorf("cases with %s = %d of %d; want at least a tenth", name, n, len(cases))
		}
	}
}
