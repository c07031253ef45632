package awssim

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// maxMetricQueries is GetMetricData's limit of queries per call.
const maxMetricQueries = 500

// Usage is what an instance is doing at a moment, as its metrics report it.
type Usage struct {
	GPU, CPU float64 // percent
	// NetBytesPerSec is network in plus out.
	NetBytesPerSec float64
}

// The default model of what an instance does.
var (
	busyUsage  = Usage{GPU: 93, CPU: 60, NetBytesPerSec: 2e6}
	hungUsage  = Usage{GPU: 0, CPU: 3, NetBytesPerSec: 200}
	quietUsage = Usage{GPU: 0, CPU: 1, NetBytesPerSec: 150}
)

// usage returns what instance i does at t: the Usage hook when set, else
// busy while a process that works runs, idle while it hangs, quiet otherwise.
func (c *Cloud) usage(i *Instance, t time.Time) Usage {
	if c.Usage != nil {
		if u, ok := c.Usage(i.ID, t); ok {
			return u
		}
	}
	for _, inv := range c.commands {
		if inv.InstanceID == i.ID && inv.Status == "InProgress" && !inv.Idle && !t.Before(inv.Started) {
			if inv.Hung {
				return hungUsage
			}
			return busyUsage
		}
	}
	return quietUsage
}

// metricKey names a metric an instance published itself.
type metricKey struct{ namespace, name, instance string }

type point struct {
	at    time.Time
	value float64
}

// GetMetricData answers MetricStat queries: AWS/EC2 CPUUtilization,
// NetworkIn, NetworkOut (every 5 minutes with basic monitoring, every
// minute with detailed) and CWAgent nvidia_smi_utilization_gpu (every
// minute, on instances with the agent) from the usage model, since the
// current boot, aggregated into the period asked with its statistic
// (Maximum, Minimum, Sum, Average); any other metric from what instances
// published (Host.PutMetric), as the Maximum per period. Expressions are
// not modelled.
func (c *Cloud) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	return serve(c, "GetMetricData", in, c.getMetricData)
}

func (c *Cloud) getMetricData(in *cloudwatch.GetMetricDataInput) (*cloudwatch.GetMetricDataOutput, error) {
	if len(in.MetricDataQueries) > maxMetricQueries {
		return nil, apiError("ValidationError", "The collection MetricDataQueries must not have a size greater than %d.", maxMetricQueries)
	}
	start, end := aws.ToTime(in.StartTime), aws.ToTime(in.EndTime)
	if now := c.clock.Now(); end.After(now) {
		end = now
	}
	out := &cloudwatch.GetMetricDataOutput{}
	for _, q := range in.MetricDataQueries {
		ms := q.MetricStat
		if ms == nil || ms.Metric == nil {
			return nil, notModelled("metric queries without a MetricStat (expressions)")
		}
		res := cwtypes.MetricDataResult{Id: q.Id, StatusCode: cwtypes.StatusCodeComplete}
		id, ok := instanceDimension(ms.Metric)
		if !ok {
			return nil, notModelled("metrics with dimensions other than InstanceId alone")
		}
		c.series(id, ms, start, end, &res)
		out.MetricDataResults = append(out.MetricDataResults, res)
	}
	return out, nil
}

func instanceDimension(m *cwtypes.Metric) (string, bool) {
	if len(m.Dimensions) != 1 || aws.ToString(m.Dimensions[0].Name) != "InstanceId" {
		return "", false
	}
	return aws.ToString(m.Dimensions[0].Value), true
}

// series fills res with one query's datapoints, newest first as CloudWatch returns them.
func (c *Cloud) series(id string, ms *cwtypes.MetricStat, start, end time.Time, res *cwtypes.MetricDataResult) {
	ns, name := aws.ToString(ms.Metric.Namespace), aws.ToString(ms.Metric.MetricName)
	period := time.Duration(aws.ToInt32(ms.Period)) * time.Second
	if pts, ok := c.published[metricKey{ns, name, id}]; ok {
		publishedSeries(pts, period, start, end, res)
		return
	}
	i, ok := c.byID[id]
	if !ok || i.State != "running" {
		return
	}
	switch {
	case ns == "CWAgent" && name == "nvidia_smi_utilization_gpu":
		if !i.GPUMetrics {
			return
		}
	case ns == "AWS/EC2" && (name == "CPUUtilization" || name == "NetworkIn" || name == "NetworkOut"):
	default:
		return
	}
	since := i.bootedAt
	if start.After(since) {
		since = start
	}
	samples := c.samples(i, name, since, end)
	// Aggregate the samples into the periods asked (a period shorter than
	// the samples' gets the samples as they are), complete periods only,
	// newest first.
	stat := aws.ToString(ms.Stat)
	for k := len(samples) - 1; k >= 0; {
		at := samples[k].at
		if period > 0 {
			at = at.Truncate(period)
		}
		last := k
		for k >= 0 && !samples[k].at.Before(at) {
			k--
		}
		if period > 0 && at.Add(period).After(end) {
			continue
		}
		res.Timestamps = append(res.Timestamps, at)
		res.Values = append(res.Values, aggregate(stat, samples[k+1:last+1]))
	}
}

// basicPeriod and detailedPeriod are how often EC2 publishes an instance's
// metrics with basic and with detailed monitoring.
const (
	basicPeriod    = 5 * time.Minute
	detailedPeriod = time.Minute
)

// resolution returns how often instance i published metric name at t:
// the agent's GPU metric every minute; AWS/EC2's every minute under
// detailed monitoring, else every 5 minutes.
func (i *Instance) resolution(name string, t time.Time) time.Duration {
	if name == "nvidia_smi_utilization_gpu" {
		return detailedPeriod
	}
	detailed := i.Detailed
	if t.Before(i.monitoringSince) {
		detailed = !detailed
	}
	if detailed {
		return detailedPeriod
	}
	return basicPeriod
}

// samples returns instance i's datapoints of a built-in metric over
// [since, end), oldest first, each stamped with the start of the interval
// it covers and published once that interval is over. A sample is the
// usage model read every minute across its interval: CPU and GPU the
// average, the network counters the bytes (half of the rate each way).
func (c *Cloud) samples(i *Instance, name string, since, end time.Time) []point {
	var out []point
	booted := i.bootedAt
	for t := since.Truncate(basicPeriod); ; {
		r := i.resolution(name, t)
		if t.Add(r).After(end) {
			break
		}
		if !t.Before(since.Truncate(r)) && !t.Before(booted.Truncate(r)) {
			v := 0.0
			for m := t; m.Before(t.Add(r)); m = m.Add(detailedPeriod) {
				u := c.usage(i, m)
				switch name {
				case "nvidia_smi_utilization_gpu":
					v += u.GPU
				case "CPUUtilization":
					v += u.CPU
				case "NetworkIn", "NetworkOut":
					v += u.NetBytesPerSec / 2 * detailedPeriod.Seconds()
				}
			}
			if name != "NetworkIn" && name != "NetworkOut" {
				v /= float64(r / detailedPeriod)
			}
			out = append(out, point{t, v})
		}
		t = t.Add(r)
	}
	return out
}

// aggregate is a statistic over one period's samples.
func aggregate(stat string, ps []point) float64 {
	out := ps[0].value
	for _, p := range ps[1:] {
		switch stat {
		case "Sum", "Average":
			out += p.value
		case "Minimum":
			out = min(out, p.value)
		default:
			out = max(out, p.value)
		}
	}
	if stat == "Average" {
		out /= float64(len(ps))
	}
	return out
}

// publishedSeries aggregates published points into periods (Maximum),
// newest first, over [start, end).
func publishedSeries(pts []point, period time.Duration, start, end time.Time, res *cwtypes.MetricDataResult) {
	if period <= 0 {
		period = time.Minute
	}
	type bucket struct {
		at time.Time
		v  float64
	}
	var out []bucket
	for _, p := range pts {
		if p.at.Before(start) || !p.at.Before(end) {
			continue
		}
		at := p.at.Truncate(period)
		if n := len(out); n > 0 && out[n-1].at.Equal(at) {
			out[n-1].v = max(out[n-1].v, p.value)
			continue
		}
		out = append(out, bucket{at, p.value})
	}
	for k := len(out) - 1; k >= 0; k-- {
		res.Timestamps = append(res.Timestamps, out[k].at)
		res.Values = append(res.Values, out[k].v)
	}
}
