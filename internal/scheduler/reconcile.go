package scheduler

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// world is one reconcile's snapshot of the jobs, leases and instances.
type world struct {
	now       time.Time
	jobs      map[job.State][]*job.Job
	leases    map[string]store.Lease
	instances map[string]fleet.Instance
	online    map[string]bool
	// taken marks instances given work during this pass.
	taken map[string]bool
	// blocked marks pools where a launch failed during this pass.
	blocked map[string]error
	// budget is set while a budget is reached: nothing is placed, and free
	// instances are stopped without waiting for keep-warm.
	budget string
}

// Options tune one Reconcile.
type Options struct {
	// Poll asks SSM for the status of every running command, catching
	// completion events that were lost. The watchdog's tick sets it.
	Poll bool
	// Hints are instance states just reported by events, newer than what
	// DescribeInstances may show yet (it is eventually consistent).
	Hints map[string]string
	// Fresh are jobs this invocation has just written. The live index is
	// eventually consistent and may not list them yet; they are considered
	// anyway, so a job submitted to a warm pool is placed at once.
	Fresh []*job.Job
}

// Reconcile moves the world one step toward the desired state. Errors on one
// job or instance do not stop the others; they are joined and returned.
func (s *Scheduler) Reconcile(ctx context.Context, o Options) error {
	w, err := s.snapshot(ctx, o)
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range w.jobs[job.Running] {
		errs = append(errs, s.follow(ctx, w, j, o.Poll))
	}
	for _, j := range w.jobs[job.Placed] {
		errs = append(errs, s.advance(ctx, w, j))
	}
	errs = append(errs, s.tidyLeases(ctx, w))
	for _, j := range w.jobs[job.Queued] {
		errs = append(errs, s.place(ctx, w, j))
	}
	errs = append(errs, s.stopIdle(ctx, w))
	return errors.Join(errs...)
}

func (s *Scheduler) snapshot(ctx context.Context, o Options) (*world, error) {
	w := &world{
		now: s.now(), jobs: map[job.State][]*job.Job{}, leases: map[string]store.Lease{},
		instances: map[string]fleet.Instance{}, taken: map[string]bool{}, blocked: map[string]error{},
	}
	for _, st := range []job.State{job.Placed, job.Running} {
		js, err := s.store.Live(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("read %s jobs: %w", st, err)
		}
		w.jobs[st] = js
	}
	switch st, err := s.store.Spend(ctx, store.BudgetStatus); {
	case err == nil && st.Reached:
		w.budget = st.Reason
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("read budget status: %w", err)
	}
	leases, err := s.store.Leases(ctx)
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	for _, l := range leases {
		w.leases[l.InstanceID] = l
	}
	insts, err := s.fleet.List(ctx)
	if err != nil {
		return nil, err
	}
	var running []string
	for _, i := range insts {
		if h, ok := o.Hints[i.ID]; ok && h != "pending" && h != "running" {
			i.State = h
		}
		if !i.Live() {
			continue
		}
		w.instances[i.ID] = i
		if i.State == "running" {
			running = append(running, i.ID)
		}
	}
	w.online = map[string]bool{}
	if len(running) > 0 {
		slices.Sort(running)
		if w.online, err = s.runner.Online(ctx, running); err != nil {
			return nil, err
		}
	}
	// Only the head of the queue can be placed in one pass: as many jobs as
	// there are free instances and room under the caps, plus a margin for
	// jobs whose pool or types do not fit. A deep queue costs a reconcile
	// that much, not its whole length.
	queued, err := s.store.Head(ctx, job.Queued, s.placeable(w)+queueScanMargin)
	if err != nil {
		return nil, fmt.Errorf("read %s jobs: %w", job.Queued, err)
	}
	w.jobs[job.Queued] = queued
	for _, f := range o.Fresh {
		if !f.State.Terminal() && !slices.ContainsFunc(w.jobs[f.State], func(j *job.Job) bool { return j.ID == f.ID }) {
			w.jobs[f.State] = append(w.jobs[f.State], f)
		}
	}
	slices.SortStableFunc(w.jobs[job.Queued], func(a, b *job.Job) int {
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		return a.SubmittedAt.Compare(b.SubmittedAt)
	})
	return w, nil
}

// queueScanMargin is how many queued jobs past the placeable ones a pass
// reads: enough to get past a few whose pool or instance types do not fit
// the free capacity, few enough that a queue of thousands stays cheap.
const queueScanMargin = 50

// placeable is how many jobs this pass could place at most: free instances
// plus the room under every pool's cap.
func (s *Scheduler) placeable(w *world) int {
	n := 0
	for id := range w.instances {
		if l, ok := w.leases[id]; !ok || !l.Held() {
			n++
		}
	}
	for name, p := range s.cfg.Pools {
		n += max(0, p.MaxInstances-s.count(w, name))
	}
	return n
}

// write saves j if it moved from state from; a lost race is not an error:
// another invocation moved the job first, and the next pass reads its work.
func (s *Scheduler) write(ctx context.Context, j *job.Job, from job.State, ops ...store.LeaseOp) (bool, error) {
	err := s.store.Update(ctx, j, from, ops...)
	switch {
	case errors.Is(err, store.ErrConflict):
		s.log.DebugContext(ctx, "lost a race", "job", j.ID, "state", j.State)
		return false, nil
	case err != nil:
		return false, fmt.Errorf("write %s: %w", j.ID, err)
	}
	return true, nil
}

// setReason records a new reason for a waiting job, once: unchanged reasons
// are not written again on every pass.
func (s *Scheduler) setReason(ctx context.Context, j *job.Job, reason string) error {
	if j.Reason == reason {
		return nil
	}
	j.Reason = reason
	j.UpdatedAt = s.now().UTC()
	_, err := s.write(ctx, j, j.State)
	return err
}

// release returns the op that frees j's lease, if j holds one.
func release(w *world, j *job.Job) []store.LeaseOp {
	if j.InstanceID == "" {
		return nil
	}
	if l, ok := w.leases[j.InstanceID]; ok && l.JobID == j.ID {
		return []store.LeaseOp{{InstanceID: j.InstanceID, Pool: l.Pool, At: w.now}}
	}
	return nil
}

// follow watches a RUNNING job: it completes it when its command has ended
// (polling when asked, or when the instance is gone), re-queues it when its
// instance is lost, and cancels it past its deadline.
func (s *Scheduler) follow(ctx context.Context, w *world, j *job.Job, poll bool) error {
	inst, alive := w.instances[j.InstanceID]
	alive = alive && (inst.State == "running" || inst.State == "pending")
	if poll || !alive {
		res, err := s.runner.Result(ctx, j.CommandID, j.InstanceID)
		if err == nil && res.Status.Final() {
			return s.complete(ctx, w, j, res)
		}
		if err != nil && alive {
			return err
		}
	}
	if !alive {
		return s.lost(ctx, w, j, fmt.Sprintf("instance %s %s while the job ran", j.InstanceID, stateWord(inst)))
	}
	if dl := j.Deadline(); !dl.IsZero() && w.now.After(dl.Add(Period)) {
		if err := s.runner.Cancel(ctx, j.CommandID, j.InstanceID); err != nil {
			return err
		}
		from := j.State
		if err := j.Move(job.TimedOut, fmt.Sprintf("ran past its max runtime of %v; command cancelled", j.Spec.MaxRuntime.D()), w.now); err != nil {
			return err
		}
		s.cost(j, inst)
		if ok, err := s.write(ctx, j, from, release(w, j)...); ok {
			s.freed(w, j)
			s.log.InfoContext(ctx, "timed out", "job", j.ID, "instance", j.InstanceID)
		} else if err != nil {
			return err
		}
	}
	return nil
}

func stateWord(i fleet.Instance) string {
	if i.State == "" {
		return "terminated"
	}
	return i.State
}

// complete records a final command result for j (from an event or a poll).
func (s *Scheduler) complete(ctx context.Context, w *world, j *job.Job, res runner.Result) error {
	if res.Status == runner.Failed && res.ExitCode < 0 {
		// No exit code: the command never finished; its agent or instance
		// went away under it. That is a lost attempt, not the job's failure.
		return s.lost(ctx, w, j, fmt.Sprintf("the command on %s ended without an exit code (instance or agent lost)", j.InstanceID))
	}
	to, reason := job.Succeeded, "exit code 0"
	switch res.Status {
	case runner.Failed:
		to, reason = job.Failed, fmt.Sprintf("exit code %d", res.ExitCode)
	case runner.TimedOut:
		to, reason = job.TimedOut, fmt.Sprintf("ran past its max runtime of %v", j.Spec.MaxRuntime.D())
	case runner.Cancelled:
		to, reason = job.Cancelled, "command cancelled"
		if !j.StalledAt.IsZero() {
			reason = "cancelled by the watchdog: " + strings.TrimPrefix(j.Reason, "running on "+j.InstanceID+"; ")
		}
	}
	from := j.State
	code := res.ExitCode
	j.ExitCode = &code
	j.CommandID = res.CommandID
	if err := j.Move(to, reason, w.now); err != nil {
		return err
	}
	if !res.Ended.IsZero() {
		j.EndedAt = res.Ended.UTC()
	}
	s.cost(j, w.instances[j.InstanceID])
	ok, err := s.write(ctx, j, from, release(w, j)...)
	if ok {
		s.freed(w, j)
		s.log.InfoContext(ctx, "finished", "job", j.ID, "state", j.State, "exit_code", code, "instance", j.InstanceID, "cost_usd", math.Round(j.Cost*1e4)/1e4)
	}
	return err
}

// freed marks j's instance free in the snapshot, so the same pass can give
// it the next queued job at once.
func (s *Scheduler) freed(w *world, j *job.Job) {
	if l, ok := w.leases[j.InstanceID]; ok && l.JobID == j.ID {
		l.JobID, l.Attempt, l.IdleSince = "", 0, w.now
		l.Version++
		w.leases[j.InstanceID] = l
	}
}

// cost estimates what j's instance time cost, from placement to end.
func (s *Scheduler) cost(j *job.Job, i fleet.Instance) {
	t, ok := catalog.Lookup(j.InstanceType)
	if !ok || j.PlacedAt.IsZero() {
		return
	}
	end := j.EndedAt
	if end.IsZero() {
		end = s.now()
	}
	j.Cost += t.Hourly * end.Sub(j.PlacedAt).Hours()
}

// lost re-queues j after its instance went away, or fails it when its
// retries are spent.
func (s *Scheduler) lost(ctx context.Context, w *world, j *job.Job, why string) error {
	from := j.State
	ops := release(w, j)
	s.cost(j, w.instances[j.InstanceID])
	if j.Attempt > j.Spec.RetryLimit() {
		if err := j.Move(job.Failed, fmt.Sprintf("%s; retries spent (%d)", why, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
	} else {
		if err := j.Move(job.Queued, fmt.Sprintf("%s; retry %d of %d", why, j.Attempt, j.Spec.RetryLimit()), w.now); err != nil {
			return err
		}
		j.Attempt++
		j.LaunchTry = 0
		j.InstanceID, j.InstanceType, j.CommandID, j.LogStream = "", "", "", ""
		j.DispatchedAt = time.Time{}
	}
	ok, err := s.write(ctx, j, from, ops...)
	if ok {
		s.freed(w, j)
		s.log.WarnContext(ctx, "instance lost", "job", j.ID, "state", j.State, "attempt", j.Attempt, "why", why)
	}
	return err
}

// tidyLeases gives every managed instance a lease record, deletes free
// leases whose instance is gone, and frees leases their job left behind.
func (s *Scheduler) tidyLeases(ctx context.Context, w *world) error {
	var errs []error
	errs = append(errs, s.freeLeftLeases(ctx, w))
	// Sorted: the order of calls is part of a simulated history, which must
	// replay exactly.
	for _, id := range sortedKeys(w.instances) {
		i := w.instances[id]
		if _, ok := w.leases[id]; ok {
			continue
		}
		l := store.Lease{InstanceID: id, Pool: i.Pool, IdleSince: w.now}
		if err := s.store.PutLease(ctx, l); err != nil {
			errs = append(errs, err)
			continue
		}
		w.leases[id] = l
		s.log.InfoContext(ctx, "adopted instance", "instance", id, "pool", i.Pool, "state", i.State)
	}
	for _, id := range sortedKeys(w.leases) {
		l := w.leases[id]
		if _, ok := w.instances[id]; ok || l.Held() {
			continue
		}
		if err := s.store.DeleteLease(ctx, id); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			errs = append(errs, err)
			continue
		}
		delete(w.leases, id)
	}
	return errors.Join(errs...)
}

// freeLeftLeases frees each lease held by a job that is no longer placed on
// or running on its instance — a job moved on by a write that could not
// release the lease (a crash, a failed read). Left alone, such a lease would
// keep the instance from every other job for ever. The job is read again
// first: the snapshot's jobs are older than its leases.
func (s *Scheduler) freeLeftLeases(ctx context.Context, w *world) error {
	holds := map[string]bool{}
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range w.jobs[st] {
			holds[fmt.Sprintf("%s/%s#%d", j.InstanceID, j.ID, j.Attempt)] = true
		}
	}
	var errs []error
	for _, id := range sortedKeys(w.leases) {
		l := w.leases[id]
		if !l.Held() || holds[fmt.Sprintf("%s/%s#%d", id, l.JobID, l.Attempt)] {
			continue
		}
		j, err := s.store.Job(ctx, l.JobID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			errs = append(errs, err)
			continue
		case (j.State == job.Placed || j.State == job.Running) && j.InstanceID == id && j.Attempt == l.Attempt:
			continue // placed after the snapshot read its jobs
		}
		if err := s.store.FreeLease(ctx, l, w.now); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		s.log.WarnContext(ctx, "freed a lease its job left behind", "instance", id, "job", l.JobID)
		l.JobID, l.Attempt, l.IdleSince = "", 0, w.now
		l.Version++
		w.leases[id] = l
	}
	return errors.Join(errs...)
}

// stopIdle stops free instances idle past their pool's keep-warm window, and
// clears the stop mark of those that have stopped.
func (s *Scheduler) stopIdle(ctx context.Context, w *world) error {
	var errs []error
	for _, id := range sortedKeys(w.leases) {
		l := w.leases[id]
		i, ok := w.instances[id]
		if !ok || l.Held() || w.taken[id] {
			continue
		}
		if !l.StoppingAt.IsZero() {
			switch {
			case i.State == "stopped":
				errs = append(errs, s.store.ClearStopping(ctx, id))
			case (i.State == "running" || i.State == "pending") && w.now.Sub(l.StoppingAt) >= Period:
				// The stop was decided but did not happen (the call failed,
				// or the invocation died after the mark): stop again.
				errs = append(errs, s.fleet.Stop(ctx, i))
			}
			continue
		}
		keep := s.keepWarm(i)
		if w.budget != "" {
			keep = 0
		}
		if (i.State != "running" && i.State != "pending") || w.now.Sub(l.IdleSince) < keep {
			continue
		}
		// The mark is a conditional write on the free lease: a placement
		// that took the instance meanwhile wins, and the stop is skipped.
		if err := s.store.MarkStopping(ctx, l, w.now); err != nil {
			if !errors.Is(err, store.ErrConflict) {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.fleet.Stop(ctx, i); err != nil {
			errs = append(errs, err)
			continue
		}
		why := fmt.Sprintf("no job for %v (keep-warm %v)", w.now.Sub(l.IdleSince).Round(time.Second), keep)
		if s.cfg.Pools[i.Pool].KeepWarmAuto {
			why = fmt.Sprintf("no job for %v (keep-warm auto: %v, its measured start-to-ready time)", w.now.Sub(l.IdleSince).Round(time.Second), keep)
		}
		if w.budget != "" {
			why = w.budget
		}
		errs = append(errs, s.say(ctx, notice.Action{Instance: id, Verb: "stop", Why: why}))
	}
	return errors.Join(errs...)
}

// keepWarm is how long instance i may wait free for its next job: its
// pool's window, or with "auto" the instance's own measured start-to-ready
// time (tag nightshift:ready-seconds), bounded.
func (s *Scheduler) keepWarm(i fleet.Instance) time.Duration {
	p := s.cfg.Pools[i.Pool]
	if !p.KeepWarmAuto {
		if d := p.KeepWarm.D(); d > 0 {
			return d
		}
		return DefaultKeepWarm
	}
	secs, err := strconv.Atoi(i.Tags[fleet.TagReady])
	if err != nil || secs <= 0 {
		return DefaultKeepWarm // not measured yet
	}
	return min(max(time.Duration(secs)*time.Second, MinAutoKeepWarm), MaxAutoKeepWarm)
}

// say reports an action through the notifier, or the log when there is none.
func (s *Scheduler) say(ctx context.Context, a notice.Action) error {
	if s.notice == nil {
		s.log.InfoContext(ctx, "action", "verb", a.Verb, "instance", a.Instance, "job", a.Job, "why", a.Why)
		return nil
	}
	return s.notice.Say(ctx, a)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
