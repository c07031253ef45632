// Package runner runs job attempts on instances through SSM Run Command.
package runner

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// Document is the SSM document every attempt runs.
const Document = "AWS-RunShellScript"

// DeliveryTimeout is SendCommand's TimeoutSeconds: how long SSM may take to
// deliver a command to an online agent; delivery normally takes seconds. A
// command that has not started by then never runs. (SSM reports it
// DeliveryTimedOut only later: after this plus the execution timeout.)
const DeliveryTimeout = 10 * time.Minute

// agentDir is the workingDirectory every command is sent with. Without one,
// aws:runShellScript runs in the SSM agent's own working directory (/usr/bin
// for the deb and rpm agent's service, a snap directory for the snap agent).
// The job's own directory cannot go there: the agent starts the command in
// an absolute workingDirectory as it is, and when that does not exist yet —
// on every new instance — the command fails with exit code 1 before the
// wrapper runs (no lock, no timers). "/" exists on every instance; the
// wrapper makes the job's directory and enters it.
const agentDir = "/"

// findPages bounds how far back Find looks in an instance's command history;
// a dispatch intent older than a few pages of commands is long dead.
const findPages = 3

// SSM is the part of the SSM API the runner uses.
type SSM interface {
	SendCommand(ctx context.Context, in *ssm.SendCommandInput, optFns ...func(*ssm.Options)) (*ssm.SendCommandOutput, error)
	GetCommandInvocation(ctx context.Context, in *ssm.GetCommandInvocationInput, optFns ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error)
	ListCommandInvocations(ctx context.Context, in *ssm.ListCommandInvocationsInput, optFns ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error)
	CancelCommand(ctx context.Context, in *ssm.CancelCommandInput, optFns ...func(*ssm.Options)) (*ssm.CancelCommandOutput, error)
	DescribeInstanceInformation(ctx context.Context, in *ssm.DescribeInstanceInformationInput, optFns ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error)
}

var _ SSM = (*ssm.Client)(nil)

// Errors callers branch on.
var (
	// ErrNotReady: the instance's SSM agent is not online (yet).
	ErrNotReady = errors.New("SSM agent not online")
	// ErrThrottled: SSM throttled the call; try again on the next reconcile.
	ErrThrottled = errors.New("SSM API throttled")
)

// Config is the deployment's Run Command settings.
type Config struct {
	// LogGroup receives each command's output (one stream per attempt).
	LogGroup string
	// Bucket, when set, also receives the output under KeyPrefix.
	Bucket    string
	KeyPrefix string
	Script    ScriptOptions
}

// Runner sends and follows job commands.
type Runner struct {
	ssm SSM
	cfg Config
}

// New returns a Runner.
func New(c SSM, cfg Config) *Runner { return &Runner{ssm: c, cfg: cfg} }

// Status is a command invocation's status, as SSM names it.
type Status string

// Command statuses. Pending covers SSM's Pending, InProgress and Delayed.
const (
	Pending   Status = "Pending"
	Success   Status = "Success"
	Failed    Status = "Failed"
	TimedOut  Status = "TimedOut"
	Cancelled Status = "Cancelled"
)

// Final reports whether the command has ended.
func (s Status) Final() bool { return s == Success || s == Failed || s == TimedOut || s == Cancelled }

// ParseStatus maps an SSM status (API or EventBridge spelling) to a Status.
func ParseStatus(s string) Status {
	switch strings.ReplaceAll(strings.ToLower(s), "_", "") {
	case "success":
		return Success
	case "failed", "undeliverable", "terminated", "deliverytimedout":
		return Failed
	case "timedout", "executiontimedout":
		return TimedOut
	case "cancelled":
		return Cancelled
	}
	return Pending
}

// Result is what a finished (or running) invocation reports.
type Result struct {
	CommandID string
	Status    Status
	// Undelivered: SSM has not got the command to the instance's agent —
	// not yet, while Status is Pending, or never, once it is final (SSM
	// reports TimedOut with StatusDetails DeliveryTimedOut, or Failed with
	// Undeliverable). A command never delivered never ran: its attempt was
	// lost, it did not run past its deadline.
	Undelivered bool
	ExitCode    int
	Started     time.Time
	Ended       time.Time
}

// undelivered are the StatusDetails of an invocation that SSM has not
// delivered: not yet (Pending, Delayed), or never (DeliveryTimedOut,
// Undeliverable). They are API values, as GetCommandInvocation documents
// them.
var undelivered = []string{"Pending", "Delayed", "DeliveryTimedOut", "Undeliverable"}

// Online returns which of ids have an SSM agent reporting Online. An EC2
// instance that is running is not yet ready: its agent registers later.
func (r *Runner) Online(ctx context.Context, ids []string) (map[string]bool, error) {
	online := map[string]bool{}
	// The InstanceIds filter takes at most 50 values per call.
	for start := 0; start < len(ids); start += 50 {
		in := &ssm.DescribeInstanceInformationInput{
			Filters:    []types.InstanceInformationStringFilter{{Key: aws.String("InstanceIds"), Values: ids[start:min(start+50, len(ids))]}},
			MaxResults: aws.Int32(50), // the API maximum: one call per chunk
		}
		p := ssm.NewDescribeInstanceInformationPaginator(r.ssm, in)
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("describe instance information: %w", classify(err))
			}
			for _, info := range page.InstanceInformationList {
				if info.PingStatus == types.PingStatusOnline {
					online[aws.ToString(info.InstanceId)] = true
				}
			}
		}
	}
	return online, nil
}

// Find looks in the instance's recent command history for the command of
// this attempt (by its comment), so a command sent before a crash is adopted
// rather than sent again. It returns "" when there is none.
func (r *Runner) Find(ctx context.Context, j *job.Job, instanceID string) (string, error) {
	in := &ssm.ListCommandInvocationsInput{InstanceId: aws.String(instanceID), MaxResults: aws.Int32(50)}
	p := ssm.NewListCommandInvocationsPaginator(r.ssm, in)
	for page := 0; p.HasMorePages() && page < findPages; page++ {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("list commands on %s: %w", instanceID, classify(err))
		}
		for _, inv := range out.CommandInvocations {
			if aws.ToString(inv.Comment) == j.Comment() {
				return aws.ToString(inv.CommandId), nil
			}
		}
	}
	return "", nil
}

// Send runs the attempt's wrapper on exactly one instance and returns the
// command id. keepWarm is that instance's keep-warm window: after the job,
// the wrapper arms the instance's own idle timer for it plus a minute.
func (r *Runner) Send(ctx context.Context, j *job.Job, instanceID string, keepWarm time.Duration) (string, error) {
	p := newPlan(j, instanceID, keepWarm, r.cfg.Script)
	commands, err := p.launcher()
	if err != nil {
		return "", err
	}
	in := &ssm.SendCommandInput{
		DocumentName:   aws.String(Document),
		InstanceIds:    []string{instanceID},
		Comment:        aws.String(j.Comment()),
		TimeoutSeconds: aws.Int32(int32(DeliveryTimeout / time.Second)),
		Parameters: map[string][]string{
			"commands":         {commands},
			"executionTimeout": {strconv.Itoa(p.maxRuntimeSeconds)},
		},
	}
	// A relative state directory is taken from where the command starts,
	// as the caller chose (the local run): a workingDirectory would move it.
	if path.IsAbs(p.stateDir) {
		in.Parameters["workingDirectory"] = []string{agentDir}
	}
	if r.cfg.LogGroup != "" {
		in.CloudWatchOutputConfig = &types.CloudWatchOutputConfig{
			CloudWatchOutputEnabled: true,
			CloudWatchLogGroupName:  aws.String(r.cfg.LogGroup),
		}
	}
	if r.cfg.Bucket != "" {
		in.OutputS3BucketName = aws.String(r.cfg.Bucket)
		in.OutputS3KeyPrefix = aws.String(strings.TrimSuffix(r.cfg.KeyPrefix, "/") + "/" + j.ID + "/" + fmt.Sprint(j.Attempt))
	}
	out, err := r.ssm.SendCommand(ctx, in)
	if err != nil {
		return "", fmt.Errorf("send command for %s to %s: %w", j.ID, instanceID, classify(err))
	}
	return aws.ToString(out.Command.CommandId), nil
}

// LogStream names the CloudWatch Logs stream SSM writes an attempt's stdout to.
func LogStream(commandID, instanceID string) string {
	return commandID + "/" + instanceID + "/aws-runShellScript/stdout"
}

// Result reads the status of a command on one instance. Right after
// SendCommand the invocation may not exist yet: that reads as Pending, and
// not delivered.
func (r *Runner) Result(ctx context.Context, commandID, instanceID string) (Result, error) {
	out, err := r.ssm.GetCommandInvocation(ctx, &ssm.GetCommandInvocationInput{CommandId: aws.String(commandID), InstanceId: aws.String(instanceID)})
	if err != nil {
		if awserr.SSMNoInvocation.Has(err) {
			return Result{CommandID: commandID, Status: Pending, Undelivered: true}, nil
		}
		return Result{}, fmt.Errorf("get invocation %s on %s: %w", commandID, instanceID, classify(err))
	}
	res := Result{
		CommandID: commandID, Status: ParseStatus(string(out.Status)), ExitCode: int(out.ResponseCode),
		Undelivered: slices.Contains(undelivered, aws.ToString(out.StatusDetails)),
	}
	res.Started, _ = time.Parse(time.RFC3339, aws.ToString(out.ExecutionStartDateTime))
	res.Ended, _ = time.Parse(time.RFC3339, aws.ToString(out.ExecutionEndDateTime))
	return res, nil
}

// Cancel cancels a command on one instance.
func (r *Runner) Cancel(ctx context.Context, commandID, instanceID string) error {
	if _, err := r.ssm.CancelCommand(ctx, &ssm.CancelCommandInput{CommandId: aws.String(commandID), InstanceIds: []string{instanceID}}); err != nil {
		return fmt.Errorf("cancel %s on %s: %w", commandID, instanceID, classify(err))
	}
	return nil
}

// classify marks the SSM errors callers branch on with the runner's sentinels.
func classify(err error) error {
	switch {
	case awserr.SSMNotReady.Has(err):
		return fmt.Errorf("%w: %w", ErrNotReady, err)
	case awserr.SSMThrottle.Has(err):
		return fmt.Errorf("%w: %w", ErrThrottled, err)
	}
	return err
}
