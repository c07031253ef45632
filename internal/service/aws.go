package service

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// The real SDK clients satisfy what nightshift calls.
var (
	_ EC2        = (*ec2.Client)(nil)
	_ SSM        = (*ssm.Client)(nil)
	_ CloudWatch = (*cloudwatch.Client)(nil)
	_ SNS        = (*sns.Client)(nil)
	_ SQS        = (*sqs.Client)(nil)
)

// NewClients builds the real SDK clients from an SDK config. protocol picks
// CloudWatch's wire protocol for an emulator ("query" or "json"); empty
// keeps the SDK's default (Smithy RPCv2 CBOR).
func NewClients(cfg aws.Config, protocol string) (Clients, error) {
	var cwOpts []func(*cloudwatch.Options)
	switch protocol {
	case "":
	case "query":
		cwOpts = append(cwOpts, func(o *cloudwatch.Options) { o.Protocol = awsquery.New(schemas.GraniteServiceVersion20100801) })
	case "json":
		cwOpts = append(cwOpts, func(o *cloudwatch.Options) { o.Protocol = awsjson.New10(schemas.GraniteServiceVersion20100801) })
	default:
		return Clients{}, fmt.Errorf("NIGHTSHIFT_CLOUDWATCH_PROTOCOL: want query or json, got %q", protocol)
	}
	return Clients{
		EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg),
		CloudWatch: cloudwatch.NewFromConfig(cfg, cwOpts...), SNS: sns.NewFromConfig(cfg),
		SQS: sqs.NewFromConfig(cfg), ServiceQuotas: servicequotas.NewFromConfig(cfg),
	}, nil
}

// Load reads the deployment's settings from the environment and builds the
// service on the default AWS credentials chain and the DynamoDB jobs table;
// AWS_ENDPOINT_URL (honoured by the SDK) points it at an emulator.
func Load(ctx context.Context, log *slog.Logger) (*Service, error) {
	s, err := config.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws config: %w", err)
	}
	if s.Region == "" {
		s.Region = cfg.Region
	}
	c, err := NewClients(cfg, s.CloudWatchProtocol)
	if err != nil {
		return nil, err
	}
	return New(s, c, store.NewDynamoDB(dynamodb.NewFromConfig(cfg), s.Table, store.Retention(s.Retention), store.Clock(time.Now)), time.Now, log), nil
}
