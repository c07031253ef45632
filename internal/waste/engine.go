package waste

import (
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// Policy is how a baseline stops instances. Everything else — how jobs get
// instances, boot, run and are billed — is the engine's, the same for every
// baseline.
type Policy interface {
	// String names the policy and its parameters, as the report shows them.
	String() string
	// StopAt returns when an instance that went idle is stopped, if
	// nothing runs on it meanwhile. It is never before i.Since.
	StopAt(i Idle) time.Time
	// KillAt returns when an instance busy since start is stopped under
	// its work; the zero time for a policy that never does.
	KillAt(start time.Time) time.Time
	// Resubmit returns when the owner of a killed job submits it again.
	Resubmit(killed time.Time) time.Time
	// notebook returns the policy's rule for a notebook instance that
	// became ready at ready (see checker).
	notebook(ready time.Time) checker
}

// Idle describes an instance that has just gone idle.
type Idle struct {
	// Since is when its last job ended.
	Since time.Time
	// BusyFrom is when that job began.
	BusyFrom time.Time
	// Ready is when the instance last finished booting.
	Ready time.Time
}

// state is an instance's state in the engine.
type state int

const (
	stopped  state = iota // or not launched yet
	pending               // booting: launched or started, not ready
	free                  // ready, nothing running
	busy                  // a job's command runs
	stopping              // billed until stopped (as the simulator bills it)
)

// machine is one pool instance of the engine.
type machine struct {
	state state
	// gen bumps on every change of state: a timer set for an older
	// generation does nothing.
	gen      int
	billFrom time.Time
	billed   time.Duration
	ready    time.Time
	// task is the job the instance boots for or runs.
	task              *task
	busyFrom, busyEnd time.Time
	starts            int
	// spans are the busy intervals, in order.
	spans []span
}

type span struct{ from, to time.Time }

// task is a job waiting for or running on an instance.
type task struct {
	ev Event
	// exempt: after a kill the owner takes the instance out of the
	// nightly stop until the job has run.
	exempt bool
}

// engine is the discrete-event model the baselines share: jobs from the
// trace are dispatched at once, in nightshift's queue order (priority, then
// age), to a free ready instance, else a stopped one (started), else a new
// one while the pool is under its cap; otherwise they wait for the first
// instance to free up. One job per instance at a time. Notebooks, each on
// its own instance outside the cap, are modelled apart (modelNotebooks).
type engine struct {
	p     Params
	pol   Policy
	now   time.Time
	clock *vclock.Clock
	pool  []*machine
	queue []*task
	res   Result
}

// simulate runs the trace's jobs through the engine with policy pol.
func simulate(tr *Trace, p Params, pol Policy) *engine {
	e := &engine{p: p, pol: pol, clock: vclock.NewAt(time.Time{})}
	for _, ev := range tr.Events {
		if ev.Kind != Notebook {
			e.at(ev.At, func() { e.arrive(ev) })
		}
	}
	e.clock.Drain()
	for _, m := range e.pool {
		e.res.Billed += m.billed
		e.res.Starts += m.starts
	}
	return e
}

// at runs f when the engine's clock reaches t.
func (e *engine) at(t time.Time, f func()) {
	e.clock.At(t, func() {
		e.now = t
		f()
	})
}

// after runs f at t unless m has changed state meanwhile.
func (e *engine) after(m *machine, t time.Time, f func()) {
	m.gen++
	g := m.gen
	e.at(t, func() {
		if m.gen == g {
			f()
		}
	})
}

func (e *engine) arrive(ev Event) {
	e.queue = append(e.queue, &task{ev: ev})
	e.dispatch()
}

// dispatch gives queued jobs instances, highest priority then oldest first.
func (e *engine) dispatch() {
	slices.SortStableFunc(e.queue, func(a, b *task) int {
		if a.ev.Priority != b.ev.Priority {
			return b.ev.Priority - a.ev.Priority
		}
		return a.ev.At.Compare(b.ev.At)
	})
	for len(e.queue) > 0 {
		m := e.pick()
		if m == nil {
			return
		}
		m.task, e.queue = e.queue[0], e.queue[1:]
		if m.state == free {
			e.run(m)
		} else {
			e.boot(m)
		}
	}
}

// pick returns a free ready instance, else a stopped one, else a new one
// within the cap, else nil.
func (e *engine) pick() *machine {
	for _, want := range []state{free, stopped} {
		for _, m := range e.pool {
			if m.state == want && m.task == nil {
				return m
			}
		}
	}
	if len(e.pool) < e.p.Cap {
		m := &machine{}
		e.pool = append(e.pool, m)
		return m
	}
	return nil
}

// boot launches or starts m: billed from running, ready after the agent.
func (e *engine) boot(m *machine) {
	m.state = pending
	m.starts++
	m.billFrom = e.now.Add(e.p.Pending)
	e.after(m, e.now.Add(e.p.Pending+e.p.Agent), func() {
		m.state, m.ready = free, e.now
		if m.task != nil {
			e.run(m)
		} else {
			e.idle(m, e.now)
		}
	})
}

// run starts m's job.
func (e *engine) run(m *machine) {
	e.work(m, m.task.ev.Duration, m.task.exempt)
}

// work makes m busy for d, unless the policy kills it first.
func (e *engine) work(m *machine, d time.Duration, exempt bool) {
	m.state, m.busyFrom, m.busyEnd = busy, e.now, e.now.Add(d)
	if k := e.pol.KillAt(e.now); !exempt && !k.IsZero() && k.Before(m.busyEnd) {
		e.after(m, k, func() { e.kill(m) })
		return
	}
	e.after(m, m.busyEnd, func() { e.finish(m) })
}

// finish ends m's job.
func (e *engine) finish(m *machine) {
	e.res.Training += e.now.Sub(m.busyFrom)
	m.spans = append(m.spans, span{m.busyFrom, e.now})
	m.state = free
	if t := m.task; t != nil {
		e.res.Waits = append(e.res.Waits, m.busyFrom.Sub(t.ev.At))
		m.task = nil
	}
	e.dispatch() // the next queued job may take m at once
	if m.state != free {
		return
	}
	e.idle(m, m.busyFrom)
}

// idle sets the policy's stop timer on m, idle from now.
func (e *engine) idle(m *machine, busyFrom time.Time) {
	s := e.pol.StopAt(Idle{Since: e.now, BusyFrom: busyFrom, Ready: m.ready})
	e.after(m, latest(s, e.now), func() { e.stop(m) })
}

// stop stops m: billed through stopping; then the next queued work may take it.
func (e *engine) stop(m *machine) {
	m.billed += e.now.Add(e.p.StopDelay).Sub(m.billFrom)
	m.state = stopping
	e.after(m, e.now.Add(e.p.StopDelay), func() {
		m.state = stopped
		e.dispatch()
	})
}

// kill stops m under its job: the partial run is lost and its owner
// submits it again.
func (e *engine) kill(m *machine) {
	t := m.task
	e.res.Killed += e.now.Sub(m.busyFrom)
	t.exempt = true
	m.task = nil
	e.at(latest(e.pol.Resubmit(e.now), e.now), func() {
		e.queue = append(e.queue, t)
		e.dispatch()
	})
	e.stop(m)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
