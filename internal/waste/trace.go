package waste

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Kind is what a trace line describes.
type Kind string

// The kinds of trace lines.
const (
	// Job is a training job someone submits.
	Job Kind = "job"
	// Cron is a job a schedule submits (EventBridge Scheduler for nightshift).
	Cron Kind = "cron"
	// Notebook is a session on a notebook instance: its person's phases
	// (work, read, busy) from the moment it is ready, then its end (see
	// Session).
	Notebook Kind = "notebook"
)

// Limits of a trace line, each with its reason.
const (
	// MaxJobDuration: nightshift's max_runtime is at most 48 h (SSM's limit)
	// and the replay gives each job its duration plus ReplayRuntimeMargin.
	MaxJobDuration = 47 * time.Hour
	// MaxNameLen leaves room in a nightshift job id (64 characters) for the
	// replay's prefix and a cron job's folded schedule time.
	MaxNameLen = 32
	// MaxPriority is nightshift's highest job priority.
	MaxPriority = job.MaxPriority
	// maxDay bounds a "dN" offset before any date arithmetic: 10,000 years
	// of days, more than RFC 3339's years 0000-9999 from any start.
	maxDay = 10000 * 366
)

// DefaultStart is day 0 of a trace that names no start and has no absolute
// times: a Monday, so that d0-d4 are workdays.
var DefaultStart = time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)

// Event is one line of a trace.
type Event struct {
	// Line is the line number in the trace file, from 1.
	Line int
	At   time.Time
	Kind Kind
	// Name names the job, or the notebook instance (one per name).
	Name string
	// Duration is how long a job's command runs, or the time in a
	// notebook session's phases.
	Duration time.Duration
	// Session is a notebook line's phases and end; nil for a job.
	Session *Session
	// Priority orders queued jobs (higher first), as nightshift does.
	Priority int
	// Exit is the exit code the job's command ends with, after Duration.
	Exit int
}

// Trace is a parsed workload trace.
type Trace struct {
	// Start is midnight of day 0 in Loc; times of day are read in Loc.
	Start time.Time
	Loc   *time.Location
	// Events are in time order (file order among equal times).
	Events []Event
}

// LineError is a trace line that cannot be read.
type LineError struct {
	Line int
	// Field names the part of the line that is wrong.
	Field string
	Msg   string
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, e.Msg)
}

var (
	nameRe   = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	offsetRe = regexp.MustCompile(`^d(\d+) (\d{1,2}):(\d{2})(?::(\d{2}))?$`)
	dateRe   = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// raw is a line read before the trace's start is known.
type raw struct {
	ev Event
	// day and tod are set for a "dN HH:MM" time; abs for an RFC 3339 one.
	day int
	tod time.Duration
	abs bool
}

// Parse reads a trace: one event a line, "at,kind,name,duration[,priority[,exit]]"
// for a job, "at,notebook,name,phases[,end]" for a notebook session,
// with an optional first line "start,YYYY-MM-DD[,Time/Zone]". A '#' starts
// a comment. See docs/waste.md.
func Parse(r io.Reader) (*Trace, error) {
	tr := &Trace{Loc: time.UTC}
	var lines []raw
	var start time.Time
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		text := sc.Text()
		if k := strings.IndexByte(text, '#'); k >= 0 {
			text = text[:k]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		fields := strings.Split(text, ",")
		for k := range fields {
			fields[k] = strings.TrimSpace(fields[k])
		}
		if fields[0] == "start" {
			switch {
			case !start.IsZero():
				return nil, &LineError{n, "start", "a trace has one start line"}
			case len(lines) > 0:
				return nil, &LineError{n, "start", "the start line must come before every event"}
			case len(fields) < 2 || len(fields) > 3:
				return nil, &LineError{n, "start", fmt.Sprintf("want start,YYYY-MM-DD[,Time/Zone], got %d fields", len(fields))}
			case !dateRe.MatchString(fields[1]):
				return nil, &LineError{n, "start", fmt.Sprintf("%q: want a date such as 2026-11-02", fields[1])}
			}
			if len(fields) == 3 {
				loc, err := time.LoadLocation(fields[2])
				if err != nil {
					return nil, &LineError{n, "start", fmt.Sprintf("time zone %q: want an IANA name such as Europe/Paris", fields[2])}
				}
				tr.Loc = loc
			}
			d, err := time.ParseInLocation("2006-01-02", fields[1], tr.Loc)
			if err != nil {
				return nil, &LineError{n, "start", fmt.Sprintf("%q: no such date", fields[1])}
			}
			start = d
			continue
		}
		rw, err := parseLine(n, fields)
		if err != nil {
			return nil, err
		}
		lines = append(lines, rw)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return nil, &LineError{n + 1, "line", fmt.Sprintf("longer than %d bytes", bufio.MaxScanTokenSize)}
	} else if err != nil {
		return nil, fmt.Errorf("read trace: %w", err)
	}
	if err := tr.resolve(lines, start); err != nil {
		return nil, err
	}
	return tr, tr.checkNotebooks()
}

// resolve sets the trace's start (start, when the trace names one) and
// every event's time.
func (tr *Trace) resolve(lines []raw, start time.Time) error {
	switch {
	case !start.IsZero():
		tr.Start = start
	case len(lines) > 0 && !slices.ContainsFunc(lines, func(r raw) bool { return !r.abs }):
		// Only absolute times: day 0 is the first event's day, in UTC.
		first := lines[0].ev.At
		for _, r := range lines {
			if r.ev.At.Before(first) {
				first = r.ev.At
			}
		}
		first = first.UTC()
		tr.Start = time.Date(first.Year(), first.Month(), first.Day(), 0, 0, 0, 0, time.UTC)
	default:
		tr.Start = DefaultStart
	}
	for _, r := range lines {
		ev := r.ev
		if !r.abs {
			h, m, s := int(r.tod/time.Hour), int(r.tod/time.Minute%60), int(r.tod/time.Second%60)
			ev.At = time.Date(tr.Start.Year(), tr.Start.Month(), tr.Start.Day()+r.day, h, m, s, 0, tr.Loc)
		} else if ev.At.Before(tr.Start) {
			return &LineError{ev.Line, "at", fmt.Sprintf("%s is before the trace's start %s", ev.At.Format(time.RFC3339), tr.Start.Format(time.RFC3339))}
		}
		// A trace's times, and the start derived from them, must be ones
		// the format can write: RFC 3339's years, in UTC and where they are.
		if y, u := ev.At.Year(), ev.At.UTC().Year(); y < 0 || y > 9999 || u < 0 || u > 9999 {
			return &LineError{ev.Line, "at", fmt.Sprintf("%d-%02d-%02d (UTC): want a time in the years 0000 to 9999", ev.At.UTC().Year(), ev.At.UTC().Month(), ev.At.UTC().Day())}
		}
		tr.Events = append(tr.Events, ev)
	}
	slices.SortStableFunc(tr.Events, func(a, b Event) int { return a.At.Compare(b.At) })
	return nil
}

// checkNotebooks rejects overlapping sessions of one notebook: one person
// cannot start a session on an instance they are already using. It tells
// each session when the next one of its notebook arrives.
func (tr *Trace) checkNotebooks() error {
	last := map[string]Event{}
	for _, ev := range tr.Events {
		if ev.Kind != Notebook {
			continue
		}
		if prev, ok := last[ev.Name]; ok {
			if ev.At.Before(prev.At.Add(prev.Duration)) {
				return &LineError{ev.Line, "at", fmt.Sprintf("notebook %s: this session starts before the one on line %d ends (%s)", ev.Name, prev.Line, prev.At.Add(prev.Duration).In(tr.Loc).Format("Mon 15:04"))}
			}
			prev.Session.Next = ev.At
		}
		last[ev.Name] = ev
	}
	return nil
}

func parseLine(n int, f []string) (raw, error) {
	var r raw
	r.ev.Line = n
	if len(f) < 4 || len(f) > 6 {
		return r, &LineError{n, "line", fmt.Sprintf("want at,kind,name,duration[,priority[,exit]], got %d fields", len(f))}
	}
	if err := r.parseAt(f[0]); err != nil {
		return r, &LineError{n, "at", err.Error()}
	}
	switch k := Kind(f[1]); k {
	case Job, Cron, Notebook:
		r.ev.Kind = k
	default:
		return r, &LineError{n, "kind", fmt.Sprintf("%q: want job, cron or notebook", f[1])}
	}
	if !nameRe.MatchString(f[2]) || len(f[2]) > MaxNameLen {
		return r, &LineError{n, "name", fmt.Sprintf("%q: want 1-%d characters of A-Z a-z 0-9 . _ -", f[2], MaxNameLen)}
	}
	r.ev.Name = f[2]
	if r.ev.Kind == Notebook {
		return r, r.parseSession(n, f)
	}
	d, err := time.ParseDuration(f[3])
	switch {
	case err != nil:
		return r, &LineError{n, "duration", fmt.Sprintf("%q: want a duration such as 45m or 2h30m", f[3])}
	case d < time.Second:
		return r, &LineError{n, "duration", fmt.Sprintf("%q: want at least 1s", f[3])}
	case d > MaxJobDuration:
		return r, &LineError{n, "duration", fmt.Sprintf("%q: a job runs at most %v (nightshift's max_runtime is 48h)", f[3], MaxJobDuration)}
	}
	r.ev.Duration = d
	if len(f) > 4 && f[4] != "" {
		p, err := strconv.Atoi(f[4])
		if err != nil || p < 0 || p > MaxPriority {
			return r, &LineError{n, "priority", fmt.Sprintf("%q: want 0-%d", f[4], MaxPriority)}
		}
		r.ev.Priority = p
	}
	if len(f) > 5 {
		e, err := strconv.Atoi(f[5])
		if err != nil || e < 0 || e > 255 {
			return r, &LineError{n, "exit", fmt.Sprintf("%q: want an exit code 0-255", f[5])}
		}
		r.ev.Exit = e
	}
	return r, nil
}

// parseSession reads a notebook line's phases and end.
func (r *raw) parseSession(n int, f []string) error {
	if len(f) > 5 {
		return &LineError{n, "line", fmt.Sprintf("want at,notebook,name,phases[,end], got %d fields", len(f))}
	}
	phases, err := parsePhases(n, f[3])
	if err != nil {
		return err
	}
	s := &Session{Phases: phases, End: Leave}
	if len(f) > 4 {
		if s.End, err = parseEnd(n, f[4]); err != nil {
			return err
		}
	}
	r.ev.Session, r.ev.Duration = s, s.Duration()
	return nil
}

// parseAt reads "dN HH:MM[:SS]" or an RFC 3339 time.
func (r *raw) parseAt(s string) error {
	if m := offsetRe.FindStringSubmatch(s); m != nil {
		day, err := strconv.Atoi(m[1])
		if err != nil || day > maxDay {
			return fmt.Errorf("%q: want a day from d0 to d%d", s, maxDay)
		}
		h, _ := strconv.Atoi(m[2])
		min, _ := strconv.Atoi(m[3])
		sec := 0
		if m[4] != "" {
			sec, _ = strconv.Atoi(m[4])
		}
		if h > 23 || min > 59 || sec > 59 {
			return fmt.Errorf("%q: no such time of day", s)
		}
		r.day = day
		r.tod = time.Duration(h)*time.Hour + time.Duration(min)*time.Minute + time.Duration(sec)*time.Second
		return nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return fmt.Errorf("%q: want an offset such as \"d0 09:14\" or an RFC 3339 time such as 2026-11-02T09:14:00+01:00", s)
	}
	r.ev.At, r.abs = t, true
	return nil
}

// Summary counts a trace's events.
type Summary struct {
	Jobs, Cron, Failing, Sessions int
	// Days spans day 0 to the last event's day.
	Days int
}

// Summary counts the trace's jobs, cron jobs, failing jobs and notebook sessions.
func (tr *Trace) Summary() Summary {
	var s Summary
	for _, ev := range tr.Events {
		switch ev.Kind {
		case Job:
			s.Jobs++
		case Cron:
			s.Cron++
		case Notebook:
			s.Sessions++
		}
		if ev.Exit != 0 {
			s.Failing++
		}
	}
	if n := len(tr.Events); n > 0 {
		last := tr.Events[n-1].At.In(tr.Loc)
		s.Days = int(last.Sub(tr.Start).Hours()/24) + 1
	}
	return s
}
