package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestNotify: a job's notify says whether its end is published to the
// stack's SNS topic: "end" whatever the end, "failure" unless it
// succeeded, "never" (the default) not at all. The notice says the end
// state, the reason, the exit code and the estimated cost.
func TestNotify(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{Pools: nil})
	w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
		if strings.HasPrefix(r.JobID, "fails") {
			return sim.Outcome{Exit: 3, Duration: time.Minute}
		}
		return sim.Outcome{Duration: time.Minute}
	})
	for _, m := range []string{
		`{"id": "ok-end", "command": "python train.py", "notify": "end"}`,
		`{"id": "fails-end", "command": "python broken.py", "notify": "end"}`,
		`{"id": "ok-failure", "command": "python train.py", "notify": "failure"}`,
		`{"id": "fails-failure", "command": "python broken.py", "notify": "failure"}`,
		`{"id": "fails-never", "command": "python broken.py", "notify": "never"}`,
		`{"id": "fails-default", "command": "python broken.py"}`,
	} {
		w.Send(m)
	}
	w.Poll(ctx)
	ids := []string{"ok-end", "fails-end", "ok-failure", "fails-failure", "fails-never", "fails-default"}
	if !w.RunUntil(ctx, 3*time.Hour, func() bool {
		for _, id := range ids {
			if !jobOf(t, w, id).State.Terminal() {
				return false
			}
		}
		return true
	}) {
		t.Fatal("the jobs did not all end")
	}
	tests := []struct {
		give string   // job id
		want []string // in its one notice; nil: no notice
	}{
		{give: "ok-end", want: []string{"nightshift: job ok-end SUCCEEDED", "exit code 0", "cost $0.0"}},
		{give: "fails-end", want: []string{"nightshift: job fails-end FAILED", "exit code 3", "cost $0.0"}},
		{give: "ok-failure"},
		{give: "fails-failure", want: []string{"nightshift: job fails-failure FAILED", "exit code 3"}},
		{give: "fails-never"},
		{give: "fails-default"},
	}
	for _, tt := range tests {
		got := messages(w, "job "+tt.give+" ")
		if len(got) != min(1, len(tt.want)) {
			t.Errorf("notices of %s = %+v; want %d", tt.give, got, min(1, len(tt.want)))
			continue
		}
		for _, want := range tt.want {
			if text := got[0].Subject + "\n" + got[0].Message; !strings.Contains(text, want) {
				t.Errorf("notice of %s = %q; want it to say %q", tt.give, text, want)
			}
		}
		if len(got) == 1 && got[0].Topic != sim.TopicARN {
			t.Errorf("notice of %s went to %s; want the stack's topic", tt.give, got[0].Topic)
		}
	}
}
