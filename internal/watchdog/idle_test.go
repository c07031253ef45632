package watchdog

import (
	"strings"
	"testing"
	"time"
)

// sweepAt is the time every rule test judges at.
var sweepAt = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// flat returns a series of v every step over [from, to].
func flat(from, to time.Time, step time.Duration, v float64) Series {
	var s Series
	for at := from; !at.After(to); at = at.Add(step) {
		s = append(s, Point{At: at, Value: v})
	}
	return s
}

// set returns s with the value at t changed to v.
func set(s Series, t time.Time, v float64) Series {
	out := append(Series(nil), s...)
	for k := range out {
		if out[k].At.Equal(t) {
			out[k].Value = v
		}
	}
	return out
}

// drop returns s without the points at ts.
func drop(s Series, ts ...time.Time) Series {
	var out Series
next:
	for _, p := range s {
		for _, t := range ts {
			if p.At.Equal(t) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// idleCase is a notebook up two hours with a 30-minute timeout, quiet over
// the whole window, as the metrics read it; change shapes one case.
func idleCase(change func(*IdleInput)) IdleInput {
	from := sweepAt.Add(-2 * time.Hour)
	in := IdleInput{
		Now: sweepAt, Launched: from, Timeout: 30 * time.Minute, Grace: 15 * time.Minute,
		GPU:        flat(from, sweepAt, GPU.Period, 0),
		CPU:        flat(from, sweepAt, CPU.Period, 1),
		NetworkIn:  flat(from, sweepAt, NetworkIn.Period, 1000),
		NetworkOut: flat(from, sweepAt, NetworkOut.Period, 1000),
		Limits:     Thresholds{GPUPercent: DefaultGPUPercent, CPUPercent: DefaultCPUPercent, NetworkBytes: DefaultNetworkBytes},
	}
	if change != nil {
		change(&in)
	}
	return in
}

func TestIdle(t *testing.T) {
	start := sweepAt.Add(-30 * time.Minute) // the window's start
	tests := []struct {
		name    string
		give    IdleInput
		want    bool
		wantWhy string
	}{
		{name: "quiet over the whole window", give: idleCase(nil), want: true,
			wantWhy: "GPU max 0% (< 5%), CPU max 1% (< 10%), network max 2.0 kB per 5 min (< 5.0 MB), no open session"},
		{name: "a session is open", give: idleCase(func(in *IdleInput) { in.Session = true }), wantWhy: "a session is open"},

		{name: "GPU exactly at its threshold", give: idleCase(func(in *IdleInput) { in.GPU = set(in.GPU, sweepAt.Add(-10*time.Minute), 5) }), wantWhy: "GPU max 5% (>= 5%)"},
		{name: "GPU just under its threshold", give: idleCase(func(in *IdleInput) { in.GPU = set(in.GPU, sweepAt.Add(-10*time.Minute), 4.9) }), want: true},
		{name: "CPU exactly at its threshold", give: idleCase(func(in *IdleInput) { in.CPU = set(in.CPU, sweepAt.Add(-10*time.Minute), 10) }), wantWhy: "CPU max 10% (>= 10%)"},
		{name: "network in+out exactly at its threshold", give: idleCase(func(in *IdleInput) {
			in.NetworkIn = set(in.NetworkIn, sweepAt.Add(-10*time.Minute), 2.5e6)
			in.NetworkOut = set(in.NetworkOut, sweepAt.Add(-10*time.Minute), 2.5e6)
		}), wantWhy: "network max 5.0 MB per 5 min (>= 5.0 MB)"},
		{name: "network in+out just under its threshold", give: idleCase(func(in *IdleInput) {
			in.NetworkIn = set(in.NetworkIn, sweepAt.Add(-10*time.Minute), 2.5e6)
			in.NetworkOut = set(in.NetworkOut, sweepAt.Add(-10*time.Minute), 2.4e6)
		}), want: true},
		{name: "in and out add up per sample, not max plus max", give: idleCase(func(in *IdleInput) {
			in.NetworkIn = set(in.NetworkIn, sweepAt.Add(-10*time.Minute), 4e6)
			in.NetworkOut = set(in.NetworkOut, sweepAt.Add(-15*time.Minute), 4e6)
		}), want: true, wantWhy: "network max 4.0 MB per 5 min"},
		{name: "busy two GPU periods before the window: ignored", give: idleCase(func(in *IdleInput) { in.GPU = set(in.GPU, start.Add(-2*time.Minute), 90) }), want: true},
		{name: "busy one GPU period before the window: counted", give: idleCase(func(in *IdleInput) { in.GPU = set(in.GPU, start.Add(-time.Minute), 90) }), wantWhy: "GPU max 90%"},
		{name: "busy at the window's last point", give: idleCase(func(in *IdleInput) { in.GPU = set(in.GPU, sweepAt, 90) }), wantWhy: "GPU max 90%"},

		{name: "no GPU data (no agent)", give: idleCase(func(in *IdleInput) { in.GPU = nil }), wantWhy: "no nvidia_smi_utilization_gpu data"},
		{name: "no CPU data", give: idleCase(func(in *IdleInput) { in.CPU = nil }), wantWhy: "no CPUUtilization data"},
		{name: "no network out data", give: idleCase(func(in *IdleInput) { in.NetworkOut = nil }), wantWhy: "no NetworkOut data"},
		{name: "GPU data only for the window's last part", give: idleCase(func(in *IdleInput) { in.GPU = flat(start.Add(10*time.Minute), sweepAt, time.Minute, 0) }), wantWhy: "no nvidia_smi_utilization_gpu data"},
		{name: "GPU data from one period into the window", give: idleCase(func(in *IdleInput) { in.GPU = flat(start.Add(time.Minute), sweepAt, time.Minute, 0) }), want: true},
		{name: "GPU data from two periods into the window", give: idleCase(func(in *IdleInput) { in.GPU = flat(start.Add(2*time.Minute), sweepAt, time.Minute, 0) }), wantWhy: "no nvidia_smi_utilization_gpu data"},
		{name: "a three-period gap in the CPU data", give: idleCase(func(in *IdleInput) {
			in.CPU = drop(in.CPU, sweepAt.Add(-20*time.Minute), sweepAt.Add(-15*time.Minute))
		}), wantWhy: "no CPUUtilization data"},
		{name: "a two-period gap in the CPU data", give: idleCase(func(in *IdleInput) { in.CPU = drop(in.CPU, sweepAt.Add(-15*time.Minute)) }), want: true},
		{name: "CPU data late by three periods (publishing delay)", give: idleCase(func(in *IdleInput) { in.CPU = flat(start.Add(-time.Hour), sweepAt.Add(-15*time.Minute), CPU.Period, 1) }), want: true},
		{name: "CPU data late by four periods", give: idleCase(func(in *IdleInput) { in.CPU = flat(start.Add(-time.Hour), sweepAt.Add(-20*time.Minute), CPU.Period, 1) }), wantWhy: "no CPUUtilization data"},
		{name: "GPU data late by three minutes", give: idleCase(func(in *IdleInput) { in.GPU = flat(start.Add(-time.Hour), sweepAt.Add(-3*time.Minute), GPU.Period, 0) }), want: true},
		{name: "GPU data late by four minutes", give: idleCase(func(in *IdleInput) { in.GPU = flat(start.Add(-time.Hour), sweepAt.Add(-4*time.Minute), GPU.Period, 0) }), wantWhy: "no nvidia_smi_utilization_gpu data"},

		{name: "within its grace", give: idleCase(func(in *IdleInput) {
			in.Grace, in.Timeout, in.Launched = 30*time.Minute, 10*time.Minute, sweepAt.Add(-29*time.Minute)
		}), wantWhy: "within max(grace 30m0s, timeout 10m0s)"},
		{name: "exactly at the end of its grace", give: idleCase(func(in *IdleInput) {
			in.Grace, in.Timeout, in.Launched = 30*time.Minute, 10*time.Minute, sweepAt.Add(-30*time.Minute)
		}), want: true},
		{name: "past its grace but up less than its timeout", give: idleCase(func(in *IdleInput) { in.Launched = sweepAt.Add(-29 * time.Minute) }), wantWhy: "within max(grace 15m0s, timeout 30m0s)"},
		{name: "up exactly its timeout", give: idleCase(func(in *IdleInput) { in.Launched = start }), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, got := Idle(tt.give)
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("Idle(%s) = %q, %v; want %q, %v", tt.name, why, got, tt.wantWhy, tt.want)
			}
		})
	}
}

func TestIdleDue(t *testing.T) {
	tests := []struct {
		name string
		give IdleInput
		want bool
	}{
		{name: "up longer than grace and timeout", give: IdleInput{Now: sweepAt, Launched: sweepAt.Add(-time.Hour), Grace: 15 * time.Minute, Timeout: 30 * time.Minute}, want: true},
		{name: "grace longer than timeout, within grace", give: IdleInput{Now: sweepAt, Launched: sweepAt.Add(-20 * time.Minute), Grace: 30 * time.Minute, Timeout: 10 * time.Minute}},
		{name: "timeout longer than grace, within timeout", give: IdleInput{Now: sweepAt, Launched: sweepAt.Add(-20 * time.Minute), Grace: 15 * time.Minute, Timeout: 30 * time.Minute}},
		{name: "exactly the longer of the two", give: IdleInput{Now: sweepAt, Launched: sweepAt.Add(-30 * time.Minute), Grace: 15 * time.Minute, Timeout: 30 * time.Minute}, want: true},
		{name: "launch time after now (clock skew)", give: IdleInput{Now: sweepAt, Launched: sweepAt.Add(time.Minute), Grace: 15 * time.Minute, Timeout: 30 * time.Minute}},
	}
	for _, tt := range tests {
		if got := tt.give.Due(); got != tt.want {
			t.Errorf("IdleInput{%s}.Due() = %v; want %v", tt.name, got, tt.want)
		}
	}
}

func TestIdleTimeout(t *testing.T) {
	const def = time.Hour
	tests := []struct {
		give    map[string]string
		want    time.Duration
		wantBad bool
	}{
		{give: nil, want: def},
		{give: map[string]string{"Name": "notebook"}, want: def},
		{give: map[string]string{TagIdleTimeout: "20m"}, want: 20 * time.Minute},
		{give: map[string]string{TagIdleTimeout: "2h30m"}, want: 150 * time.Minute},
		{give: map[string]string{TagIdleTimeout: "5m"}, want: 5 * time.Minute},
		{give: map[string]string{TagIdleTimeout: "4m59s"}, want: def, wantBad: true},
		{give: map[string]string{TagIdleTimeout: "-30m"}, want: def, wantBad: true},
		{give: map[string]string{TagIdleTimeout: "45"}, want: def, wantBad: true},
		{give: map[string]string{TagIdleTimeout: "soon"}, want: def, wantBad: true},
		{give: map[string]string{TagIdleTimeout: ""}, want: def, wantBad: true},
	}
	for _, tt := range tests {
		got, bad := IdleTimeout(tt.give, def)
		if got != tt.want || bad != tt.wantBad {
			t.Errorf("IdleTimeout(%v) = %v, %v; want %v, %v", tt.give, got, bad, tt.want, tt.wantBad)
		}
	}
}

// detailedCase is idleCase for an instance with detailed monitoring: CPU
// and network every minute.
func detailedCase(change func(*IdleInput)) IdleInput {
	return idleCase(func(in *IdleInput) {
		from := in.Launched
		in.Resolution = DetailedPeriod
		in.CPU = flat(from, sweepAt, time.Minute, 1)
		in.NetworkIn = flat(from, sweepAt, time.Minute, 200)
		in.NetworkOut = flat(from, sweepAt, time.Minute, 200)
		if change != nil {
			change(in)
		}
	})
}

// TestIdleResolution: the rule at either resolution of CPU and network,
// each series judged at its own period.
func TestIdleResolution(t *testing.T) {
	start := sweepAt.Add(-30 * time.Minute) // the window's start
	tests := []struct {
		name    string
		give    IdleInput
		want    bool
		wantWhy string
	}{
		{name: "1-minute: quiet", give: detailedCase(nil), want: true, wantWhy: "no open session (CPU and network every 1m0s)"},
		{name: "5-minute: quiet, the resolution not said", give: idleCase(nil), want: true, wantWhy: "no open session"},
		{name: "1-minute: a single busy minute inside the window", give: detailedCase(func(in *IdleInput) { in.CPU = set(in.CPU, sweepAt.Add(-12*time.Minute), 50) }), wantWhy: "CPU max 50%"},
		{name: "5-minute: a single busy sample inside the window", give: idleCase(func(in *IdleInput) { in.CPU = set(in.CPU, sweepAt.Add(-10*time.Minute), 50) }), wantWhy: "CPU max 50%"},
		{name: "1-minute: busy one minute before the window: counted", give: detailedCase(func(in *IdleInput) { in.CPU = set(in.CPU, start.Add(-time.Minute), 50) }), wantWhy: "CPU max 50%"},
		{name: "1-minute: busy two minutes before the window: ignored", give: detailedCase(func(in *IdleInput) { in.CPU = set(in.CPU, start.Add(-2*time.Minute), 50) }), want: true},
		{name: "5-minute: busy one sample before the window: counted", give: idleCase(func(in *IdleInput) { in.CPU = set(in.CPU, start.Add(-5*time.Minute), 50) }), wantWhy: "CPU max 50%"},
		{name: "5-minute: busy two samples before the window: ignored", give: idleCase(func(in *IdleInput) { in.CPU = set(in.CPU, start.Add(-10*time.Minute), 50) }), want: true},

		{name: "1-minute: one missing point (a 2-minute gap)", give: detailedCase(func(in *IdleInput) { in.CPU = drop(in.CPU, sweepAt.Add(-12*time.Minute)) }), want: true},
		{name: "1-minute: two missing points (a 3-minute gap)", give: detailedCase(func(in *IdleInput) {
			in.NetworkIn = drop(in.NetworkIn, sweepAt.Add(-12*time.Minute), sweepAt.Add(-11*time.Minute))
		}), wantWhy: "no NetworkIn data"},
		{name: "1-minute expected, 5-minute data (detailed monitoring just turned on)", give: detailedCase(func(in *IdleInput) {
			in.CPU = flat(in.Launched, sweepAt, 5*time.Minute, 1)
		}), wantWhy: "no CPUUtilization data"},
		{name: "1-minute: late by three minutes", give: detailedCase(func(in *IdleInput) { in.CPU = flat(in.Launched, sweepAt.Add(-3*time.Minute), time.Minute, 1) }), want: true},
		{name: "1-minute: late by four minutes", give: detailedCase(func(in *IdleInput) { in.CPU = flat(in.Launched, sweepAt.Add(-4*time.Minute), time.Minute, 1) }), wantWhy: "no CPUUtilization data"},
		{name: "1-minute: starts one minute into the window", give: detailedCase(func(in *IdleInput) { in.CPU = flat(start.Add(time.Minute), sweepAt, time.Minute, 1) }), want: true},
		{name: "1-minute: starts two minutes into the window", give: detailedCase(func(in *IdleInput) { in.CPU = flat(start.Add(2*time.Minute), sweepAt, time.Minute, 1) }), wantWhy: "no CPUUtilization data"},

		{name: "1-minute: network summed over 5 minutes, over the threshold", give: detailedCase(func(in *IdleInput) {
			in.NetworkIn = flat(in.Launched, sweepAt, time.Minute, 0.5e6)
			in.NetworkOut = flat(in.Launched, sweepAt, time.Minute, 0.5e6)
		}), wantWhy: "network max 5.0 MB per 5 min (>= 5.0 MB)"},
		{name: "1-minute: network just under the threshold over 5 minutes", give: detailedCase(func(in *IdleInput) {
			in.NetworkIn = flat(in.Launched, sweepAt, time.Minute, 0.49e6)
			in.NetworkOut = flat(in.Launched, sweepAt, time.Minute, 0.5e6)
		}), want: true, wantWhy: "network max 5.0 MB per 5 min (< 5.0 MB)"},
		{name: "1-minute: a burst across a 5-minute mark is one burst", give: detailedCase(func(in *IdleInput) {
			in.NetworkIn = set(in.NetworkIn, sweepAt.Add(-11*time.Minute), 2.6e6)
			in.NetworkOut = set(in.NetworkOut, sweepAt.Add(-10*time.Minute), 2.6e6)
		}), wantWhy: "network max 5.2 MB per 5 min (>= 5.0 MB)"},
		{name: "1-minute: one busy network minute under the 5-minute threshold", give: detailedCase(func(in *IdleInput) {
			in.NetworkIn = set(in.NetworkIn, sweepAt.Add(-11*time.Minute), 4e6)
		}), want: true, wantWhy: "network max 4.0 MB per 5 min"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, got := Idle(tt.give)
			if got != tt.want || !strings.Contains(why, tt.wantWhy) {
				t.Errorf("Idle(%s) = %q, %v; want %q, %v", tt.name, why, got, tt.wantWhy, tt.want)
			}
		})
	}
}

// TestIdleStopDelay: with the last activity at any second of a period,
// sweeps every minute, and data published once its period is over, the
// first sweep that finds the instance idle comes after the timeout and at
// most one resolution plus one sweep after it.
func TestIdleStopDelay(t *testing.T) {
	const timeout, sweep = 30 * time.Minute, time.Minute
	base := sweepAt.Add(-3 * time.Hour)
	for _, res := range []time.Duration{DetailedPeriod, BasicPeriod} {
		worst := time.Duration(0)
		for off := time.Duration(0); off < BasicPeriod; off += 10 * time.Second {
			last := base.Add(time.Hour + off) // the last busy moment
			// series as CloudWatch has them at now: a sample at t covers
			// [t, t+p), busy when it covers a moment up to last.
			series := func(now time.Time, p time.Duration, busy float64) Series {
				var s Series
				for at := base; !at.Add(p).After(now); at = at.Add(p) {
					v := 0.0
					if !at.After(last) {
						v = busy
					}
					s = append(s, Point{At: at, Value: v})
				}
				return s
			}
			var stopped time.Time
			for now := last.Truncate(sweep).Add(sweep); now.Before(last.Add(timeout + 2*BasicPeriod)); now = now.Add(sweep) {
				in := IdleInput{
					Now: now, Launched: base, Timeout: timeout, Resolution: res,
					GPU: series(now, time.Minute, 90), CPU: series(now, res, 50),
					NetworkIn: series(now, res, 0), NetworkOut: series(now, res, 0),
					Limits: Thresholds{GPUPercent: DefaultGPUPercent, CPUPercent: DefaultCPUPercent, NetworkBytes: DefaultNetworkBytes},
				}
				if _, idle := Idle(in); idle {
					stopped = now
					break
				}
			}
			late := stopped.Sub(last.Add(timeout))
			if stopped.IsZero() || late <= 0 || late > res+sweep {
				t.Errorf("resolution %v, last busy at +%v: stopped %v after the timeout; want in (0, %v]", res, off, late, res+sweep)
			}
			worst = max(worst, late)
		}
		t.Logf("resolution %v: stopped at most %v after the timeout", res, worst)
	}
}
