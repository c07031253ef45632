package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestJobRefusedFailsPoolGoesOn: a job whose own AMI or volume EC2 refuses
// fails at once with AWS's reason and what to change; the pool is not
// blocked, and the next job launches in the same pass.
func TestJobRefusedFailsPoolGoesOn(t *testing.T) {
	tests := []struct {
		name, give, wantReason string
	}{
		{"unknown AMI", `"instance": {"ami": "ami-0doesnotexist01"}`, "InvalidAMIID.NotFound"},
		{"volume below the snapshot", `"instance": {"volume_gb": 20}`, "InvalidBlockDeviceMapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, sim.Config{})
			w.Send(`{"id": "bad", "command": "python train.py", ` + tt.give + `}`)
			w.Send(`{"id": "good", "command": "python train.py"}`)
			w.Poll(ctx)
			bad := jobOf(t, w, "bad")
			if bad.State != job.Failed || !strings.Contains(bad.Reason, tt.wantReason) || !strings.Contains(bad.Reason, "change the job's") {
				t.Errorf("bad job = %s (%s); want FAILED naming %s and what to change", bad.State, bad.Reason, tt.wantReason)
			}
			if good := jobOf(t, w, "good"); good.State != job.Placed || good.InstanceID == "" {
				t.Errorf("good job = %s on %q (%s); want PLACED on an instance in the same pass", good.State, good.InstanceID, good.Reason)
			}
			if !w.RunUntil(ctx, time.Hour, stateIs(w, "good", job.Succeeded)) {
				t.Errorf("good job = %s; want it to succeed", jobOf(t, w, "good").State)
			}
		})
	}
}

// TestDeploymentRefusalPausesLaunches: when EC2 refuses the deployment's
// own settings (the launch template gone), every waiting job says so, a
// person is told once, launches back off instead of retrying every
// minute, and resume by themselves once the stack is fixed.
func TestDeploymentRefusalPausesLaunches(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	delete(w.Cloud.LaunchTemplates, sim.LaunchTemplate)
	w.Cloud.LaunchTemplates["lt-0another"] = true // the account has another: ours is gone
	w.Send(`{"id": "a", "command": "python train.py"}`)
	w.Send(`{"id": "b", "command": "python train.py"}`)
	w.Poll(ctx)
	w.Run(ctx, time.Hour)
	runs := w.Cloud.Calls["RunInstances"]
	if runs > 8 {
		t.Errorf("%d RunInstances calls in an hour of refusals; want a back-off (at most 8), not one a minute", runs)
	}
	for _, id := range []string{"a", "b"} {
		if j := jobOf(t, w, id); j.State != job.Queued || !strings.Contains(j.Reason, "InvalidLaunchTemplateId.NotFound") || !strings.Contains(j.Reason, "redeploy") {
			t.Errorf("job %s = %s (%s); want QUEUED, naming the refusal and what to do", id, j.State, j.Reason)
		}
	}
	notices := 0
	for _, n := range w.Cloud.Notifications() {
		if strings.Contains(n.Message, "paused") {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d notices of the pause; want exactly 1", notices)
	}
	w.Cloud.LaunchTemplates[sim.LaunchTemplate] = true // the stack is fixed
	if !w.RunUntil(ctx, 40*time.Minute, func() bool { return stateIs(w, "a", job.Succeeded)() && stateIs(w, "b", job.Succeeded)() }) {
		t.Errorf("after the fix: a %s (%s), b %s; want both to succeed within the longest pause", jobOf(t, w, "a").State, jobOf(t, w, "a").Reason, jobOf(t, w, "b").State)
	}
}
