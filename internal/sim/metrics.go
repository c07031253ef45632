package sim

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
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// maxMetricQueries is GetMetricData's limit of queries per call.
const maxMetricQueries = 500

// Usage is what an instance is doing at a moment, as its metrics report it.
type Usage struct {
	GPU, CPU float64 // percent
	// NetBytesPerSec is network in plus out.
	NetBytesPerSec float64
	// Progress is false while a running job makes no progress (a hang).
	Progress bool
}

// usage returns what instance i does at t: the Usage hook when set, else
// busy while a command runs (idle while it hangs), quiet otherwise.
func (c *Cloud) usage(i *Instance, t time.Time) Usage {
	if c.Usage != nil {
		if u, ok := c.Usage(i.ID, t); ok {
			return u
		}
	}
	for _, inv := range c.commands {
		if inv.InstanceID == i.ID && inv.Status == "InProgress" && !inv.Duplicate && !t.Before(inv.Started) {
			if inv.hung {
				return Usage{GPU: 0, CPU: 3, NetBytesPerSec: 200}
			}
			return Usage{GPU: 93, CPU: 60, NetBytesPerSec: 2e6, Progress: true}
		}
	}
	return Usage{GPU: 0, CPU: 1, NetBytesPerSec: 150, Progress: true}
}

// GetMetricData answers MetricStat queries for the metrics the simulated
// instances publish: AWS/EC2 CPUUtilization, NetworkIn, NetworkOut (every 5
// minutes, basic monitoring), CWAgent nvidia_smi_utilization_gpu (every
// minute, on instances with the agent) and nightshift SecondsSinceProgress
// (every minute while a job runs). Data exist only since the current boot.
func (c *Cloud) GetMetricData(_ context.Context, in *cloudwatch.GetMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.GetMetricDataOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("GetMetricData"); err != nil {
		return nil, err
	}
	if len(in.MetricDataQueries) > maxMetricQueries {
		return nil, apiError("ValidationError", "The collection MetricDataQueries must not have a size greater than %d.", maxMetricQueries)
	}
	start, end := aws.ToTime(in.StartTime), aws.ToTime(in.EndTime)
	if now := c.clock.Now(); end.After(now) {
		end = now
	}
	out := &cloudwatch.GetMetricDataOutput{}
	for _, q := range in.MetricDataQueries {
		res := cwtypes.MetricDataResult{Id: q.Id, StatusCode: cwtypes.StatusCodeComplete}
		if ms := q.MetricStat; ms != nil && ms.Metric != nil {
			c.series(ms, start, end, &res)
		}
		out.MetricDataResults = append(out.MetricDataResults, res)
	}
	return out, c.after("GetMetricData")
}

// series fills res with one query's datapoints, newest first as CloudWatch returns them.
func (c *Cloud) series(ms *cwtypes.MetricStat, start, end time.Time, res *cwtypes.MetricDataResult) {
	var id string
	for _, d := range ms.Metric.Dimensions {
		if aws.ToString(d.Name) == "InstanceId" {
			id = aws.ToString(d.Value)
		}
	}
	i, ok := c.byID[id]
	if !ok || i.State != "running" {
		return
	}
	ns, name := aws.ToString(ms.Metric.Namespace), aws.ToString(ms.Metric.MetricName)
	every := 5 * time.Minute
	switch {
	case ns == "CWAgent" && name == "nvidia_smi_utilization_gpu":
		if !i.GPUMetrics {
			return
		}
		every = time.Minute
	case ns == "nightshift" && name == "SecondsSinceProgress":
		every = time.Minute
	case ns == "AWS/EC2" && (name == "CPUUtilization" || name == "NetworkIn" || name == "NetworkOut"):
	default:
		return
	}
	period := time.Duration(aws.ToInt32(ms.Period)) * time.Second
	if period < every {
		period = every
	}
	since := i.bootedAt
	if start.After(since) {
		since = start
	}
	for t := end.Truncate(period).Add(-period); !t.Before(since.Truncate(period)); t = t.Add(-period) {
		if t.Add(period).After(end) || t.Before(i.bootedAt.Truncate(period)) {
			continue
		}
		u := c.usage(i, t)
		var v float64
		switch name {
		case "nvidia_smi_utilization_gpu":
			v = u.GPU
		case "CPUUtilization":
			v = u.CPU
		case "NetworkIn", "NetworkOut":
			v = u.NetBytesPerSec / 2 * period.Seconds()
		case "SecondsSinceProgress":
			inv := c.running(i)
			if inv == nil {
				continue
			}
			if !u.Progress && !t.Before(inv.Started) {
				v = t.Sub(inv.Started).Seconds()
			}
		}
		res.Timestamps = append(res.Timestamps, t)
		res.Values = append(res.Values, v)
	}
}

func (c *Cloud) running(i *Instance) *Invocation {
	for _, inv := range c.commands {
		if inv.InstanceID == i.ID && inv.Status == "InProgress" && !inv.Duplicate {
			return inv
		}
	}
	return nil
}

// Session opens (open=true) or closes an SSM Session Manager session to an instance.
func (c *Cloud) Session(instanceID string, open bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if open {
		c.sessions = append(c.sessions, instanceID)
		return
	}
	c.sessions = slices.DeleteFunc(c.sessions, func(s string) bool { return s == instanceID })
}

// DescribeSessions lists the open sessions, 50 per page.
func (c *Cloud) DescribeSessions(_ context.Context, in *ssm.DescribeSessionsInput, _ ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("DescribeSessions"); err != nil {
		return nil, err
	}
	out := &ssm.DescribeSessionsOutput{}
	if in.State != ssmtypes.SessionStateActive {
		return out, nil
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	end := min(start+50, len(c.sessions))
	for k, target := range c.sessions[start:end] {
		out.Sessions = append(out.Sessions, ssmtypes.Session{SessionId: aws.String(fmt.Sprintf("someone-%d", start+k)), Target: aws.String(target), Status: ssmtypes.SessionStatusConnected})
	}
	if end < len(c.sessions) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, c.after("DescribeSessions")
}

// Message is a notification published to the SNS topic.
type Message struct {
	At               time.Time
	Subject, Message string
}

// Publish records a notification.
func (c *Cloud) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("Publish"); err != nil {
		return nil, err
	}
	c.messages = append(c.messages, Message{At: c.clock.Now(), Subject: aws.ToString(in.Subject), Message: aws.ToString(in.Message)})
	return &sns.PublishOutput{MessageId: aws.String(c.nextID("m-"))}, c.after("Publish")
}

// Messages returns the notifications published so far.
func (c *Cloud) Messages() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.messages)
}

// CreateTags sets tags on instances.
func (c *Cloud) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("CreateTags"); err != nil {
		return nil, err
	}
	for _, id := range in.Resources {
		c.owned("CreateTags", id, true)
		i, ok := c.byID[id]
		if !ok {
			return nil, apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		for _, t := range in.Tags {
			i.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return &ec2.CreateTagsOutput{}, c.after("CreateTags")
}

// DescribeSpotPriceHistory returns the current spot price of each type asked:
// SpotPrice × the on-demand price when set, else 30% of it.
func (c *Cloud) DescribeSpotPriceHistory(_ context.Context, in *ec2.DescribeSpotPriceHistoryInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("DescribeSpotPriceHistory"); err != nil {
		return nil, err
	}
	out := &ec2.DescribeSpotPriceHistoryOutput{}
	for _, t := range in.InstanceTypes {
		out.SpotPriceHistory = append(out.SpotPriceHistory, ec2types.SpotPrice{
			InstanceType: t, AvailabilityZone: aws.String("us-east-1a"), Timestamp: aws.Time(c.clock.Now()),
			ProductDescription: ec2types.RIProductDescriptionLinuxUnix,
			SpotPrice:          aws.String(strconv.FormatFloat(c.spotPrice(string(t)), 'f', 4, 64)),
		})
	}
	return out, c.after("DescribeSpotPriceHistory")
}
