package watchdog

import "time"

// The metrics the watchdog reads, all with the single dimension InstanceId.
var (
	// GPU comes from the CloudWatch agent's nvidia_gpu section, aggregated
	// on InstanceId (deploy/cloudwatch-agent.json); one datapoint a minute.
	GPU = Metric{Namespace: "CWAgent", Name: "nvidia_smi_utilization_gpu", Stat: "Maximum", Period: time.Minute}
	// CPU and the network counters are EC2's: every 5 minutes with basic
	// monitoring, as here; an instance with detailed monitoring has them
	// every minute and is read at that period (Resolution, Metric.Every).
	CPU        = Metric{Namespace: "AWS/EC2", Name: "CPUUtilization", Stat: "Maximum", Period: BasicPeriod}
	NetworkIn  = Metric{Namespace: "AWS/EC2", Name: "NetworkIn", Stat: "Sum", Period: BasicPeriod}
	NetworkOut = Metric{Namespace: "AWS/EC2", Name: "NetworkOut", Stat: "Sum", Period: BasicPeriod}
	// Progress is published by the job wrapper: seconds since the job last
	// wrote output or touched $NIGHTSHIFT_HEARTBEAT.
	Progress = Metric{Namespace: "nightshift", Name: "SecondsSinceProgress", Stat: "Maximum", Period: time.Minute}
	// NotebookState is published by a notebook's wrapper every minute: the
	// most of what it saw its person do (runner.NotebookAway 0, Connected
	// 1, Busy 2).
	NotebookState = Metric{Namespace: "nightshift", Name: "NotebookState", Stat: "Maximum", Period: time.Minute}
)

// BasicPeriod and DetailedPeriod are how often EC2 publishes an instance's
// metrics with basic and with detailed monitoring.
const (
	BasicPeriod    = 5 * time.Minute
	DetailedPeriod = time.Minute
)

// Resolution returns the period at which an instance's AWS/EC2 metrics are
// read: every minute with detailed monitoring, else every 5 minutes.
func Resolution(i Instance) time.Duration {
	if i.Detailed {
		return DetailedPeriod
	}
	return BasicPeriod
}

// Every returns m read at period p.
func (m Metric) Every(p time.Duration) Metric {
	m.Period = p
	return m
}

// Metric names one CloudWatch metric and how to read it.
type Metric struct {
	Namespace, Name, Stat string
	Period                time.Duration
}

// Series is one instance's datapoints of one metric, oldest first.
type Series []Point

// Point is one datapoint.
type Point struct {
	At    time.Time
	Value float64
}

// Covers reports whether the series has data over the whole of [from, to]:
// its first point within one period after from, its last within two
// periods (CloudWatch's publishing delay) before to, and no gap longer than
// two periods. Missing data is never read as idle.
func (s Series) Covers(from, to time.Time, period time.Duration) bool {
	if len(s) == 0 || s[0].At.After(from.Add(period)) || s[len(s)-1].At.Before(to.Add(-3*period)) {
		return false
	}
	for k := 1; k < len(s); k++ {
		if s[k].At.Sub(s[k-1].At) > 2*period {
			return false
		}
	}
	return true
}

// Max returns the largest value, 0 for no data.
func (s Series) Max() float64 {
	m := 0.0
	for _, p := range s {
		m = max(m, p.Value)
	}
	return m
}

// Last returns the newest value.
func (s Series) Last() float64 { return s[len(s)-1].Value }

// since returns the points at or after t.
func (s Series) since(t time.Time) Series {
	var out Series
	for _, p := range s {
		if !p.At.Before(t) {
			out = append(out, p)
		}
	}
	return out
}
