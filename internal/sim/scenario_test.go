package sim_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// newWorld returns a world whose logs go to the test log when -v is set.
func newWorld(t *testing.T, cfg sim.Config) *sim.World {
	t.Helper()
	if testing.Verbose() {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return sim.NewWorld(cfg)
}

func jobOf(t *testing.T, w *sim.World, id string) *job.Job {
	t.Helper()
	j, err := w.Store.Job(context.Background(), id)
	if err != nil {
		t.Fatalf("Job(%s): %v", id, err)
	}
	return j
}

func stateIs(w *sim.World, id string, s job.State) func() bool {
	return func() bool {
		j, err := w.Store.Job(context.Background(), id)
		return err == nil && j.State == s
	}
}

// managed returns the instances nightshift launched.
func managed(w *sim.World) []sim.Instance {
	var out []sim.Instance
	for _, i := range w.Cloud.Instances() {
		if i.Tags["nightshift:managed"] == "true" {
			out = append(out, i)
		}
	}
	return out
}

func TestHappyPath(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Send(`{"id": "train-1", "command": "python train.py --epochs 10", "max_runtime": "1h"}`)
	w.Poll(ctx)

	if got := jobOf(t, w, "train-1"); got.State != job.Placed || got.InstanceID == "" {
		t.Fatalf("after intake: state %s instance %q; want PLACED on a launched instance", got.State, got.InstanceID)
	}
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "train-1", job.Succeeded)) {
		t.Fatalf("job state %s (%s); want SUCCEEDED", jobOf(t, w, "train-1").State, jobOf(t, w, "train-1").Reason)
	}
	j := jobOf(t, w, "train-1")
	if j.ExitCode == nil || *j.ExitCode != 0 || j.Cost <= 0 || j.CommandID == "" {
		t.Errorf("job = exit %v cost %v command %q; want exit 0, a cost, a command id", j.ExitCode, j.Cost, j.CommandID)
	}
	insts := managed(w)
	if len(insts) != 1 {
		t.Fatalf("launched %d instances; want 1", len(insts))
	}
	i := insts[0]
	for k, v := range map[string]string{"nightshift:pool": "default", "nightshift:job": "train-1", "nightshift:attempt": "1"} {
		if i.Tags[k] != v {
			t.Errorf("tag %s = %q; want %q", k, i.Tags[k], v)
		}
	}
	if i.Image != "ami-0dlami000000001" {
		t.Errorf("image = %s; want the DLAMI parameter's value", i.Image)
	}
	// Keep-warm: the instance stays up for the window, then is stopped.
	w.Run(ctx, scheduler.DefaultKeepWarm-2*time.Minute)
	if got := w.Cloud.Instances()[0].State; got != "running" {
		t.Errorf("within keep-warm, instance is %s; want running", got)
	}
	w.Run(ctx, 4*time.Minute)
	if got := w.Cloud.Instances()[0]; got.State != "stopped" && got.State != "stopping" {
		t.Errorf("after keep-warm, instance is %s; want stopped", got.State)
	}
	if n := len(w.Cloud.Invocations()); n != 1 {
		t.Errorf("%d commands sent; want 1", n)
	}
	if len(w.Errors) > 0 {
		t.Errorf("handler errors: %v", w.Errors)
	}
}

var _ = errors.Is
var _ = strings.Contains
var _ sync.Mutex
var _ = catalog.QuotaG
