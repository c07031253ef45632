package runner

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// headerPrefix starts the launcher's first line; the version and the JSON
// follow. The line is a shell comment: /bin/sh skips it.
const headerPrefix = "# nightshift-wrapper/"

// HeaderVersion is the version of the header this package writes and reads.
// A field added keeps it; a field renamed, removed or given a new meaning
// changes it. v2: workdir is the directory the wrapper runs the job in,
// never "." for wherever the command started.
const HeaderVersion = "v2"

// Header is what the first line of a Launcher says, as JSON, about the
// wrapper it runs: the attempt, the timers the wrapper arms and where it
// keeps its state. It is for whoever reads the command without running it
// (a simulated instance); its numbers are the ones the wrapper itself uses,
// worked out in the same place. For example:
//
//	# nightshift-wrapper/v2 {"job":"resnet","attempt":1,"deadman_seconds":7800,"idle_seconds":660,"state_dir":"/var/lib/nightshift","workdir":"/var/lib/nightshift/work/resnet","max_runtime_seconds":7200}
type Header struct {
	// Job and Attempt name the attempt the wrapper runs.
	Job     string `json:"job"`
	Attempt int    `json:"attempt"`
	// DeadmanSeconds is the dead-man timer the wrapper arms before the job
	// starts (shutdown -P, in whole minutes): max runtime plus DeadmanGrace.
	DeadmanSeconds int `json:"deadman_seconds"`
	// IdleSeconds is the timer the wrapper arms in its place when the job
	// has ended, or when an input sync fails: the keep-warm window plus one
	// watchdog period, in whole minutes.
	IdleSeconds int `json:"idle_seconds"`
	// StateDir holds the attempts' directories (see AttemptDir).
	StateDir string `json:"state_dir"`
	// Workdir is where setup, command and syncs run: the job's workdir when
	// it is absolute; otherwise the job's own directory, StateDir/work/<job>,
	// or the job's relative workdir under it, which the wrapper creates. It
	// is relative only when StateDir is, and then from the same place: where
	// the command starts.
	Workdir string `json:"workdir"`
	// MaxRuntimeSeconds is the job's max runtime, SSM's execution timeout.
	MaxRuntimeSeconds int `json:"max_runtime_seconds"`
	// Secrets maps each environment variable the wrapper reads from
	// Parameter Store to the parameter's name (never its value); the
	// wrapper ends the attempt with SecretExitCode when one cannot be
	// read. Absent when the job names none.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Notebook, for a notebook job, says what its wrapper runs in place of
	// a command: JupyterLab, ended when its person has left.
	Notebook *HeaderNotebook `json:"notebook,omitempty"`
	// Checkpoint, for a job with a checkpoint, says where its wrapper
	// keeps it and how often it syncs it; absent without one.
	Checkpoint *HeaderCheckpoint `json:"checkpoint,omitempty"`
}

// Errors ParseHeader returns.
var (
	// ErrNoHeader: the first line is not a nightshift-wrapper header; the
	// command is not a nightshift wrapper, or one from before the header.
	ErrNoHeader = errors.New("no nightshift-wrapper header")
	// ErrHeaderVersion: the header is of a version this package cannot read.
	ErrHeaderVersion = errors.New("unknown nightshift-wrapper header version")
	// ErrBadHeader: the header's JSON is malformed, or a field is missing
	// or out of range.
	ErrBadHeader = errors.New("malformed nightshift-wrapper header")
)

// AttemptDir is the attempt's directory on the instance: the per-attempt
// lock (its creation), and its files started, heartbeat, progress, stdout,
// stderr and, once the job has ended, exit_code.
func (h Header) AttemptDir() string {
	return path.Join(h.StateDir, "jobs", h.Job, strconv.Itoa(h.Attempt))
}

func (p plan) header() Header {
	h := Header{
		Job: p.job.ID, Attempt: p.job.Attempt,
		DeadmanSeconds: 60 * p.deadmanMinutes, IdleSeconds: 60 * p.idleMinutes,
		StateDir: p.stateDir, Workdir: p.workdir, MaxRuntimeSeconds: p.maxRuntimeSeconds,
		Notebook: p.headerNotebook(), Checkpoint: p.headerCheckpoint(),
	}
	for _, e := range p.env {
		if e.param != "" {
			if h.Secrets == nil {
				h.Secrets = map[string]string{}
			}
			h.Secrets[e.name] = e.param
		}
	}
	return h
}

// line is the header as the launcher's first line. JSON escapes newlines,
// so a value cannot end the comment and become shell.
func (h Header) line() (string, error) { return headerLine(headerPrefix, HeaderVersion, h) }

// headerLine writes a header's line: its prefix, version and v as JSON.
func headerLine(prefix, version string, v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "&" and "<" in a workdir stay readable in the console
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return prefix + version + " " + strings.TrimSuffix(b.String(), "\n"), nil
}

// headerBody returns the JSON of the header with prefix on the first line
// of commands: errNone when that line is no such header, ErrHeaderVersion
// when it is another version of it.
func headerBody(commands, prefix, version, what string, errNone error) (string, error) {
	first, _, _ := strings.Cut(commands, "\n")
	rest, ok := strings.CutPrefix(first, prefix)
	if !ok {
		return "", errNone
	}
	v, body, _ := strings.Cut(rest, " ")
	if v != version {
		return "", fmt.Errorf("%w: %s%q (this reader knows %s)", ErrHeaderVersion, what, v, version)
	}
	return body, nil
}

// ParseHeader reads the header on the first line of commands, the text of
// SSM's "commands" parameter that Launcher wrote.
func ParseHeader(commands string) (Header, error) {
	body, err := headerBody(commands, headerPrefix, HeaderVersion, "", ErrNoHeader)
	if err != nil {
		return Header{}, err
	}
	// Pointers tell a missing field from a zero one.
	var raw struct {
		Job               *string `json:"job"`
		Attempt           *int    `json:"attempt"`
		DeadmanSeconds    *int    `json:"deadman_seconds"`
		IdleSeconds       *int    `json:"idle_seconds"`
		StateDir          *string `json:"state_dir"`
		Workdir           *string `json:"workdir"`
		MaxRuntimeSeconds *int    `json:"max_runtime_seconds"`
		// Secrets came later (a field added): it may be absent.
		Secrets map[string]string `json:"secrets"`
		// Notebook came later too, and Checkpoint.
		Notebook   *HeaderNotebook   `json:"notebook"`
		Checkpoint *HeaderCheckpoint `json:"checkpoint"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"job", raw.Job == nil}, {"attempt", raw.Attempt == nil}, {"deadman_seconds", raw.DeadmanSeconds == nil},
		{"idle_seconds", raw.IdleSeconds == nil}, {"state_dir", raw.StateDir == nil}, {"workdir", raw.Workdir == nil},
		{"max_runtime_seconds", raw.MaxRuntimeSeconds == nil},
	} {
		if f.missing {
			return Header{}, fmt.Errorf("%w: no %s", ErrBadHeader, f.name)
		}
	}
	h := Header{
		Job: *raw.Job, Attempt: *raw.Attempt, DeadmanSeconds: *raw.DeadmanSeconds, IdleSeconds: *raw.IdleSeconds,
		StateDir: *raw.StateDir, Workdir: *raw.Workdir, MaxRuntimeSeconds: *raw.MaxRuntimeSeconds,
		Secrets: raw.Secrets, Notebook: raw.Notebook, Checkpoint: raw.Checkpoint,
	}
	if len(h.Secrets) == 0 {
		h.Secrets = nil
	}
	for name, param := range h.Secrets {
		if name == "" || param == "" {
			return Header{}, fmt.Errorf("%w: secret %q from parameter %q", ErrBadHeader, name, param)
		}
	}
	switch {
	case h.Job == "":
		return Header{}, fmt.Errorf("%w: empty job", ErrBadHeader)
	case h.Attempt < 1:
		return Header{}, fmt.Errorf("%w: attempt %d", ErrBadHeader, h.Attempt)
	case h.DeadmanSeconds <= 0 || h.IdleSeconds <= 0 || h.MaxRuntimeSeconds < 0:
		return Header{}, fmt.Errorf("%w: timers %d s dead-man, %d s idle, %d s max runtime", ErrBadHeader, h.DeadmanSeconds, h.IdleSeconds, h.MaxRuntimeSeconds)
	case h.StateDir == "" || h.Workdir == "":
		return Header{}, fmt.Errorf("%w: empty state_dir or workdir", ErrBadHeader)
	case h.Notebook != nil && (h.Notebook.Name == "" || h.Notebook.Port <= 0 || h.Notebook.IdleSeconds <= 0 || h.Notebook.IdleConnectedSeconds <= 0 || h.Notebook.LookSeconds <= 0):
		return Header{}, fmt.Errorf("%w: notebook %+v", ErrBadHeader, *h.Notebook)
	case h.Checkpoint != nil && (h.Checkpoint.Dir == "" || h.Checkpoint.S3 == "" || h.Checkpoint.EverySeconds <= 0 || h.Checkpoint.LookSeconds <= 0 || h.Checkpoint.MarginSeconds <= 0):
		return Header{}, fmt.Errorf("%w: checkpoint %+v", ErrBadHeader, *h.Checkpoint)
	}
	return h, nil
}
