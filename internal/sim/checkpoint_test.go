package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// The training of the checkpoint scenarios: three hours of work,
// checkpointed every ten minutes.
const (
	trainWork  = 3 * time.Hour
	trainEvery = 10 * time.Minute
	ckptURL    = "s3://ckpt-bucket/resnet"
)

// spotTraining is the message of a spot job of trainWork; with a
// checkpoint when ckpt says so.
func spotTraining(id string, retries int, ckpt bool) string {
	m := fmt.Sprintf(`{"id": %q, "command": "python train.py --resume", "instance": {"market": "spot"}, "max_runtime": "4h", "retries": %d`, id, retries)
	if ckpt {
		m += fmt.Sprintf(`, "checkpoint": {"s3": %q, "every": %q}`, ckptURL, trainEvery)
	}
	return m + "}"
}

// interruptions returns three random-ish running times, each past one
// checkpoint period and all of them well short of the whole training, with
// the seed that drew them.
func interruptions(t *testing.T) []time.Duration {
	const seed = 20261202
	r := rand.New(rand.NewPCG(seed, 1))
	var out []time.Duration
	for range 3 {
		out = append(out, trainEvery+time.Duration(r.Int64N(int64(40*time.Minute))).Round(time.Second))
	}
	t.Logf("interruptions after %v of each attempt's running (seed %d)", out, seed)
	return out
}

// interruptThrice runs job id, and interrupts its spot instance after each
// of the running times: the interruption warning (and the notice in the
// instance's metadata) two minutes before the instance goes. Before the
// second, a rebalance recommendation comes five minutes ahead. It returns
// the virtual time from the submission to the job's end.
func interruptThrice(ctx context.Context, t *testing.T, w *sim.World, id string, after []time.Duration) time.Duration {
	t.Helper()
	start := w.Clock.Now()
	w.Poll(ctx)
	seen := map[string]bool{}
	for k, d := range after {
		if !w.RunUntil(ctx, time.Hour, func() bool {
			j := jobOf(t, w, id)
			return j.State == job.Running && !seen[j.InstanceID]
		}) {
			t.Fatalf("attempt %d never ran: %s (%s)", k+1, jobOf(t, w, id).State, jobOf(t, w, id).Reason)
		}
		iid := jobOf(t, w, id).InstanceID
		seen[iid] = true
		if k == 1 {
			w.Run(ctx, d-5*time.Minute)
			w.Cloud.Rebalance(iid)
			w.Run(ctx, 5*time.Minute)
		} else {
			w.Run(ctx, d)
		}
		w.Cloud.Interrupt(iid)
	}
	if !w.RunUntil(ctx, 6*time.Hour, func() bool { return jobOf(t, w, id).State.Terminal() }) {
		t.Fatalf("job %s never ended: %s (%s)", id, jobOf(t, w, id).State, jobOf(t, w, id).Reason)
	}
	return w.Clock.Now().Sub(start)
}

// attemptOverhead bounds what an attempt costs beyond its training, from
// the world's parameters: the interruption's two minutes of notice, the
// scheduler's period to see the instance go, a new instance's boot and its
// agent's registration, a period to send the command, and the wrapper's
// look to see the end.
func attemptOverhead(w *sim.World) time.Duration {
	return 2*time.Minute + scheduler.Period + w.Cloud.Boot + w.Cloud.Agent + scheduler.Period + runner.CheckpointLook
}

// TestSpotWithoutStartingOver: a three-hour training on spot, checkpointed
// every ten minutes, its instance interrupted three times at random-ish
// points: it SUCCEEDS on its fourth attempt with no retries at all (its
// interruptions made progress and used none), each attempt restoring what
// the one before saved, and its training adds up to one run plus at most
// three periods' work lost (in fact about none: the notice's sync saves it).
// Without a checkpoint the same history starts over three times.
func TestSpotWithoutStartingOver(t *testing.T) {
	ctx := context.Background()
	after := interruptions(t)
	work := func(sim.Run) sim.Outcome { return sim.Outcome{Duration: trainWork} }

	w := newWorld(t, sim.Config{})
	w.Exec = work
	w.Send(spotTraining("resnet", 0, true))
	elapsed := interruptThrice(ctx, t, w, "resnet", after)

	j := jobOf(t, w, "resnet")
	if j.State != job.Succeeded || j.Attempt != 4 || j.Resumes != 3 || j.RetriesUsed() != 0 {
		t.Fatalf("job %s attempt %d resumes %d retries used %d (%s); want SUCCEEDED on attempt 4, three resumes, no retry",
			j.State, j.Attempt, j.Resumes, j.RetriesUsed(), j.Reason)
	}
	tr := w.Training("resnet")
	if len(tr) != 4 {
		t.Fatalf("training of %d attempts: %+v; want 4", len(tr), tr)
	}
	var trained, lost time.Duration
	for k, a := range tr {
		trained += a.Trained
		lost += a.Restored + a.Trained - a.Saved
		if a.Attempt != k+1 {
			t.Errorf("training %d is attempt %d", k, a.Attempt)
		}
		if k > 0 && a.Restored != tr[k-1].Saved {
			t.Errorf("attempt %d restored %v; want the %v attempt %d saved", a.Attempt, a.Restored, tr[k-1].Saved, k)
		}
		if k < 3 && (a.Syncs["notice"] != 1 || a.Syncs["every"] < int(after[k]/trainEvery)-1) {
			t.Errorf("attempt %d syncs %v; want one on the notice and one every %v", a.Attempt, a.Syncs, trainEvery)
		}
		t.Logf("attempt %d: restored %v, trained %v, saved %v, syncs %v", a.Attempt, a.Restored, a.Trained, a.Saved, a.Syncs)
	}
	if tr[1].Syncs["rebalance"] != 1 || tr[1].Syncs["asked"] != 1 {
		t.Errorf("attempt 2 syncs %v; want one for the recommendation in its metadata and one asked by the dispatch function", tr[1].Syncs)
	}
	if last := tr[3]; last.Saved != trainWork || last.Syncs["end"] != 1 {
		t.Errorf("last attempt saved %v, syncs %v; want the whole %v, synced at the end", last.Saved, last.Syncs, trainWork)
	}
	if got := w.Cloud.Objects(ckptURL)[ckptURL]; got != trainWork.String() {
		t.Errorf("checkpoint in S3 = %q; want %v", got, trainWork)
	}
	if bound := trainWork + 3*trainEvery; trained < trainWork || trained > bound {
		t.Errorf("trained %v in all; want one run's %v plus at most 3 × %v lost (%v)", trained, trainWork, trainEvery, bound)
	}
	if lost > 3*runner.CheckpointLook {
		t.Errorf("work lost %v; want at most a look per interruption: each notice's sync saves it", lost)
	}
	if bound := trainWork + 3*trainEvery + 4*attemptOverhead(w); elapsed > bound {
		t.Errorf("the job took %v; want at most %v (one run, three periods lost, four attempts' overheads)", elapsed, bound)
	}
	checkSafety(t, w)

	// The same history without a checkpoint: every attempt starts over,
	// and only retries carry it through.
	w2 := newWorld(t, sim.Config{})
	w2.Exec = work
	w2.Send(spotTraining("resnet", 3, false))
	elapsed2 := interruptThrice(ctx, t, w2, "resnet", after)
	j2 := jobOf(t, w2, "resnet")
	if j2.State != job.Succeeded || j2.Attempt != 4 || j2.Resumes != 0 || j2.RetriesUsed() != 3 {
		t.Fatalf("without a checkpoint: %s attempt %d resumes %d retries used %d (%s); want SUCCEEDED on attempt 4, all three retries used",
			j2.State, j2.Attempt, j2.Resumes, j2.RetriesUsed(), j2.Reason)
	}
	if tr := w2.Training("resnet"); len(tr) != 0 {
		t.Errorf("training records without a checkpoint: %+v", tr)
	}
	var redone time.Duration
	for _, d := range after {
		redone += d
	}
	if diff := elapsed2 - elapsed; diff < redone-3*trainEvery {
		t.Errorf("without a checkpoint the job took %v, with one %v; want at least the %v of work started over (less 3 × %v)", elapsed2, elapsed, redone, trainEvery)
	}
	t.Logf("with a checkpoint: %v from submission to end, %v trained; without: %v (%v of training started over)", elapsed, trained, elapsed2, redone)

	// And with the default retries (2), the third interruption fails it.
	w3 := newWorld(t, sim.Config{})
	w3.Exec = work
	w3.Send(spotTraining("resnet", 2, false))
	interruptThrice(ctx, t, w3, "resnet", after)
	if j3 := jobOf(t, w3, "resnet"); j3.State != job.Failed || !strings.Contains(j3.Reason, "retries spent (2)") {
		t.Errorf("without a checkpoint, 2 retries: %s (%s); want FAILED, retries spent", j3.State, j3.Reason)
	}
}

// TestCheckpointInstanceLostWithoutNotice: an instance that goes without a
// notice (terminated underneath) loses the work since the last periodic
// sync, less than one every; the next attempt resumes from it.
func TestCheckpointInstanceLostWithoutNotice(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Exec = func(sim.Run) sim.Outcome { return sim.Outcome{Duration: time.Hour} }
	w.Send(spotTraining("lost", 0, true))
	w.Poll(ctx)
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "lost", job.Running)) {
		t.Fatal("job never ran")
	}
	w.Run(ctx, 25*time.Minute)
	if err := w.Cloud.ByHand(jobOf(t, w, "lost").InstanceID, "terminate"); err != nil {
		t.Fatal(err)
	}
	if !w.RunUntil(ctx, 3*time.Hour, stateIs(w, "lost", job.Succeeded)) {
		t.Fatalf("job %s (%s)", jobOf(t, w, "lost").State, jobOf(t, w, "lost").Reason)
	}
	tr := w.Training("lost")
	if len(tr) != 2 {
		t.Fatalf("training %+v; want two attempts", tr)
	}
	lostWork := tr[0].Restored + tr[0].Trained - tr[0].Saved
	if tr[1].Restored != tr[0].Saved || lostWork <= 0 || lostWork > trainEvery {
		t.Errorf("first attempt trained %v, saved %v; second restored %v: want the work since the last periodic sync lost, at most %v",
			tr[0].Trained, tr[0].Saved, tr[1].Restored, trainEvery)
	}
	if j := jobOf(t, w, "lost"); j.Resumes != 1 || j.Attempt != 2 {
		t.Errorf("attempt %d resumes %d; want attempt 2, resumed", j.Attempt, j.Resumes)
	}
	checkSafety(t, w)
}

// TestRebalanceSyncsCheckpoint: a rebalance recommendation reaches the
// dispatch function, which asks the running job's wrapper for a sync (a
// command of its own); the wrapper syncs at once, for it and for the
// recommendation in its metadata; the job goes on and succeeds on the
// same instance.
func TestRebalanceSyncsCheckpoint(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Exec = func(sim.Run) sim.Outcome { return sim.Outcome{Duration: time.Hour} }
	w.Send(spotTraining("rebal", 0, true))
	w.Poll(ctx)
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "rebal", job.Running)) {
		t.Fatal("job never ran")
	}
	iid := jobOf(t, w, "rebal").InstanceID
	w.Run(ctx, 13*time.Minute)
	w.Cloud.Rebalance(iid)
	w.Run(ctx, 30*time.Second)
	tr := w.Training("rebal")
	if len(tr) != 1 || tr[0].Syncs["asked"] != 1 || tr[0].Syncs["rebalance"] != 1 || tr[0].Saved < 13*time.Minute {
		t.Fatalf("training %+v; want a sync asked and one for the recommendation, 13 minutes saved", tr)
	}
	if j := jobOf(t, w, "rebal"); !strings.Contains(j.Reason, "rebalance recommendation") || j.State != job.Running {
		t.Errorf("job %s (%s); want running, the recommendation in its reason", j.State, j.Reason)
	}
	syncs := 0
	for _, inv := range w.Invocations() {
		if inv.Sync && inv.JobID == "rebal" && inv.InstanceID == iid {
			syncs++
			if inv.Status != "Success" || !strings.Contains(inv.Output, "checkpoint sync asked") {
				t.Errorf("sync command %s: %s %q", inv.CommandID, inv.Status, inv.Output)
			}
		}
	}
	if syncs != 1 {
		t.Errorf("%d sync commands; want 1", syncs)
	}
	if !w.RunUntil(ctx, 2*time.Hour, stateIs(w, "rebal", job.Succeeded)) {
		t.Fatalf("job %s (%s)", jobOf(t, w, "rebal").State, jobOf(t, w, "rebal").Reason)
	}
	if j := jobOf(t, w, "rebal"); j.Attempt != 1 || j.InstanceID != iid {
		t.Errorf("attempt %d on %s; want the first, on %s: a recommendation is no interruption", j.Attempt, j.InstanceID, iid)
	}
	checkSafety(t, w)
}
