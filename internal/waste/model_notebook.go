package waste

import (
	"maps"
	"slices"
	"time"
)

// ReturnWindow: a stop counts as an interruption when the notebook's person
// comes back (its next session arrives) within this long of it — they find
// the instance they had just left stopped, and wait for a boot.
const ReturnWindow = 30 * time.Minute

// notebookGuard bounds how long the model waits for a policy to stop a
// notebook nobody uses any more; every baseline stops one within a week.
const notebookGuard = 60 * 24 * time.Hour

// checker is a policy's rule for one notebook instance, from one boot:
// when it checks, and whether a check stops the instance. A checker may
// keep state; it is asked about every one of its checks, in order.
type checker interface {
	// next returns the first check strictly after t.
	next(t time.Time) time.Time
	// stops reports whether the check at t stops the instance: pr is what
	// its person is doing at t, lastActive the latest moment of kernel
	// activity since the boot (the boot's ready time if none).
	stops(t time.Time, pr Presence, lastActive time.Time) bool
}

// sessionsByNotebook returns each notebook's sessions, in time order, by name.
func sessionsByNotebook(tr *Trace) map[string][]Event {
	out := map[string][]Event{}
	for _, ev := range tr.Events {
		if ev.Kind == Notebook {
			out[ev.Name] = append(out[ev.Name], ev)
		}
	}
	return out
}

// modelNotebooks adds what policy pol does with the trace's notebooks to r.
func modelNotebooks(tr *Trace, p Params, pol Policy, r *Result) {
	byName := sessionsByNotebook(tr)
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		m := &nbModel{p: p, pol: pol, r: r}
		m.run(byName[name])
	}
}

// nbModel is one notebook instance under one policy. Its person's phases
// run from the instance's ready time, one after the other. A stop while
// they are in a session is an interruption: they start the instance again
// at once and carry on with the rest of the phase once it is ready — a
// busy phase's run is lost (killed) and runs again from its start, kept
// up this time (as a SkyPilot job, out of the nightly schedule: a run is
// never lost twice).
type nbModel struct {
	p   Params
	pol Policy
	r   *Result
	// up: the instance is running (ready); else stopped since stopped.
	up       bool
	billFrom time.Time
	stopped  time.Time
	ck       checker
	// t is the model's time; lastActive the last kernel activity since boot.
	t, lastActive time.Time
}

// boot starts the instance at at: billed from running, ready after the agent.
func (m *nbModel) boot(at time.Time) {
	m.r.Starts++
	m.billFrom = at.Add(m.p.Pending)
	m.t = m.billFrom.Add(m.p.Agent)
	m.lastActive = m.t
	m.ck = m.pol.notebook(m.t)
	m.up = true
}

// stop stops the instance at at: billed through stopping.
func (m *nbModel) stop(at time.Time) {
	m.r.Billed += at.Add(m.p.StopDelay).Sub(m.billFrom)
	m.stopped = at.Add(m.p.StopDelay)
	m.up = false
}

// scan asks the checker about each of its checks in [from, to) (to zero:
// no end) while the person does pr, and returns the first that stops the
// instance. keep: the instance is kept up whatever the checker says (a
// busy phase run again after a stop), but the checker still sees it.
func (m *nbModel) scan(from, to time.Time, pr Presence, keep bool) (time.Time, bool) {
	limit := from.Add(notebookGuard)
	for c := m.ck.next(from.Add(-1)); to.IsZero() || c.Before(to); c = m.ck.next(c) {
		if c.After(limit) {
			return c, true // a policy that never stops: stop it here rather than never
		}
		la := m.lastActive
		if pr.Active {
			la = c
		}
		if m.ck.stops(c, pr, la) && !keep {
			return c, true
		}
	}
	return time.Time{}, false
}

// run acts out one notebook's sessions.
func (m *nbModel) run(sessions []Event) {
	for _, ev := range sessions {
		start := latest(ev.At, m.t)
		if !m.up {
			m.boot(latest(start, m.stopped))
		} else {
			m.t = start
		}
		for _, ph := range ev.Session.Phases {
			m.phase(ph)
		}
		m.gap(ev.Session)
	}
}

// phase runs one phase from m.t, through any stops under it.
func (m *nbModel) phase(ph Phase) {
	left, keep := ph.Duration, false
	pr := ph.Activity.Presence()
	for {
		seen := pr
		if keep {
			seen = Presence{Connected: true, KernelBusy: true, Active: true, InSession: true}
		}
		end := m.t.Add(left)
		c, stopped := m.scan(m.t, end, seen, keep)
		if !stopped {
			m.r.Training += left
			m.t = end
			if pr.Active {
				m.lastActive = end
			}
			return
		}
		m.r.Interruptions++
		if ph.Activity == Busy {
			m.r.Killed += c.Sub(m.t)
			left, keep = ph.Duration, true
		} else {
			m.r.Training += c.Sub(m.t)
			left -= c.Sub(m.t)
		}
		m.stop(c)
		m.boot(m.stopped)
	}
}

// gap runs the instance from the session's end until the next session of
// the notebook arrives (for the last, until the policy stops it): the tab
// connected until the next session, with an open end, then nobody.
func (m *nbModel) gap(s *Session) {
	end, next := m.t, s.Next
	segs := []struct {
		to time.Time
		pr Presence
	}{{next, Presence{}}}
	if s.End == Open {
		until := s.OpenUntil(end)
		if !next.IsZero() && next.Before(until) {
			until = next
		}
		segs = append([]struct {
			to time.Time
			pr Presence
		}{{until, Presence{Connected: true}}}, segs...)
	}
	from := end
	for _, sg := range segs {
		if !sg.to.IsZero() && !from.Before(sg.to) {
			continue
		}
		if c, ok := m.scan(from, sg.to, sg.pr, false); ok {
			m.stop(c)
			if !next.IsZero() && next.Sub(c) <= ReturnWindow {
				m.r.Interruptions++
			}
			return
		}
		from = sg.to
	}
}

// boundNotebooks adds the lower bound's notebooks to r: billed exactly
// while their person is in a session, each session starting at its line's
// time (or when the one before it ends), plus one billed boot and stop per
// run of sessions closer than a stop and a boot. It boots just in time, so
// nobody ever waits for it: no interruptions.
func boundNotebooks(tr *Trace, p Params, r *Result) {
	overhead := p.Agent + p.StopDelay
	byName := sessionsByNotebook(tr)
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		var prevEnd time.Time
		for k, ev := range byName[name] {
			start := latest(ev.At, prevEnd)
			if gap := start.Sub(prevEnd); k > 0 && gap < overhead {
				r.Billed += gap
			} else {
				r.Billed += overhead
				r.Starts++
			}
			r.Billed += ev.Duration
			r.Training += ev.Duration
			prevEnd = start.Add(ev.Duration)
		}
	}
}
