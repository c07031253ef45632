package waste

import (
	"maps"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// notebookDriver is the seam between the replay and the trace's notebook
// sessions: how a notebook's instance comes to exist and how its person's
// phases show on it. Today's driver (watchedNotebooks) is an instance the
// person launches by hand, tagged nightshift:watch=true; a driver for
// nightshift's own notebook jobs can take its place without touching the
// rest of the replay.
type notebookDriver interface {
	// arrive acts out a session's line at its time.
	arrive(ev Event)
	// usage is what instance id's metrics show at t, false for an instance
	// that is not a notebook's (the simulator's own model then applies).
	usage(id string, t time.Time) (awssim.Usage, bool)
	// owns reports whether instance id is a notebook's.
	owns(id string) bool
	// measure adds the notebooks' training, interruptions and idle time
	// before each stop to r, given every instance's stop times.
	measure(r *Replayed, stops map[string][]time.Time)
}

// watchedNotebooks: each notebook is an instance its person launches
// (Cloud.Launch, tagged nightshift:watch=true) at its first session and
// starts again (StartInstances, by hand) for each later one if it was
// stopped. Its metrics are busy during work and busy phases and quiet
// otherwise; a connected browser (work, read, an open end) is an open
// Session Manager session, which the watchdog's idle rule sees.
type watchedNotebooks struct {
	rp     *replay
	byName map[string]*watched
	byID   map[string]*watched
}

// watched is one notebook instance and what its person did on it, in sim time.
type watched struct {
	name, id string
	// active: work and busy phases (metrics busy); inUse: active or
	// connected; sessions: in a phase; arrivals: its lines' times.
	active, inUse, sessions []span
	arrivals                []time.Time
	// seq counts arrivals: a connection change scheduled by an earlier
	// session does nothing once a later one has arrived.
	seq       int
	connected bool
}

func newWatchedNotebooks(rp *replay) *watchedNotebooks {
	return &watchedNotebooks{rp: rp, byName: map[string]*watched{}, byID: map[string]*watched{}}
}

func (wn *watchedNotebooks) owns(id string) bool { return wn.byID[id] != nil }

// usage: busy while a work or busy phase runs in any part of the minute,
// quiet otherwise.
func (wn *watchedNotebooks) usage(id string, t time.Time) (awssim.Usage, bool) {
	nb, ok := wn.byID[id]
	if !ok {
		return awssim.Usage{}, false
	}
	end := t.Add(time.Minute)
	for k := len(nb.active) - 1; k >= 0; k-- {
		s := nb.active[k]
		if s.from.Before(end) && t.Before(s.to) {
			return activeUsage, true
		}
		if !s.to.After(t) {
			break
		}
	}
	return leftOpenUsage, true
}

// arrive is a notebook's person arriving: they launch the instance the
// first time, start it when stopped (after it has finished stopping), and
// begin their phases when it is ready — or when their previous session
// ends, if that one started late. A tab left open by their previous
// session is replaced by this one.
func (wn *watchedNotebooks) arrive(ev Event) {
	rp := wn.rp
	now := rp.w.Clock.Now()
	boot := rp.p.Pending + rp.p.Agent
	nb := wn.byName[ev.Name]
	if nb == nil {
		id := rp.w.Launch(rp.p.Type, map[string]string{watchdog.TagWatch: "true", "Name": ev.Name})
		nb = &watched{name: ev.Name, id: id}
		wn.byName[ev.Name], wn.byID[id] = nb, nb
		wn.play(nb, now.Add(boot), ev)
		return
	}
	inst, ok := rp.instance(nb.id)
	if !ok {
		rp.finding("line %d: notebook instance %s of %s is gone", ev.Line, nb.id, nb.name)
		return
	}
	switch inst.State {
	case "running", "pending":
		start := latest(now, inst.LaunchTime.Add(boot))
		if n := len(nb.sessions); n > 0 {
			start = latest(start, nb.sessions[n-1].to)
		}
		wn.play(nb, start, ev)
	case "stopped":
		if err := rp.w.Cloud.ByHand(nb.id, "start"); err != nil {
			rp.finding("line %d: the user of %s could not start it: %v", ev.Line, nb.name, err)
			return
		}
		wn.play(nb, now.Add(boot), ev)
	case "stopping":
		rp.at(now.Add(rp.p.StopDelay), func() { wn.arrive(ev) })
	default:
		rp.finding("line %d: notebook instance %s of %s is %s", ev.Line, nb.id, nb.name, inst.State)
	}
}

// connect opens or closes the person's Session Manager session, if it
// changes and the arrival that asked is still the latest.
func (wn *watchedNotebooks) connect(nb *watched, seq int, open bool) {
	if nb.seq != seq || nb.connected == open {
		return
	}
	if i, _ := wn.rp.instance(nb.id); open && i.State != "running" {
		return // a stopped instance has no session to open
	}
	nb.connected = open
	wn.rp.w.Cloud.Session(nb.id, open)
}

// play schedules the session's phases from start, and its end, and checks
// afterwards that the instance stayed up meanwhile.
func (wn *watchedNotebooks) play(nb *watched, start time.Time, ev Event) {
	rp := wn.rp
	nb.seq++
	seq := nb.seq
	nb.arrivals = append(nb.arrivals, ev.At.Add(rp.shift))
	wn.connect(nb, seq, false) // the old tab, if left open, is gone
	end := rp.phases(nb, start, ev.Session, func(p Presence) { wn.connect(nb, seq, p.Connected) })
	inst, _ := rp.instance(nb.id)
	stops := inst.Stops
	rp.at(end, func() {
		if i, _ := rp.instance(nb.id); i.Stops != stops || i.State != "running" {
			rp.finding("line %d: notebook %s (%s) was stopped while its person was in a session (%s, by %s, last action %q)",
				ev.Line, nb.name, nb.id, i.State, i.StoppedBy, i.Tags["nightshift:last-action"])
		}
	})
}

// phases records a session's phases from start in nb's spans, has show
// act out what the person does at each phase's start and after the end
// (nothing after a Leave end; connected after an Open end, until the next
// session or OpenTabLimit), and returns when the phases end.
func (rp *replay) phases(nb *watched, start time.Time, s *Session, show func(Presence)) time.Time {
	t := start
	for _, ph := range s.Phases {
		span := span{t, t.Add(ph.Duration)}
		pr := ph.Activity.Presence()
		if pr.Active {
			nb.active = append(nb.active, span)
		}
		if pr.Active || pr.Connected {
			nb.inUse = append(nb.inUse, span)
		}
		rp.at(t, func() { show(pr) })
		t = span.to
	}
	nb.sessions = append(nb.sessions, span{start, t})
	end := t
	if s.End == Open {
		until := end.Add(OpenTabLimit)
		if !s.Next.IsZero() {
			until = latest(end, s.Next.Add(rp.shift))
		}
		nb.inUse = append(nb.inUse, span{end, until})
		rp.at(end, func() { show(Presence{Connected: true}) })
		rp.at(until, func() { show(Presence{}) })
	} else {
		rp.at(end, func() { show(Presence{}) })
	}
	return end
}

// measure: training is the time in the sessions' phases; an interruption
// is a stop inside a session, or one the person came back to within
// ReturnWindow; the idle time before a stop runs from the end of the last
// stretch of use the watchdog could see (activity or a connection).
func (wn *watchedNotebooks) measure(r *Replayed, stops map[string][]time.Time) {
	for _, name := range slices.Sorted(maps.Keys(wn.byName)) {
		nb := wn.byName[name]
		for _, s := range nb.sessions {
			r.Training += s.to.Sub(s.from)
		}
		for _, at := range stops[nb.id] {
			if interrupts(at, nb.sessions, nb.arrivals) {
				r.Interruptions++
			}
			var last time.Time
			for _, s := range nb.inUse {
				if !s.to.After(at) && s.to.After(last) {
					last = s.to
				}
			}
			if !last.IsZero() {
				r.NotebookIdle.add(at.Sub(last))
			}
		}
	}
}

// interrupts reports whether a stop at at interrupts a notebook's person:
// inside one of its sessions, or followed within ReturnWindow by an arrival.
func interrupts(at time.Time, sessions []span, arrivals []time.Time) bool {
	for _, s := range sessions {
		if !at.Before(s.from) && at.Before(s.to) {
			return true
		}
	}
	for _, a := range arrivals {
		if a.After(at) && a.Sub(at) <= ReturnWindow {
			return true
		}
	}
	return false
}
