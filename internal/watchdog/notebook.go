package watchdog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// A nightshift notebook ends itself: its wrapper looks at Jupyter, the
// sessions and the GPU every few seconds and ends JupyterLab when its
// person has left (internal/runner/notebook.sh). The watchdog is the
// backstop, for a wrapper that did not (it hung, its look failed, it was
// killed): it reads the NotebookState metric the wrapper publishes every
// minute — one query per notebook per sweep, in the sweep's one batch —
// and, one period after the wrapper should have acted, cancels the session
// through the cancel pipeline (stop, outputs, instance stopped).

// NotebookInput is what the notebook rule looks at for one running
// notebook session.
type NotebookInput struct {
	Now, Started time.Time
	// Idle and IdleConnected are the session's timeouts (job.Notebook).
	Idle, IdleConnected time.Duration
	// State is the NotebookState series as read, oldest first.
	State Series
	// Session is an open Session Manager session to the instance.
	Session bool
}

// notebookSlack is how long past a timeout the watchdog waits for the
// notebook's own wrapper, which ends it within seconds, before it acts.
const notebookSlack = time.Minute // one watchdog tick

// Due reports whether the session has run long enough to be judged.
func (in NotebookInput) Due() bool { return in.Now.Sub(in.Started) >= in.Idle+notebookSlack }

// window is how far back the rule reads.
func (in NotebookInput) window() time.Duration { return max(in.Idle, in.IdleConnected) + notebookSlack }

// NotebookIdle decides whether a notebook's person has left: nobody
// connected and nothing running (state 0, no session) for its idle timeout,
// or nothing running (state ≤ 1) for its connected timeout, each with data
// covering the window (missing data is never read as idle), one period of
// slack after either. A busy kernel or GPU (state 2) is never idle.
func NotebookIdle(in NotebookInput) (why string, idle bool) {
	if !in.Due() {
		return fmt.Sprintf("running %v, within its idle timeout %v", in.Now.Sub(in.Started), in.Idle), false
	}
	m := NotebookState
	// The wrapper publishes every minute: data older than two periods is
	// stale (the person may be back), and is not read as idle.
	if n := len(in.State); n == 0 || in.State[n-1].At.Before(in.Now.Add(-2*m.Period)) {
		return "no fresh NotebookState data", false
	}
	check := func(d time.Duration, most float64) bool {
		from := in.Now.Add(-d - notebookSlack)
		s := in.State.since(from.Add(-m.Period))
		return s.Covers(from, in.Now, m.Period) && s.Max() <= most
	}
	switch {
	case !in.Session && check(in.Idle, 0):
		return fmt.Sprintf("nobody connected and nothing running for %v (its own wrapper did not end it)", in.Idle), true
	case in.Now.Sub(in.Started) >= in.IdleConnected+notebookSlack && check(in.IdleConnected, 1):
		return fmt.Sprintf("a browser connected but nothing running for %v (its own wrapper did not end it)", in.IdleConnected), true
	}
	return "its person is there, or something runs", false
}

// notebookFinding is a notebook session found idle.
type notebookFinding struct {
	job    *job.Job
	action notice.Action
}

// idleNotebooks reads the state of the running notebook sessions due for a
// look, in one batch, and returns a cancel for each whose person has left.
func (w *Watchdog) idleNotebooks(ctx context.Context, managed []Instance, running []*job.Job, now time.Time) ([]notebookFinding, error) {
	up := map[string]bool{}
	for _, i := range managed {
		up[i.ID] = true
	}
	var jobs []*job.Job
	var ins []NotebookInput
	var reqs []Request
	longest := time.Duration(0)
	for _, j := range running {
		n := j.Spec.Notebook
		if n == nil || !up[j.InstanceID] || j.CancelRequested() {
			continue
		}
		in := NotebookInput{Now: now, Started: j.StartedAt, Idle: n.Idle.D(), IdleConnected: n.IdleConnected.D()}
		if !in.Due() {
			continue
		}
		jobs, ins = append(jobs, j), append(ins, in)
		longest = max(longest, in.window())
		reqs = append(reqs, Request{j.InstanceID, NotebookState})
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	sessions, err := w.cloud.Sessions(ctx)
	if err != nil {
		return nil, err
	}
	series, err := w.cloud.Series(ctx, reqs, now.Add(-longest-NotebookState.Period), now)
	if err != nil {
		return nil, err
	}
	var out []notebookFinding
	for k, j := range jobs {
		in := ins[k]
		in.State, in.Session = series[Request{j.InstanceID, NotebookState}], sessions[j.InstanceID]
		if why, idle := NotebookIdle(in); idle {
			out = append(out, notebookFinding{job: j, action: notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: "cancel", Why: "notebook " + j.Spec.Notebook.Name + ": " + why, DryRun: w.cfg.DryRun}})
		}
	}
	return out, nil
}

// endNotebook asks for an idle notebook session's end, as a cancel message
// does: the reconcile that follows the sweep stops it.
func (w *Watchdog) endNotebook(ctx context.Context, f notebookFinding) error {
	if f.action.DryRun {
		return w.notice.Say(ctx, f.action)
	}
	j := f.job
	now := w.now().UTC()
	j.CancelRequestedAt, j.CancelReason = now, "idle: "+f.action.Why
	j.Reason = j.CancelledReason("") + "; stopping"
	j.UpdatedAt = now
	if err := w.store.Update(ctx, j, job.Running); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // it moved meanwhile (ended, most likely): the next sweep looks again
		}
		return err
	}
	return w.notice.Say(ctx, f.action)
}
