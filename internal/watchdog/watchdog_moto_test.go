package watchdog

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// noSessions stands in for SSM DescribeSessions, which moto lacks.
type noSessions struct{}

func (noSessions) DescribeSessions(context.Context, *ssm.DescribeSessionsInput, ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error) {
	return &ssm.DescribeSessionsOutput{}, nil
}

// TestSweepOnMoto runs the watchdog's CloudWatch path over HTTP: metrics
// put with PutMetricData are read back with GetMetricData (in both protocols
// moto speaks), an idle watched instance is stopped and tagged, a busy one
// and an untagged one are left alone, and the action is published to SNS.
// The protocols moto speaks for CloudWatch (it lacks the SDK's default, CBOR).
func queryProtocol(o *cloudwatch.Options) {
	o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801)
}
func jsonProtocol(o *cloudwatch.Options) {
	o.Protocol = awsjson.New10(schemas.GraniteServiceVersion20100801)
}

func TestSweepOnMoto(t *testing.T) {
	protocols := map[string]func(*cloudwatch.Options){"query": queryProtocol, "json 1.0": jsonProtocol}
	for name, proto := range protocols {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			srv := awstest.Moto(t)
			cfg := srv.Config()
			e, cw, sn := ec2.NewFromConfig(cfg), cloudwatch.NewFromConfig(cfg, proto), sns.NewFromConfig(cfg)
			// moto answers PutMetricData in the query protocol only; the
			// agent's writes are not what is under test here.
			writer := cloudwatch.NewFromConfig(cfg, queryProtocol)
			topic, err := sn.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("nightshift")})
			if err != nil {
				t.Fatal(err)
			}
			launch := func(tags map[string]string) string {
				in := &ec2.RunInstancesInput{ImageId: aws.String("ami-12c6146b"), InstanceType: ec2types.InstanceTypeG5Xlarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1)}
				spec := ec2types.TagSpecification{ResourceType: ec2types.ResourceTypeInstance}
				for k, v := range tags {
					spec.Tags = append(spec.Tags, ec2types.Tag{Key: aws.String(k), Value: aws.String(v)})
				}
				if len(spec.Tags) > 0 {
					in.TagSpecifications = []ec2types.TagSpecification{spec}
				}
				out, err := e.RunInstances(ctx, in)
				if err != nil {
					t.Fatal(err)
				}
				return aws.ToString(out.Instances[0].InstanceId)
			}
			idleNb := launch(map[string]string{TagWatch: "true"})
			busyNb := launch(map[string]string{TagWatch: "true"})
			stranger := launch(nil)

			// The sweep runs 31 minutes after launch; metrics cover its 30-minute window.
			now := time.Now().Add(31 * time.Minute).Truncate(time.Minute)
			put := func(id string, m Metric, v float64) {
				var data []cwtypes.MetricDatum
				for at := now.Add(-30 * time.Minute); !at.After(now); at = at.Add(m.Period) {
					data = append(data, cwtypes.MetricDatum{
						MetricName: aws.String(m.Name), Timestamp: aws.Time(at), Value: aws.Float64(v),
						Dimensions: []cwtypes.Dimension{{Name: aws.String("InstanceId"), Value: aws.String(id)}},
					})
				}
				if _, err := writer.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(m.Namespace), MetricData: data}); err != nil {
					t.Fatalf("PutMetricData: %v", err)
				}
			}
			for id, gpu := range map[string]float64{idleNb: 0, busyNb: 85, stranger: 0} {
				put(id, GPU, gpu)
				put(id, CPU, 1)
				put(id, NetworkIn, 1000)
				put(id, NetworkOut, 1000)
			}

			log := slog.New(slog.DiscardHandler)
			clock := func() time.Time { return now }
			n := notice.New(e, sn, aws.ToString(topic.TopicArn), log, clock)
			w := New(Deps{
				Cloud:  &AWS{EC2: e, CloudWatch: cw, SSM: noSessions{}, Fleet: fleet.New(e, nil, fleet.Config{}, clock), Now: clock},
				Store:  store.NewMemory(),
				Notice: n,
				Config: Config{IdleTimeout: 30 * time.Minute, Grace: time.Minute},
				Now:    clock,
				Log:    log,
			})
			rep, err := w.Sweep(ctx)
			if err != nil {
				t.Fatalf("Sweep() = %v", err)
			}
			if rep.Watched != 2 || len(rep.Actions) != 1 || rep.Actions[0].Instance != idleNb || rep.Actions[0].Verb != "stop" {
				t.Fatalf("Sweep() = %+v; want 2 watched and one stop of %s", rep, idleNb)
			}
			out, err := e.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{idleNb, busyNb, stranger}})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Reservations {
				for _, i := range r.Instances {
					id, state := aws.ToString(i.InstanceId), i.State.Name
					tag := ""
					for _, tg := range i.Tags {
						if aws.ToString(tg.Key) == notice.TagLastAction {
							tag = aws.ToString(tg.Value)
						}
					}
					idle := id == idleNb
					if stopped := state == ec2types.InstanceStateNameStopping || state == ec2types.InstanceStateNameStopped; stopped != idle {
						t.Errorf("%s is %s; want stopped only if it is the idle watched one", id, state)
					}
					if idle && !strings.Contains(tag, "idle for 30m") || !idle && tag != "" {
						t.Errorf("%s tagged %q", id, tag)
					}
				}
			}
		})
	}
}
