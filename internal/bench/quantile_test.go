package bench_test

import (
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/bench"
)

func TestQuantile(t *testing.T) {
	tests := []struct {
		name string
		give []time.Duration
		q    float64
		want time.Duration
	}{
		{name: "empty", give: nil, q: 0.5, want: 0},
		{name: "one", give: []time.Duration{7}, q: 0.9, want: 7},
		{name: "median of odd count", give: []time.Duration{3, 1, 2}, q: 0.5, want: 2},
		{name: "median of even count", give: []time.Duration{4, 1, 3, 2}, q: 0.5, want: 3}, // 2.5 ns rounds half away from zero
		{name: "median interpolated", give: []time.Duration{10, 40, 20, 30}, q: 0.5, want: 25},
		{name: "p90 of ten", give: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 100}, q: 0.9, want: 18}, // 9 + 0.1·91
		{name: "max", give: []time.Duration{5, 9, 1}, q: 1, want: 9},
		{name: "min", give: []time.Duration{5, 9, 1}, q: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bench.Quantile(tt.give, tt.q); got != tt.want {
				t.Errorf("Quantile(%v, %v) = %v; want %v", tt.give, tt.q, got, tt.want)
			}
		})
	}
}
