package waste

import (
	"context"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// TestReplayNotebookPhases: nightshift's watchdog leaves a notebook up
// through reading (a Session Manager session open) and a busy kernel (GPU
// busy), stops it within its idle timeout after the person leaves, and
// keeps a tab left open up until the next session replaces it.
func TestReplayNotebookPhases(t *testing.T) {
	p := DefaultParams()
	tests := []struct {
		name              string
		give              string
		least, most       time.Duration
		starts, interrupt int
	}{
		{
			name: "reading 70 min, then a busy kernel with the laptop closed",
			give: "d0 10:00,notebook,nb,30m read:70m busy:2h 10m\n",
			// 3h50m of phases, then the idle timeout; up to a CloudWatch period and a tick more.
			least: p.Agent + dur("3h50m") + p.IdleTimeout + p.StopDelay, most: p.Agent + dur("3h50m") + p.IdleTimeout + p.StopDelay + cloudWatchPeriod + scheduler.Period,
			starts: 1,
		},
		{
			name: "a tab left open overnight, replaced by the next morning's session",
			give: "d0 10:00,notebook,nb,1h,open\nd1 10:00,notebook,nb,1h\n",
			// Billed from 10:00:40 Monday; Tuesday's session starts on the
			// running instance at 10:00 and ends at 11:00; then the idle timeout.
			least: dur("24h59m20s") + p.IdleTimeout + p.StopDelay, most: dur("24h59m20s") + p.IdleTimeout + p.StopDelay + cloudWatchPeriod + scheduler.Period,
			starts: 1,
		},
		{
			name: "the person comes back 20-odd minutes after the watchdog's stop",
			give: "d0 10:00,notebook,nb,1h\nd0 12:30,notebook,nb,30m\n",
			// Stopped 60-66 min after 11:01:30; started again at 12:30, the
			// same again after 13:01:30.
			least: 2*(p.Agent+p.IdleTimeout+p.StopDelay) + dur("1h30m"), most: 2*(p.Agent+p.IdleTimeout+p.StopDelay+cloudWatchPeriod+scheduler.Period) + dur("1h30m"),
			starts: 2, interrupt: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := handTrace(t, tt.give)
			got, err := Replay(context.Background(), tr, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Findings) > 0 {
				t.Errorf("findings: %q", got.Findings)
			}
			var want time.Duration
			for _, ev := range tr.Events {
				want += ev.Duration
			}
			if got.Training != want || got.Starts != tt.starts || got.Interruptions != tt.interrupt {
				t.Errorf("training %v, starts %d, interruptions %d; want %v, %d, %d", got.Training, got.Starts, got.Interruptions, want, tt.starts, tt.interrupt)
			}
			if got.Billed < tt.least || got.Billed > tt.most {
				t.Errorf("billed %v; want between %v and %v", got.Billed, tt.least, tt.most)
			}
		})
	}
}

func TestInterrupts(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2026, 11, 30, h, m, 0, 0, time.UTC) }
	sessions := []span{{at(10, 0), at(11, 0)}}
	arrivals := []time.Time{at(9, 58), at(13, 20)}
	tests := []struct {
		stop time.Time
		want bool
	}{
		{at(10, 0), true}, {at(10, 59), true}, {at(11, 0), false}, {at(12, 50), true}, {at(12, 49), false}, {at(13, 20), false},
	}
	for _, tt := range tests {
		if got := interrupts(tt.stop, sessions, arrivals); got != tt.want {
			t.Errorf("interrupts(%v) = %v; want %v", tt.stop.Format("15:04"), got, tt.want)
		}
	}
}
