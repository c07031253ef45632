package waste

import (
	"fmt"
	"strings"
	"time"
)

// Activity is what a notebook's person does during one phase of a session.
type Activity string

// The activities of a session's phases.
const (
	// Work is the person at the notebook: browser connected, typing and
	// running cells (kernel activity, GPU used). A trace writes it as a
	// bare duration.
	Work Activity = "work"
	// Read is the tab open and nothing running: browser connected, no busy
	// kernel, no kernel activity, GPU idle ("read:40m").
	Read Activity = "read"
	// Busy is a cell left training with the laptop closed: not connected,
	// a kernel busy, GPU busy ("busy:3h").
	Busy Activity = "busy"
)

// End is how a session ends.
type End string

// The ends of a session.
const (
	// Leave (the default): the person closes the laptop — disconnected,
	// nothing running, gone for good.
	Leave End = "leave"
	// Open: the person walks away leaving the tab open — still connected,
	// nothing running, not coming back. They stay connected until the
	// instance is stopped, their next session of the notebook starts, or,
	// for the notebook's last session, OpenTabLimit after the end.
	Open End = "open"
)

// Limits of a session, each with its reason.
const (
	// MaxSessionDuration bounds a session's phases together: one sitting,
	// with a training cell left over a weekend at most.
	MaxSessionDuration = 7 * 24 * time.Hour
	// OpenTabLimit is how long a tab left open stays connected when no
	// later session of its notebook replaces it: a weekend; past that a
	// laptop sleeps, a VPN or an SSO login expires. Without it, a policy
	// that waits for the connection to close would never stop the instance.
	OpenTabLimit = 72 * time.Hour
)

// Phase is one stretch of a session: an activity for a duration.
type Phase struct {
	Activity Activity
	Duration time.Duration
}

// Session is what the person of a notebook line does, in order, from the
// moment the instance is ready: its phases, then its end.
type Session struct {
	Phases []Phase
	End    End
	// Next is when the next session of the same notebook arrives (its
	// line's time); zero for the notebook's last session. An Open end stays
	// connected until then.
	Next time.Time
}

// Presence is what a notebook's person is doing at a moment, as the tools
// that stop instances could see it.
type Presence struct {
	// Connected: a browser is connected to Jupyter (work, read, and an
	// Open end): an SSH tunnel or a Session Manager session is open.
	Connected bool
	// KernelBusy: a kernel is executing a cell (busy phases). During work
	// cells run on and off, but the kernel's activity is continuous, so
	// KernelBusy is false and Active true: no rule of the report tells the
	// two apart.
	KernelBusy bool
	// Active: kernel activity — the person typing and running cells (work)
	// or a cell training (busy). GPU used.
	Active bool
	// InSession: inside a phase; the person is using the notebook.
	InSession bool
}

// Duration is the time in the session's phases: work, read and busy.
func (s *Session) Duration() time.Duration {
	var d time.Duration
	for _, p := range s.Phases {
		d += p.Duration
	}
	return d
}

// Presence returns what the person does in a phase of this activity.
func (a Activity) Presence() Presence {
	switch a {
	case Work:
		return Presence{Connected: true, Active: true, InSession: true}
	case Read:
		return Presence{Connected: true, InSession: true}
	case Busy:
		return Presence{KernelBusy: true, Active: true, InSession: true}
	}
	return Presence{}
}

// At returns what the person does at t, for an instance that became ready
// at ready and stays up: nothing before ready; each phase in turn; then,
// with an Open end, connected until Next (or OpenTabLimit after the end,
// for the last session). It knows only the trace: a caller whose instance
// stops under the person applies that itself (a stop disconnects them;
// after a restart the rest of the session runs from the new ready time).
func (s *Session) At(ready, t time.Time) Presence {
	if t.Before(ready) {
		return Presence{}
	}
	off := t.Sub(ready)
	for _, p := range s.Phases {
		if off < p.Duration {
			return p.Activity.Presence()
		}
		off -= p.Duration
	}
	end := ready.Add(s.Duration())
	return Presence{Connected: s.End == Open && t.Before(s.OpenUntil(end))}
}

// OpenUntil is when an Open end that began at end stops being connected,
// if the instance stays up: the next session's arrival, or OpenTabLimit
// after end for the last session. Before end for a Leave end.
func (s *Session) OpenUntil(end time.Time) time.Time {
	switch {
	case s.End != Open:
		return end
	case s.Next.IsZero():
		return end.Add(OpenTabLimit)
	}
	return latest(end, s.Next)
}

// PhaseText writes the phases as a trace line does: "2h10m0s read:40m0s busy:3h0m0s".
func (s *Session) PhaseText() string {
	var out []string
	for _, p := range s.Phases {
		if p.Activity == Work {
			out = append(out, p.Duration.String())
		} else {
			out = append(out, string(p.Activity)+":"+p.Duration.String())
		}
	}
	return strings.Join(out, " ")
}

// parsePhases reads a notebook line's phases field.
func parsePhases(n int, field string) ([]Phase, error) {
	words := strings.Fields(field)
	if len(words) == 0 {
		return nil, &LineError{n, "phases", fmt.Sprintf("%q: want one or more phases such as \"2h10m read:40m busy:3h\"", field)}
	}
	var out []Phase
	var total time.Duration
	for _, w := range words {
		act, text := Work, w
		if k, v, ok := strings.Cut(w, ":"); ok {
			switch a := Activity(k); a {
			case Work, Read, Busy:
				act, text = a, v
			default:
				return nil, &LineError{n, "phases", fmt.Sprintf("%q: want a duration (working), read:DURATION or busy:DURATION", w)}
			}
		}
		d, err := time.ParseDuration(text)
		switch {
		case err != nil:
			return nil, &LineError{n, "phases", fmt.Sprintf("%q: want a duration such as 45m or 2h30m", w)}
		case d < time.Second:
			return nil, &LineError{n, "phases", fmt.Sprintf("%q: want at least 1s", w)}
		case d > MaxSessionDuration-total:
			return nil, &LineError{n, "phases", fmt.Sprintf("%q: a session's phases last at most %v together", w, MaxSessionDuration)}
		}
		total += d
		out = append(out, Phase{act, d})
	}
	return out, nil
}

// parseEnd reads a notebook line's optional end field.
func parseEnd(n int, field string) (End, error) {
	switch e := End(field); e {
	case "", Leave:
		return Leave, nil
	case Open:
		return Open, nil
	}
	return "", &LineError{n, "end", fmt.Sprintf("%q: want leave or open", field)}
}
