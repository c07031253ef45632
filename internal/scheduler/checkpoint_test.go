package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// TestLostCheckpointedJob: a lost attempt of a checkpointed job that ran at
// least its checkpoint's every resumes without using a retry, up to
// job.MaxResumes; one lost sooner, or past that bound, uses a retry, and a
// job whose retries are spent fails. A job without a checkpoint counts
// every loss, as before.
func TestLostCheckpointedJob(t *testing.T) {
	started := t0.Add(time.Hour)
	zero, one := 0, 1
	ckpt := &job.Checkpoint{S3: "s3://b/p", Path: "checkpoints", Every: job.Duration(10 * time.Minute)}
	tests := []struct {
		name        string
		ckpt        *job.Checkpoint
		retries     *int
		attempt     int
		resumes     int
		ran         time.Duration
		want        job.State
		wantAttempt int
		wantResumes int
		wantReason  string
	}{
		{name: "ran past every: resumes, no retry used", ckpt: ckpt, retries: &zero, attempt: 1, ran: 10 * time.Minute,
			want: job.Queued, wantAttempt: 2, wantResumes: 1, wantReason: "resumes from its checkpoint (resume 1 of 20; retries used 0 of 0)"},
		{name: "the fourth loss, still no retry used", ckpt: ckpt, retries: &zero, attempt: 4, resumes: 3, ran: 2 * time.Hour,
			want: job.Queued, wantAttempt: 5, wantResumes: 4, wantReason: "resume 4 of 20"},
		{name: "lost before its first sync: a retry used", ckpt: ckpt, retries: &one, attempt: 3, resumes: 2, ran: 9 * time.Minute,
			want: job.Queued, wantAttempt: 4, wantResumes: 2, wantReason: "retry 1 of 1"},
		{name: "lost before its first sync, retries spent", ckpt: ckpt, retries: &one, attempt: 4, resumes: 2, ran: time.Minute,
			want: job.Failed, wantAttempt: 4, wantResumes: 2, wantReason: "retries spent (1)"},
		{name: "resumes spent: a retry used", ckpt: ckpt, retries: &one, attempt: job.MaxResumes + 1, resumes: job.MaxResumes, ran: time.Hour,
			want: job.Queued, wantAttempt: job.MaxResumes + 2, wantResumes: job.MaxResumes, wantReason: "retry 1 of 1"},
		{name: "resumes and retries spent", ckpt: ckpt, retries: &one, attempt: job.MaxResumes + 2, resumes: job.MaxResumes, ran: time.Hour,
			want: job.Failed, wantAttempt: job.MaxResumes + 2, wantResumes: job.MaxResumes, wantReason: "retries spent (1)"},
		{name: "no checkpoint: every loss a retry", retries: &one, attempt: 1, ran: 5 * time.Hour,
			want: job.Queued, wantAttempt: 2, wantReason: "retry 1 of 1"},
		{name: "no checkpoint, retries spent", retries: &one, attempt: 2, ran: 5 * time.Hour,
			want: job.Failed, wantAttempt: 2, wantReason: "retries spent (1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateTerminated)}}
			r := &followRunner{res: runner.Result{Status: runner.Failed, ExitCode: -1}, online: true}
			s, st := runningAttempt(t, job.Spec{MaxRuntime: job.Duration(48 * time.Hour), Retries: tt.retries, Checkpoint: tt.ckpt}, f, r, started, started.Add(tt.ran), tt.attempt, tt.resumes)
			if err := s.Reconcile(ctx, Options{Poll: true}); err != nil {
				t.Fatalf("Reconcile() = %v", err)
			}
			got, err := st.Job(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.want || got.Attempt != tt.wantAttempt || got.Resumes != tt.wantResumes || !strings.Contains(got.Reason, tt.wantReason) {
				t.Errorf("after the loss: %s attempt %d resumes %d (%s); want %s attempt %d resumes %d, reason with %q",
					got.State, got.Attempt, got.Resumes, got.Reason, tt.want, tt.wantAttempt, tt.wantResumes, tt.wantReason)
			}
		})
	}
}

// runningAttempt is runningJob's job "j" at its attempt n, resumes of the
// lost ones resumed, with no notifier.
func runningAttempt(t *testing.T, spec job.Spec, f Fleet, r Runner, started, now time.Time, n, resumes int) (*Scheduler, *store.Memory) {
	t.Helper()
	return runningAt(t, spec, f, r, nil, started, now, n, resumes)
}

// TestInterruptedExitCode: an attempt whose wrapper ended it on a spot
// interruption notice, the instance outliving the notice
// (runner.InterruptedExitCode), is a lost attempt of a checkpointed job
// (re-queued, to resume), and an ordinary failure of a job without one.
func TestInterruptedExitCode(t *testing.T) {
	started := t0.Add(time.Hour)
	ckpt := &job.Checkpoint{S3: "s3://b/p", Path: "checkpoints", Every: job.Duration(10 * time.Minute)}
	for _, tt := range []struct {
		name string
		ckpt *job.Checkpoint
		want job.State
	}{
		{"checkpointed: lost, resumes", ckpt, job.Queued},
		{"no checkpoint: the job's own exit code", nil, job.Failed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			r := &followRunner{res: runner.Result{Status: runner.Failed, ExitCode: runner.InterruptedExitCode, Started: started}, online: true}
			s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(48 * time.Hour), Checkpoint: tt.ckpt}, f, r, nil, started, started.Add(time.Hour))
			if err := s.CommandEvent(ctx, "cmd-1", "i-1", "Failed"); err != nil {
				t.Fatal(err)
			}
			got, err := st.Job(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			// The first move after RUNNING says where the attempt went (the
			// reconcile may have placed the next attempt already: the
			// instance outlived its notice).
			var to job.State
			var why string
			for _, h := range got.History {
				if h.From == job.Running {
					to, why = h.To, h.Reason
					break
				}
			}
			if to != tt.want {
				t.Errorf("after exit code 95: moved to %s (%s); want %s", to, why, tt.want)
			}
			if tt.ckpt != nil && (got.Attempt != 2 || got.Resumes != 1 || !strings.Contains(why, "spot interruption notice on i-1")) {
				t.Errorf("attempt %d resumes %d (%s); want attempt 2 resumed, the notice in its reason", got.Attempt, got.Resumes, why)
			}
		})
	}
}

// TestRebalance: a rebalance recommendation for the instance of a running
// checkpointed job asks its wrapper for a sync, and says so in its reason;
// one for a job without a checkpoint, or an instance nightshift does not
// hold, sends nothing.
func TestRebalance(t *testing.T) {
	started := t0.Add(time.Hour)
	ckpt := &job.Checkpoint{S3: "s3://b/p", Path: "checkpoints", Every: job.Duration(10 * time.Minute)}
	ctx := context.Background()
	for _, tt := range []struct {
		name     string
		ckpt     *job.Checkpoint
		instance string
		want     []string
	}{
		{"checkpointed", ckpt, "i-1", []string{"j"}},
		{"no checkpoint", nil, "i-1", nil},
		{"not ours", ckpt, "i-other", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
			r := &followRunner{res: runner.Result{Status: runner.Pending, ExitCode: -1}, online: true}
			s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(48 * time.Hour), Checkpoint: tt.ckpt}, f, r, nil, started, started.Add(time.Hour))
			for range 2 { // a duplicate event asks again, and changes nothing else
				if err := s.Rebalance(ctx, tt.instance); err != nil {
					t.Fatalf("Rebalance(%s) = %v", tt.instance, err)
				}
			}
			want := tt.want
			if want != nil {
				want = append(want, want...)
			}
			if diff := cmp.Diff(want, r.synced); diff != "" {
				t.Errorf("syncs asked (-want +got):\n%s", diff)
			}
			got, err := st.Job(ctx, "j")
			if err != nil {
				t.Fatal(err)
			}
			if asked := strings.Contains(got.Reason, "rebalance recommendation"); asked != (tt.want != nil) || got.State != job.Running {
				t.Errorf("job %s, reason %q; want it running, the recommendation noted only when a sync was asked", got.State, got.Reason)
			}
		})
	}
}

// TestUndeliveredUsesARetry: an attempt whose command SSM never delivered
// made no progress, however long it waited: it uses a retry, checkpoint or
// not.
func TestUndeliveredUsesARetry(t *testing.T) {
	started := t0.Add(time.Hour)
	ckpt := &job.Checkpoint{S3: "s3://b/p", Path: "checkpoints", Every: job.Duration(time.Minute)}
	one := 1
	f := &followFleet{insts: []fleet.Instance{inst("i-1", fleet.StateRunning)}}
	r := &followRunner{res: runner.Result{Status: runner.TimedOut, ExitCode: -1, Undelivered: true}, online: true}
	s, st := runningJob(t, job.Spec{MaxRuntime: job.Duration(time.Hour), Retries: &one, Checkpoint: ckpt}, f, r, nil, started, started.Add(70*time.Minute))
	if err := s.Reconcile(context.Background(), Options{Poll: true}); err != nil {
		t.Fatal(err)
	}
	got, err := st.Job(context.Background(), "j")
	if err != nil {
		t.Fatal(err)
	}
	if got.Attempt != 2 || got.Resumes != 0 || got.RetriesUsed() != 1 {
		t.Errorf("attempt %d resumes %d retries used %d (%s); want attempt 2 on a retry", got.Attempt, got.Resumes, got.RetriesUsed(), got.Reason)
	}
}
