package waste

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParse holds the trace parser to its contract on any text: no panic;
// an error is a *LineError naming a line of the text; a parsed trace obeys
// the format's rules and, written back out, parses to the same events.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "traces", "*.trace"))
	if err != nil || len(files) == 0 {
		f.Fatalf("traces/*.trace: %v, %d files", err, len(files))
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	for _, s := range []string{
		"# a comment line\nstart, 2026-11-02, Europe/Paris\n\nd0 09:14,job,train-resnet,45m          # trailing comment\n" +
			"d0 09:14:30,job,sweep-lr.3,2h30m,5\nd1 02:00,cron,nightly-eval,50m,,1\n2026-11-02T08:00:00Z,notebook,alice-nb,1h30m\nd12 23:59,job,late_one,1s,999,255\n",
		"d0 10:00,job,a,1h\n",
		"2026-12-03T10:00:00+01:00,job,a,1h\n2026-12-02T23:30:00Z,job,b,1h\n",
		"start,2026-11-30\nd1 10:00,job,a,1h\n",
		"start,2026-03-29,Europe/London\nd0 01:30,job,in-the-gap,1h\n",
		"d0 10:00,notebook,nb,2h\nd0 10:30,job,a,1h\nd0 11:00,notebook,nb,1h\n",
		"d0 10:00,job,a,1h,0,0,extra\n",
		"start,2026-02-30\n",
		"start,2026-11-30,Mars/Olympus\n",
		"start,2026-11-30\n2026-11-29T10:00:00Z,job,a,1h\n",
		"d0 25:00,job,a,1h\n",
		"d0 10:00,job,a,48h\n",
		"d0 10:00,job,a,1h,1000\n",
		"d0 10:00,job,a,1h,0,256\n",
		"d0 10:00,notebook,nb,1h,5\n",
		"d0 09:40,notebook,nb,1h read:40m busy:2h 30m,open\nd3 10:00,notebook,nb,work:20m,leave\n",
		"d0 10:00,notebook,nb,1h read:4x\n",
		"d0 10:00,notebook,nb,1h,close\n",
		"d0 10:00,notebook,nb,busy:1h busy:1h ,open\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		tr, err := Parse(strings.NewReader(text))
		if err != nil {
			checkTraceError(t, text, err)
			return
		}
		checkTrace(t, text, tr)
		checkTraceRoundTrip(t, tr)
	})
}

// lineCount is the number of lines bufio.Scanner reads from text.
func lineCount(text string) int {
	n := strings.Count(text, "\n")
	if text != "" && !strings.HasSuffix(text, "\n") {
		n++
	}
	return n
}

func checkTraceError(t *testing.T, text string, err error) {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("Parse(%q) = %T %v; want a *LineError", text, err, err)
	}
	if le.Line < 1 || le.Line > max(1, lineCount(text)) || le.Field == "" || le.Msg == "" {
		t.Errorf("Parse(%q) = line %d field %q msg %q; want a line of the text (%d), a field and a message", text, le.Line, le.Field, le.Msg, lineCount(text))
	}
	if !strings.HasPrefix(err.Error(), fmt.Sprintf("line %d: ", le.Line)) {
		t.Errorf("Parse(%q) = %q; want it to start with its line number", text, err)
	}
}

// checkTrace checks the rules of the format on a parsed trace.
func checkTrace(t *testing.T, text string, tr *Trace) {
	t.Helper()
	if tr.Loc == nil || tr.Start.IsZero() || tr.Start.Location() != tr.Loc {
		t.Fatalf("Parse(%q) start %v in %v; want a start in the trace's zone", text, tr.Start, tr.Loc)
	}
	if h, m, s := tr.Start.Clock(); h != 0 || m != 0 || s != 0 {
		// A zone whose day starts at 01:00 is allowed its own midnight.
		if d, _ := time.ParseInLocation("2006-01-02", tr.Start.Format("2006-01-02"), tr.Loc); !d.Equal(tr.Start) {
			t.Errorf("Parse(%q) start %v; want the start of a day", text, tr.Start)
		}
	}
	lines := lineCount(text)
	for i, ev := range tr.Events {
		if i > 0 && ev.At.Before(tr.Events[i-1].At) {
			t.Errorf("Parse(%q) event %d at %v before the one before it (%v); want time order", text, i, ev.At, tr.Events[i-1].At)
		}
		if ev.At.Before(tr.Start) {
			t.Errorf("Parse(%q) line %d at %v; want no event before the start %v", text, ev.Line, ev.At, tr.Start)
		}
		if y := ev.At.Year(); y < 0 || y > 9999 {
			t.Errorf("Parse(%q) line %d at %v; want a time RFC 3339 can write", text, ev.Line, ev.At)
		}
		if ev.Line < 1 || ev.Line > lines {
			t.Errorf("Parse(%q) event line %d; want 1 to %d", text, ev.Line, lines)
		}
		if ev.Kind != Job && ev.Kind != Cron && ev.Kind != Notebook {
			t.Errorf("Parse(%q) line %d kind %q", text, ev.Line, ev.Kind)
		}
		if ev.Name == "" || len(ev.Name) > MaxNameLen || strings.ContainsAny(ev.Name, ", #\t") {
			t.Errorf("Parse(%q) line %d name %q; want 1-%d characters of A-Z a-z 0-9 . _ -", text, ev.Line, ev.Name, MaxNameLen)
		}
		if ev.Duration < time.Second || ev.Kind != Notebook && ev.Duration > MaxJobDuration {
			t.Errorf("Parse(%q) line %d duration %v", text, ev.Line, ev.Duration)
		}
		if ev.Priority < 0 || ev.Priority > MaxPriority || ev.Exit < 0 || ev.Exit > 255 {
			t.Errorf("Parse(%q) line %d priority %d exit %d", text, ev.Line, ev.Priority, ev.Exit)
		}
		checkSession(t, text, tr, i)
	}
	if s := tr.Summary(); s.Days < 0 || s.Jobs+s.Cron+s.Sessions != len(tr.Events) {
		t.Errorf("Parse(%q) Summary() = %+v for %d events", text, s, len(tr.Events))
	}
}

// checkSession checks a notebook event's session: phases that add up to
// its duration within the limit, a known end, and Next set to the next
// session of the notebook, if any.
func checkSession(t *testing.T, text string, tr *Trace, i int) {
	t.Helper()
	ev := tr.Events[i]
	if (ev.Kind == Notebook) != (ev.Session != nil) {
		t.Fatalf("Parse(%q) line %d kind %s session %v; want a session for a notebook only", text, ev.Line, ev.Kind, ev.Session)
	}
	if ev.Session == nil {
		return
	}
	s := ev.Session
	if len(s.Phases) == 0 || s.Duration() != ev.Duration || ev.Duration > MaxSessionDuration || s.End != Leave && s.End != Open {
		t.Errorf("Parse(%q) line %d session %+v duration %v", text, ev.Line, s, ev.Duration)
	}
	var next time.Time
	for _, later := range tr.Events[i+1:] {
		if later.Kind == Notebook && later.Name == ev.Name {
			next = later.At
			break
		}
	}
	if !s.Next.Equal(next) {
		t.Errorf("Parse(%q) line %d Next %v; want the next session's %v", text, ev.Line, s.Next, next)
	}
}

// render writes a parsed trace in the format: its start line, then every
// event at its absolute time, in UTC: RFC 3339 offsets are whole minutes,
// and a zone's local mean time before 1900 (Paris: +00:09:21) is not.
func render(tr *Trace) string {
	var b strings.Builder
	fmt.Fprintf(&b, "start,%s,%s\n", tr.Start.Format("2006-01-02"), tr.Loc)
	for _, ev := range tr.Events {
		fmt.Fprintf(&b, "%s,%s,%s,", ev.At.UTC().Format(time.RFC3339), ev.Kind, ev.Name)
		if ev.Kind == Notebook {
			fmt.Fprintf(&b, "%s,%s", ev.Session.PhaseText(), ev.Session.End)
		} else {
			fmt.Fprintf(&b, "%s,%d,%d", ev.Duration, ev.Priority, ev.Exit)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// checkTraceRoundTrip parses the rendered trace: the same start, zone and
// events (their lines aside: the text is a new one).
func checkTraceRoundTrip(t *testing.T, tr *Trace) {
	t.Helper()
	text := render(tr)
	got, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("Parse(%q) = %v; want the trace it was written from", text, err)
	}
	if !got.Start.Equal(tr.Start) || got.Loc.String() != tr.Loc.String() {
		t.Errorf("Parse(%q) start %v in %v; want %v in %v", text, got.Start, got.Loc, tr.Start, tr.Loc)
	}
	opts := []cmp.Option{cmpopts.IgnoreFields(Event{}, "Line"), cmp.Comparer(time.Time.Equal)}
	if diff := cmp.Diff(tr.Events, got.Events, opts...); diff != "" {
		t.Errorf("Parse(%q) round trip mismatch (-want +got):\n%s", text, diff)
	}
}

// TestParseRefuses holds the defects fuzzing and its properties found: each
// of these parsed to a trace the format cannot write (or, for the long
// line, failed without a line number).
func TestParseRefuses(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantLine  int
		wantField string
	}{
		{"found by fuzzing: an absolute time in the year -1, UTC", "0000-01-01T0:00:00+01:00,job,0,1h", 1, "at"},
		{"a day past the year 9999", "start,2026-11-30\nd3000000 10:00,job,a,1h\n", 2, "at"},
		{"a day past an int", "d99999999999999999999 10:00,job,a,1h\n", 1, "at"},
		{"a day past the bound", "d3660001 10:00,job,a,1h\n", 1, "at"},
		{"a line longer than the scanner's buffer", "d0 10:00,job,a,1h\n" + strings.Repeat("#", 70000) + "\n", 2, "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Parse(strings.NewReader(tt.give))
			var le *LineError
			if !errors.As(err, &le) || le.Line != tt.wantLine || le.Field != tt.wantField {
				t.Fatalf("Parse(%.80q) = %v, %v; want a *LineError at line %d, field %q", tt.give, tr, err, tt.wantLine, tt.wantField)
			}
		})
	}
}
