// Package config reads a deployment's settings from the environment the
// template sets, and builds the scheduler on the real AWS SDK clients. It is
// called once per Lambda container, outside the handler.
package config

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/store"
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
}

// FromEnv reads the settings; getenv is os.Getenv outside tests.
func FromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		Table:            getenv("NIGHTSHIFT_TABLE"),
		LaunchTemplateID: getenv("NIGHTSHIFT_LAUNCH_TEMPLATE_ID"),
		AMIParameter:     getenv("NIGHTSHIFT_AMI_PARAMETER"),
		LogGroup:         getenv("NIGHTSHIFT_LOG_GROUP"),
		OutputBucket:     getenv("NIGHTSHIFT_OUTPUT_BUCKET"),
		Setup:            getenv("NIGHTSHIFT_DEFAULT_SETUP"),
		Region:           getenv("AWS_REGION"),
		Retries:          scheduler.DefaultRetries,
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
	return s, nil
}

// Clients are the AWS API clients the scheduler runs on.
type Clients struct {
	DynamoDB *dynamodb.Client
	EC2      *ec2.Client
	SSM      *ssm.Client
}

// NewClients builds the real SDK clients from an SDK config.
func NewClients(cfg aws.Config) Clients {
	return Clients{DynamoDB: dynamodb.NewFromConfig(cfg), EC2: ec2.NewFromConfig(cfg), SSM: ssm.NewFromConfig(cfg)}
}

// Scheduler builds the scheduler from settings and clients.
func Scheduler(s Settings, c Clients, log *slog.Logger) *scheduler.Scheduler {
	keepWarm := scheduler.DefaultKeepWarm
	if p, ok := s.Pools["default"]; ok && p.KeepWarm != 0 {
		keepWarm = p.KeepWarm.D()
	}
	f := fleet.New(c.EC2, c.SSM, fleet.Config{Region: s.Region, LaunchTemplateID: s.LaunchTemplateID, Subnets: s.Subnets, AMIParameter: s.AMIParameter}, time.Now)
	r := runner.New(c.SSM, runner.Config{LogGroup: s.LogGroup, Bucket: s.OutputBucket, KeyPrefix: "nightshift", Script: runner.ScriptOptions{KeepWarm: keepWarm}})
	return scheduler.New(store.NewDynamoDB(c.DynamoDB, s.Table), f, r, scheduler.Config{
		Pools: s.Pools, DefaultPool: "default", MaxRuntime: s.MaxRuntime, Setup: s.Setup, Retries: s.Retries,
	}, time.Now, log)
}

// Load reads the environment and builds the scheduler on the default AWS
// credentials chain; AWS_ENDPOINT_URL (honoured by the SDK) points it at an
// emulator.
func Load(ctx context.Context, log *slog.Logger) (*scheduler.Scheduler, error) {
	s, err := FromEnv(os.Getenv)
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
	return Scheduler(s, NewClients(cfg), log), nil
}
