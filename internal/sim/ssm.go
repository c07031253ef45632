package sim

import (
	"context"
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Invocation is one command on one instance.
type Invocation struct {
	CommandID, InstanceID, Comment, Status string
	ResponseCode                           int
	Requested, Started, Ended              time.Time
	Output                                 string
	JobID                                  string
	Attempt                                int
	// Duplicate is set when the wrapper's per-attempt lock found the attempt
	// already started on the instance: this copy ran nothing.
	Duplicate bool
	gen       int
	hung      bool
}

// Executor runs a wrapper script for the simulation.
type Executor interface {
	Run(r Run) Outcome
}

// Run is what an executor is asked to run.
type Run struct {
	InstanceID, CommandID, JobID string
	Attempt                      int
	// Launcher is the /bin/sh text SSM runs; Script the bash wrapper in it;
	// Command the job's own command.
	Launcher, Script, Command string
	Timeout                   time.Duration
}

// Outcome is how a run ended: exit code, virtual duration, output. A run
// that Hangs never ends by itself (SSM's execution timeout ends it).
type Outcome struct {
	Exit     int
	Duration time.Duration
	Output   string
	Hang     bool
}

// ExecFunc adapts a function to Executor.
type ExecFunc func(Run) Outcome

// Run calls f.
func (f ExecFunc) Run(r Run) Outcome { return f(r) }

// attemptRun is the per-attempt lock directory on an instance's disk.
type attemptRun struct {
	done bool
	exit int
	// waiters are duplicate invocations reporting this attempt's result.
	waiters []*Invocation
}

var (
	launcherB64 = regexp.MustCompile(`echo ([A-Za-z0-9+/=]+) \| base64 -d`)
	deadmanRe   = regexp.MustCompile(`(?m)^ns_arm (\d+) "dead-man timer`)
	idleRe      = regexp.MustCompile(`(?m)^ns_arm (\d+) "idle timer after job`)
	headerRe    = regexp.MustCompile(`(?m)^# nightshift wrapper: job '([^']*)', attempt (\d+)\.`)
	commandRe   = regexp.MustCompile(`(?s)\n\t# command\n\t(.*)\n\) > >\(tee`)
)

// wrapper is what the simulation reads from a rendered wrapper script.
type wrapper struct {
	script, command string
	jobID           string
	attempt         int
	deadman, idle   time.Duration
}

func parseWrapper(launcher string) (wrapper, bool) {
	m := launcherB64.FindStringSubmatch(launcher)
	if m == nil {
		return wrapper{}, false
	}
	b, err := base64.StdEncoding.DecodeString(m[1])
	if err != nil {
		return wrapper{}, false
	}
	w := wrapper{script: string(b)}
	if h := headerRe.FindStringSubmatch(w.script); h != nil {
		w.jobID = h[1]
		w.attempt, _ = strconv.Atoi(h[2])
	}
	if c := commandRe.FindStringSubmatch(w.script); c != nil {
		w.command = c[1]
	}
	minutes := func(re *regexp.Regexp) time.Duration {
		if m := re.FindStringSubmatch(w.script); m != nil {
			n, _ := strconv.Atoi(m[1])
			return time.Duration(n) * time.Minute
		}
		return 0
	}
	w.deadman, w.idle = minutes(deadmanRe), minutes(idleRe)
	return w, w.jobID != ""
}

func (c *Cloud) online(i *Instance) bool {
	return i.State == "running" && !i.AgentOnline.IsZero() && !c.clock.Now().Before(i.AgentOnline)
}

// DescribeInstanceInformation reports the agents of instances that have
// registered: Online while running, ConnectionLost otherwise.
func (c *Cloud) DescribeInstanceInformation(_ context.Context, in *ssm.DescribeInstanceInformationInput, _ ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("DescribeInstanceInformation"); err != nil {
		return nil, err
	}
	var ids []string
	for _, f := range in.Filters {
		if aws.ToString(f.Key) == "InstanceIds" {
			ids = f.Values
		}
	}
	out := &ssm.DescribeInstanceInformationOutput{}
	for _, i := range c.instances {
		if len(ids) > 0 && !slices.Contains(ids, i.ID) || i.State == "terminated" {
			continue
		}
		status := types.PingStatusConnectionLost
		if c.online(i) {
			status = types.PingStatusOnline
		} else if i.AgentOnline.IsZero() {
			continue // never registered since its last start
		}
		out.InstanceInformationList = append(out.InstanceInformationList, types.InstanceInformation{InstanceId: aws.String(i.ID), PingStatus: status})
	}
	return out, c.after("DescribeInstanceInformation")
}

// SendCommand runs AWS-RunShellScript on online instances.
func (c *Cloud) SendCommand(_ context.Context, in *ssm.SendCommandInput, _ ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("SendCommand"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		c.owned("SendCommand", id, false)
		if i, ok := c.byID[id]; !ok || !c.online(i) {
			return nil, apiError("InvalidInstanceId", "Instances [[%s]] not in a valid state for account 123456789012", id)
		}
	}
	c.seq++
	cmdID := fmt.Sprintf("%08x-5e1d-4c0d-8000-%012x", c.seq, c.seq)
	timeout := time.Hour
	if v := in.Parameters["executionTimeout"]; len(v) > 0 {
		n, _ := strconv.Atoi(v[0])
		timeout = time.Duration(n) * time.Second
	}
	for _, id := range in.InstanceIds {
		inv := &Invocation{CommandID: cmdID, InstanceID: id, Comment: aws.ToString(in.Comment), Status: "InProgress", Requested: c.clock.Now(), Started: c.clock.Now()}
		c.commands = append(c.commands, inv)
		c.statusEvent(inv)
		c.start(c.byID[id], inv, strings.Join(in.Parameters["commands"], "\n"), timeout)
	}
	return &ssm.SendCommandOutput{Command: &types.Command{CommandId: aws.String(cmdID), Comment: in.Comment}}, c.after("SendCommand")
}

// start runs the wrapper: per-attempt lock, dead-man timer, the command,
// then the idle timer.
func (c *Cloud) start(i *Instance, inv *Invocation, launcher string, timeout time.Duration) {
	w, ok := parseWrapper(launcher)
	if !ok {
		c.finish(inv, "Failed", 2, "sim: not a nightshift wrapper\n")
		return
	}
	inv.JobID, inv.Attempt = w.jobID, w.attempt
	key := w.jobID + "#" + strconv.Itoa(w.attempt)
	if run, ok := i.disk[key]; ok {
		inv.Duplicate = true
		if run.done {
			c.finish(inv, status(run.exit), run.exit, "nightshift: attempt already ran on this instance; reporting its result\n")
		} else {
			run.waiters = append(run.waiters, inv)
		}
		return
	}
	run := &attemptRun{}
	i.disk[key] = run
	c.arm(i, w.deadman, "dead-man timer")
	exec := c.Exec
	if exec == nil {
		exec = ExecFunc(func(Run) Outcome { return Outcome{Duration: time.Minute} })
	}
	// Executors run outside the cloud's lock: a real bash run takes real time.
	c.mu.Unlock()
	out := exec.Run(Run{InstanceID: i.ID, CommandID: inv.CommandID, JobID: w.jobID, Attempt: w.attempt, Launcher: launcher, Script: w.script, Command: w.command, Timeout: timeout})
	c.mu.Lock()
	inv.Output = out.Output
	gen := inv.gen
	end, st, code := out.Duration, status(out.Exit), out.Exit
	inv.hung = out.Hang
	if out.Hang || out.Duration > timeout {
		end, st, code = timeout, "TimedOut", -1
		if c.IgnoreTimeouts {
			end = 1000 * time.Hour // SSM never ends it: only nightshift or the instance can
		}
	}
	c.clock.At(c.clock.Now().Add(end), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if inv.gen != gen || inv.Status != "InProgress" {
			return
		}
		c.finish(inv, st, code, "")
		run.done, run.exit = true, code
		for _, d := range run.waiters {
			if d.Status == "InProgress" {
				c.finish(d, st, code, "nightshift: attempt already started on this instance; reporting its result\n")
			}
		}
		c.arm(i, w.idle, "idle timer")
	})
}

func status(exit int) string {
	if exit == 0 {
		return "Success"
	}
	return "Failed"
}

func (c *Cloud) finish(inv *Invocation, st string, code int, out string) {
	inv.Status, inv.ResponseCode, inv.Ended = st, code, c.clock.Now()
	inv.Output += out
	inv.gen++
	c.statusEvent(inv)
}

func (c *Cloud) statusEvent(inv *Invocation) {
	c.emit(Event{
		Source: "aws.ssm", DetailType: "EC2 Command Invocation Status-change Notification",
		Resources: []string{"arn:aws:ec2:us-east-1:123456789012:instance/" + inv.InstanceID},
		Detail: map[string]string{
			"command-id": inv.CommandID, "document-name": "AWS-RunShellScript", "instance-id": inv.InstanceID,
			"requested-date-time": inv.Requested.UTC().Format("2006-01-02T15:04:05.000Z"), "status": inv.Status,
		},
	})
}

// arm sets the instance's own shutdown timer (shutdown -P +N); a later arm replaces it.
func (c *Cloud) arm(i *Instance, d time.Duration, why string) {
	if d <= 0 {
		return
	}
	i.timerGen++
	gen, bootGen := i.timerGen, i.gen
	i.ShutdownAt = c.clock.Now().Add(d)
	c.clock.At(i.ShutdownAt, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i.timerGen != gen || i.gen != bootGen || i.State != "running" {
			return
		}
		// Instance-initiated shutdown: an on-demand instance stops (its
		// shutdown behaviour), a one-time spot instance terminates.
		if i.Spot {
			c.terminate(i, why)
		} else {
			c.stop(i, why)
		}
	})
}

// killCommands ends the commands running on an instance that is going away:
// the agent dies with them, and SSM reports them failed without an exit code.
func (c *Cloud) killCommands(i *Instance) {
	i.timerGen++
	for _, inv := range c.commands {
		if inv.InstanceID == i.ID && inv.Status == "InProgress" {
			c.finish(inv, "Failed", -1, "")
		}
	}
	// The per-attempt locks live on the root volume and survive a stop.
}

// GetCommandInvocation reads one invocation.
func (c *Cloud) GetCommandInvocation(_ context.Context, in *ssm.GetCommandInvocationInput, _ ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("GetCommandInvocation"); err != nil {
		return nil, err
	}
	for _, inv := range c.commands {
		if inv.CommandID == aws.ToString(in.CommandId) && inv.InstanceID == aws.ToString(in.InstanceId) {
			out := &ssm.GetCommandInvocationOutput{
				CommandId: aws.String(inv.CommandID), InstanceId: aws.String(inv.InstanceID), Comment: aws.String(inv.Comment),
				Status: types.CommandInvocationStatus(inv.Status), StatusDetails: aws.String(inv.Status),
				ResponseCode: int32(inv.ResponseCode), StandardOutputContent: aws.String(inv.Output),
				ExecutionStartDateTime: aws.String(inv.Started.UTC().Format(time.RFC3339)),
			}
			if !inv.Ended.IsZero() {
				out.ExecutionEndDateTime = aws.String(inv.Ended.UTC().Format(time.RFC3339))
			}
			return out, c.after("GetCommandInvocation")
		}
	}
	return nil, apiError("InvocationDoesNotExist", "")
}

// ListCommandInvocations lists an instance's invocations, newest first.
func (c *Cloud) ListCommandInvocations(_ context.Context, in *ssm.ListCommandInvocationsInput, _ ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("ListCommandInvocations"); err != nil {
		return nil, err
	}
	var match []*Invocation
	for k := len(c.commands) - 1; k >= 0; k-- {
		inv := c.commands[k]
		if (in.InstanceId == nil || inv.InstanceID == *in.InstanceId) && (in.CommandId == nil || inv.CommandID == *in.CommandId) {
			match = append(match, inv)
		}
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	size := 50
	if in.MaxResults != nil {
		size = int(*in.MaxResults)
	}
	end := min(start+size, len(match))
	out := &ssm.ListCommandInvocationsOutput{}
	for _, inv := range match[start:end] {
		out.CommandInvocations = append(out.CommandInvocations, types.CommandInvocation{
			CommandId: aws.String(inv.CommandID), InstanceId: aws.String(inv.InstanceID),
			Comment: aws.String(inv.Comment), Status: types.CommandInvocationStatus(inv.Status),
		})
	}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, c.after("ListCommandInvocations")
}

// CancelCommand cancels in-progress invocations of a command.
func (c *Cloud) CancelCommand(_ context.Context, in *ssm.CancelCommandInput, _ ...func(*ssm.Options)) (*ssm.CancelCommandOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("CancelCommand"); err != nil {
		return nil, err
	}
	for _, inv := range c.commands {
		if inv.CommandID == aws.ToString(in.CommandId) && (len(in.InstanceIds) == 0 || slices.Contains(in.InstanceIds, inv.InstanceID)) && inv.Status == "InProgress" {
			c.finish(inv, "Cancelled", -1, "")
			if i := c.byID[inv.InstanceID]; i != nil {
				if run := i.disk[inv.JobID+"#"+strconv.Itoa(inv.Attempt)]; run != nil && !inv.Duplicate {
					run.done, run.exit = true, -1
				}
			}
		}
	}
	return &ssm.CancelCommandOutput{}, c.after("CancelCommand")
}

// GetParameter reads a parameter from Parameters.
func (c *Cloud) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("GetParameter"); err != nil {
		return nil, err
	}
	v, ok := c.Parameters[aws.ToString(in.Name)]
	if !ok {
		return nil, apiError("ParameterNotFound", "")
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Name: in.Name, Value: aws.String(v)}}, c.after("GetParameter")
}
