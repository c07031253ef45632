package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// Notebook sessions in a history: nightshift notebooks, whose person works,
// reads with a browser connected, leaves a cell training with the laptop
// closed, and at last leaves — closing the laptop, or leaving the tab open.
// Their timeouts are short so that a history holds several of their ends.
const (
	NotebookIdle          = 5 * time.Minute
	NotebookIdleConnected = 20 * time.Minute
	// notebookLook is the wrapper's look: the tolerance on its timing.
	notebookLook = runner.NotebookLook
)

// presence is what a notebook's person does: away, connected (a browser,
// a port-forwarding session), busy (a kernel active, the GPU busy).
type presence int

const (
	away presence = iota
	connected
	busy
)

// person is one notebook session's person, and what the checker knows of
// them: on which instance, and what they did when.
type person struct {
	job, name, instance string
	// arrived: their phases have begun (the command runs); done: their
	// session has ended, and they act no more.
	arrived, done bool
	// was is what they did, from when: the first entry is the command's
	// start, which the wrapper counts from as if they had been busy then.
	was    []change
	phases []phase
}

type change struct {
	at time.Time
	st presence
}

// last is the latest time at or before t when the person was at least st.
func (p *person) last(st presence, t time.Time) time.Time {
	var out time.Time
	for k, c := range p.was {
		if c.at.After(t) {
			break
		}
		if c.st < st {
			continue
		}
		end := t
		if k+1 < len(p.was) && p.was[k+1].at.Before(t) {
			end = p.was[k+1].at
		}
		out = end
	}
	return out
}

type phase struct {
	state presence
	d     time.Duration
}

// planNotebooks draws the notebook sessions of half the histories, from a
// source of their own (the other half replay as they did before).
func (h *history) planNotebooks() []action {
	r := rand.New(rand.NewPCG(h.seed^0xa4093822299f31d0, h.seed))
	if r.IntN(2) == 0 {
		return nil
	}
	var plan []action
	for k := range 1 + r.IntN(2) {
		name := fmt.Sprintf("nb-%d", k)
		t := time.Duration(r.Int64N(int64(Length / 2)))
		for s := range 1 + r.IntN(3) {
			id := fmt.Sprintf("%s-s%d", name, s)
			var phases []phase
			for range 1 + r.IntN(4) {
				st := []presence{busy, connected, busy, away}[r.IntN(4)] // away: a short absence, laptop closed
				d := time.Duration(1+r.IntN(60)) * time.Minute
				if st == away {
					d = time.Duration(r.IntN(int(NotebookIdle/time.Second))) * time.Second // back before the timeout
				}
				phases = append(phases, phase{st, d})
			}
			end := []presence{away, away, connected}[r.IntN(3)] // laptop closed, or the tab left open
			phases = append(phases, phase{end, 0})
			msg := fmt.Sprintf(`{"id": %q, "notebook": {"name": %q, "idle": %q, "idle_connected": %q}, "max_runtime": "6h"}`,
				id, name, NotebookIdle.String(), NotebookIdleConnected.String())
			h.jobs[id] = 6 * time.Hour
			plan = append(plan, action{at: t, name: "notebook session " + id, do: func(h *history) {
				h.send(msg)
				h.stats.Notebooks++
				p := &person{job: id, name: name, phases: phases}
				h.check.people[id] = p
				h.arrive(p)
			}})
			if r.IntN(5) == 0 {
				plan = append(plan, action{at: t + time.Duration(r.IntN(120))*time.Second, name: "notebook session again " + id, do: func(h *history) { h.send(msg) }})
			}
			t += time.Duration(30+r.IntN(180)) * time.Minute
		}
	}
	return plan
}

// arrive waits for the session's command to run on its instance (as
// `nightshift notebook` waits for its URL), then plays the person's
// phases on it.
func (h *history) arrive(p *person) {
	for _, inv := range h.w.Invocations() {
		if inv.JobID == p.job && !inv.Stop && !inv.Duplicate && inv.Status == "InProgress" {
			p.instance, p.arrived = inv.InstanceID, true
			p.was = []change{{inv.Started, busy}}
			h.play(p, 0)
			return
		}
	}
	if j, err := h.w.Store.Job(context.Background(), p.job); err == nil && j.State.Terminal() {
		return // it ended before its person came: nothing to play
	}
	h.w.Clock.At(h.w.Clock.Now().Add(5*time.Second), func() { h.arrive(p) })
}

// play sets phase k on the person's instance and schedules the next.
func (h *history) play(p *person, k int) {
	if k >= len(p.phases) || h.ended(p) {
		return
	}
	ph := p.phases[k]
	h.show(p, ph.state)
	if ph.d > 0 {
		h.w.Clock.At(h.w.Clock.Now().Add(ph.d), func() { h.play(p, k+1) })
	}
}

// show makes the instance's Jupyter and sessions say what the person does.
func (h *history) show(p *person, st presence) {
	p.was = append(p.was, change{h.w.Clock.Now(), st})
	j := awssim.Jupyter{}
	switch st {
	case busy:
		j = awssim.Jupyter{KernelBusy: true, GPU: 80}
	case connected:
		j = awssim.Jupyter{Connections: 1}
	}
	h.w.Cloud.SetJupyter(p.instance, j)
	h.w.Cloud.Session(p.instance, false)
	if st == connected {
		h.w.Cloud.Session(p.instance, true)
	}
}

// ended reports whether the person's session is over (its record ended,
// or its command on their instance no longer runs): from then on they act
// no more, and the instance may be the next session's. Their browser and
// session go with it.
func (h *history) ended(p *person) bool {
	if p.done {
		return true
	}
	was := h.checking
	h.checking = true
	defer func() { h.checking = was }()
	j, err := h.w.Store.Job(context.Background(), p.job)
	runs := false
	for _, inv := range h.w.Invocations() {
		runs = runs || inv.JobID == p.job && inv.InstanceID == p.instance && !inv.Stop && !inv.Duplicate && inv.Status == "InProgress"
	}
	if err == nil && j.State.Terminal() || !runs {
		h.gone(p)
	}
	return p.done
}

// gone: the person's session is over, or their instance went from under
// them: they leave (a later attempt of the session on another instance
// runs with nobody there).
func (h *history) gone(p *person) {
	p.done = true
	p.was = append(p.was, change{h.w.Clock.Now(), away})
	h.leave(p)
}

// leave takes the person's browser and session off their instance, unless
// the next session's person is on it already.
func (h *history) leave(p *person) {
	for _, o := range h.check.people {
		if o != p && o.instance == p.instance && o.arrived && !o.done {
			return
		}
	}
	h.w.Cloud.SetJupyter(p.instance, awssim.Jupyter{})
	h.w.Cloud.Session(p.instance, false)
}

// l5: a notebook with a busy kernel or a connected person is never ended
// as idle; one its person has left ends within its idle bound plus one
// look, whether or not the control plane is up (the wrapper decides on the
// instance). Its instance's stop afterwards is L1's.
func (c *checker) l5(v *view) {
	h := c.h
	for id, p := range c.people {
		if !p.arrived {
			continue
		}
		h.ended(p) // their instance may have gone from under them
		if !c.l5ended[id] {
			if j, err := h.w.Store.Job(context.Background(), id); err == nil && j.State.Terminal() {
				c.l5ended[id] = true
				c.l5end(p, j, v.now)
				if !p.done {
					h.gone(p)
				}
			}
		}
		var inv sim.Invocation
		runs := false
		for _, r := range v.running {
			if r.JobID == id {
				inv, runs = r, true
			}
		}
		if !runs {
			continue
		}
		// The wrapper counts from its own start: a later attempt's, on
		// another instance, starts afresh.
		awayFor := v.now.Sub(latest(p.last(connected, v.now), inv.Started))
		idleFor := v.now.Sub(latest(p.last(busy, v.now), inv.Started))
		if awayFor > NotebookIdle+notebookLook+slack {
			c.fail("L5", "notebook session %s on %s still runs, its person away for %v (idle %v)", id, inv.InstanceID, awayFor, NotebookIdle)
		}
		if idleFor > NotebookIdleConnected+notebookLook+slack {
			c.fail("L5", "notebook session %s on %s still runs, nothing running for %v (idle_connected %v)", id, inv.InstanceID, idleFor, NotebookIdleConnected)
		}
	}
}

// l5end checks how a notebook session ended: ended as idle (its wrapper's
// exit 0, or the watchdog's idle cancel), its person must have left.
func (c *checker) l5end(p *person, j *job.Job, now time.Time) {
	idleEnd := j.State == job.Succeeded || j.State == job.Cancelled && strings.HasPrefix(j.CancelReason, "idle: ")
	if !idleEnd {
		return
	}
	// When the end was decided, and by whom: the wrapper's look, a
	// JupyterLab stop (seconds) before its command ended by itself (exit
	// 0) — even when the watchdog's cancel, on a record that had not heard
	// of that end yet, is what the job records; else the watchdog's sweep,
	// on data up to a freshness window old, a function's run before its
	// cancel was written.
	tol := notebookLook + notebookEnd
	at := j.CancelRequestedAt.Add(-watchdogLag)
	var last sim.Invocation
	for _, inv := range c.h.w.Invocations() {
		if inv.JobID == j.ID && !inv.Stop && !inv.Duplicate && inv.Started.After(last.Started) {
			last = inv
		}
	}
	if last.Status == "Success" && last.ResponseCode == 0 && !last.Ended.IsZero() {
		at = last.Ended.Add(-notebookEnd)
	} else if j.State == job.Succeeded {
		at = j.EndedAt.Add(-notebookEnd)
	}
	if at.IsZero() || at.After(now) {
		at = now
	}
	present, busyAt := p.last(connected, at), p.last(busy, at)
	// The wrapper last saw them up to a look before they went, and ended
	// JupyterLab up to notebookEnd after it decided.
	if present.After(at.Add(-NotebookIdle+tol)) && busyAt.After(at.Add(-NotebookIdleConnected+tol)) {
		c.fail("L5", "notebook session %s ended as idle at %v (%s, %s) while its person was there: last connected %v before, last busy %v before",
			j.ID, at.Sub(c.start), j.State, j.Reason, at.Sub(present), at.Sub(busyAt))
	}
}

// watchdogLag bounds how old the data of the watchdog's idle cancel is
// when the cancel is written: its freshness window (two periods) and a
// function's run.
const watchdogLag = 2*scheduler.Period + LambdaTimeout

// notebookEnd bounds how long JupyterLab takes to end once its wrapper has
// decided (the harness's model takes 2 s).
const notebookEnd = 5 * time.Second

// notebookInstance reports whether i is a notebook's own instance.
func notebookInstance(i awssim.Instance) bool {
	_, ok := job.NotebookOf(i.Tags["nightshift:pool"])
	return ok
}
