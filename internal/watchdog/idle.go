package watchdog

import (
	"fmt"
	"strconv"
	"time"
)

// minIdleTimeout is the shortest idle timeout a tag may set: CPU and
// network come every 5 minutes (EC2 basic monitoring), so a shorter window
// holds too few of their datapoints to say anything.
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
	// GPU, CPU, NetworkIn and NetworkOut are the instance's series as read,
	// oldest first; points from before the window are ignored.
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
	// One period of slack before the window: a datapoint stamped just
	// before it covers its start.
	window := func(s Series, m Metric) Series { return s.since(from.Add(-m.Period)) }
	gpu, cpu := window(in.GPU, GPU), window(in.CPU, CPU)
	netIn, netOut := window(in.NetworkIn, NetworkIn), window(in.NetworkOut, NetworkOut)
	for _, c := range []struct {
		s Series
		m Metric
	}{{gpu, GPU}, {cpu, CPU}, {netIn, NetworkIn}, {netOut, NetworkOut}} {
		if !c.s.Covers(from, in.Now, c.m.Period) {
			return "no " + c.m.Name + " data over the window", false
		}
	}
	// In and out are paired by position: both come from the same 5-minute
	// basic-monitoring samples.
	net := 0.0
	for k := range netIn {
		v := netIn[k].Value
		if k < len(netOut) {
			v += netOut[k].Value
		}
		net = max(net, v)
	}
	l := in.Limits
	switch {
	case gpu.Max() >= l.GPUPercent:
		return fmt.Sprintf("GPU max %.0f%% (>= %.0f%%)", gpu.Max(), l.GPUPercent), false
	case cpu.Max() >= l.CPUPercent:
		return fmt.Sprintf("CPU max %.0f%% (>= %.0f%%)", cpu.Max(), l.CPUPercent), false
	case net >= l.NetworkBytes:
		return fmt.Sprintf("network max %s per 5 min (>= %s)", bytes(net), bytes(l.NetworkBytes)), false
	}
	return fmt.Sprintf("GPU max %.0f%% (< %.0f%%), CPU max %.0f%% (< %.0f%%), network max %s per 5 min (< %s), no open session",
		gpu.Max(), l.GPUPercent, cpu.Max(), l.CPUPercent, bytes(net), bytes(l.NetworkBytes)), true
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
