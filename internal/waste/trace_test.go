package waste

import (
	"errors"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // traces name IANA zones

	"github.com/google/go-cmp/cmp"
)

func TestParse(t *testing.T) {
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Fatal(err)
	}
	give := `# a comment line
start, 2026-11-02, Europe/Paris

d0 09:14,job,train-resnet,45m          # trailing comment
d0 09:14:30,job,sweep-lr.3,2h30m,5
d1 02:00,cron,nightly-eval,50m,,1
2026-11-02T08:00:00Z,notebook,alice-nb,1h30m
d12 23:59,job,late_one,1s,999,255
`
	tr, err := Parse(strings.NewReader(give))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := tr.Start, time.Date(2026, 11, 2, 0, 0, 0, 0, paris); !got.Equal(want) || tr.Loc.String() != "Europe/Paris" {
		t.Errorf("Parse start = %v in %v; want %v in Europe/Paris", got, tr.Loc, want)
	}
	want := []Event{
		{Line: 7, At: time.Date(2026, 11, 2, 9, 0, 0, 0, paris), Kind: Notebook, Name: "alice-nb", Duration: 90 * time.Minute,
			Session: &Session{Phases: []Phase{{Work, 90 * time.Minute}}, End: Leave}},
		{Line: 4, At: time.Date(2026, 11, 2, 9, 14, 0, 0, paris), Kind: Job, Name: "train-resnet", Duration: 45 * time.Minute},
		{Line: 5, At: time.Date(2026, 11, 2, 9, 14, 30, 0, paris), Kind: Job, Name: "sweep-lr.3", Duration: 150 * time.Minute, Priority: 5},
		{Line: 6, At: time.Date(2026, 11, 3, 2, 0, 0, 0, paris), Kind: Cron, Name: "nightly-eval", Duration: 50 * time.Minute, Exit: 1},
		{Line: 8, At: time.Date(2026, 11, 14, 23, 59, 0, 0, paris), Kind: Job, Name: "late_one", Duration: time.Second, Priority: 999, Exit: 255},
	}
	if diff := cmp.Diff(want, tr.Events); diff != "" {
		t.Errorf("Parse events (-want +got):\n%s", diff)
	}
	if got, want := tr.Summary(), (Summary{Jobs: 3, Cron: 1, Failing: 2, Sessions: 1, Days: 13}); got != want {
		t.Errorf("Summary() = %+v; want %+v", got, want)
	}
}

func TestParseStart(t *testing.T) {
	tests := []struct {
		name string
		give string
		want time.Time
	}{
		{"default start is a Monday in UTC", "d0 10:00,job,a,1h\n", DefaultStart},
		{"absolute times only: the first event's day, UTC", "2026-12-03T10:00:00+01:00,job,a,1h\n2026-12-02T23:30:00Z,job,b,1h\n", time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)},
		{"start line without a zone is UTC", "start,2026-11-30\nd1 10:00,job,a,1h\n", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Parse(strings.NewReader(tt.give))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !tr.Start.Equal(tt.want) {
				t.Errorf("Parse start = %v; want %v", tr.Start, tt.want)
			}
		})
	}
	if DefaultStart.Weekday() != time.Monday {
		t.Errorf("DefaultStart is a %v; want a Monday", DefaultStart.Weekday())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name      string
		give      string
		wantLine  int
		wantField string
	}{
		{"too few fields", "# header\nd0 10:00,job,a\n", 2, "line"},
		{"too many fields", "d0 10:00,job,a,1h,0,0,extra\n", 1, "line"},
		{"not a time", "d0 10:00,job,a,1h\nyesterday,job,b,1h\n", 2, "at"},
		{"no such time of day", "d0 25:00,job,a,1h\n", 1, "at"},
		{"minutes past 59", "d0 10:60,job,a,1h\n", 1, "at"},
		{"unknown kind", "\n\nd0 10:00,jbo,a,1h\n", 3, "kind"},
		{"name with a space", "d0 10:00,job,my job,1h\n", 1, "name"},
		{"name too long", "d0 10:00,job," + strings.Repeat("x", MaxNameLen+1) + ",1h\n", 1, "name"},
		{"empty name", "d0 10:00,job,,1h\n", 1, "name"},
		{"bad duration", "d0 10:00,job,a,2x\n", 1, "duration"},
		{"zero duration", "d0 10:00,job,a,0s\n", 1, "duration"},
		{"negative duration", "d0 10:00,job,a,-1h\n", 1, "duration"},
		{"job past nightshift's max runtime", "d0 10:00,job,a,48h\n", 1, "duration"},
		{"priority not a number", "d0 10:00,job,a,1h,high\n", 1, "priority"},
		{"priority too high", "d0 10:00,job,a,1h,1000\n", 1, "priority"},
		{"exit code not a number", "d0 10:00,job,a,1h,0,oops\n", 1, "exit"},
		{"exit code too large", "d0 10:00,job,a,1h,0,256\n", 1, "exit"},
		{"notebook with a priority", "d0 10:00,notebook,nb,1h,5\n", 1, "end"},
		{"notebook with a priority and an exit code", "d0 10:00,notebook,nb,1h,leave,0\n", 1, "line"},
		{"notebook with a bad phase", "d0 10:00,notebook,nb,1h read:4x\n", 1, "phases"},
		{"notebook with an unknown activity", "d0 10:00,notebook,nb,nap:1h\n", 1, "phases"},
		{"notebook with a zero phase", "d0 10:00,notebook,nb,1h busy:0s\n", 1, "phases"},
		{"notebook with no phase", "d0 10:00,notebook,nb, ,open\n", 1, "phases"},
		{"notebook with a bad end", "d0 10:00,notebook,nb,1h,close\n", 1, "end"},
		{"notebook phases past the session limit", "d0 10:00,notebook,nb,100h busy:100h\n", 1, "phases"},
		{"overlapping sessions, counting every phase", "d0 10:00,notebook,nb,1h read:40m\nd0 11:30,notebook,nb,1h\n", 2, "at"},
		{"second start line", "start,2026-11-30\nstart,2026-12-01\n", 2, "start"},
		{"start after events", "d0 10:00,job,a,1h\nstart,2026-11-30\n", 2, "start"},
		{"start with a bad date", "start,30/11/2026\n", 1, "start"},
		{"start with no such date", "start,2026-02-30\n", 1, "start"},
		{"start with an unknown zone", "start,2026-11-30,Mars/Olympus\n", 1, "start"},
		{"absolute time before the start", "start,2026-11-30\n2026-11-29T10:00:00Z,job,a,1h\n", 2, "at"},
		{"overlapping notebook sessions", "d0 10:00,notebook,nb,2h\nd0 10:30,job,a,1h\nd0 11:00,notebook,nb,1h\n", 3, "at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := Parse(strings.NewReader(tt.give))
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("Parse(%q) = %v, %v; want a *LineError", tt.give, tr, err)
			}
			if le.Line != tt.wantLine || le.Field != tt.wantField {
				t.Errorf("Parse(%q) = line %d field %q (%v); want line %d field %q", tt.give, le.Line, le.Field, err, tt.wantLine, tt.wantField)
			}
			if !strings.HasPrefix(err.Error(), "line ") {
				t.Errorf("error %q does not start with its line number", err)
			}
		})
	}
}
