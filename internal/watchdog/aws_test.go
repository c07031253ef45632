package watchdog

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"
)

// fakeCW answers every query with one datapoint whose value names the
// query's instance and metric, two results a page, and records the size
// of each call.
type fakeCW struct{ sizes []int }

func (f *fakeCW) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	if len(in.MetricDataQueries) > MaxQueries {
		return nil, fmt.Errorf("%d queries", len(in.MetricDataQueries))
	}
	start := 0
	if in.NextToken == nil {
		f.sizes = append(f.sizes, len(in.MetricDataQueries))
	} else {
		fmt.Sscan(*in.NextToken, &start)
	}
	out := &cloudwatch.GetMetricDataOutput{}
	end := min(start+2, len(in.MetricDataQueries))
	for _, q := range in.MetricDataQueries[start:end] {
		id := aws.ToString(q.MetricStat.Metric.Dimensions[0].Value)
		var n float64
		fmt.Sscanf(id, "i-%f", &n)
		// Newest first, as CloudWatch may answer: the provider sorts.
		out.MetricDataResults = append(out.MetricDataResults, cwtypes.MetricDataResult{
			Id:         q.Id,
			Timestamps: []time.Time{sweepAt, sweepAt.Add(-time.Minute)},
			Values:     []float64{n, float64(aws.ToInt32(q.MetricStat.Period))},
		})
	}
	if end < len(in.MetricDataQueries) {
		out.NextToken = aws.String(fmt.Sprint(end))
	}
	return out, nil
}

// TestAWSSeries: 1001 requests go in calls of at most 500 queries, pages
// within a call are followed, and each result lands on its request, oldest first.
func TestAWSSeries(t *testing.T) {
	cw := &fakeCW{}
	a := &AWS{CloudWatch: cw}
	var reqs []Request
	for k := range 1001 {
		m := []Metric{GPU, CPU}[k%2]
		reqs = append(reqs, Request{Instance: fmt.Sprintf("i-%d", k), Metric: m})
	}
	got, err := a.Series(context.Background(), reqs, sweepAt.Add(-time.Hour), sweepAt)
	if err != nil {
		t.Fatalf("Series(1001 requests) = %v", err)
	}
	if diff := cmp.Diff([]int{500, 500, 1}, cw.sizes); diff != "" {
		t.Errorf("Series(1001 requests) GetMetricData sizes (-want +got):\n%s", diff)
	}
	if len(got) != len(reqs) {
		t.Fatalf("Series(1001 requests) = %d series; want %d", len(got), len(reqs))
	}
	for k, r := range reqs {
		want := Series{{At: sweepAt.Add(-time.Minute), Value: float64(r.Metric.Period / time.Second)}, {At: sweepAt, Value: float64(k)}}
		if diff := cmp.Diff(want, got[r]); diff != "" {
			t.Errorf("Series()[%v] (-want +got):\n%s", r, diff)
			break
		}
	}
}

// fakeSpot answers DescribeSpotPriceHistory with a fixed history, newest first.
type fakeSpot struct {
	calls int
	asked []ec2types.InstanceType
}

func (f *fakeSpot) DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return &ec2.DescribeInstancesOutput{}, nil
}

func (f *fakeSpot) DescribeSpotPriceHistory(_ context.Context, in *ec2.DescribeSpotPriceHistoryInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	f.calls++
	f.asked = in.InstanceTypes
	price := func(t, zone, usd string) ec2types.SpotPrice {
		return ec2types.SpotPrice{InstanceType: ec2types.InstanceType(t), AvailabilityZone: aws.String(zone), SpotPrice: aws.String(usd)}
	}
	if in.NextToken == nil {
		return &ec2.DescribeSpotPriceHistoryOutput{NextToken: aws.String("2"), SpotPriceHistory: []ec2types.SpotPrice{
			price("g5.xlarge", "us-east-1a", "0.40"), price("g5.xlarge", "us-east-1a", "0.50"), price("g5.xlarge", "us-east-1b", "n/a"),
		}}, nil
	}
	return &ec2.DescribeSpotPriceHistoryOutput{SpotPriceHistory: []ec2types.SpotPrice{
		price("g5.xlarge", "us-east-1b", "0.33"), price("g6.xlarge", "us-east-1a", "0.70"), price("g5.xlarge", "us-east-1a", "0.90"),
	}}, nil
}

// TestAWSSpotPrices: one call for every type (pages followed), the newest
// readable price per type and zone; no call when no type is asked.
func TestAWSSpotPrices(t *testing.T) {
	e := &fakeSpot{}
	a := &AWS{EC2: e, Now: func() time.Time { return sweepAt }}
	got, err := a.SpotPrices(context.Background(), []string{"g5.xlarge", "g6.xlarge"})
	if err != nil {
		t.Fatalf("SpotPrices() = %v", err)
	}
	want := map[SpotKey]float64{{"g5.xlarge", "us-east-1a"}: 0.40, {"g5.xlarge", "us-east-1b"}: 0.33, {"g6.xlarge", "us-east-1a"}: 0.70}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SpotPrices() (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]ec2types.InstanceType{"g5.xlarge", "g6.xlarge"}, e.asked); diff != "" || e.calls != 2 {
		t.Errorf("SpotPrices() made %d page calls asking %v; want 2 pages of one call for both types", e.calls, e.asked)
	}
	e.calls = 0
	if _, err := a.SpotPrices(context.Background(), nil); err != nil || e.calls != 0 {
		t.Errorf("SpotPrices(none) = %v with %d calls; want no call", err, e.calls)
	}
}

// fakeSessions answers DescribeSessions with two pages of active sessions.
type fakeSessions struct{ pages int }

func (f *fakeSessions) DescribeSessions(_ context.Context, in *ssm.DescribeSessionsInput, _ ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error) {
	f.pages++
	if in.State != ssmtypes.SessionStateActive {
		return nil, fmt.Errorf("state %q; want Active", in.State)
	}
	if in.NextToken == nil {
		return &ssm.DescribeSessionsOutput{NextToken: aws.String("p2"), Sessions: []ssmtypes.Session{{Target: aws.String("i-1")}, {Target: aws.String("i-2")}}}, nil
	}
	return &ssm.DescribeSessionsOutput{Sessions: []ssmtypes.Session{{Target: aws.String("i-3")}}}, nil
}

func TestAWSSessions(t *testing.T) {
	s := &fakeSessions{}
	got, err := (&AWS{SSM: s}).Sessions(context.Background())
	if err != nil {
		t.Fatalf("Sessions() = %v", err)
	}
	if diff := cmp.Diff(map[string]bool{"i-1": true, "i-2": true, "i-3": true}, got); diff != "" || s.pages != 2 {
		t.Errorf("Sessions() over %d pages (-want +got):\n%s", s.pages, diff)
	}
}
