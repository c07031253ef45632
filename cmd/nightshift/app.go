package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// app is one run of the command line: its streams, its global flags, and
// the deployed stack it talks to, connected on first use.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	// sleep waits between polls (submit --wait, logs -f); tests make it instant.
	sleep func(ctx context.Context, d time.Duration) error
	// tty: stdout is a terminal (tables may use colour, --wait a live line).
	tty   bool
	color bool

	// The global flags.
	stackName, region, profile string
	json                       bool

	// connect builds the clients and reads the stack; tests replace it.
	connect func(ctx context.Context) (*cloud, error)
	cloud   *cloud

	// Port forwarding to a notebook (session.go); tests replace them.
	lookPath      func(file string) (string, error)
	pluginVersion func(ctx context.Context, path string) (string, error)
	runPlugin     func(ctx context.Context, pc pluginCommand) error
	portFree      func(port int) bool
}

// jobsStore is what the command line reads of the jobs table.
type jobsStore interface {
	Job(ctx context.Context, id string) (*job.Job, error)
	Live(ctx context.Context, s job.State) ([]*job.Job, error)
	Submitted(ctx context.Context, since, until time.Time, after string, limit int) ([]*job.Job, string, error)
	Leases(ctx context.Context) ([]store.Lease, error)
	Spend(ctx context.Context, period string) (store.Spend, error)
}

type sqsAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

type logsAPI interface {
	GetLogEvents(ctx context.Context, in *cloudwatchlogs.GetLogEventsInput, opts ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

// cloud is the stack and the clients of one run.
type cloud struct {
	stack Stack
	jobs  jobsStore
	sqs   sqsAPI
	logs  logsAPI
	ec2   ec2.DescribeInstancesAPIClient
	ssm   ssmAPI
	// quotas is Service Quotas (nightshift quota).
	quotas quota.ServiceQuotas
	// ssmEndpoint is the SSM endpoint URL session-manager-plugin is given.
	ssmEndpoint string
	// settings are the deployment's, read from the intake function; err
	// says why they could not be read (then a message is validated
	// without the deployment's pool names, and the intake checks them).
	settings    config.Settings
	settingsErr error
	// readSettings, when set, reads them: on first need (submit, retry,
	// cost, quota), so that commands that only read jobs make no Lambda call.
	readSettings func(ctx context.Context) (config.Settings, error)
}

// loadSettings reads the deployment's settings if they are not read yet.
func (c *cloud) loadSettings(ctx context.Context) {
	if c.readSettings != nil {
		c.settings, c.settingsErr = c.readSettings(ctx)
		c.readSettings = nil
	}
}

// defaults are what a message is validated against here.
func (c *cloud) defaults(pool string) job.Defaults {
	if c.settingsErr != nil {
		d := config.Settings{Pools: nil}.Scheduler().Defaults()
		return fallbackDefaults(d, pool)
	}
	return c.settings.Scheduler().Defaults()
}

// job reads one job's record (one GetItem); a missing one is an error
// that names the stack.
func (c *cloud) job(ctx context.Context, id string) (*job.Job, error) {
	j, err := c.jobs.Job(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("no job %s in stack %s", id, c.stack.Name)
	}
	return j, err
}

// use returns the run's cloud, connecting on first use.
func (a *app) use(ctx context.Context) (*cloud, error) {
	if a.cloud != nil {
		return a.cloud, nil
	}
	c, err := a.connect(ctx)
	if err != nil {
		return nil, err
	}
	a.cloud = c
	return c, nil
}

// connectAWS builds the real clients with the user's own credentials (the
// SDK's default chain: environment, profile, SSO, instance role; region
// and AWS_ENDPOINT_URL as the SDK reads them) and reads the stack.
func (a *app) connectAWS(ctx context.Context) (*cloud, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if a.region != "" {
		opts = append(opts, awsconfig.WithRegion(a.region))
	}
	if a.profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(a.profile))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS Region: give --region, or set AWS_REGION or a profile's region")
	}
	return newCloud(ctx, cfg, a.stackName)
}

func newCloud(ctx context.Context, cfg aws.Config, stackName string) (*cloud, error) {
	st, err := findStack(ctx, cloudformation.NewFromConfig(cfg), stackName, cfg.Region)
	if err != nil {
		return nil, err
	}
	c := &cloud{
		stack: st,
		jobs:  store.NewDynamoDB(dynamodb.NewFromConfig(cfg), st.Table),
		sqs:   sqs.NewFromConfig(cfg),
		logs:  cloudwatchlogs.NewFromConfig(cfg),
		ec2:   ec2.NewFromConfig(cfg),
		ssm:   ssm.NewFromConfig(cfg),

		quotas: servicequotas.NewFromConfig(cfg),

		ssmEndpoint: ssmEndpointURL(ctx, cfg),
	}
	fn := lambda.NewFromConfig(cfg)
	c.readSettings = func(ctx context.Context) (config.Settings, error) { return settings(ctx, fn, st) }
	return c, nil
}

// exitError ends the command line with a status of its own: a job's exit
// code (submit --follow), or 1 with the message already printed.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError is a mistake in the command line itself: exit status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return &usageError{fmt.Errorf(format, args...)} }
