package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// place gives a QUEUED job an instance: a free one of its pool (running
// first, then stopped), else a new one within the pool's cap.
func (s *Scheduler) place(ctx context.Context, w *world, j *job.Job) error {
	if j.CancelRequested() {
		// Cancelled while placed, then sent back to the queue (its launch
		// refused): it holds nothing now.
		return s.endCancelled(ctx, w, j, "")
	}
	if mw := j.Spec.MaxWait.D(); mw > 0 && w.now.Sub(j.QueuedSince()) >= mw {
		return s.failWaited(ctx, w, j, mw)
	}
	pool, types := s.pool(j)
	if w.budget != "" {
		return s.setReason(ctx, j, w.budget)
	}
	if err, ok := w.blocked[j.Pool]; ok {
		return s.setReason(ctx, j, err.Error())
	}
	freeTypes := types
	if j.Spec.Notebook != nil {
		freeTypes = nil // the notebook's own instance, whatever its type: its disk holds the person's files
	}
	if i, ok := s.free(w, j.Pool, freeTypes); ok {
		from := j.State
		j.InstanceID, j.InstanceType = i.ID, i.Type
		if err := j.Move(job.Placed, "placed on free instance "+i.ID, w.now); err != nil {
			return err
		}
		ok, err := s.write(ctx, j, from, store.LeaseOp{InstanceID: i.ID, Pool: j.Pool, Acquire: true})
		if !ok {
			return err
		}
		w.taken[i.ID] = true
		s.take(w, j)
		s.log.InfoContext(ctx, "placed", "job", j.ID, "instance", i.ID, "instance_state", i.State)
		s.recheckUnready(ctx, w, i)
		return s.advance(ctx, w, j)
	}
	if i, ok := launchedFor(w, j); ok {
		// An earlier try of this attempt launched it: it is the attempt's.
		from := j.State
		if err := j.Move(job.Placed, "adopting instance "+i.ID+", launched for this attempt", w.now); err != nil {
			return err
		}
		if ok, err := s.write(ctx, j, from); !ok {
			return err
		}
		return s.attach(ctx, w, j, i)
	}
	if why, ok := paused(w, j.Pool); ok {
		return s.setReason(ctx, j, why)
	}
	cap := pool.MaxInstances
	index, room := freeSlot(w, j.Pool, cap)
	if n := s.count(w, j.Pool); n >= cap || !room {
		return s.setReason(ctx, j, fmt.Sprintf("waiting for a free instance: pool %s is at its cap of %d instances", j.Pool, cap))
	}
	market := marketOf(pool, j)
	if why, ok := s.quotaRoom(ctx, w, types, market); !ok {
		return s.setReason(ctx, j, why)
	}
	// Write the intent first: PLACED with the launch token, and a slot of
	// the pool taken in the same transaction — the cap, held by DynamoDB
	// whatever other invocations do meanwhile. A crash after RunInstances is
	// repaired by the next pass, which repeats the launch with the same
	// token and gets the same instance back.
	from := j.State
	if err := j.Move(job.Placed, "launching an instance", w.now); err != nil {
		return err
	}
	j.Market = market
	if ok, err := s.write(ctx, j, from, store.SlotOp{Kind: store.TakeSlot, Pool: j.Pool, Index: index, At: w.now}); !ok {
		return err
	}
	w.slots[j.Pool] = append(w.slots[j.Pool], store.Slot{Pool: j.Pool, Index: index, JobID: j.ID, Attempt: j.Attempt, TakenAt: w.now})
	// Counted against the cap until this pass ends, whatever the launch
	// does — unless it comes back with an instance, which counts itself.
	w.launching[j.Pool]++
	err := s.launch(ctx, w, j)
	if _, listed := w.instances[j.InstanceID]; listed && j.InstanceID != "" {
		w.launching[j.Pool]--
	}
	return err
}

// marketOf is the market j launches on: its message's, else its pool's.
func marketOf(pool Pool, j *job.Job) string {
	if m := j.Spec.Instance.Market; m != "" {
		return m
	}
	return pool.Market
}

// launch runs the instance for a PLACED job that has none yet, and records it.
func (s *Scheduler) launch(ctx context.Context, w *world, j *job.Job) error {
	pool, types := s.pool(j)
	req := fleet.LaunchRequest{
		Token: j.ClientToken(), Pool: j.Pool, Job: j.ID, Attempt: j.Attempt,
		Types: types, Market: j.Market, AMI: pool.AMI, VolumeGB: pool.VolumeGB,
	}
	if a := j.Spec.Instance.AMI; a != "" {
		req.AMI = a
	}
	if v := j.Spec.Instance.VolumeGB; v != 0 {
		req.VolumeGB = v
	}
	req.NoRoom = s.noRoom(ctx, w)
	req.Chose = fleet.Chosen{AMI: j.Spec.Instance.AMI != "", Volume: j.Spec.Instance.VolumeGB != 0, Types: len(j.Spec.Instance.Types) > 0}
	inst, err := s.fleet.Launch(ctx, req)
	if err != nil {
		if errors.Is(err, fleet.ErrNoAnswer) || errors.Is(err, fleet.ErrThrottled) {
			// No answer from EC2 (a timeout, a lost response, a crash), or
			// throttled before it acted: an earlier call with this token
			// may have made the instance. The intent stands; the next pass
			// repeats the launch with the same token and gets it back.
			return errors.Join(err, s.setReason(ctx, j, "launch will be retried: "+err.Error()))
		}
		if errors.Is(err, fleet.ErrJob) {
			// What the job asks for is refused: it fails, saying what to
			// change; the pool's other jobs go on.
			return s.failRefused(ctx, w, j, err)
		}
		// EC2 said no: capacity, quota, the deployment's settings. None of
		// them is the job's fault. It goes back to the queue with the
		// reason and gives back its slot, and the next try uses a new
		// client token. A refusal of the deployment's settings pauses the
		// pool's launches, backing off, and says so once.
		w.blocked[j.Pool] = err
		s.quotaRefused(err)
		var perr error
		if errors.Is(err, fleet.ErrDeployment) {
			perr = s.refused(ctx, w, j.Pool, err)
		}
		from, attempt := j.State, j.Attempt
		if merr := j.Move(job.Queued, err.Error(), w.now); merr != nil {
			return merr
		}
		j.LaunchTry++
		ok, werr := s.write(ctx, j, from, releaseSlot(w, j)...)
		if ok {
			dropSlot(w, j.Pool, j.ID, attempt)
		}
		s.log.WarnContext(ctx, "launch failed", "job", j.ID, "pool", j.Pool, "err", err)
		return errors.Join(werr, perr)
	}
	if !inst.Live() {
		// The client token's instance, made by an earlier call, is gone (a
		// person terminated it, say): that is not a launch. The attempt is
		// lost; the next one launches anew.
		return s.lost(ctx, w, j, fmt.Sprintf("instance %s, launched for this attempt, is %s", inst.ID, inst.State))
	}
	w.instances[inst.ID] = inst
	s.quotaUsed(w, inst.Type, inst.Spot)
	s.log.InfoContext(ctx, "launched", "job", j.ID, "instance", inst.ID, "type", inst.Type, "spot", inst.Spot, "note", inst.LaunchNote)
	var said error
	if inst.LaunchNote != "" {
		said = s.say(ctx, notice.Action{Instance: inst.ID, Verb: "launch", Job: j.ID, Why: inst.LaunchNote})
	}
	return errors.Join(s.recovered(ctx, w, j.Pool), s.attach(ctx, w, j, inst), said)
}

// attach records the instance launched for a PLACED job and takes its lease.
func (s *Scheduler) attach(ctx context.Context, w *world, j *job.Job, inst fleet.Instance) error {
	j.InstanceID, j.InstanceType = inst.ID, inst.Type
	j.Reason = "waiting for instance " + inst.ID + " to boot"
	if inst.LaunchNote != "" {
		j.Reason += " (" + inst.LaunchNote + ")"
	}
	j.UpdatedAt = w.now
	ops := []store.Op{store.LeaseOp{InstanceID: inst.ID, Pool: j.Pool, Acquire: true}}
	sl, bind := slotOf(w, j)
	bind = bind && sl.InstanceID == ""
	if bind {
		ops = append(ops, store.SlotOp{Kind: store.BindSlot, Pool: sl.Pool, Index: sl.Index, InstanceID: inst.ID, At: w.now})
	}
	ok, err := s.write(ctx, j, job.Placed, ops...)
	if ok {
		w.taken[inst.ID] = true
		s.take(w, j)
		s.recheckUnready(ctx, w, inst)
		if bind {
			dropSlot(w, sl.Pool, sl.JobID, sl.Attempt)
			sl.InstanceID, sl.BoundAt = inst.ID, w.now
			w.slots[sl.Pool] = append(w.slots[sl.Pool], sl)
		}
	}
	return err
}

// launchedFor returns the instance an earlier try of j's attempt launched,
// if the snapshot lists one: an instance tagged for a live attempt is that
// attempt's, never another job's — unless another job holds it already
// (it was adopted as free while j waited in the queue): then it is that
// job's, and attaching to it would only lose a race on every pass.
func launchedFor(w *world, j *job.Job) (fleet.Instance, bool) {
	for _, id := range slices.Sorted(maps.Keys(w.instances)) {
		i := w.instances[id]
		if i.Job != j.ID || i.Attempt != j.Attempt || !i.Live() || startLeftRecently(w.now, i) {
			continue // (a stopped one the attempt just left, its start refused, rests first)
		}
		if l, ok := w.leases[id]; ok && l.Held() && l.JobID != j.ID {
			continue
		}
		return i, true
	}
	return fleet.Instance{}, false
}

// take records in the snapshot that j holds its instance's lease.
func (s *Scheduler) take(w *world, j *job.Job) {
	l := w.leases[j.InstanceID]
	l.InstanceID, l.Pool, l.JobID, l.Attempt = j.InstanceID, j.Pool, j.ID, j.Attempt
	l.Version++
	w.leases[j.InstanceID] = l
}

// advance moves a PLACED job toward RUNNING: launch or adopt its instance,
// start it if stopped, wait for its agent, send the command.
func (s *Scheduler) advance(ctx context.Context, w *world, j *job.Job) error {
	if j.CancelRequested() {
		return s.cancelPlaced(ctx, w, j)
	}
	if j.InstanceID == "" {
		// A launch was intended; an instance tagged for this attempt means
		// RunInstances ran before a crash: adopt it rather than launch again.
		if i, ok := launchedFor(w, j); ok {
			s.log.InfoContext(ctx, "adopted launched instance", "job", j.ID, "instance", i.ID)
			return s.attach(ctx, w, j, i)
		}
		if why, ok := paused(w, j.Pool); ok {
			return s.setReason(ctx, j, why)
		}
		if w.budget != "" {
			return s.setReason(ctx, j, w.budget) // no new instance while a budget is spent
		}
		// Fence the repeated launch by the job's version: a pass acting on a
		// stale snapshot (another pass has launched for the job since, or
		// moved it) loses this write and launches nothing.
		j.Reason = "launching an instance (repeated)"
		j.UpdatedAt = w.now
		if ok, err := s.write(ctx, j, job.Placed); !ok {
			return err
		}
		return s.launch(ctx, w, j)
	}
	i, ok := w.instances[j.InstanceID]
	if !ok {
		return s.lost(ctx, w, j, fmt.Sprintf("instance %s disappeared before the job started", j.InstanceID))
	}
	if w.budget != "" && (j.DispatchedAt.IsZero() || !i.Up()) {
		// Not started, or its instance is down (stopped under a command
		// that was sent, by its idle timer or a person): nothing runs
		// there, and starting it would bill past the budget.
		return s.holdForBudget(ctx, w, j, i)
	}
	switch i.State {
	case fleet.StateStopped:
		if err := s.fleet.Start(ctx, i); err != nil {
			if errors.Is(err, fleet.ErrCapacity) {
				return s.startRefused(ctx, w, j, i, err)
			}
			if fleet.Transient(err) {
				return s.setReason(ctx, j, "starting "+i.ID+": "+err.Error())
			}
			return err
		}
		s.quotaUsed(w, i.Type, i.Spot)
		s.log.InfoContext(ctx, "started instance", "job", j.ID, "instance", i.ID)
		s.started(ctx, w, i)
		s.askRecheck(ctx, w, i.ID, RecheckDelay)
		return s.setReason(ctx, j, "starting instance "+i.ID)
	case fleet.StatePending, fleet.StateStopping:
		return s.setReason(ctx, j, fmt.Sprintf("waiting for instance %s (%s)", i.ID, i.State))
	}
	if !w.online[i.ID] {
		since := j.PlacedAt
		if i.LaunchTime.After(since) {
			since = i.LaunchTime
		}
		if w.now.Sub(since) > AgentTimeout {
			return s.agentTimeout(ctx, w, j, i)
		}
		return s.setReason(ctx, j, "waiting for the SSM agent on "+i.ID+" to come online")
	}
	return s.dispatch(ctx, w, j, i)
}

// holdForBudget keeps a placed job that has not started from starting
// while a budget is spent: it keeps its instance (the lease), which is
// stopped meanwhile so that it bills nothing, and goes on once the budget
// allows.
func (s *Scheduler) holdForBudget(ctx context.Context, w *world, j *job.Job, i fleet.Instance) error {
	if i.Up() {
		if err := s.fleet.Stop(ctx, i); err != nil {
			return err
		}
		s.log.InfoContext(ctx, "stopped a placed job's instance: budget", "job", j.ID, "instance", i.ID)
	}
	return s.setReason(ctx, j, fmt.Sprintf("holding instance %s, stopped: %s", i.ID, w.budget))
}

// agentTimeout gives up on an instance whose agent never came online: the
// job moves on (re-queued or failed) and the instance is stopped.
func (s *Scheduler) agentTimeout(ctx context.Context, w *world, j *job.Job, i fleet.Instance) error {
	if err := s.lost(ctx, w, j, fmt.Sprintf("the SSM agent on %s did not come online within %v", i.ID, AgentTimeout)); err != nil {
		return err
	}
	return s.stopBroken(ctx, w, i, j.ID, fmt.Sprintf("its SSM agent did not come online within %v", AgentTimeout))
}

// stopBroken stops an instance whose agent cannot run commands, once the
// job on it has moved on: through the free lease's stop mark, so that a
// placement that took it meanwhile wins.
func (s *Scheduler) stopBroken(ctx context.Context, w *world, i fleet.Instance, jobID, why string) error {
	l, err := s.store.Lease(ctx, i.ID)
	if err != nil || l.Held() {
		return err
	}
	if err := s.store.MarkStopping(ctx, l, w.now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // taken or changed meanwhile: the next pass decides again
		}
		return err
	}
	w.taken[i.ID] = true
	if err := s.fleet.Stop(ctx, i); err != nil {
		return err
	}
	return s.say(ctx, notice.Action{Instance: i.ID, Verb: "stop", Job: jobID, Why: why})
}

// dispatch sends the attempt's command to its ready instance: write the
// intent, look for a command sent before a crash, send, record RUNNING.
func (s *Scheduler) dispatch(ctx context.Context, w *world, j *job.Job, i fleet.Instance) error {
	if !j.DispatchedAt.IsZero() {
		if w.now.Sub(j.DispatchedAt) < DispatchRetry {
			return nil // another invocation is sending it now
		}
		cmd, err := s.runner.Find(ctx, j, i.ID)
		if err != nil {
			return err
		}
		if cmd != "" {
			return s.running(ctx, w, j, cmd)
		}
	}
	first := j.DispatchedAt.IsZero()
	j.DispatchedAt = w.now
	j.UpdatedAt = w.now
	if ok, err := s.write(ctx, j, job.Placed); !ok {
		return err
	}
	if first {
		i = s.measureReady(ctx, w, j, i)
	}
	// The wrapper's idle timer backs up this instance's keep-warm stop
	// (stopIdle): the same window, measured afresh for an "auto" pool.
	cmd, err := s.runner.Send(ctx, j, i.ID, s.keepWarm(i))
	if err != nil {
		if errors.Is(err, runner.ErrNotReady) || errors.Is(err, runner.ErrThrottled) {
			return s.setReason(ctx, j, "dispatch to "+i.ID+" will be retried: "+err.Error())
		}
		return err
	}
	return s.running(ctx, w, j, cmd)
}

// running records that j's command was sent.
func (s *Scheduler) running(ctx context.Context, w *world, j *job.Job, cmd string) error {
	from := j.State
	j.CommandID = cmd
	j.LogStream = runner.LogStream(cmd, j.InstanceID)
	if err := j.Move(job.Running, "running on "+j.InstanceID, w.now); err != nil {
		return err
	}
	ok, err := s.write(ctx, j, from)
	if ok {
		s.log.InfoContext(ctx, "running", "job", j.ID, "instance", j.InstanceID, "command", cmd, "attempt", j.Attempt)
	}
	return err
}

// free picks a free instance of the pool that can run one of types (nil:
// any type): running and online first, then running, pending, stopped.
func (s *Scheduler) free(w *world, pool string, types []string) (fleet.Instance, bool) {
	rank := func(i fleet.Instance) int {
		switch {
		case i.State == fleet.StateRunning && w.online[i.ID]:
			return 0
		case i.State == fleet.StateRunning:
			return 1
		case i.State == fleet.StatePending:
			return 2
		case i.State == fleet.StateStopped:
			return 3
		}
		return 9 // stopping: not yet startable
	}
	var best fleet.Instance
	found := false
	for _, id := range slices.Sorted(maps.Keys(w.instances)) {
		i := w.instances[id]
		l, ok := w.leases[id]
		if !ok || l.Held() || !l.StoppingAt.IsZero() || w.taken[id] || i.Pool != pool || types != nil && !slices.Contains(types, i.Type) || rank(i) == 9 {
			continue
		}
		if i.State == fleet.StateRunning && !w.online[id] && w.now.Sub(i.LaunchTime) > AgentTimeout {
			continue // its agent never came online: broken, not free
		}
		if startLeftRecently(w.now, i) {
			continue // a job just gave up starting it (no capacity in its zone): it rests, stopped
		}
		if !found || rank(i) < rank(best) {
			best, found = i, true
		}
	}
	return best, found
}

// count is the number of live instances in a pool plus launches in flight.
// A stopped instance counts, one whose start EC2 refuses included: it
// keeps its disk and its slot, and whoever starts it later must not take
// the pool past its cap.
func (s *Scheduler) count(w *world, pool string) int {
	n := 0
	for _, i := range w.instances {
		if i.Pool == pool {
			n++
		}
	}
	// Jobs placed or running on an instance DescribeInstances does not list
	// yet (it lags), and launches in flight, count too.
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range w.jobs[st] {
			if _, listed := w.instances[j.InstanceID]; j.Pool == pool && j.State == st && (j.InstanceID == "" || !listed) {
				n++
			}
		}
	}
	return n + w.launching[pool]
}

// measureReady records on the instance how long it took from its start to
// being ready for a command, when this job waited for that whole start: the
// "auto" keep-warm window is that time. It is called at an attempt's first
// dispatch only, and measures nothing past AgentTimeout: a dispatch
// repeated after a crash, or one delayed by the control plane being away,
// would measure the delay, not the start. It returns the instance as
// tagged, and the snapshot holds it so too. A failure to tag only loses the
// measurement: the instance is returned unchanged, so that its idle timer
// keeps to the window the next snapshot will read.
func (s *Scheduler) measureReady(ctx context.Context, w *world, j *job.Job, i fleet.Instance) fleet.Instance {
	if j.PlacedAt.After(i.LaunchTime) || i.LaunchTime.IsZero() || w.now.Sub(i.LaunchTime) > AgentTimeout {
		return i // the instance was already up, or this is not a start's time: nothing measured
	}
	secs := strconv.Itoa(int(w.now.Sub(i.LaunchTime).Seconds()))
	if i.Tags[fleet.TagReady] == secs {
		return i
	}
	if err := s.fleet.Tag(ctx, i, fleet.TagReady, secs); err != nil {
		s.log.WarnContext(ctx, "could not record start-to-ready time", "instance", i.ID, "err", err)
		return i
	}
	// The snapshot's tag map is shared with its other copies: copy it.
	i.Tags = maps.Clone(i.Tags)
	if i.Tags == nil {
		i.Tags = map[string]string{}
	}
	i.Tags[fleet.TagReady] = secs
	w.instances[i.ID] = i
	return i
}
