package watchdog

import (
	"testing"
	"time"
)

// states is a NotebookState series, one point a minute ending at end.
func states(end time.Time, vs ...float64) Series {
	s := make(Series, len(vs))
	for k, v := range vs {
		s[k] = Point{At: end.Add(-time.Duration(len(vs)-1-k) * time.Minute), Value: v}
	}
	return s
}

func TestNotebookIdle(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	base := NotebookInput{Now: now, Started: now.Add(-3 * time.Hour), Idle: 5 * time.Minute, IdleConnected: 60 * time.Minute}
	zeros := func(n int) []float64 { return make([]float64, n) }
	ones := func(n int) []float64 {
		v := make([]float64, n)
		for k := range v {
			v[k] = 1
		}
		return v
	}
	twos := func(n int) []float64 {
		v := make([]float64, n)
		for k := range v {
			v[k] = 2
		}
		return v
	}
	for _, c := range []struct {
		name string
		in   func(NotebookInput) NotebookInput
		idle bool
	}{
		{"away past idle + slack", func(in NotebookInput) NotebookInput {
			in.State = states(now, append(twos(60), zeros(8)...)...)
			return in
		}, true},
		{"away for idle only: the wrapper's turn", func(in NotebookInput) NotebookInput {
			in.State = states(now, append(twos(60), zeros(5)...)...)
			return in
		}, false},
		{"away but a session open", func(in NotebookInput) NotebookInput {
			in.State, in.Session = states(now, append(twos(60), zeros(8)...)...), true
			return in
		}, false},
		{"one busy minute in the window", func(in NotebookInput) NotebookInput {
			v := append(twos(60), zeros(8)...)
			v[len(v)-3] = 2
			in.State = states(now, v...)
			return in
		}, false},
		{"connected, nothing running past the connected timeout", func(in NotebookInput) NotebookInput { in.State = states(now, ones(70)...); return in }, true},
		{"connected, busy 50 min ago", func(in NotebookInput) NotebookInput {
			v := ones(70)
			v[20] = 2
			in.State = states(now, v...)
			return in
		}, false},
		{"no data", func(in NotebookInput) NotebookInput { return in }, false},
		{"data stopped 10 min ago", func(in NotebookInput) NotebookInput {
			in.State = states(now.Add(-10*time.Minute), zeros(60)...)
			return in
		}, false},
		{"away, but the newest point 3 min old: the person may be back", func(in NotebookInput) NotebookInput {
			in.State = states(now.Add(-3*time.Minute), append(twos(60), zeros(8)...)...)
			return in
		}, false},
		{"started 4 min ago", func(in NotebookInput) NotebookInput {
			in.Started, in.State = now.Add(-4*time.Minute), states(now, zeros(4)...)
			return in
		}, false},
	} {
		why, idle := NotebookIdle(c.in(base))
		if idle != c.idle {
			t.Errorf("%s: NotebookIdle = %v (%s); want %v", c.name, idle, why, c.idle)
		}
	}
}
