package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// defaultJob is the sample job: a short "training" that prints its epochs.
const defaultJob = `{"id": "demo-train", "name": "a tiny training run", "command": "for e in 1 2 3; do echo \"epoch $e/3  loss=$(echo \"scale=3; 1/$e\" | bc 2>/dev/null || echo 0.$((4-e)))  env=$VIRTUAL_ENV\"; sleep 0.2; done; echo \"saved checkpoint to $PWD/model.pt\"; touch model.pt", "max_runtime": "30m", "env": {"RUN_NAME": "demo's run"}}`

type runOptions struct {
	Message  string
	KeepWarm time.Duration
	Dir      string
}

// venvActivate stands in for the DLAMI's /opt/pytorch/bin/activate.
const venvActivate = `export VIRTUAL_ENV="$PWD/.venv"; echo "activated $VIRTUAL_ENV"` + "\n"

func run(ctx context.Context, o runOptions, out io.Writer) error {
	msg := o.Message
	if strings.HasPrefix(msg, "@") {
		b, err := os.ReadFile(msg[1:])
		if err != nil {
			return err
		}
		msg = string(b)
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "nightshift-run-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	// As deployed by default: keep-warm "auto", each instance's measured
	// start-to-ready time; -keep-warm sets a fixed window instead.
	pool := scheduler.Pool{Types: []string{"g4dn.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(o.KeepWarm), KeepWarmAuto: o.KeepWarm == 0}
	tl := &timeline{out: out}
	w := sim.NewWorld(sim.Config{
		Pools: map[string]scheduler.Pool{"default": pool}, KeepWarm: o.KeepWarm,
		StateDir: ".nightshift", Log: slog.New(tl), Setup: ". .venv/bin/activate",
	})
	tl.clock, tl.start, tl.cloud = w.Clock, w.Clock.Now(), w.Cloud
	w.Exec = &bashExecutor{dir: dir}

	fmt.Fprintf(out, "nightshift local run — simulated AWS, virtual clock; instances' disks under %s\n\n", dir)
	id := w.Send(msg)
	tl.say("queued", "message %s sent to the jobs queue", id)
	delivered := w.Poll(ctx)
	_ = delivered
	jobID := jobIDOf(ctx, w, id)
	if jobID == "" {
		return fmt.Errorf("the message was not recorded")
	}
	j, _ := w.Store.Job(ctx, jobID)
	if j.State == job.Rejected {
		tl.say("rejected", "%s", j.Reason)
		return fmt.Errorf("job message rejected")
	}
	done := func() bool {
		j, err := w.Store.Job(ctx, jobID)
		return err == nil && j.State.Terminal()
	}
	if !w.RunUntil(ctx, 4*time.Hour, done) {
		return fmt.Errorf("job %s did not finish within 4 simulated hours", jobID)
	}
	stopped := func() bool {
		for _, i := range w.Cloud.Instances() {
			if i.State != "stopped" && i.State != "terminated" {
				return false
			}
		}
		return true
	}
	w.RunUntil(ctx, max(o.KeepWarm, scheduler.DefaultKeepWarm)+5*time.Minute, stopped)
	j, _ = w.Store.Job(ctx, jobID)
	secs, usd := w.Cloud.Bill()
	fmt.Fprintf(out, "\njob %s: %s", j.ID, j.State)
	if j.ExitCode != nil {
		fmt.Fprintf(out, " (exit code %d)", *j.ExitCode)
	}
	ran := j.EndedAt.Sub(j.StartedAt)
	for _, inv := range w.Invocations() {
		if inv.CommandID == j.CommandID && !inv.Ended.IsZero() {
			ran = inv.Ended.Sub(inv.Started) // SSM's own times are whole seconds
		}
	}
	fmt.Fprintf(out, ", ran %v on %s\n\nthe bill (on-demand prices):\n", ran.Round(time.Millisecond), j.InstanceType)
	types := make([]string, 0, len(secs))
	for t := range secs {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, t := range types {
		ty, _ := catalog.Lookup(t)
		fmt.Fprintf(out, "  %-14s %6.0f instance-seconds × $%.3f/h = $%.4f\n", t, secs[t], ty.Hourly, secs[t]*ty.Hourly/3600)
	}
	fmt.Fprintf(out, "  total $%.4f — and nothing left running.\n", usd)
	if len(w.Errors) > 0 {
		return fmt.Errorf("handler errors: %v", w.Errors)
	}
	if j.State != job.Succeeded {
		return fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Reason)
	}
	return nil
}

// jobIDOf finds the job a message became: its own id, or the message id.
func jobIDOf(ctx context.Context, w *sim.World, msgID string) string {
	for _, st := range []job.State{job.Queued, job.Placed, job.Running} {
		js, _ := w.Store.Live(ctx, st)
		for _, j := range js {
			if j.Source == msgID {
				return j.ID
			}
		}
	}
	if j, err := w.Store.Job(ctx, msgID); err == nil {
		return j.ID
	}
	return ""
}

// bashExecutor runs each wrapper for real: /bin/sh runs SSM's launcher, as
// AWS-RunShellScript does, in a directory that stands for the instance's disk.
type bashExecutor struct {
	dir string
	mu  sync.Mutex
}

func (b *bashExecutor) Run(r sim.Run) sim.Outcome {
	b.mu.Lock()
	defer b.mu.Unlock()
	disk := filepath.Join(b.dir, r.InstanceID)
	bin := filepath.Join(disk, ".fake-bin")
	_ = os.MkdirAll(filepath.Join(disk, ".venv", "bin"), 0o755)
	_ = os.MkdirAll(bin, 0o755)
	_ = os.WriteFile(filepath.Join(disk, ".venv", "bin", "activate"), []byte(venvActivate), 0o644)
	// shutdown stands in for the instance's power-off timer; the simulation
	// arms the same timer from the script.
	_ = os.WriteFile(filepath.Join(bin, "shutdown"), []byte("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\necho \"nightshift: (shutdown $*)\" >&2\n"), 0o755)
	cmd := exec.Command("/bin/sh", "-c", r.Launcher)
	cmd.Dir = disk
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
	start := time.Now()
	outb, err := cmd.CombinedOutput()
	o := sim.Outcome{Output: string(outb), Duration: time.Since(start).Round(time.Millisecond)}
	if ee, ok := err.(*exec.ExitError); ok {
		o.Exit = ee.ExitCode()
	} else if err != nil {
		o.Exit, o.Output = 127, err.Error()
	}
	return o
}
