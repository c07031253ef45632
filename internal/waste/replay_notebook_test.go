package waste

import (
	"context"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// TestReplayNotebookPhases: nightshift's notebook stays up through
// reading (a browser connected) and a busy kernel with the laptop closed,
// ends within its idle timeout once the person has left, and within its
// connected timeout when they leave the tab open; a stop the person comes
// back to within 30 minutes is counted.
func TestReplayNotebookPhases(t *testing.T) {
	p := DefaultParams()
	// Ready: the agent's registration (billed), then the dispatch and the
	// person's next look; stopped: the wrapper's look, the stop.
	slack := runner.NotebookLook + scheduler.Period
	tests := []struct {
		name              string
		give              string
		least             time.Duration
		starts, interrupt int
	}{
		{
			name:   "reading 40 min, then a busy kernel with the laptop closed",
			give:   "d0 10:00,notebook,nb,30m read:40m busy:2h 10m\n",
			least:  p.Agent + dur("3h20m") + p.NotebookIdle + p.StopDelay,
			starts: 1,
		},
		{
			name: "a tab left open overnight; the next morning's session starts it again",
			give: "d0 10:00,notebook,nb,1h,open\nd1 10:00,notebook,nb,1h\n",
			// The open tab ends the session an hour after the kernel was last
			// active: the connected timeout.
			least:  2*(p.Agent+p.StopDelay) + dur("2h") + p.NotebookIdleConnected + p.NotebookIdle,
			starts: 2,
		},
		{
			name: "the person comes back 20-odd minutes after the session ended",
			give: "d0 10:00,notebook,nb,1h\nd0 11:27,notebook,nb,30m\n",
			// Ended 5 min after 11:00:50; started again at 11:27.
			least:  2*(p.Agent+p.NotebookIdle+p.StopDelay) + dur("1h30m"),
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
			if most := tt.least + time.Duration(tt.starts)*slack; got.Billed < tt.least || got.Billed > most {
				t.Errorf("billed %v; want between %v and %v", got.Billed, tt.least, most)
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
