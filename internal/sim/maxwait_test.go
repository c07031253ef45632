package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestMaxWait: with no capacity for the pool's type, a job with max_wait
// fails once it has waited that long, saying what it waited for; one
// without waits on, and runs once capacity comes back.
func TestMaxWait(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Cloud.Capacity = map[string]int{"g4dn.xlarge": 0}
	w.Send(`{"id": "bounded", "command": "train", "max_wait": "30m", "notify": "failure"}`)
	w.Send(`{"id": "patient", "command": "train"}`)
	w.Run(ctx, 29*time.Minute)
	if j := jobOf(t, w, "bounded"); j.State != job.Queued {
		t.Fatalf("bounded after 29 min: %s (%s); want QUEUED, within its max_wait", j.State, j.Reason)
	}
	w.Run(ctx, 2*time.Minute)
	j := jobOf(t, w, "bounded")
	if j.State != job.Failed || !strings.HasPrefix(j.Reason, "waited 30m0s in the queue, its max_wait of 30m0s: ") || !strings.Contains(j.Reason, "InsufficientInstanceCapacity") {
		t.Fatalf("bounded after 31 min: %s (%s); want FAILED, the wait and the capacity error in its reason", j.State, j.Reason)
	}
	notified := false
	for _, n := range w.Cloud.Notifications() {
		notified = notified || strings.Contains(n.Message, "bounded")
	}
	if !notified {
		t.Error("no notice of bounded's failure; it asked for one (notify: failure)")
	}
	w.Cloud.Capacity = map[string]int{}
	if !w.RunUntil(ctx, 30*time.Minute, stateIs(w, "patient", job.Succeeded)) {
		j := jobOf(t, w, "patient")
		t.Errorf("patient: %s (%s); want SUCCEEDED once capacity is back: it has no max_wait", j.State, j.Reason)
	}
}
