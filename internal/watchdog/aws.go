package watchdog

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// MaxQueries is GetMetricData's limit of metric queries per call.
const MaxQueries = 500

// EC2 is the part of EC2 the watchdog reads.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeSpotPriceHistory(ctx context.Context, in *ec2.DescribeSpotPriceHistoryInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error)
}

// CloudWatch is the part of CloudWatch the watchdog uses.
type CloudWatch interface {
	GetMetricData(ctx context.Context, in *cloudwatch.GetMetricDataInput, optFns ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error)
}

// Sessions is the part of SSM that lists open Session Manager sessions.
type Sessions interface {
	DescribeSessions(ctx context.Context, in *ssm.DescribeSessionsInput, optFns ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error)
}

// Stopper stops watched instances: the fleet, which refuses, before any
// EC2 call, an instance nightshift does not own.
type Stopper interface {
	StopWatched(ctx context.Context, i fleet.Instance) error
}

var (
	_ EC2        = (*ec2.Client)(nil)
	_ CloudWatch = (*cloudwatch.Client)(nil)
	_ Sessions   = (*ssm.Client)(nil)
	_ Stopper    = (*fleet.Fleet)(nil)
	_ Provider   = (*AWS)(nil)
)

// AWS is the Provider over the SDK clients. Its reads grow with pages, not
// with instances: DescribeInstances in pages of 1000, GetMetricData with up
// to 500 queries a call, one DescribeSpotPriceHistory for every spot type.
type AWS struct {
	EC2        EC2
	CloudWatch CloudWatch
	// SSM lists the open sessions.
	SSM   Sessions
	Fleet Stopper
	// Now is the clock; spot prices are asked for as of now.
	Now func() time.Time
}

// listedStates are the EC2 states Instances reads: the running instances
// the rules judge, and those starting, stopping or stopped, which the
// tick's figures count. One filter, so the pages are the same few: 1000
// instances a page, however many are stopped.
var listedStates = []string{fleet.StatePending, fleet.StateRunning, fleet.StateStopping, fleet.StateStopped}

// Instances reads the instances that carry a nightshift tag, in listedStates.
func (a *AWS) Instances(ctx context.Context) ([]Instance, error) {
	insts, err := fleet.Describe(ctx, a.EC2, []types.Filter{
		{Name: aws.String("tag-key"), Values: []string{fleet.TagManaged, TagWatch}},
		{Name: aws.String("instance-state-name"), Values: listedStates},
	})
	if err != nil {
		return nil, err
	}
	out := make([]Instance, len(insts))
	for k, i := range insts {
		out[k] = fromFleet(i)
	}
	return out, nil
}

// fromFleet and toFleet are the one place a fleet.Instance becomes the
// watchdog's Instance, and back for the stop.
func fromFleet(i fleet.Instance) Instance {
	return Instance{ID: i.ID, Type: i.Type, State: i.State, Zone: i.Zone, Spot: i.Spot, Managed: i.Managed, Watched: i.Watched, LaunchTime: i.LaunchTime, Tags: i.Tags, Detailed: i.Detailed}
}

func toFleet(i Instance) fleet.Instance {
	return fleet.Instance{
		ID: i.ID, Type: i.Type, State: i.State, Zone: i.Zone, Spot: i.Spot,
		Managed: i.Managed, Watched: i.Watched, LaunchTime: i.LaunchTime, Tags: i.Tags,
		Pool: i.Tags[fleet.TagPool], Job: i.Tags[fleet.TagJob], Detailed: i.Detailed,
	}
}

// Sessions reads the active Session Manager sessions, page by page.
func (a *AWS) Sessions(ctx context.Context) (map[string]bool, error) {
	open := map[string]bool{}
	p := ssm.NewDescribeSessionsPaginator(a.SSM, &ssm.DescribeSessionsInput{State: ssmtypes.SessionStateActive})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe sessions: %w", err)
		}
		for _, s := range page.Sessions {
			open[aws.ToString(s.Target)] = true
		}
	}
	return open, nil
}

// Series reads every request over [from, to] in GetMetricData calls of up
// to 500 queries each, following NextToken within a call.
func (a *AWS) Series(ctx context.Context, reqs []Request, from, to time.Time) (map[Request]Series, error) {
	out := make(map[Request]Series, len(reqs))
	for start := 0; start < len(reqs); start += MaxQueries {
		batch := reqs[start:min(start+MaxQueries, len(reqs))]
		in := &cloudwatch.GetMetricDataInput{
			StartTime: aws.Time(from), EndTime: aws.Time(to),
			ScanBy: cwtypes.ScanByTimestampAscending,
		}
		for k, r := range batch {
			in.MetricDataQueries = append(in.MetricDataQueries, cwtypes.MetricDataQuery{
				Id: aws.String(fmt.Sprintf("q%d", k)),
				MetricStat: &cwtypes.MetricStat{
					Metric: &cwtypes.Metric{
						Namespace: aws.String(r.Metric.Namespace), MetricName: aws.String(r.Metric.Name),
						Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(r.Instance)}},
					},
					Period: aws.Int32(int32(r.Metric.Period / time.Second)),
					Stat:   aws.String(r.Metric.Stat),
				},
				ReturnData: aws.Bool(true),
			})
		}
		p := cloudwatch.NewGetMetricDataPaginator(a.CloudWatch, in)
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
		slices.SortFunc(s, func(a, b Point) int { return a.At.Compare(b.At) })
		out[r] = s
	}
	return out, nil
}

// SpotPrices reads the newest Linux spot price of every type in one
// (paginated) DescribeSpotPriceHistory call; none when no type is asked.
func (a *AWS) SpotPrices(ctx context.Context, instanceTypes []string) (map[SpotKey]float64, error) {
	out := map[SpotKey]float64{}
	if len(instanceTypes) == 0 {
		return out, nil
	}
	ts := make([]types.InstanceType, len(instanceTypes))
	for k, t := range instanceTypes {
		ts[k] = types.InstanceType(t)
	}
	p := ec2.NewDescribeSpotPriceHistoryPaginator(a.EC2, &ec2.DescribeSpotPriceHistoryInput{
		InstanceTypes: ts, ProductDescriptions: []string{"Linux/UNIX"}, StartTime: aws.Time(a.Now()),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("spot prices: %w", err)
		}
		// The history comes newest first: the first price per type and zone is the current one.
		for _, sp := range page.SpotPriceHistory {
			v, err := strconv.ParseFloat(aws.ToString(sp.SpotPrice), 64)
			key := SpotKey{Type: string(sp.InstanceType), Zone: aws.ToString(sp.AvailabilityZone)}
			if _, dup := out[key]; err == nil && !dup {
				out[key] = v
			}
		}
	}
	return out, nil
}

// Stop stops a watched instance through the fleet.
func (a *AWS) Stop(ctx context.Context, i Instance) error {
	return a.Fleet.StopWatched(ctx, toFleet(i))
}
