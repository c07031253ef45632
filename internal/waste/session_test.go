package waste

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseSession(t *testing.T) {
	tests := []struct {
		name string
		give string
		want Session
	}{
		{"an old line: work, then leave", "d0 10:00,notebook,nb,2h10m", Session{Phases: []Phase{{Work, dur("2h10m")}}, End: Leave}},
		{"phases and an open end", "d0 10:00,notebook,nb,1h read:40m busy:3h 20m,open",
			Session{Phases: []Phase{{Work, time.Hour}, {Read, 40 * time.Minute}, {Busy, 3 * time.Hour}, {Work, 20 * time.Minute}}, End: Open}},
		{"work: spelled out, extra spaces, leave named", "d0 10:00,notebook,nb,  work:30m   read:5m ,leave",
			Session{Phases: []Phase{{Work, 30 * time.Minute}, {Read, 5 * time.Minute}}, End: Leave}},
		{"an empty end is leave", "d0 10:00,notebook,nb,busy:2h,", Session{Phases: []Phase{{Busy, 2 * time.Hour}}, End: Leave}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := handTrace(t, tt.give+"\n")
			ev := tr.Events[0]
			if diff := cmp.Diff(&tt.want, ev.Session); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
			if ev.Duration != tt.want.Duration() {
				t.Errorf("duration %v; want the phases' %v", ev.Duration, tt.want.Duration())
			}
		})
	}
	tr := handTrace(t, "d0 10:00,notebook,a,1h,open\nd0 12:00,notebook,b,1h\nd1 09:00,notebook,a,1h\n")
	if a, b, a2 := tr.Events[0].Session, tr.Events[1].Session, tr.Events[2].Session; !a.Next.Equal(tr.Events[2].At) || !b.Next.IsZero() || !a2.Next.IsZero() {
		t.Errorf("Next = %v, %v, %v; want a's second session, then none", a.Next, b.Next, a2.Next)
	}
}

func TestParseSessionMessage(t *testing.T) {
	_, err := Parse(strings.NewReader("# one\n#two\n\n\n\n\nd0 10:00,notebook,nb,1h read:4x\n"))
	if err == nil || !strings.HasPrefix(err.Error(), `line 7: phases: "read:4x": `) {
		t.Errorf("Parse = %v; want line 7: phases: \"read:4x\": …", err)
	}
}

// TestPresence walks a session across its phase boundaries: each phase is
// [start, end), and an open end stays connected until the next session.
func TestPresence(t *testing.T) {
	tr := handTrace(t, "d0 10:00,notebook,nb,1h read:40m busy:2h 30m,open\nd1 09:00,notebook,nb,1h\n")
	s := tr.Events[0].Session
	ready := tr.Events[0].At.Add(90 * time.Second)
	work := Presence{Connected: true, Active: true, InSession: true}
	read := Presence{Connected: true, InSession: true}
	busy := Presence{KernelBusy: true, Active: true, InSession: true}
	open := Presence{Connected: true}
	tests := []struct {
		off  string
		want Presence
	}{
		{"-1s", Presence{}},
		{"0s", work},
		{"59m59s", work},
		{"1h", read},
		{"1h39m59s", read},
		{"1h40m", busy},
		{"3h39m59s", busy},
		{"3h40m", work},
		{"4h9m59s", work},
		{"4h10m", open},
		{"20h", open},
	}
	for _, tt := range tests {
		if got := s.At(ready, ready.Add(dur(tt.off))); got != tt.want {
			t.Errorf("At(ready+%s) = %+v; want %+v", tt.off, got, tt.want)
		}
	}
	// The next session arrives Tuesday 09:00: the old tab is gone.
	next := tr.Events[1].At
	if got := s.At(ready, next.Add(-time.Second)); got != open {
		t.Errorf("At(just before the next session) = %+v; want %+v", got, open)
	}
	if got := s.At(ready, next); got != (Presence{}) {
		t.Errorf("At(the next session) = %+v; want nothing", got)
	}
	// The last session: leave is gone at once; open stays OpenTabLimit.
	last := tr.Events[1].Session
	r2 := next.Add(time.Minute)
	if got := last.At(r2, r2.Add(time.Hour)); got != (Presence{}) {
		t.Errorf("leave end: At = %+v; want nothing", got)
	}
	last.End = Open
	if got := last.At(r2, r2.Add(time.Hour+OpenTabLimit-time.Second)); got != open {
		t.Errorf("open last session: At(just before the limit) = %+v; want %+v", got, open)
	}
	if got := last.At(r2, r2.Add(time.Hour+OpenTabLimit)); got != (Presence{}) {
		t.Errorf("open last session: At(the limit) = %+v; want nothing", got)
	}
}
