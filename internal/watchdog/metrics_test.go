package watchdog

import (
	"testing"
	"time"
)

func TestCovers(t *testing.T) {
	to := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	from := to.Add(-30 * time.Minute)
	every := func(start, end time.Time, step time.Duration, skip ...time.Time) Series {
		var s Series
	next:
		for at := start; !at.After(end); at = at.Add(step) {
			for _, k := range skip {
				if at.Equal(k) {
					continue next
				}
			}
			s = append(s, Point{At: at})
		}
		return s
	}
	tests := []struct {
		name string
		give Series
		want bool
	}{
		{"whole window", every(from, to, time.Minute), true},
		{"publishing delay of two periods", every(from, to.Add(-2*time.Minute), time.Minute), true},
		{"no data", nil, false},
		{"starts late: instance not up for the whole window", every(from.Add(10*time.Minute), to, time.Minute), false},
		{"stopped publishing", every(from, to.Add(-10*time.Minute), time.Minute), false},
		{"one missed minute", every(from, to, time.Minute, from.Add(5*time.Minute)), true},
		{"a gap of several minutes", every(from, to, time.Minute, from.Add(5*time.Minute), from.Add(6*time.Minute), from.Add(7*time.Minute)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.give.Covers(from, to, time.Minute); got != tt.want {
				t.Errorf("Covers(%d points) = %v; want %v", len(tt.give), got, tt.want)
			}
		})
	}
}
