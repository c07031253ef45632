package watchdog

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// MaxQueries is GetMetricData's limit of metric queries per call.
const MaxQueries = 500

// The metrics the watchdog reads, all with the single dimension InstanceId.
var (
	// GPU comes from the CloudWatch agent's nvidia_gpu section, aggregated
	// on InstanceId (deploy/cloudwatch-agent.json); one datapoint a minute.
	GPU = Metric{Namespace: "CWAgent", Name: "nvidia_smi_utilization_gpu", Stat: "Maximum", Period: time.Minute}
	// CPU and the network counters are EC2's basic monitoring: every 5 minutes.
	CPU        = Metric{Namespace: "AWS/EC2", Name: "CPUUtilization", Stat: "Maximum", Period: 5 * time.Minute}
	NetworkIn  = Metric{Namespace: "AWS/EC2", Name: "NetworkIn", Stat: "Sum", Period: 5 * time.Minute}
	NetworkOut = Metric{Namespace: "AWS/EC2", Name: "NetworkOut", Stat: "Sum", Period: 5 * time.Minute}
	// Progress is published by the job wrapper: seconds since the job last
	// wrote output or touched $NIGHTSHIFT_HEARTBEAT.
	Progress = Metric{Namespace: "nightshift", Name: "SecondsSinceProgress", Stat: "Maximum", Period: time.Minute}
)

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

// Max is the largest value; Last the newest.
func (s Series) Max() float64 {
	m := 0.0
	for _, p := range s {
		m = max(m, p.Value)
	}
	return m
}

// Last returns the newest value.
func (s Series) Last() float64 { return s[len(s)-1].Value }

// request is one metric of one instance wanted over a window.
type request struct {
	instance string
	metric   Metric
}

// fetch reads every request over [from, to] in GetMetricData calls of up to
// 500 queries each, following NextToken within a call.
func (w *Watchdog) fetch(ctx context.Context, reqs []request, from, to time.Time) (map[request]Series, error) {
	out := make(map[request]Series, len(reqs))
	for start := 0; start < len(reqs); start += MaxQueries {
		batch := reqs[start:min(start+MaxQueries, len(reqs))]
		in := &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(from), EndTime: aws.Time(to),
			ScanBy: types.ScanByTimestampAscending,
		}
		for k, r := range batch {
			in.MetricDataQueries = append(in.MetricDataQueries, types.MetricDataQuery{
				Id: aws.String(fmt.Sprintf("q%d", k)),
				MetricStat: &types.MetricStat{
					Metric: &types.Metric{
						Namespace: aws.String(r.metric.Namespace), MetricName: aws.String(r.metric.Name),
						Dimensions: []types.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(r.instance)}},
					},
					Period: aws.Int32(int32(r.metric.Period / time.Second)),
					Stat:   aws.String(r.metric.Stat),
				},
				ReturnData: aws.Bool(true),
			})
		}
		p := cloudwatch.NewGetMetricDataPaginator(w.cw, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("get metric data: %w", err)
			}
			for _, res := range page.MetricDataResults {
				var k int
				if _, err := fmt.Sscanf(aws.ToString(res.Id), "q%d", &k); err != nil || k >= len(batch) {
					continue
				}
				r := batch[k]
				for n := range res.Timestamps {
					if n < len(res.Values) {
						out[r] = append(out[r], Point{At: res.Timestamps[n], Value: res.Values[n]})
					}
				}
			}
		}
	}
	for r, s := range out {
		sortPoints(s)
		out[r] = s
	}
	return out, nil
}

func sortPoints(s Series) {
	slices.SortFunc(s, func(a, b Point) int { return a.At.Compare(b.At) })
}
