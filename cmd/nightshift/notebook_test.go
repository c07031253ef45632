package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// fakeSSM answers StartSession as Session Manager does, and records the
// requests.
type fakeSSM struct {
	started    []*ssm.StartSessionInput
	terminated []string
}

func (f *fakeSSM) StartSession(_ context.Context, in *ssm.StartSessionInput, _ ...func(*ssm.Options)) (*ssm.StartSessionOutput, error) {
	f.started = append(f.started, in)
	id := fmt.Sprintf("alice-0a1b2c3d4e5f6a7b%d", len(f.started))
	return &ssm.StartSessionOutput{
		SessionId:  aws.String(id),
		TokenValue: aws.String("AAEAAXy0token"),
		StreamUrl:  aws.String("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/" + id + "?role=publish_subscribe&cell-number=AAEAA"),
	}, nil
}

func (f *fakeSSM) TerminateSession(_ context.Context, in *ssm.TerminateSessionInput, _ ...func(*ssm.Options)) (*ssm.TerminateSessionOutput, error) {
	f.terminated = append(f.terminated, aws.ToString(in.SessionId))
	return &ssm.TerminateSessionOutput{SessionId: in.SessionId}, nil
}

// fakePlugin is session-manager-plugin on PATH (path "" for none): it
// records each command line it is run with.
type fakePlugin struct {
	path, version string
	runs          []pluginCommand
	fail          error
}

func (p *fakePlugin) lookPath(file string) (string, error) {
	if p.path == "" || file != pluginName {
		return "", &exec.Error{Name: file, Err: exec.ErrNotFound}
	}
	return p.path, nil
}

func (p *fakePlugin) versionOf(context.Context, string) (string, error) { return p.version + "\n", nil }

func (p *fakePlugin) run(_ context.Context, pc pluginCommand) error {
	p.runs = append(p.runs, pc)
	return p.fail
}

// notebookCase is a golden test of notebook: the world as given, then the
// command line; the golden file holds what it printed and sent, the
// StartSession requests and the plugin's command lines.
type notebookCase struct {
	name  string
	args  []string
	env   map[string]string
	setup func(t *testing.T, w *world)
}

// TestNotebookGolden: a new session followed until it answers and then
// forwarded; a live session reused; --no-connect; the local port taken;
// --stop, with and without a session; the plugin missing; a message the
// command line refuses, and one the intake rejects.
func TestNotebookGolden(t *testing.T) {
	ctx := context.Background()
	carol := func(t *testing.T, w *world, final func(j *job.Job)) {
		id := notebookID("carol", t0)
		var j *job.Job
		w.onSleep = func(n int) {
			switch n {
			case 1: // the intake records it and starts the notebook's instance
				j = job.New(spec(t, `{"id": "`+id+`", "notebook": {"name": "carol", "idle": "10m"}, "instance": {"types": ["g5.xlarge"]}}`), job.NotebookPool("carol"), w.now)
				j.InstanceID, j.InstanceType, j.Market = "i-0c0c0c0c0c0c0c0c0", "g5.xlarge", "on-demand"
				move(t, j, job.Placed, "launching g5.xlarge (on-demand)", w.now)
				if err := w.jobs.Create(ctx, j); err != nil {
					t.Fatal(err)
				}
			case 3:
				j.Reason = "waiting for the SSM agent on i-0c0c0c0c0c0c0c0c0"
				if err := w.jobs.Update(ctx, j, job.Placed); err != nil {
					t.Fatal(err)
				}
			case 5: // dispatched: the wrapper installs JupyterLab
				j.CommandID, j.LogStream = "6f1d2c3b-0000-4000-8000-00000000e001", stream("6f1d2c3b-0000-4000-8000-00000000e001", j.InstanceID)
				move(t, j, job.Running, "running on "+j.InstanceID, w.now)
				if err := w.jobs.Update(ctx, j, job.Placed); err != nil {
					t.Fatal(err)
				}
				w.logs.streams[j.LogStream] = events(w.now, "nightshift: JupyterLab not found in the environment: installing it (pip install jupyterlab)")
			case 7:
				final(j)
			}
		}
	}
	tests := []notebookCase{
		{name: "notebook-new", args: []string{"notebook", "--type", "g5.xlarge", "--idle", "10m"}, env: map[string]string{"USER": "carol"}, setup: func(t *testing.T, w *world) {
			carol(t, w, func(j *job.Job) {
				w.logs.streams[j.LogStream] = append(w.logs.streams[j.LogStream], events(w.now, job.NotebookReady+"http://127.0.0.1:8888/lab?token=9d8e7f6a5b4c3d2e")...)
			})
		}},
		{name: "notebook-reuse", args: []string{"notebook", "alice"}},
		{name: "notebook-reuse-flags", args: []string{"notebook", "alice", "--type", "g5.2xlarge", "--no-connect"}},
		{name: "notebook-no-connect", args: []string{"notebook", "alice", "--no-connect"}},
		{name: "notebook-no-connect-json", args: []string{"notebook", "alice", "--no-connect", "--json"}},
		{name: "notebook-port-taken", args: []string{"notebook", "alice"}, setup: func(_ *testing.T, w *world) { w.taken[8888], w.taken[8889] = true, true }},
		{name: "notebook-port-asked-taken", args: []string{"notebook", "alice", "--port", "9999"}, setup: func(_ *testing.T, w *world) { w.taken[9999] = true }},
		{name: "notebook-no-plugin", args: []string{"notebook", "alice"}, setup: func(_ *testing.T, w *world) { w.plugin.path = "" }},
		{name: "notebook-stop", args: []string{"notebook", "alice", "--stop"}},
		{name: "notebook-stop-none", args: []string{"notebook", "bob", "--stop"}},
		{name: "notebook-refused", args: []string{"notebook", "carol", "--idle", "10s"}},
		{name: "notebook-bad-user", args: []string{"notebook"}, env: map[string]string{"USER": "Carol Smith"}},
		{name: "notebook-rejected", args: []string{"notebook", "carol"}, setup: func(t *testing.T, w *world) {
			w.onSleep = func(n int) {
				if n == 1 { // the deployment lost the pool the message named
					_, err := job.Parse([]byte(`{"notebook": "carol", "instance": {"pool": "gone"}}`), testSettings(t).Scheduler().Defaults())
					if err := w.jobs.Create(ctx, job.NewRejected(notebookID("carol", t0), err, w.now)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}},
		{name: "notebook-failed", args: []string{"notebook", "--no-connect"}, env: map[string]string{"USER": "carol"}, setup: func(t *testing.T, w *world) {
			carol(t, w, func(j *job.Job) {
				w.logs.streams[stderrStream(j.LogStream)] = events(w.now, "ERROR: No matching distribution found for jupyterlab")
				exit := 1
				j.ExitCode, j.EndedAt = &exit, w.now
				move(t, j, job.Failed, "exit code 1", w.now)
				if err := w.jobs.Update(ctx, j, job.Running); err != nil {
					t.Fatal(err)
				}
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.setup != nil {
				tt.setup(t, w)
			}
			code, stdout, stderr := w.run(t, tt.args, "", false, tt.env)
			var b strings.Builder
			fmt.Fprintf(&b, "$ nightshift %s\n-- exit %d --\n-- stdout --\n%s-- stderr --\n%s", shellJoin(tt.args), code, stdout, stderr)
			if len(w.sqs.sent) > 0 {
				b.WriteString("-- sent --\n")
				for _, m := range w.sqs.sent {
					b.WriteString(m + "\n")
				}
			}
			for _, in := range w.ssm.started {
				raw, err := json.Marshal(map[string]any{"Target": in.Target, "DocumentName": in.DocumentName, "Parameters": in.Parameters})
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "-- ssm:StartSession --\n%s\n", raw)
			}
			for _, pc := range w.plugin.runs {
				fmt.Fprintf(&b, "-- %s --\n", pc.Path)
				for _, e := range pc.Env {
					fmt.Fprintf(&b, "env %s\n", e)
				}
				for i, a := range pc.Args {
					fmt.Fprintf(&b, "arg %d %s\n", i+1, a)
				}
			}
			golden(t, tt.name, b.String())
		})
	}
}

// TestPluginCommandLine: the plugin's command line is the AWS CLI's, in its
// order: the session (in the environment for a plugin that reads it there,
// else on the command line), the Region, StartSession, the profile, the
// request, the endpoint.
func TestPluginCommandLine(t *testing.T) {
	out := &ssm.StartSessionOutput{SessionId: aws.String("alice-0123"), TokenValue: aws.String("TOKEN"), StreamUrl: aws.String("wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/alice-0123")}
	in := &ssm.StartSessionInput{Target: aws.String("i-0a1b2c3d4e5f6000a"), DocumentName: aws.String(portForwardingDocument), Parameters: map[string][]string{"portNumber": {"8888"}, "localPortNumber": {"8890"}}}
	const resp = `{"SessionId":"alice-0123","TokenValue":"TOKEN","StreamUrl":"wss://ssmmessages.eu-west-1.amazonaws.com/v1/data-channel/alice-0123"}`
	const req = `{"Target":"i-0a1b2c3d4e5f6000a","DocumentName":"AWS-StartPortForwardingSession","Parameters":{"localPortNumber":["8890"],"portNumber":["8888"]}}`
	for _, tt := range []struct {
		version, profile string
		wantEnv          bool
	}{
		{"1.2.707.0\n", "", true},
		{"1.2.497.0", "work", false}, // the last that wants it on the command line
		{"1.2.498", "", true},
		{"1.3", "", true},
		{"1.2.463.0", "", false},
		{"", "", false},                // --version failed: the command line, as the CLI
		{"unknown version", "", false}, // not a version: likewise
	} {
		pc, err := pluginCommandLine("/usr/bin/session-manager-plugin", tt.version, out, "eu-west-1", tt.profile, in, "https://ssm.eu-west-1.amazonaws.com")
		if err != nil {
			t.Fatal(err)
		}
		first := resp
		var env []string
		if tt.wantEnv {
			first, env = pluginResponseEnv, []string{pluginResponseEnv + "=" + resp}
		}
		want := []string{first, "eu-west-1", "StartSession", tt.profile, req, "https://ssm.eu-west-1.amazonaws.com"}
		if pc.Path != "/usr/bin/session-manager-plugin" || strings.Join(pc.Args, "\x00") != strings.Join(want, "\x00") || strings.Join(pc.Env, "\x00") != strings.Join(env, "\x00") {
			t.Errorf("version %q profile %q:\n got %q env %q\nwant %q env %q", tt.version, tt.profile, pc.Args, pc.Env, want, env)
		}
		// The plugin reads the request's Target (session.go in
		// aws/session-manager-plugin) and the response's three fields.
		var r struct{ Target string }
		if err := json.Unmarshal([]byte(pc.Args[4]), &r); err != nil || r.Target != "i-0a1b2c3d4e5f6000a" {
			t.Errorf("request %q: Target %q, %v", pc.Args[4], r.Target, err)
		}
	}
	if _, err := pluginCommandLine("p", "1.2.707.0", &ssm.StartSessionOutput{SessionId: aws.String("x")}, "eu-west-1", "", in, "e"); err == nil {
		t.Error("a StartSession answer without token and stream: no error")
	}
}

// TestNotebookPluginFails: a plugin that cannot start gets its session
// terminated, as the AWS CLI does; one that ran and failed does not.
func TestNotebookPluginFails(t *testing.T) {
	for _, tt := range []struct {
		err           error
		wantTerminate bool
	}{
		{&pluginStartError{errors.New("permission denied")}, true},
		{errors.New("exit status 255"), false},
	} {
		w := newWorld(t)
		w.plugin.fail = tt.err
		code, _, stderr := w.run(t, []string{"notebook", "alice"}, "", false, nil)
		if code != exitFailed || !strings.Contains(stderr, "session-manager-plugin: "+tt.err.Error()) {
			t.Errorf("plugin %v: exit %d, stderr %q", tt.err, code, stderr)
		}
		if got := len(w.ssm.terminated) == 1; got != tt.wantTerminate {
			t.Errorf("plugin %v: terminated %q; want a TerminateSession: %v", tt.err, w.ssm.terminated, tt.wantTerminate)
		}
	}
}

// TestNotebookMessage: the message notebook sends is one job.Parse reads
// as a notebook of that name, with the flags' fields.
func TestNotebookMessage(t *testing.T) {
	raw, err := notebookMessage("alice", notebookID("alice", t0), notebookFlags{pool: "multi", types: []string{"g5.12xlarge"}, maxRuntime: "8h", idle: "10m", idleConnected: "2h"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := job.Parse(raw, testSettings(t).Scheduler().Defaults())
	if err != nil {
		t.Fatalf("Parse(%s): %v", raw, err)
	}
	if s.ID != "nb-alice-20261201T120000Z" || s.Notebook == nil || s.Notebook.Name != "alice" || s.Name != "alice" || s.Notebook.Idle.D().String() != "10m0s" || s.Notebook.IdleConnected.D().String() != "2h0m0s" || s.MaxRuntime.D().String() != "8h0m0s" {
		t.Errorf("Parse(%s) = %+v", raw, s)
	}
	if !job.ValidID(notebookID("abcdefghijklmnopqrstuvwxyz012345", t0)) {
		t.Error("the id of a notebook with a 32-character name is not a valid job id")
	}
}

// TestLiveNotebookSkipsOneBeingStopped: a session whose stop was asked is
// not reused: `nightshift notebook` right after `--stop` starts a new one.
func TestLiveNotebookSkipsOneBeingStopped(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	mem := store.NewMemory(store.Clock(func() time.Time { return now }))
	spec, err := job.Parse([]byte(`{"id": "nb-old", "notebook": "alice"}`), job.Defaults{Pool: "default", Pools: []string{"default"}, MaxRuntime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	j := job.New(spec, job.NotebookPool("alice"), now)
	if err := mem.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	c := &cloud{jobs: mem}
	if got, err := liveNotebook(ctx, c, "alice"); err != nil || got == nil || got.ID != "nb-old" {
		t.Fatalf("liveNotebook(alice) = %v, %v; want nb-old", got, err)
	}
	j.CancelRequestedAt, j.CancelReason = now, "stopped with nightshift notebook --stop"
	if err := mem.Update(ctx, j, job.Queued); err != nil {
		t.Fatal(err)
	}
	if got, err := liveNotebook(ctx, c, "alice"); err != nil || got != nil {
		t.Errorf("liveNotebook(alice) with its session being stopped = %v, %v; want none", got, err)
	}
}
