package chaos

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// Slack on the liveness bounds. Each says what it absorbs.
const (
	// slack absorbs a period of tick granularity, a stop in progress, and a
	// tick or two lost to injected crashes and throttling.
	slack = 3 * scheduler.Period
	// metricLag: EC2's basic metrics come every 5 minutes, and the watchdog
	// needs data covering the whole idle window before it calls an instance idle.
	metricLag = 10 * time.Minute
)

// checker asserts the design's invariants after every step of a history.
type checker struct {
	h     *history
	start time.Time
	n     int
	err   *Violation
	// idleSince is when each of nightshift's running instances last had no job.
	idleSince map[string]time.Time
	// eligibleSince is the count of clean watchdog ticks when each queued
	// job became placeable.
	eligibleSince map[string]int
	// notebooks maps a watched instance to when its user stopped working.
	notebooks map[string]time.Time
	// due maps an obligation to the clean-tick count when it fell due.
	due map[string]int
	// live caches the live jobs as of the store's job write count liveAt.
	live   map[job.State][]*job.Job
	liveAt uint64
	// excused is the spend B1 tolerates beyond the budget; lastAt is when
	// the checker last looked.
	excused float64
	lastAt  time.Time
	// sweep is the largest one sweep's accrual has been.
	sweep float64
	// cancels are the jobs a cancel message was sent for; cancelledAt
	// maps those recorded CANCELLED to when, and ended those that ended
	// otherwise (they finished first). cancelReadAt is the store's job
	// write count when they were last read.
	cancels      map[string]bool
	cancelledAt  map[string]time.Time
	ended        map[string]bool
	cancelReadAt uint64
	// people are the notebook sessions' persons, by session; l5ended those
	// whose session's end L5 has checked.
	people  map[string]*person
	l5ended map[string]bool
	// skipsSeen counts the fleet's skips U1 has checked.
	skipsSeen int
	// startStuck maps a job on a stopped instance that cannot start to
	// the clean-tick count when L6 first saw it so.
	startStuck map[string]int
}

func newChecker(h *history) *checker {
	return &checker{
		h: h, start: h.w.Clock.Now(),
		idleSince: map[string]time.Time{}, eligibleSince: map[string]int{}, notebooks: map[string]time.Time{},
		due: map[string]int{}, cancels: map[string]bool{}, cancelledAt: map[string]time.Time{}, ended: map[string]bool{},
		people: map[string]*person{}, l5ended: map[string]bool{}, startStuck: map[string]int{},
	}
}

func (c *checker) fail(inv, format string, args ...any) {
	if c.err == nil {
		c.err = &Violation{Seed: c.h.seed, Mode: c.h.mode, Step: c.n, At: c.h.w.Clock.Now().Sub(c.start), Invariant: inv, Detail: fmt.Sprintf(format, args...)}
	}
}

// all checks now and returns the first violation seen so far.
func (c *checker) all() error {
	c.step()
	if c.err != nil {
		return c.err
	}
	return nil
}

// view is what one step of the checker reads of the world.
type view struct {
	now   time.Time
	live  map[job.State][]*job.Job
	insts []awssim.Instance
	invs  []sim.Invocation
	// holder maps an instance to the live job placed on or running on it.
	holder map[string]string
	// running maps an instance to the command that runs on it (not a duplicate).
	running map[string]sim.Invocation
	// pool counts nightshift's live instances of the pool; notebooks each
	// notebook's own (a pool of one).
	pool      int
	notebooks map[string]int
	// up: the control plane runs, and has run for long enough to be held
	// to the liveness bounds.
	up bool
	// budgetReached: the watchdog has found today's budget spent.
	budgetReached bool
}

// step checks every invariant once.
func (c *checker) step() {
	c.n++
	if c.err != nil {
		return
	}
	h := c.h
	h.checking = true
	defer func() { h.checking = false }()
	v, ok := c.read()
	if !ok {
		return
	}
	c.s1(v)
	c.s2(v)
	c.s3(v)
	c.s4()
	c.s5(v)
	c.s6(v)
	c.u1()
	c.l6(v)
	c.l1(v)
	c.l2(v)
	c.l4(v)
	c.l3(v)
	c.l5(v)
	c.w1(v)
	c.q1()
	c.k1()
	c.b1(v)
	c.b2(v)
	c.c1(v)
	c.c2(v)
}

// read takes the view of this step.
func (c *checker) read() (*view, bool) {
	h := c.h
	v := &view{
		now: h.w.Clock.Now(), live: map[job.State][]*job.Job{},
		insts: h.w.Cloud.Instances(), invs: h.w.Invocations(),
		holder: map[string]string{}, running: map[string]sim.Invocation{}, notebooks: map[string]int{},
	}
	if n := h.w.Store.JobWrites(); n != c.liveAt || c.live == nil {
		c.live = map[job.State][]*job.Job{}
		for _, st := range job.Live {
			js, err := h.w.Store.Live(context.Background(), st)
			if err != nil {
				c.fail("harness", "read %s jobs: %v", st, err)
				return nil, false
			}
			c.live[st] = js
		}
		c.liveAt = n
	}
	v.live = c.live // read only: the checks never change a job
	for _, i := range v.insts {
		if i.Token != "" && i.State != "terminated" && i.State != "shutting-down" {
			if notebookInstance(i) {
				v.notebooks[i.Tags["nightshift:pool"]]++
				continue
			}
			v.pool++
		}
	}
	v.up = !h.w.Down && v.now.Sub(h.upSince) >= slack
	if h.budget > 0 {
		st, err := h.w.Store.Spend(context.Background(), store.BudgetStatus)
		v.budgetReached = err == nil && st.Reached
	}
	if dt := v.now.Sub(c.lastAt); h.w.Down && dt > 0 {
		c.excuse(dt) // no sweep runs while the control plane is gone
	}
	c.lastAt = v.now
	return v, true
}

// s1: an accepted job is never lost: terminal, or waiting with a reason.
func (c *checker) s1(v *view) {
	for _, st := range job.Live {
		for _, j := range v.live[st] {
			if j.Reason == "" {
				c.fail("S1", "job %s is %s without a reason", j.ID, j.State)
			}
		}
	}
}

// s2: an attempt runs at most once, on one instance, with one command.
func (c *checker) s2(v *view) {
	ran := map[string]string{}
	for _, inv := range v.invs {
		if inv.Duplicate || inv.Stop || inv.Sync || inv.JobID == "" {
			continue
		}
		key := fmt.Sprintf("%s#%d", inv.JobID, inv.Attempt)
		if other, ok := ran[key]; ok {
			c.fail("S2", "attempt %s ran twice: command %s and %s", key, other, inv.CommandID+" on "+inv.InstanceID)
		}
		ran[key] = inv.CommandID + " on " + inv.InstanceID
	}
	launched := map[string]string{}
	for _, i := range v.insts {
		if i.Token == "" {
			continue
		}
		key := i.Tags["nightshift:job"] + "#" + i.Tags["nightshift:attempt"]
		if other, ok := launched[key]; ok {
			c.fail("S2", "attempt %s launched two instances: %s and %s", key, other, i.ID)
		}
		launched[key] = i.ID
	}
}

// s3: one job per instance at a time, and one command running on it. It
// fills the view's holder and running maps, which the liveness checks read.
func (c *checker) s3(v *view) {
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range v.live[st] {
			if j.InstanceID == "" {
				continue
			}
			if other, ok := v.holder[j.InstanceID]; ok {
				c.fail("S3", "jobs %s and %s both hold %s", other, j.ID, j.InstanceID)
			}
			v.holder[j.InstanceID] = j.ID
		}
	}
	for _, inv := range v.invs {
		// A stop command runs beside the attempt it stops, for a second.
		if inv.Duplicate || inv.Stop || inv.Sync || inv.Status != "InProgress" {
			continue
		}
		if other, ok := v.running[inv.InstanceID]; ok {
			c.fail("S3", "commands of %s and %s run at once on %s", other.JobID, inv.JobID, inv.InstanceID)
		}
		v.running[inv.InstanceID] = inv
	}
}

// s4: nothing acts on an instance nightshift does not own: the stack's
// IAM policy refused no call.
func (c *checker) s4() {
	if v := c.h.w.Violations(); len(v) > 0 {
		c.fail("S4", "%s", v[0])
	}
}

// s5: the pool never exceeds its cap.
func (c *checker) s5(v *view) {
	if v.pool > Cap {
		c.fail("S5", "%d live instances in a pool capped at %d", v.pool, Cap)
	}
	for nb, n := range v.notebooks {
		if n > 1 {
			c.fail("S5", "%d live instances of %s; a notebook has one", n, nb)
		}
	}
}

// s6: an instance launched for a placed attempt belongs to that attempt
// until the attempt records it or ends: no other job holds it meanwhile.
func (c *checker) s6(v *view) {
	placed := map[string]*job.Job{}
	for _, j := range v.live[job.Placed] {
		placed[j.ID] = j
	}
	for _, i := range v.insts {
		if i.Token == "" || !(i.State == "pending" || i.State == "running" || i.State == "stopping" || i.State == "stopped") {
			continue
		}
		owner, ok := placed[i.Tags["nightshift:job"]]
		if !ok || strconv.Itoa(owner.Attempt) != i.Tags["nightshift:attempt"] || owner.InstanceID != "" && owner.InstanceID != i.ID {
			continue // its attempt has recorded another instance, or ended
		}
		if other, held := v.holder[i.ID]; held && other != owner.ID {
			c.fail("S6", "%s was launched for %s attempt %d, still placed without it, and %s holds it", i.ID, owner.ID, owner.Attempt, other)
		}
	}
}

// excuse adds to the spend B1 tolerates what nightshift's instances accrue
// over d while no sweep can act: a failed tick, the control plane gone.
func (c *checker) excuse(d time.Duration) {
	c.excused += c.h.upRate() * d.Hours()
}

// upRate is the hourly price of nightshift's instances that run now.
func (h *history) upRate() float64 {
	r := 0.0
	for _, i := range h.w.Cloud.Instances() {
		if i.Token != "" && (i.State == "running" || i.State == "pending") {
			t, _ := awssim.LookupType(i.Type)
			rate := t.Hourly
			if i.Spot {
				rate *= 0.3 // the simulated spot discount
			}
			r += rate
		}
	}
	return r
}

// firstDayEnd is when the first day of every history (the budget's day)
// ends: the clock starts at vclock.Epoch.
var firstDayEnd = time.Date(vclock.Epoch.Year(), vclock.Epoch.Month(), vclock.Epoch.Day()+1, 0, 0, 0, 0, time.UTC)

// b1: with a daily budget, what nightshift's instances cost on the day
// (EC2's billing: running time) never exceeds the budget by more than one
// sweep's accrual, plus a stop, plus what accrued while sweeps could not
// run (failed ticks, the control plane gone).
func (c *checker) b1(v *view) {
	h := c.h
	if h.budget == 0 || !v.now.Before(firstDayEnd) {
		return
	}
	spent := h.w.Cloud.RunningUSD(func(i awssim.Instance) bool { return i.Token != "" })
	// One sweep's accrual at the fastest rate seen: the overshoot is the
	// accrual before the sweep that found the budget spent.
	c.sweep = max(c.sweep, h.upRate()*(scheduler.Period+awssim.DefaultStop).Hours())
	sweep := c.sweep
	if bound := h.budget + sweep + c.excused + 1e-9; spent > bound {
		c.fail("B1", "nightshift's instances cost $%.4f today, over the $%.2f budget by more than a sweep's accrual ($%.4f) and the excused ($%.4f)", spent, h.budget, sweep, c.excused)
	}
}

// b2: once a budget is reached (policy cancel), nightshift's instances stop
// within two clean watchdog ticks, and no job runs.
func (c *checker) b2(v *view) {
	if !v.budgetReached {
		delete(c.due, "B2")
		return
	}
	running := 0
	for _, i := range v.insts {
		if i.Token != "" && (i.State == "running" || i.State == "pending") {
			running++
		}
	}
	if c.overdue("B2", running > 0 || len(v.live[job.Running]) > 0) {
		c.fail("B2", "the budget is reached, and %d instances of nightshift's and %d jobs still run", running, len(v.live[job.Running]))
	}
}

// l1: no instance of nightshift's runs without a job past keep-warm (plus
// slack); no watched instance runs idle past its timeout.
func (c *checker) l1(v *view) {
	h := c.h
	for _, i := range v.insts {
		if i.State != "running" {
			delete(c.idleSince, i.ID)
			continue
		}
		if busyUntil, ok := c.notebooks[i.ID]; ok {
			from := latest(busyUntil, i.LaunchTime.Add(Grace), h.upSince)
			if v.up && c.overdue("L1 "+i.ID, v.now.Sub(from) > IdleTimeout+metricLag) {
				c.fail("L1", "watched %s idle since %v, still running", i.ID, from.Sub(c.start))
			}
			continue
		}
		if i.Token == "" {
			continue
		}
		_, held := v.holder[i.ID]
		_, busy := v.running[i.ID]
		if held || busy {
			delete(c.idleSince, i.ID)
			continue
		}
		since, ok := c.idleSince[i.ID]
		if !ok {
			c.idleSince[i.ID] = v.now
			continue
		}
		keep := KeepWarm
		if h.autoKeepWarm {
			keep = autoKeepWarm(i)
		}
		if from := latest(since, h.upSince); v.up && c.overdue("L1 "+i.ID, v.now.Sub(from) > keep+scheduler.Period) {
			c.fail("L1", "%s has had no job since %v and still runs (keep-warm %v)", i.ID, from.Sub(c.start), keep)
		}
	}
}

// autoKeepWarm is an "auto" pool's window for i: its start-to-ready time
// as the scheduler measured and tagged it (launch to first dispatch, which
// throttled or crashed passes lengthen), within the scheduler's bounds;
// KeepWarm before it is measured. The measurement itself is held to its
// rules by the scheduler's TestReadyMeasuredOnce and
// TestReadyNotMeasuredAfterOutage.
func autoKeepWarm(i awssim.Instance) time.Duration {
	secs, err := strconv.Atoi(i.Tags[fleet.TagReady])
	if err != nil || secs <= 0 {
		return KeepWarm
	}
	return min(max(time.Duration(secs)*time.Second, scheduler.MinAutoKeepWarm), scheduler.MaxAutoKeepWarm)
}

// l2: no job runs past its max runtime plus a period.
func (c *checker) l2(v *view) {
	for _, j := range v.live[job.Running] {
		if dl := j.Deadline(); v.up && c.overdue("L2 "+j.ID, v.now.After(dl.Add(scheduler.Period))) {
			c.fail("L2", "job %s still RUNNING %v past its max runtime", j.ID, v.now.Sub(dl))
		}
	}
}

// l4: with or without a control plane, the dead-man timer ends a command
// that outlives its max runtime plus grace: its instance stops itself.
func (c *checker) l4(v *view) {
	for _, inv := range v.running {
		if mr, ok := c.h.jobs[inv.JobID]; ok && v.now.Sub(inv.Started) > mr+runner.DeadmanGrace+slack {
			c.fail("L4", "command of %s on %s has run %v, past max runtime %v plus the dead-man grace", inv.JobID, inv.InstanceID, v.now.Sub(inv.Started), mr)
		}
	}
}

// l3: a queued job is placed within one reconcile once capacity exists:
// here, within two watchdog ticks that ran without any error (injected
// crashes and throttling make a reconcile fail; that only delays).
func (c *checker) l3(v *view) {
	h := c.h
	free := v.up && h.capacityUntil.IsZero() && h.quotaKnown(v.now) && v.pool < Cap && len(v.live[job.Placed]) == 0 && !v.budgetReached
	queued := map[string]bool{}
	for _, j := range v.live[job.Queued] {
		queued[j.ID] = true
	}
	for id := range c.eligibleSince {
		if !queued[id] {
			delete(c.eligibleSince, id) // placed since: a later wait starts anew
		}
	}
	// A notebook's sessions share its one instance: a session waits while
	// another holds it, or while it is stopping.
	held := map[string]bool{}
	for _, st := range []job.State{job.Placed, job.Running} {
		for _, j := range v.live[st] {
			held[j.Pool] = true
		}
	}
	for _, i := range v.insts {
		if notebookInstance(i) && i.State == "stopping" {
			held[i.Tags["nightshift:pool"]] = true
		}
	}
	for _, j := range v.live[job.Queued] {
		room := free
		if _, nb := job.NotebookOf(j.Pool); nb {
			room = v.up && h.capacityUntil.IsZero() && h.quotaKnown(v.now) && !held[j.Pool] && !v.budgetReached
		}
		if !room {
			delete(c.eligibleSince, j.ID)
			continue
		}
		since, ok := c.eligibleSince[j.ID]
		if !ok {
			c.eligibleSince[j.ID] = h.cleanTicks
			continue
		}
		if h.cleanTicks-since > 2 {
			c.fail("L3", "job %s still QUEUED after %d clean reconciles with room in the pool (%d of %d instances): %s", j.ID, h.cleanTicks-since, v.pool, Cap, j.Reason)
		}
	}
}

// quotaKnown reports whether no low-quota fault is on, nor ended so
// recently that nightshift may still hold the low value in its cache
// (quota.DefaultTTL: a quota raised outside nightshift is read within it).
func (h *history) quotaKnown(now time.Time) bool {
	return h.quotaUntil.IsZero() && (h.quotaBack.IsZero() || now.Sub(h.quotaBack) >= quota.DefaultTTL) && h.freshKnown(now)
}

// c1: once a job's record says CANCELLED, no command of the job starts,
// and none still runs.
func (c *checker) c1(v *view) {
	if n := c.h.w.Store.JobWrites(); n != c.cancelReadAt {
		c.cancelReadAt = n
		for _, id := range slices.Sorted(maps.Keys(c.cancels)) {
			if _, ok := c.cancelledAt[id]; ok || c.ended[id] {
				continue
			}
			j, err := c.h.w.Store.Job(context.Background(), id)
			switch {
			case errors.Is(err, store.ErrNotFound):
				// Its message is still on its way (or the cancel came first).
			case err != nil:
				c.fail("harness", "read job %s: %v", id, err)
				return
			case j.State == job.Cancelled:
				c.cancelledAt[id] = j.UpdatedAt
			case j.State.Terminal():
				c.ended[id] = true
			}
		}
	}
	for _, inv := range v.invs {
		at, ok := c.cancelledAt[inv.JobID]
		switch {
		case !ok || inv.Duplicate || inv.Stop || inv.Sync:
		case inv.Started.After(at):
			c.fail("C1", "job %s was recorded CANCELLED at T+%v, and its command %s (attempt %d) started on %s at T+%v", inv.JobID, at.Sub(c.start), inv.CommandID, inv.Attempt, inv.InstanceID, inv.Started.Sub(c.start))
		case inv.Status == "InProgress":
			c.fail("C1", "job %s was recorded CANCELLED at T+%v, and its command %s (attempt %d) still runs on %s", inv.JobID, at.Sub(c.start), inv.CommandID, inv.Attempt, inv.InstanceID)
		}
	}
}

// cancelBound is how long a cancelled job may take to end: a dispatch in
// flight settled, the wrapper's stop grace, then the cancel's delivery.
const cancelBound = scheduler.DispatchRetry + scheduler.StopGrace + slack

// c2: a job a cancel asked to end ends within cancelBound once the
// control plane is up, two clean watchdog ticks allowed.
func (c *checker) c2(v *view) {
	for _, st := range job.Live {
		for _, j := range v.live[st] {
			if !j.CancelRequested() {
				continue
			}
			from := latest(j.CancelRequestedAt, c.h.upSince)
			if c.overdue("C2 "+j.ID, v.up && v.now.Sub(from) > cancelBound) {
				c.fail("C2", "job %s is still %s %v after a cancel asked it to end: %s", j.ID, j.State, v.now.Sub(j.CancelRequestedAt), j.Reason)
			}
		}
	}
}

// overdue reports whether an obligation that holds now (cond) has held
// through more than two clean watchdog ticks: a tick that ran without any
// error must have acted on it. Injected crashes and throttling make ticks
// fail; they only delay.
func (c *checker) overdue(key string, cond bool) bool {
	if !cond {
		delete(c.due, key)
		return false
	}
	since, ok := c.due[key]
	if !ok {
		c.due[key] = c.h.cleanTicks
		return false
	}
	return c.h.cleanTicks-since > 2
}

// final checks the end of the drain: every accepted job ended, nothing of
// nightshift's still runs, and the stranger's instance was never touched.
// w1: a job with a max_wait leaves the queue within it plus a tick or two
// (placed, or failed for waiting), and is never failed for waiting sooner.
func (c *checker) w1(v *view) {
	for _, j := range v.live[job.Queued] {
		mw := j.Spec.MaxWait.D()
		if mw == 0 {
			continue
		}
		if waited := v.now.Sub(j.QueuedSince()); v.up && c.overdue("W1 "+j.ID, waited > mw+scheduler.Period) {
			c.fail("W1", "job %s still QUEUED after waiting %v, its max_wait %v: %s", j.ID, waited, mw, j.Reason)
		}
	}
}

// w1end checks a job that failed for waiting: it had waited its max_wait.
func (c *checker) w1end(j *job.Job) {
	if j.State != job.Failed || !strings.HasPrefix(j.Reason, "waited ") {
		return
	}
	c.h.stats.Waited++
	if mw := j.Spec.MaxWait.D(); mw == 0 || j.EndedAt.Sub(j.QueuedSince()) < mw {
		c.fail("W1", "job %s failed for waiting after %v; its max_wait is %v", j.ID, j.EndedAt.Sub(j.QueuedSince()), mw)
	}
}

func (c *checker) final() error {
	c.step()
	if c.err != nil {
		return c.err
	}
	h := c.h
	h.checking = true
	defer func() { h.checking = false }()
	ctx := context.Background()
	c.q2end()
	for id := range h.jobs {
		j, err := h.w.Store.Job(ctx, id)
		if err != nil {
			c.fail("S1", "job %s was sent but is not recorded: %v", id, err)
			continue
		}
		// With a daily budget, work past what the budget buys waits, by
		// design, with the budget as its reason: visibly waiting (S1).
		c.w1end(j)
		deferred := h.budget > 0 && j.State == job.Queued && strings.HasPrefix(j.Reason, "budget: ")
		if !j.State.Terminal() && !deferred {
			c.fail("S1", "job %s is still %s after the drain: %s", id, j.State, j.Reason)
		}
	}
	for _, i := range h.w.Cloud.Instances() {
		ours := i.Token != "" || i.Tags["nightshift:watch"] == "true"
		if ours && i.State == "running" {
			c.fail("L1", "%s still runs after the drain", i.ID)
		}
		if i.Tags["Name"] == "not ours" && (i.State != "running" || i.Tags["nightshift:last-action"] != "") {
			c.fail("S4", "the stranger's instance %s was touched: %s, %q", i.ID, i.State, i.Tags["nightshift:last-action"])
		}
	}
	if c.err != nil {
		return c.err
	}
	return nil
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
