package runner

import (
	"cmp"
	_ "embed"
	"encoding/base64"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// DeadmanGrace is added to a job's max runtime for the dead-man timer: enough
// for SSM's own execution timeout to fire first and the control plane to
// record it, so the timer only acts when the control plane is gone.
const DeadmanGrace = 10 * time.Minute

// heartbeatInterval is how often the wrapper publishes its progress
// heartbeat: CloudWatch's finest standard resolution, one a minute.
const heartbeatInterval = time.Minute

// SecretExitCode is the exit code of an attempt that could not read a
// secret its job names (an env value {"ssm": NAME}): the parameter does not
// exist, or the instance's role may not read or decrypt it. The command
// did not run. It joins the wrapper's 97 (outputs not saved), 98 (an input
// sync failed) and 99 (no usable workdir).
const SecretExitCode = 96

// StopGrace is how long the wrapper lets a job end itself after a stop
// sent it TERM, before KILL: time for a training loop to write a
// checkpoint, and short enough that a person who cancelled sees the job
// end within a minute.
const StopGrace = 30 * time.Second

// StopExitCode is the exit code the wrapper records for an attempt a stop
// ended, whatever the job's own code: 128 + SIGTERM, as a shell reports a
// command TERM ended. Its outputs were synced and its idle timer armed.
const StopExitCode = 143

// pollInterval is how often the wrapper looks for the end of the job, and
// the guard in the job's process group for the wrapper's: the stop's TERM
// takes effect within this, and after SSM kills the wrapper (a cancel, the
// execution timeout) the job goes within this. A look is one sleep and one
// kill -0.
const pollInterval = time.Second

// DefaultStateDir holds the per-attempt locks, heartbeats and exit codes.
const DefaultStateDir = "/var/lib/nightshift"

// wrapperText is the bash wrapper with holes (see expand): the shell stays
// one script in a file of its own, and every value put in is worked out
// and quoted in Go. It is filled in by plain substitution rather than
// text/template, whose calls of methods by name through reflection make the
// linker keep every exported method of every reachable type: each Lambda
// binary was 3.4 times its present size.
//
//go:embed wrapper.sh
var wrapperText string

// The lines of the wrapper's block holes, one per input, output and
// environment variable (a value, or a secret: the parameter it is read from).
const (
	envLine    = `export {{name}}={{value}}`
	secretLine = `ns_secret {{name}} {{param}}`
	inputLine  = `aws s3 sync --only-show-errors {{s3}} {{path}} || ns_abort 98 "input sync failed: "{{s3}}`
	outputLine = `aws s3 sync --only-show-errors {{path}} {{s3}} || { ns_log "output sync failed: "{{path}}; [ "$ns_code" -eq 0 ] && ns_code=97; }`
)

// workSubdir is where, under the state directory, each job has its own
// directory: <state dir>/work/<job id>, its workdir unless it names an
// absolute one. The state directory is on the root volume, so a job's files
// survive a stop and a later attempt on the instance finds them.
const workSubdir = "work"

// ScriptOptions are the deployment's settings for the wrapper. The
// keep-warm window is not one of them: it belongs to the instance the
// command goes to, and comes with each command.
type ScriptOptions struct {
	StateDir string
	// Region is where the heartbeat metric is published.
	Region string
	// StopGrace, when set, replaces StopGrace: how long a stopped job has
	// to end itself before KILL, in whole seconds.
	StopGrace time.Duration
	// NotebookLook and NotebookPort, when set, replace NotebookLook and
	// job.NotebookPort (tests).
	NotebookLook time.Duration
	NotebookPort int
	// CheckpointLook and InterruptionMargin, when set, replace
	// CheckpointLook and InterruptionMargin (tests).
	CheckpointLook, InterruptionMargin time.Duration
}

// stopGraceSeconds is the stop's grace in whole seconds, at least one.
func (o ScriptOptions) stopGraceSeconds() int {
	g := o.StopGrace
	if g <= 0 {
		g = StopGrace
	}
	return max(1, int((g+time.Second-1)/time.Second))
}

// plan is what one attempt's wrapper is rendered from, every value worked
// out in one place.
type plan struct {
	job                *job.Job
	instanceID, region string
	stateDir           string
	// workdir is where the job runs; createWorkdir: the wrapper creates it
	// (it is under the job's own directory).
	workdir                     string
	createWorkdir               bool
	deadmanMinutes, idleMinutes int
	waitPolls, heartbeatSeconds int
	maxRuntimeSeconds           int
	stopGraceSeconds            int
	env                         []envVar
	// notebookPort and notebookLook: the notebook's port on the instance and
	// how often its wrapper looks at what its person does.
	notebookPort int
	notebookLook time.Duration
	// checkpoint is the job's checkpoint, nil without one.
	checkpoint *checkpointPlan
}

// envVar is one environment variable of the job: its value, or, when param
// is set, the Parameter Store parameter the wrapper reads it from.
type envVar struct{ name, value, param string }

func newPlan(j *job.Job, instanceID string, keepWarm time.Duration, o ScriptOptions) plan {
	s := j.Spec
	p := plan{
		job: j, instanceID: instanceID, region: o.Region,
		stateDir:       o.StateDir,
		deadmanMinutes: minutesCeil(s.MaxRuntime.D() + DeadmanGrace),
		// The instance's idle timer is the backup of the control plane's
		// keep-warm stop: it fires one watchdog period later.
		idleMinutes: max(1, minutesCeil(keepWarm)) + 1,
		// A second copy of the attempt polls every 5 s for the first's exit
		// code, for as long as the first may run.
		waitPolls:         int((s.MaxRuntime.D() + DeadmanGrace) / (5 * time.Second)),
		heartbeatSeconds:  int(heartbeatInterval / time.Second),
		maxRuntimeSeconds: int(s.MaxRuntime.D() / time.Second),
		stopGraceSeconds:  o.stopGraceSeconds(),
		notebookPort:      cmp.Or(o.NotebookPort, job.NotebookPort),
		notebookLook:      max(time.Second, cmp.Or(o.NotebookLook, NotebookLook)),
		checkpoint:        newCheckpointPlan(s.Checkpoint, o),
	}
	if p.stateDir == "" {
		p.stateDir = DefaultStateDir
	}
	if p.region == "" {
		p.region = "us-east-1"
	}
	// The instance runs Linux: its paths are slash-separated, whatever
	// this process runs on.
	p.workdir, p.createWorkdir = s.Workdir, false
	if !path.IsAbs(p.workdir) {
		base := path.Join(p.stateDir, workSubdir, j.ID)
		if s.Notebook != nil {
			base = notebookDir(p.stateDir, s.Notebook.Name)
		}
		p.workdir, p.createWorkdir = path.Join(base, s.Workdir), true
	}
	for name, v := range s.Env {
		p.env = append(p.env, envVar{name: name, value: v.Value, param: v.SSM})
	}
	slices.SortFunc(p.env, func(a, b envVar) int { return strings.Compare(a.name, b.name) })
	return p
}

// render fills in the wrapper. Every value but setup and command (shell by
// design) and the numbers is shell-quoted here, before it goes in.
func (p plan) render() (string, error) {
	j := p.job
	holes := map[string]string{
		"id": Quote(j.ID), "attempt": strconv.Itoa(j.Attempt),
		"state_dir": Quote(p.stateDir), "workdir": Quote(p.workdir), "create_workdir": strconv.FormatBool(p.createWorkdir),
		"instance": Quote(p.instanceID), "region": Quote(p.region),
		"deadman_minutes": strconv.Itoa(p.deadmanMinutes), "idle_minutes": strconv.Itoa(p.idleMinutes),
		"wait_polls": strconv.Itoa(p.waitPolls), "heartbeat_seconds": strconv.Itoa(p.heartbeatSeconds),
		"setup": j.Spec.Setup, "command": j.Spec.Command,
		"secret_exit": strconv.Itoa(SecretExitCode),
		"stop_exit":   strconv.Itoa(StopExitCode), "stop_grace_seconds": strconv.Itoa(p.stopGraceSeconds),
		"poll_seconds": strconv.Itoa(int(pollInterval / time.Second)), "poll_ms": strconv.Itoa(int(pollInterval / time.Millisecond)),
	}
	p.checkpointHoles(holes)
	if j.Spec.Notebook != nil {
		cmd, err := p.notebookCommand()
		if err != nil {
			return "", err
		}
		holes["command"] = cmd
	}
	// Each block line is one of the line templates with its holes.
	type line struct {
		text  string
		holes map[string]string
	}
	var env []line
	for _, e := range p.env {
		if e.param != "" {
			env = append(env, line{secretLine, map[string]string{"name": e.name, "param": Quote(e.param)}})
			continue
		}
		env = append(env, line{envLine, map[string]string{"name": e.name, "value": Quote(e.value)}})
	}
	syncs := func(text string, list []job.Sync) []line {
		var out []line
		for _, s := range list {
			out = append(out, line{text, map[string]string{"s3": Quote(s.S3), "path": Quote(s.Path)}})
		}
		return out
	}
	blocks := map[string][]string{}
	for hole, lines := range map[string][]line{"env": env, "inputs": syncs(inputLine, j.Spec.Inputs), "outputs": syncs(outputLine, j.Spec.Outputs)} {
		blocks[hole] = []string{}
		for _, l := range lines {
			text, err := expand(l.text, l.holes, nil)
			if err != nil {
				return "", err
			}
			blocks[hole] = append(blocks[hole], text)
		}
	}
	return expand(wrapperText, holes, blocks)
}

// expand fills the holes of text, each written {{name}}: a value hole is
// replaced by holes[name] as it is; a block hole stands on a line of its own,
// which is replaced by the lines blocks[name] (none: the line goes). The
// values are never scanned for holes themselves. A hole with no value is an
// error, so a typo in the wrapper cannot render.
func expand(text string, holes map[string]string, blocks map[string][]string) (string, error) {
	var b strings.Builder
	b.Grow(len(text) + len(text)/2)
	for {
		start := strings.Index(text, "{{")
		if start < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		end := strings.Index(text[start:], "}}")
		if end < 0 {
			return "", fmt.Errorf("wrapper: unclosed hole at %q", text[start:min(len(text), start+20)])
		}
		name := text[start+2 : start+end]
		rest := text[start+end+2:]
		b.WriteString(text[:start])
		if v, ok := holes[name]; ok {
			b.WriteString(v)
			text = rest
			continue
		}
		lines, ok := blocks[name]
		if !ok {
			return "", fmt.Errorf("wrapper: no value for hole {{%s}}", name)
		}
		if (start > 0 && text[start-1] != '\n') || !strings.HasPrefix(rest, "\n") {
			return "", fmt.Errorf("wrapper: block {{%s}} must stand on a line of its own", name)
		}
		for _, l := range lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		text = rest[1:]
	}
}

// Script renders the bash wrapper that runs one attempt of j on an
// instance whose keep-warm window is keepWarm.
func Script(j *job.Job, instanceID string, keepWarm time.Duration, o ScriptOptions) (string, error) {
	s, err := newPlan(j, instanceID, keepWarm, o).render()
	if err != nil {
		return "", fmt.Errorf("render wrapper for %s: %w", j.ID, err)
	}
	return s, nil
}

// Launcher is the /bin/sh command that SSM's AWS-RunShellScript runs for
// one attempt of j: it decodes the wrapper and runs it with bash (on Ubuntu
// /bin/sh is dash, which lacks what the wrapper uses). Base64 keeps every
// byte of the user's command intact through SSM's parameter handling and the
// shell. Its first line is the wrapper's Header, a shell comment. keepWarm
// is the instance's keep-warm window, which the idle timer backs up.
func Launcher(j *job.Job, instanceID string, keepWarm time.Duration, o ScriptOptions) (string, error) {
	return newPlan(j, instanceID, keepWarm, o).launcher()
}

func (p plan) launcher() (string, error) {
	script, err := p.render()
	if err != nil {
		return "", fmt.Errorf("render wrapper for %s: %w", p.job.ID, err)
	}
	header, err := p.header().line()
	if err != nil {
		return "", fmt.Errorf("header for %s: %w", p.job.ID, err)
	}
	enc := base64.StdEncoding.EncodeToString([]byte(script))
	return fmt.Sprintf("%[1]s\nset -e\nmkdir -p %[2]s\nf=$(mktemp %[2]s/wrapper.XXXXXX)\necho %[3]s | base64 -d >\"$f\"\nexec bash \"$f\"\n", header, Quote(p.stateDir), enc), nil
}

// Quote returns s as a single-quoted shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func minutesCeil(d time.Duration) int {
	return int((d + time.Minute - 1) / time.Minute)
}
