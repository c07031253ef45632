package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

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

// fakeAWS is the AWS CLI on the local run's instances: nothing reaches AWS.
// An s3 sync (the job's inputs and outputs) says it was skipped, and makes
// an input's directory, empty; the heartbeat's put-metric-data does
// nothing.
const fakeAWS = `#!/bin/sh
if [ "$1 $2" = "s3 sync" ]; then
	shift 2
	[ "$1" = --only-show-errors ] && shift
	echo "nightshift: (local run: aws s3 sync $1 $2 skipped; no AWS here)" >&2
	case "$1" in s3://*) mkdir -p "$2" ;; esac
fi
exit 0
`

// venvActivate stands in for the DLAMI's /opt/pytorch/bin/activate, in the
// instance's home, its disk: the job runs in its own directory, not there.
const venvActivate = `export VIRTUAL_ENV="$HOME/.venv"; echo "activated $VIRTUAL_ENV"` + "\n"

// run sends one job message through the real handlers on the simulated
// cloud, follows it to its end and its instance to its stop, and prints the
// timeline and the bill.
func run(ctx context.Context, o runOptions, out io.Writer) error {
	msg, err := message(o.Message)
	if err != nil {
		return err
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
	tl := &timeline{out: out}
	w := localWorld(o.KeepWarm, dir, tl)
	fmt.Fprintf(out, "nightshift local run — simulated AWS, virtual clock; instances' disks under %s\n\n", dir)
	j, err := submit(ctx, w, tl, msg)
	if err != nil {
		return err
	}
	if !w.RunUntil(ctx, 4*time.Hour, func() bool { return ended(ctx, w, j.ID) }) {
		return fmt.Errorf("job %s did not finish within 4 simulated hours", j.ID)
	}
	w.RunUntil(ctx, max(o.KeepWarm, scheduler.DefaultKeepWarm)+5*time.Minute, func() bool { return allStopped(w) })
	j, _ = w.Store.Job(ctx, j.ID)
	report(out, w, j)
	if len(w.Errors) > 0 {
		return fmt.Errorf("handler errors: %v", w.Errors)
	}
	if j.State != job.Succeeded {
		return fmt.Errorf("job %s ended %s: %s", j.ID, j.State, j.Reason)
	}
	return nil
}

// message is the job message: the text itself, or @FILE's content.
func message(m string) (string, error) {
	name, ok := strings.CutPrefix(m, "@")
	if !ok {
		return m, nil
	}
	b, err := os.ReadFile(name)
	return string(b), err
}

// localWorld is the deployment the local run simulates: the default pool
// of g4dn.xlarge, keep-warm "auto" as deployed (each instance's measured
// start-to-ready time) unless keepWarm fixes a window, and the wrapper run
// for real by bash on disks under dir.
func localWorld(keepWarm time.Duration, dir string, tl *timeline) *sim.World {
	pool := scheduler.Pool{Types: []string{"g4dn.xlarge"}, MaxInstances: 2, KeepWarm: job.Duration(keepWarm), KeepWarmAuto: keepWarm == 0}
	w := sim.NewWorld(sim.Config{
		Pools: map[string]scheduler.Pool{"default": pool}, KeepWarm: keepWarm,
		StateDir: ".nightshift", Log: slog.New(tl), Setup: `. "$HOME/.venv/bin/activate"`,
	})
	tl.clock, tl.start, tl.cloud = w.Clock, w.Clock.Now(), w.Cloud
	w.Exec = (&bashExecutor{dir: dir}).Run
	return w
}

// submit sends msg to the jobs queue and returns the job it became; a
// rejected message is an error, its reason on the timeline.
func submit(ctx context.Context, w *sim.World, tl *timeline, msg string) (*job.Job, error) {
	id := w.Send(msg)
	tl.say("queued", "message %s sent to the jobs queue", id)
	w.Poll(ctx)
	jobID := jobIDOf(ctx, w, id)
	if jobID == "" {
		return nil, fmt.Errorf("the message was not recorded")
	}
	j, err := w.Store.Job(ctx, jobID)
	if err != nil {
		return nil, err
	}
	if j.State == job.Rejected {
		tl.say("rejected", "%s", j.Reason)
		return nil, fmt.Errorf("job message rejected")
	}
	return j, nil
}

func ended(ctx context.Context, w *sim.World, id string) bool {
	j, err := w.Store.Job(ctx, id)
	return err == nil && j.State.Terminal()
}

func allStopped(w *sim.World) bool {
	for _, i := range w.Cloud.Instances() {
		if i.State != "stopped" && i.State != "terminated" {
			return false
		}
	}
	return true
}

// report prints how the job ended and the bill.
func report(out io.Writer, w *sim.World, j *job.Job) {
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
	fmt.Fprintf(out, ", ran %v on %s\n\nthe bill (each instance at the price it ran at: on-demand, or the spot price):\n", ran.Round(time.Millisecond), j.InstanceType)
	// The total is the sum of the lines as printed, as on an invoice.
	var total float64
	for _, c := range w.Cloud.Charges() {
		market := "on-demand"
		if c.Spot {
			market = "spot"
		}
		usd := math.Round(c.USD*1e4) / 1e4
		total += usd
		fmt.Fprintf(out, "  %s %-9s %6.0f instance-seconds × $%.4f/h = $%.4f\n", c.Type, market, c.Seconds, c.Hourly, usd)
	}
	fmt.Fprintf(out, "  total $%.4f — and nothing left running.\n", total)
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
	// arms the same timer from the script. aws stands in for the AWS CLI,
	// which would reach the real AWS.
	_ = os.WriteFile(filepath.Join(bin, "shutdown"), []byte("#!/bin/sh\n[ \"$1\" = -c ] && exit 0\necho \"nightshift: (shutdown $*)\" >&2\n"), 0o755)
	_ = os.WriteFile(filepath.Join(bin, "aws"), []byte(fakeAWS), 0o755)
	cmd := exec.Command("/bin/sh", "-c", r.Commands)
	cmd.Dir = disk
	// A checkpointed job's wrapper reads the instance metadata for spot
	// notices: here there is none (and this machine's own, were it an EC2
	// instance, is not the simulated instance's); the port refuses at once.
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "HOME="+disk, "NIGHTSHIFT_IMDS_ENDPOINT=http://127.0.0.1:9")
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
