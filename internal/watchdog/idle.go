package watchdog

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// minIdleTimeout is the shortest idle timeout a tag may set: without
// detailed monitoring CPU and network come every 5 minutes, so a shorter
// window holds too few of their datapoints to say anything.
const minIdleTimeout = 5 * time.Minute

// IdleTimeout returns an instance's idle timeout: its nightshift:idle-timeout
// tag when that is a duration of at least 5 minutes, else def. bad reports a
// tag that is there but ignored, for the caller to log.
func IdleTimeout(tags map[string]string, def time.Duration) (d time.Duration, bad bool) {
	v, ok := tags[TagIdleTimeout]
	if !ok {
		return def, false
	}
	if d, err := time.ParseDuration(v); err == nil && d >= minIdleTimeout {
		return d, false
	}
	return def, true
}

// Thresholds are the levels below which an instance does no work.
type Thresholds struct {
	GPUPercent, CPUPercent float64
	// NetworkBytes is per 5 minutes, in and out together.
	NetworkBytes float64
}

// IdleInput is what the idle rule looks at for one watched instance.
type IdleInput struct {
	Now      time.Time
	Launched time.Time
	// Timeout is the instance's idle timeout (see IdleTimeout); Grace the
	// deployment's grace after a start.
	Timeout, Grace time.Duration
	// Resolution is the period of the instance's CPU and network series
	// (see Resolution): DetailedPeriod or BasicPeriod; zero is BasicPeriod.
	Resolution time.Duration
	// GPU, CPU, NetworkIn and NetworkOut are the instance's series as read
	// (Metrics), oldest first; points from before the window are ignored.
	GPU, CPU, NetworkIn, NetworkOut Series
	// Session is an open Session Manager session on the instance.
	Session bool
	Limits  Thresholds
}

// Due reports whether the instance has run long enough to be judged: past
// its grace, and for at least its idle timeout, since it cannot have been
// idle for longer than it has run. A sweep reads no metrics for the rest.
func (in IdleInput) Due() bool {
	return in.Now.Sub(in.Launched) >= max(in.Grace, in.Timeout)
}

// Metrics returns what to read for the rule, in the order GPU, CPU,
// NetworkIn, NetworkOut: CPU and network at the instance's resolution.
func (in IdleInput) Metrics() [4]Metric {
	r := in.Resolution
	if r <= 0 {
		r = BasicPeriod
	}
	return [4]Metric{GPU, CPU.Every(r), NetworkIn.Every(r), NetworkOut.Every(r)}
}

// Idle decides whether a watched instance was idle for its whole timeout:
// no open session, and GPU, CPU and network under their thresholds with
// data covering the timeout (missing data is never read as idle). It says
// why, either way.
func Idle(in IdleInput) (why string, idle bool) {
	if in.Session {
		return "a session is open", false
	}
	if !in.Due() {
		return fmt.Sprintf("up %v, within max(grace %v, timeout %v)", in.Now.Sub(in.Launched), in.Grace, in.Timeout), false
	}
	from := in.Now.Add(-in.Timeout)
	ms := in.Metrics()
	// One period of slack before the window: a datapoint stamped just
	// before it covers its start. Each series is judged at its own
	// period: it must cover the window at that resolution (Covers), so a
	// 1-minute series with a 3-minute hole is not read as idle even though
	// 5-minute data with such a hole would be.
	series := [4]Series{in.GPU, in.CPU, in.NetworkIn, in.NetworkOut}
	for k, m := range ms {
		series[k] = series[k].since(from.Add(-m.Period))
		if !series[k].Covers(from, in.Now, m.Period) {
			return "no " + m.Name + " data over the window", false
		}
	}
	gpu, cpu := series[0], series[1]
	net := perFiveMinutes(series[2], series[3])
	l := in.Limits
	switch {
	case gpu.Max() >= l.GPUPercent:
		return fmt.Sprintf("GPU max %.0f%% (>= %.0f%%)", gpu.Max(), l.GPUPercent), false
	case cpu.Max() >= l.CPUPercent:
		return fmt.Sprintf("CPU max %.0f%% (>= %.0f%%)", cpu.Max(), l.CPUPercent), false
	case net >= l.NetworkBytes:
		return fmt.Sprintf("network max %s per 5 min (>= %s)", bytes(net), bytes(l.NetworkBytes)), false
	}
	why = fmt.Sprintf("GPU max %.0f%% (< %.0f%%), CPU max %.0f%% (< %.0f%%), network max %s per 5 min (< %s), no open session",
		gpu.Max(), l.GPUPercent, cpu.Max(), l.CPUPercent, bytes(net), bytes(l.NetworkBytes))
	if ms[1].Period != BasicPeriod {
		why += fmt.Sprintf(" (CPU and network every %v)", ms[1].Period)
	}
	return why, true
}

// perFiveMinutes returns the most bytes in and out together over any 5
// minutes that start at a datapoint: in and out are added by timestamp,
// then summed over [t, t+5 min). With 5-minute data that is each sample's
// own sum; with 1-minute data, any 5 consecutive minutes, so the
// threshold (IdleNetworkBytes per 5 minutes) means the same at either
// resolution, and a burst is never split across two aligned periods.
func perFiveMinutes(in, out Series) float64 {
	byAt := map[time.Time]float64{}
	var ats []time.Time
	for _, s := range []Series{in, out} {
		for _, p := range s {
			if _, ok := byAt[p.At]; !ok {
				ats = append(ats, p.At)
			}
			byAt[p.At] += p.Value
		}
	}
	slices.SortFunc(ats, func(a, b time.Time) int { return a.Compare(b) })
	most, sum, first := 0.0, 0.0, 0
	for _, at := range ats {
		sum += byAt[at]
		for ats[first].Add(BasicPeriod).Compare(at) <= 0 {
			sum -= byAt[ats[first]]
			first++
		}
		most = max(most, sum)
	}
	return most
}

func bytes(b float64) string {
	switch {
	case b >= 1e6:
		return strconv.FormatFloat(b/1e6, 'f', 1, 64) + " MB"
	case b >= 1e3:
		return strconv.FormatFloat(b/1e3, 'f', 1, 64) + " kB"
	}
	return strconv.FormatFloat(b, 'f', 0, 64) + " B"
}
