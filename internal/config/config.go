// Package config reads a deployment's settings from the environment the
// template sets, and builds the scheduler on the real AWS SDK clients. It is
// called once per Lambda container, outside the handler.
package config

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch/schemas"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/transport/http/protocol/awsjson"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/store"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Settings is everything a deployment configures, read from NIGHTSHIFT_* variables.
type Settings struct {
	Table            string
	Pools            map[string]scheduler.Pool
	LaunchTemplateID string
	Subnets          []string
	AMIParameter     string
	LogGroup         string
	OutputBucket     string
	MaxRuntime       time.Duration
	Setup            string
	Retries          int
	Region           string
	TopicARN         string
	Watchdog         watchdog.Config
	// CloudWatchProtocol is "query" or "json" for an emulator that does not
	// speak CloudWatch's default protocol (Smithy RPCv2 CBOR); empty for AWS.
	CloudWatchProtocol string
}

// FromEnv reads the settings; getenv is os.Getenv outside tests.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Table:              getenv("NIGHTSHIFT_TABLE"),
		LaunchTemplateID:   getenv("NIGHTSHIFT_LAUNCH_TEMPLATE_ID"),
		AMIParameter:       getenv("NIGHTSHIFT_AMI_PARAMETER"),
		LogGroup:           getenv("NIGHTSHIFT_LOG_GROUP"),
		OutputBucket:       getenv("NIGHTSHIFT_OUTPUT_BUCKET"),
		Setup:              getenv("NIGHTSHIFT_DEFAULT_SETUP"),
		Region:             getenv("AWS_REGION"),
		Retries:            scheduler.DefaultRetries,
		TopicARN:           getenv("NIGHTSHIFT_TOPIC_ARN"),
		CloudWatchProtocol: getenv("NIGHTSHIFT_CLOUDWATCH_PROTOCOL"),
	}
	if s.Table == "" {
		return s, fmt.Errorf("NIGHTSHIFT_TABLE is not set")
	}
	if s.AMIParameter == "" {
		s.AMIParameter = "/aws/service/deeplearning/ami/x86_64/oss-nvidia-driver-gpu-pytorch-2.7-ubuntu-22.04/latest/ami-id"
	}
	pools := getenv("NIGHTSHIFT_POOLS")
	if pools == "" {
		pools = `{"default":{"types":["g4dn.xlarge"],"max_instances":2}}`
	}
	var err error
	if s.Pools, err = scheduler.ParsePools(pools); err != nil {
		return s, fmt.Errorf("NIGHTSHIFT_POOLS: %w", err)
	}
	for _, sub := range strings.Split(getenv("NIGHTSHIFT_SUBNET_IDS"), ",") {
		if sub = strings.TrimSpace(sub); sub != "" {
			s.Subnets = append(s.Subnets, sub)
		}
	}
	if v := getenv("NIGHTSHIFT_DEFAULT_MAX_RUNTIME"); v != "" {
		if s.MaxRuntime, err = time.ParseDuration(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_MAX_RUNTIME: %w", err)
		}
	}
	if v := getenv("NIGHTSHIFT_DEFAULT_RETRIES"); v != "" {
		if s.Retries, err = strconv.Atoi(v); err != nil {
			return s, fmt.Errorf("NIGHTSHIFT_DEFAULT_RETRIES: %w", err)
		}
	}
	if s.Watchdog, err = watchdogFromEnv(getenv); err != nil {
		return s, err
	}
	return s, nil
}

// watchdogFromEnv reads the watchdog's settings; unset ones keep their defaults.
func watchdogFromEnv(getenv func(string) string) (watchdog.Config, error) {
	var c watchdog.Config
	durations := []struct {
		name string
		dst  *time.Duration
	}{
		{"NIGHTSHIFT_IDLE_TIMEOUT", &c.IdleTimeout},
		{"NIGHTSHIFT_WATCH_GRACE", &c.Grace},
		{"NIGHTSHIFT_STALL_TIMEOUT", &c.StallTimeout},
	}
	for _, d := range durations {
		if v := getenv(d.name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", d.name, err)
			}
			*d.dst = x
		}
	}
	numbers := []struct {
		name string
		dst  *float64
	}{
		{"NIGHTSHIFT_IDLE_GPU_PERCENT", &c.GPUPercent},
		{"NIGHTSHIFT_IDLE_CPU_PERCENT", &c.CPUPercent},
		{"NIGHTSHIFT_IDLE_NETWORK_BYTES", &c.NetworkBytes},
		{"NIGHTSHIFT_DAILY_BUDGET_USD", &c.DailyBudget},
		{"NIGHTSHIFT_MONTHLY_BUDGET_USD", &c.MonthlyBudget},
	}
	for _, n := range numbers {
		if v := getenv(n.name); v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil || x < 0 {
				return c, fmt.Errorf("%s: want a number ≥ 0, got %q", n.name, v)
			}
			*n.dst = x
		}
	}
	switch p := getenv("NIGHTSHIFT_BUDGET_POLICY"); p {
	case "", watchdog.PolicyFinish, watchdog.PolicyCancel:
		c.Policy = p
	default:
		return c, fmt.Errorf("NIGHTSHIFT_BUDGET_POLICY: want finish or cancel, got %q", p)
	}
	if v := getenv("NIGHTSHIFT_DRY_RUN"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return c, fmt.Errorf("NIGHTSHIFT_DRY_RUN: %w", err)
		}
		c.DryRun = b
	}
	if v := getenv("NIGHTSHIFT_PRICES"); v != "" {
		if err := json.Unmarshal([]byte(v), &c.Prices); err != nil {
			return c, fmt.Errorf("NIGHTSHIFT_PRICES: want {\"g5.xlarge\": 1.006, …}: %w", err)
		}
	}
	return c, nil
}

// Clients are the AWS API clients nightshift runs on.
type Clients struct {
	DynamoDB   *dynamodb.Client
	EC2        *ec2.Client
	SSM        *ssm.Client
	CloudWatch *cloudwatch.Client
	SNS        *sns.Client
}

// NewClients builds the real SDK clients from an SDK config. protocol picks
// CloudWatch's wire protocol for an emulator ("query" or "json"); empty
// keeps the SDK's default.
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
		DynamoDB: dynamodb.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg),
		CloudWatch: cloudwatch.NewFromConfig(cfg, cwOpts...), SNS: sns.NewFromConfig(cfg),
	}, nil
}

// Service is everything a function needs: the scheduler and the watchdog.
type Service struct {
	Scheduler *scheduler.Scheduler
	Watchdog  *watchdog.Watchdog
}

// Build builds the scheduler and the watchdog from settings and clients.
func Build(s Settings, c Clients, log *slog.Logger) Service {
	f := fleet.New(c.EC2, c.SSM, fleet.Config{Region: s.Region, LaunchTemplateID: s.LaunchTemplateID, Subnets: s.Subnets, AMIParameter: s.AMIParameter}, time.Now)
	r := runner.New(c.SSM, runner.Config{LogGroup: s.LogGroup, Bucket: s.OutputBucket, KeyPrefix: "nightshift", Script: runner.ScriptOptions{Region: s.Region}})
	st := store.NewDynamoDB(c.DynamoDB, s.Table)
	n := notice.New(c.EC2, c.SNS, s.TopicARN, log, time.Now)
	return Service{
		Scheduler: scheduler.New(st, f, r, n, scheduler.Config{
			Pools: s.Pools, DefaultPool: "default", MaxRuntime: s.MaxRuntime, Setup: s.Setup, Retries: s.Retries,
		}, time.Now, log),
		Watchdog: watchdog.New(c.EC2, c.CloudWatch, c.SSM, r, st, n, s.Watchdog, time.Now, log),
	}
}

// Load reads the environment and builds the service on the default AWS
// credentials chain; AWS_ENDPOINT_URL (honoured by the SDK) points it at an
// emulator.
func Load(ctx context.Context, log *slog.Logger) (Service, error) {
	s, err := FromEnv(os.Getenv)
	if err != nil {
		return Service{}, err
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return Service{}, fmt.Errorf("aws config: %w", err)
	}
	if s.Region == "" {
		s.Region = cfg.Region
	}
	c, err := NewClients(cfg, s.CloudWatchProtocol)
	if err != nil {
		return Service{}, err
	}
	return Build(s, c, log), nil
}
