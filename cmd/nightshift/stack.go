package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// The stack outputs the command line reads (template.yaml's Outputs).
const (
	outQueueURL       = "QueueUrl"
	outTable          = "TableName"
	outLogGroup       = "JobLogGroup"
	outIntakeFunction = "IntakeFunctionName"
	outDashboard      = "DashboardUrl"
)

// Stack is what the command line knows of a deployed nightshift stack.
type Stack struct {
	Name, Region string
	QueueURL     string
	Table        string
	LogGroup     string
	// IntakeFunction is the intake function's name: its environment holds
	// the deployment's settings, which a message is validated against.
	IntakeFunction string
	DashboardURL   string
}

type cfnAPI interface {
	DescribeStacks(ctx context.Context, in *cloudformation.DescribeStacksInput, opts ...func(*cloudformation.Options)) (*cloudformation.DescribeStacksOutput, error)
}

type lambdaAPI interface {
	GetFunctionConfiguration(ctx context.Context, in *lambda.GetFunctionConfigurationInput, opts ...func(*lambda.Options)) (*lambda.GetFunctionConfigurationOutput, error)
}

// findStack reads the stack's outputs: one DescribeStacks call.
func findStack(ctx context.Context, c cfnAPI, name, region string) (Stack, error) {
	out, err := c.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ValidationError" && strings.Contains(ae.ErrorMessage(), "does not exist") {
			return Stack{}, fmt.Errorf("no stack %q in %s: deploy one (README, \"Deploy\"), or name yours with --stack or NIGHTSHIFT_STACK", name, region)
		}
		return Stack{}, fmt.Errorf("read stack %s: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return Stack{}, fmt.Errorf("no stack %q in %s", name, region)
	}
	st := out.Stacks[0]
	switch st.StackStatus {
	case cfntypes.StackStatusCreateInProgress, cfntypes.StackStatusCreateFailed, cfntypes.StackStatusRollbackComplete,
		cfntypes.StackStatusRollbackInProgress, cfntypes.StackStatusRollbackFailed, cfntypes.StackStatusDeleteInProgress,
		cfntypes.StackStatusDeleteComplete, cfntypes.StackStatusDeleteFailed:
		return Stack{}, fmt.Errorf("stack %s is %s: nothing to use yet", name, st.StackStatus)
	}
	s := Stack{Name: name, Region: region}
	for _, o := range st.Outputs {
		v := aws.ToString(o.OutputValue)
		switch aws.ToString(o.OutputKey) {
		case outQueueURL:
			s.QueueURL = v
		case outTable:
			s.Table = v
		case outLogGroup:
			s.LogGroup = v
		case outIntakeFunction:
			s.IntakeFunction = v
		case outDashboard:
			s.DashboardURL = v
		}
	}
	var missing []string
	for k, v := range map[string]string{outQueueURL: s.QueueURL, outTable: s.Table, outLogGroup: s.LogGroup} {
		if v == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return Stack{}, fmt.Errorf("stack %s lacks the outputs %s: is it a nightshift stack, and up to date?", name, strings.Join(sortedStrings(missing), ", "))
	}
	return s, nil
}

// settings reads the deployment's settings from the intake function's
// environment, so that a message is validated here against exactly what
// the intake validates it against: one GetFunctionConfiguration call.
func settings(ctx context.Context, c lambdaAPI, s Stack) (config.Settings, error) {
	if s.IntakeFunction == "" {
		return config.Settings{}, fmt.Errorf("stack %s has no %s output", s.Name, outIntakeFunction)
	}
	out, err := c.GetFunctionConfiguration(ctx, &lambda.GetFunctionConfigurationInput{FunctionName: aws.String(s.IntakeFunction)})
	if err != nil {
		return config.Settings{}, fmt.Errorf("read the settings of %s: %w", s.IntakeFunction, err)
	}
	var env map[string]string
	if out.Environment != nil {
		env = out.Environment.Variables
	}
	return config.FromEnv(func(k string) string { return env[k] })
}

// fallbackDefaults validates a message when the deployment's settings
// cannot be read: any pool name passes here (the intake checks it).
func fallbackDefaults(d job.Defaults, pool string) job.Defaults {
	if pool != "" && !containsString(d.Pools, pool) {
		d.Pools = append(d.Pools, pool)
	}
	return d
}

// Console links. The console's own URL encoding of a log group or stream
// in a fragment: "/" is "$252F", that is "%2F" with "%" escaped as "$25".
func consoleBase(region string) string {
	return "https://" + region + ".console.aws.amazon.com"
}

func logsURL(region, group, stream string) string {
	esc := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(url.QueryEscape(s), "+", "%20"), "%", "$25")
	}
	u := consoleBase(region) + "/cloudwatch/home?region=" + region + "#logsV2:log-groups/log-group/" + esc(group)
	if stream != "" {
		u += "/log-events/" + esc(stream)
	}
	return u
}

// tableURL is the jobs table in the DynamoDB console's item explorer (a
// job's item is pk JOB#<id>, sk JOB), as the stack's JobsConsoleUrl.
func tableURL(region, table string) string {
	return consoleBase(region) + "/dynamodbv2/home?region=" + region + "#item-explorer?table=" + url.QueryEscape(table)
}

func commandURL(region, commandID string) string {
	return consoleBase(region) + "/systems-manager/run-command/" + commandID + "?region=" + region
}

func instanceURL(region, id string) string {
	return consoleBase(region) + "/ec2/home?region=" + region + "#InstanceDetails:instanceId=" + id
}
