package watchdog

import (
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// stallCase is a job running an hour with a 20-minute stall timeout, its
// GPU idle all along and its last output 30 minutes ago; change shapes one case.
func stallCase(change func(*StallInput)) StallInput {
	started := sweepAt.Add(-time.Hour)
	in := StallInput{
		Now: sweepAt, Started: started, Timeout: 20 * time.Minute, GPUPercent: DefaultGPUPercent,
		GPU:      flat(started, sweepAt, GPU.Period, 0),
		Progress: Series{{At: sweepAt.Add(-time.Minute), Value: 1740}, {At: sweepAt, Value: 1800}},
	}
	if change != nil {
		change(&in)
	}
	return in
}

func TestStalled(t *testing.T) {
	start := sweepAt.Add(-20 * time.Minute) // the window's start
	tests := []struct {
		name    string
		give    StallInput
		want    bool
		wantWhy string
	}{
		{name: "idle GPU and no progress", give: stallCase(nil), want: true, wantWhy: "stalled: GPU max 0% and no output or heartbeat for 30m0s"},
		{name: "reported already: once per attempt", give: stallCase(func(in *StallInput) { in.Reported = true }), wantWhy: "reported already"},
		{name: "running less than its timeout", give: stallCase(func(in *StallInput) { in.Started = sweepAt.Add(-19 * time.Minute) }), wantWhy: "running 19m0s of a 20m0s stall timeout"},
		{name: "running exactly its timeout", give: stallCase(func(in *StallInput) { in.Started = start }), want: true},

		{name: "GPU exactly at its threshold", give: stallCase(func(in *StallInput) { in.GPU = set(in.GPU, sweepAt.Add(-5*time.Minute), 5) }), wantWhy: "GPU max 5% (>= 5%)"},
		{name: "GPU just under its threshold", give: stallCase(func(in *StallInput) { in.GPU = set(in.GPU, sweepAt.Add(-5*time.Minute), 4.9) }), want: true, wantWhy: "GPU max 5% and"},
		{name: "GPU busy at the window's start", give: stallCase(func(in *StallInput) { in.GPU = set(in.GPU, start, 90) }), wantWhy: "GPU max 90%"},
		{name: "GPU busy a minute before the window: ignored", give: stallCase(func(in *StallInput) { in.GPU = set(in.GPU, start.Add(-time.Minute), 90) }), want: true},
		{name: "no GPU data", give: stallCase(func(in *StallInput) { in.GPU = nil }), wantWhy: "no GPU data"},
		{name: "GPU data stopped four minutes ago", give: stallCase(func(in *StallInput) { in.GPU = flat(in.Started, sweepAt.Add(-4*time.Minute), GPU.Period, 0) }), wantWhy: "no GPU data"},
		{name: "GPU data late by three minutes", give: stallCase(func(in *StallInput) { in.GPU = flat(in.Started, sweepAt.Add(-3*time.Minute), GPU.Period, 0) }), want: true},
		{name: "GPU data only for the window's last part", give: stallCase(func(in *StallInput) { in.GPU = flat(start.Add(5*time.Minute), sweepAt, GPU.Period, 0) }), wantWhy: "no GPU data"},

		{name: "no progress data", give: stallCase(func(in *StallInput) { in.Progress = nil }), wantWhy: "no progress data"},
		{name: "progress exactly the timeout less two periods ago", give: stallCase(func(in *StallInput) { in.Progress = Series{{At: sweepAt, Value: 1080}} }), want: true, wantWhy: "for 18m0s"},
		{name: "progress a second more recent", give: stallCase(func(in *StallInput) { in.Progress = Series{{At: sweepAt, Value: 1079}} }), wantWhy: "progress 1079 s ago"},
		{name: "progress resumed: the newest point counts", give: stallCase(func(in *StallInput) {
			in.Progress = Series{{At: sweepAt.Add(-time.Minute), Value: 1800}, {At: sweepAt, Value: 5}}
		}), wantWhy: "progress 5 s ago"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, got := Stalled(tt.give)
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("Stalled(%s) = %q, %v; want %q, %v", tt.name, why, got, tt.wantWhy, tt.want)
			}
		})
	}
}

func TestStallTimeout(t *testing.T) {
	const def = 30 * time.Minute
	tests := []struct {
		give job.Duration
		want time.Duration
	}{
		{give: 0, want: def},
		{give: job.Duration(45 * time.Minute), want: 45 * time.Minute},
		{give: job.Duration(10 * time.Minute), want: 10 * time.Minute},
	}
	for _, tt := range tests {
		j := &job.Job{Spec: job.Spec{StallTimeout: tt.give}}
		if got := StallTimeout(j, def); got != tt.want {
			t.Errorf("StallTimeout(spec %v) = %v; want %v", tt.give.D(), got, tt.want)
		}
	}
}
