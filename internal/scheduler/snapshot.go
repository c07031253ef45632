package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
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
	// launching counts, per pool, launches this pass started (whether or
	// not EC2 answered): they count against the cap until the next pass.
	launching map[string]int
	// slots are each pool's taken slots (store.Slot): the cap, as DynamoDB
	// holds it.
	slots map[string][]store.Slot
	// pools are the pools' launch status: paused while EC2 refuses the
	// deployment's own launch settings.
	pools map[string]store.PoolStatus
	// gone marks the instances listed shutting-down or terminated.
	gone map[string]bool
	// gonePools are the pools of the instances listed terminated.
	gonePools []string
	// rechecks marks the instances this pass asked a re-check for.
	rechecks map[string]bool
	// deepQueue: the queue may be longer than the head this pass read
	// (expireDeepWaits looks past it).
	deepQueue bool
	// quota is the pass's reading of the vCPU quotas, made when a job is
	// about to launch.
	quota quotaView
}

func (s *Scheduler) snapshot(ctx context.Context, o Options) (*world, error) {
	w := &world{
		now: s.now(), jobs: map[job.State][]*job.Job{}, leases: map[string]store.Lease{},
		instances: map[string]fleet.Instance{}, taken: map[string]bool{}, blocked: map[string]error{}, launching: map[string]int{},
		slots: map[string][]store.Slot{}, pools: map[string]store.PoolStatus{}, gone: map[string]bool{},
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
	for _, pool := range slices.Sorted(maps.Keys(s.cfg.Pools)) {
		if w.slots[pool], err = s.store.Slots(ctx, pool); err != nil {
			return nil, fmt.Errorf("read slots: %w", err)
		}
		switch st, err := s.store.PoolStatus(ctx, pool); {
		case err == nil:
			w.pools[pool] = st
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("read pool status: %w", err)
		}
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
		// Only an irreversible state is taken from an event: EventBridge does
		// not order events and Lambda retries them, so a "stopped" may be
		// older than the start that followed it; "terminated" never is.
		if h, ok := o.Hints[i.ID]; ok && (h == fleet.StateShuttingDown || h == fleet.StateTerminated) {
			i.State = h
		}
		if !i.Live() {
			w.gone[i.ID] = true
			w.gonePools = append(w.gonePools, i.Pool)
			continue
		}
		w.instances[i.ID] = i
		if i.State == fleet.StateRunning {
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
	head := s.placeable(w) + queueScanMargin
	queued, err := s.store.Head(ctx, job.Queued, head)
	if err != nil {
		return nil, fmt.Errorf("read %s jobs: %w", job.Queued, err)
	}
	w.jobs[job.Queued] = queued
	w.deepQueue = len(queued) >= head
	for _, f := range o.Fresh {
		if f.State.Terminal() {
			continue
		}
		// The index may list an older version of it, in its old state (a
		// cancel just written, say): the fresh one replaces it.
		newer := false
		for _, st := range job.Live {
			w.jobs[st] = slices.DeleteFunc(w.jobs[st], func(j *job.Job) bool {
				newer = newer || j.ID == f.ID && j.Version > f.Version
				return j.ID == f.ID && j.Version < f.Version
			})
		}
		if !newer && !slices.ContainsFunc(w.jobs[f.State], func(j *job.Job) bool { return j.ID == f.ID }) {
			w.jobs[f.State] = append(w.jobs[f.State], f)
		}
	}
	if err := s.readNotebookSlots(ctx, w); err != nil {
		return nil, err
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
