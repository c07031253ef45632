package waste

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// looks is when someone looks at the instances: times of day on workdays.
type looks struct {
	times []time.Duration
	days  []time.Weekday
	loc   *time.Location
}

// next returns the first look strictly after t.
func (l looks) next(t time.Time) time.Time {
	lt := t.In(l.loc)
	for d := 0; d <= 7; d++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+d, 0, 0, 0, 0, l.loc)
		if !slices.Contains(l.days, day.Weekday()) {
			continue
		}
		for _, tod := range l.times {
			at := atClock(day, tod)
			if at.After(t) {
				return at
			}
		}
	}
	return time.Time{} // unreachable with at least one look a week
}

func (l looks) String() string {
	var ts []string
	for _, t := range l.times {
		ts = append(ts, clock(t))
	}
	return strings.Join(ts, ", ") + " " + weekdays(l.days)
}

func weekdays(ds []time.Weekday) string {
	if slices.Equal(ds, []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}) {
		return "Mon-Fri"
	}
	var out []string
	for _, d := range ds {
		out = append(out, d.String()[:3])
	}
	return strings.Join(out, ",")
}

// atClock returns the time of day tod on day's date, in day's location.
func atClock(day time.Time, tod time.Duration) time.Time {
	return time.Date(day.Year(), day.Month(), day.Day(), int(tod/time.Hour), int(tod/time.Minute%60), int(tod/time.Second%60), 0, day.Location())
}

// gridAtOrAfter returns the first point of the grid anchor + k·step at or after t.
func gridAtOrAfter(anchor time.Time, step time.Duration, t time.Time) time.Time {
	d := t.Sub(anchor)
	if d <= 0 {
		return anchor
	}
	return anchor.Add((d + step - 1) / step * step)
}

// gridBefore returns the last point of the grid anchor + k·step (k ≥ 0)
// strictly before t, and false when there is none.
func gridBefore(anchor time.Time, step time.Duration, t time.Time) (time.Time, bool) {
	d := t.Sub(anchor)
	if d <= 0 {
		return time.Time{}, false
	}
	return anchor.Add((d - 1) / step * step), true
}

// byHand is a person who stops an idle instance the next time they look.
type byHand struct{ looks looks }

func (h byHand) StopAt(i Idle) time.Time        { return h.looks.next(i.Since) }
func (byHand) KillAt(time.Time) time.Time       { return time.Time{} }
func (h byHand) Resubmit(t time.Time) time.Time { return h.looks.next(t) }
func (h byHand) String() string                 { return "by hand (looks " + h.looks.String() + ")" }

// notebook: at each look, the person stops a notebook nobody is in a
// session on — a busy kernel is someone's work, a tab left open by someone
// who has gone is not.
func (h byHand) notebook(time.Time) checker { return handChecker{h.looks} }

type handChecker struct{ looks looks }

func (h handChecker) next(t time.Time) time.Time                     { return h.looks.next(t) }
func (handChecker) stops(_ time.Time, pr Presence, _ time.Time) bool { return !pr.InSession }

// autostop is SkyPilot's autostop (sky/skylet/events.py AutostopEvent):
// every check (60 s, from the skylet's start at boot) that finds a job
// running, or an SSH session open, resets the last-active time to the
// check's own time, as does submitting a job; the first check at which
// floor((now - last active) / 60 s) ≥ idle minutes stops the cluster.
type autostop struct{ idle, check time.Duration }

func (a autostop) StopAt(i Idle) time.Time {
	last := i.BusyFrom
	if g, ok := gridBefore(i.Ready, a.check, i.Since); ok && !g.Before(i.BusyFrom) {
		last = g // the last check that saw the job running
	}
	return gridAtOrAfter(i.Ready, a.check, last.Add(a.idle))
}

func (autostop) KillAt(time.Time) time.Time     { return time.Time{} }
func (autostop) Resubmit(t time.Time) time.Time { return t }

// notebook: the skylet checks every minute from the boot; a connected
// browser is an open SSH tunnel (active); it does not see Jupyter's
// kernels, so a cell training with the laptop closed is idle to it.
func (a autostop) notebook(ready time.Time) checker {
	return &autostopChecker{a: a, ready: ready, last: ready}
}

type autostopChecker struct {
	a           autostop
	ready, last time.Time
}

func (c *autostopChecker) next(t time.Time) time.Time {
	return gridAtOrAfter(c.ready, c.a.check, t.Add(1))
}

func (c *autostopChecker) stops(t time.Time, pr Presence, _ time.Time) bool {
	if pr.Connected {
		c.last = t
	}
	return t.Sub(c.last)/c.a.check*c.a.check >= c.a.idle
}

func (a autostop) String() string {
	return fmt.Sprintf("SkyPilot autostop (%v idle, checked every %v)", short(a.idle), short(a.check))
}

// sagemaker is the SageMaker notebook auto-stop-idle sample: cron runs
// autostop.py every 5 minutes on the wall clock; it stops the instance
// when no kernel is busy and now - last_activity > IDLE_TIME (strictly).
// For jobs, "busy kernel" is a job running and last_activity its end.
type sagemaker struct{ idle, cron time.Duration }

func (s sagemaker) StopAt(i Idle) time.Time {
	// The first cron tick strictly after Since + idle.
	return i.Since.Add(s.idle).Truncate(s.cron).Add(s.cron)
}

func (sagemaker) KillAt(time.Time) time.Time     { return time.Time{} }
func (sagemaker) Resubmit(t time.Time) time.Time { return t }

// notebook: autostop.py stops the instance when no kernel is busy and the
// last kernel activity (or, with none, the instance's start) is more than
// the idle time ago; --ignore-connections: a connected browser does not
// count, and reading runs no cell.
func (s sagemaker) notebook(time.Time) checker { return s }

func (s sagemaker) next(t time.Time) time.Time { return t.Truncate(s.cron).Add(s.cron) }

func (s sagemaker) stops(t time.Time, pr Presence, lastActive time.Time) bool {
	return !pr.KernelBusy && t.Sub(lastActive) > s.idle
}

func (s sagemaker) String() string {
	return fmt.Sprintf("SageMaker auto-stop-idle sample (%v idle, cron every %v)", short(s.idle), short(s.cron))
}

// nightly is Instance Scheduler on AWS with a stop-only period: instances
// are started by hand (on demand) and, at the transition to the stopped
// period, every running instance of the schedule is stopped, work or no
// work. Not enforced: an instance started after the stop time runs until
// the next day's. A killed job's owner submits it again the next time they
// look, and takes that instance out of the schedule until the job has run.
type nightly struct {
	at    time.Duration
	run   time.Duration
	loc   *time.Location
	looks looks
}

func (n nightly) StopAt(i Idle) time.Time          { return n.next(i.Since, false) }
func (n nightly) KillAt(start time.Time) time.Time { return n.next(start, true) }
func (n nightly) Resubmit(t time.Time) time.Time   { return n.looks.next(t) }

// next returns the first scheduler run at which the daily stop acts, at or
// after t (strictly after, when strict).
func (n nightly) next(t time.Time, strict bool) time.Time {
	lt := t.In(n.loc)
	for d := -1; d <= 2; d++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+d, 0, 0, 0, 0, n.loc)
		// The scheduler runs on a 5-minute grid: the first run at or after the stop time.
		s := atClock(day, n.at)
		if r := s.Truncate(n.run); r.Before(s) {
			s = r.Add(n.run)
		}
		if s.After(t) || !strict && s.Equal(t) {
			return s
		}
	}
	return time.Time{}
}

// notebook: the daily stop stops a running notebook whatever its person
// is doing.
func (n nightly) notebook(time.Time) checker { return nightlyChecker{n} }

type nightlyChecker struct{ n nightly }

func (c nightlyChecker) next(t time.Time) time.Time              { return c.n.next(t, true) }
func (nightlyChecker) stops(time.Time, Presence, time.Time) bool { return true }

func (n nightly) String() string {
	return fmt.Sprintf("nightly stop at %s (Instance Scheduler, stop-only period)", clock(n.at))
}

// immediate stops an instance the moment it is idle: the lower bound's
// schedule (see bound).
type immediate struct{}

func (immediate) String() string                 { return "lower bound (one boot per burst)" }
func (immediate) StopAt(i Idle) time.Time        { return i.Since }
func (immediate) KillAt(time.Time) time.Time     { return time.Time{} }
func (immediate) Resubmit(t time.Time) time.Time { return t }

// notebook: the bound's notebooks are computed by boundNotebooks.
func (immediate) notebook(time.Time) checker { return nil }

// short renders 5m0s as 5m and 1h0m0s as 60m.
func short(d time.Duration) string {
	switch {
	case d%time.Minute != 0:
		return d.String()
	case d >= time.Hour && d%time.Hour == 0 && d > time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", d/time.Minute)
}
