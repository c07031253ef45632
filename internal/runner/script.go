package runner

import (
	"bytes"
	_ "embed"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"text/template"
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

// DefaultStateDir holds the per-attempt locks, heartbeats and exit codes.
const DefaultStateDir = "/var/lib/nightshift"

//go:embed wrapper.sh.tmpl
var wrapperText string

var wrapper = template.Must(template.New("wrapper").Funcs(template.FuncMap{"q": Quote}).Parse(wrapperText))

// ScriptOptions are the deployment's settings for the wrapper.
type ScriptOptions struct {
	StateDir string
	KeepWarm time.Duration
	// Region is where the heartbeat metric is published.
	Region string
}

type scriptData struct {
	ID, Command, Setup, Workdir, StateDir    string
	InstanceID, Region                       string
	Attempt, DeadmanMinutes, KeepWarmMinutes int
	WaitPolls, HeartbeatSeconds              int
	Env                                      []envVar
	Inputs, Outputs                          []job.Sync
}

type envVar struct{ Name, Value string }

// Script renders the bash wrapper that runs one attempt of j on an instance.
func Script(j *job.Job, instanceID string, o ScriptOptions) (string, error) {
	s := j.Spec
	d := scriptData{
		ID: j.ID, Attempt: j.Attempt, Command: s.Command, Setup: s.Setup,
		InstanceID: instanceID, Region: o.Region,
		Workdir: s.Workdir, StateDir: o.StateDir,
		DeadmanMinutes: minutesCeil(s.MaxRuntime.D() + DeadmanGrace),
		// The instance's idle timer is the backup of the control plane's
		// keep-warm stop: it fires one watchdog period later.
		KeepWarmMinutes:  max(1, minutesCeil(o.KeepWarm)) + 1,
		WaitPolls:        int((s.MaxRuntime.D() + DeadmanGrace) / (5 * time.Second)),
		HeartbeatSeconds: int(heartbeatInterval / time.Second),
		Inputs:           s.Inputs, Outputs: s.Outputs,
	}
	if d.StateDir == "" {
		d.StateDir = DefaultStateDir
	}
	if d.Region == "" {
		d.Region = "us-east-1"
	}
	if d.Workdir == "" {
		d.Workdir = "."
	}
	for name, v := range s.Env {
		d.Env = append(d.Env, envVar{name, v})
	}
	slices.SortFunc(d.Env, func(a, b envVar) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	if err := wrapper.Execute(&b, d); err != nil {
		return "", fmt.Errorf("render wrapper for %s: %w", j.ID, err)
	}
	return b.String(), nil
}

// Launcher is the /bin/sh command that SSM's AWS-RunShellScript runs: it
// decodes the wrapper and runs it with bash (on Ubuntu /bin/sh is dash, which
// lacks what the wrapper uses). Base64 keeps every byte of the user's command
// intact through SSM's parameter handling and the shell.
func Launcher(script string, stateDir string) string {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	enc := base64.StdEncoding.EncodeToString([]byte(script))
	return fmt.Sprintf("set -e\nmkdir -p %[1]s\nf=$(mktemp %[1]s/wrapper.XXXXXX)\necho %[2]s | base64 -d >\"$f\"\nexec bash \"$f\"\n", Quote(stateDir), enc)
}

// Quote returns s as a single-quoted shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func minutesCeil(d time.Duration) int {
	return int((d + time.Minute - 1) / time.Minute)
}
