package awssim

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Limits of SSM Run Command the simulation enforces, as documented.
const (
	// runShellScript is the one document modelled.
	runShellScript = "AWS-RunShellScript"
	// maxSendTargets is SendCommand's limit on InstanceIds.
	maxSendTargets = 50
	// maxExecutionTimeout is AWS-RunShellScript's largest executionTimeout (48 h).
	maxExecutionTimeout = 172800
	// defaultExecutionTimeout applies when the parameter is left out.
	defaultExecutionTimeout = 3600
	// defaultDeliveryTimeout is SendCommand's TimeoutSeconds when left out.
	defaultDeliveryTimeout = 3600
	// maxComment is the longest command comment.
	maxComment = 100
	// ssmTime is how Run Command writes a time: UTC to the millisecond, as
	// in the AWS CLI's get-command-invocation example
	// ("2020-02-19T18:18:03.419Z").
	ssmTime = "2006-01-02T15:04:05.000Z"
)

// Invocation is one command on one instance.
type Invocation struct {
	CommandID, InstanceID, Comment, Status string
	ResponseCode                           int
	Requested, Started, Ended              time.Time
	Output                                 string
	// Commands and WorkingDirectory are the command's parameters.
	Commands, WorkingDirectory string
	// StatusDetails, when set, is SSM's detail of the status where it says
	// more than the status itself (DeliveryTimedOut).
	StatusDetails string
	// Hung and Idle are what the executor said of the process: it never
	// ends by itself, or it does no work while it runs.
	Hung, Idle bool
	await      string
	// interrupt is the file whose writing ends the process (by itself,
	// after interruptGrace, with the file's content as its exit code); then
	// runs as it does.
	interrupt      string
	interruptGrace time.Duration
	then           func(h *Host, exit int)
	host           *Host
	gen            int
}

func (c *Cloud) online(i *Instance) bool {
	return i.State == "running" && !i.AgentOnline.IsZero() && !c.clock.Now().Before(i.AgentOnline) && !i.agentGone
}

// DescribeInstanceInformation reports the agents of instances that have
// registered: Online while running, ConnectionLost otherwise. It honours the
// InstanceIds filter and MaxResults/NextToken paging; with FilterAfterPage,
// the filter thins each page instead of choosing what is paged.
func (c *Cloud) DescribeInstanceInformation(_ context.Context, in *ssm.DescribeInstanceInformationInput, _ ...func(*ssm.Options)) (*ssm.DescribeInstanceInformationOutput, error) {
	return serve(c, "DescribeInstanceInformation", in, c.describeInstanceInformation)
}

func (c *Cloud) describeInstanceInformation(in *ssm.DescribeInstanceInformationInput) (*ssm.DescribeInstanceInformationOutput, error) {
	if len(in.InstanceInformationFilterList) > 0 {
		return nil, notModelled("InstanceInformationFilterList (use Filters)")
	}
	var ids []string
	for _, f := range in.Filters {
		if k := aws.ToString(f.Key); k != "InstanceIds" {
			return nil, notModelled("DescribeInstanceInformation filter %q", k)
		}
		ids = f.Values
	}
	size := 10 // the service's default page (its service model)
	if in.MaxResults != nil {
		if size = int(aws.ToInt32(in.MaxResults)); size < 5 || size > 50 {
			return nil, apiError("ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 5 and 50", size)
		}
	}
	wanted := func(i types.InstanceInformation) bool {
		return len(ids) == 0 || slices.Contains(ids, aws.ToString(i.InstanceId))
	}
	var match []types.InstanceInformation
	for _, i := range c.instances {
		if i.State == "terminated" {
			continue
		}
		status := types.PingStatusConnectionLost
		if c.online(i) {
			status = types.PingStatusOnline
		} else if !i.registered {
			continue // its agent never registered: SSM does not know it
		}
		info := types.InstanceInformation{InstanceId: aws.String(i.ID), PingStatus: status}
		if c.FilterAfterPage || wanted(info) {
			match = append(match, info)
		}
	}
	out := &ssm.DescribeInstanceInformationOutput{}
	start, end, next, err := page(in.NextToken, size, len(match))
	if err != nil {
		return nil, err
	}
	out.InstanceInformationList, out.NextToken = match[start:end], next
	if c.FilterAfterPage {
		out.InstanceInformationList = slices.DeleteFunc(slices.Clone(out.InstanceInformationList), func(i types.InstanceInformation) bool { return !wanted(i) })
	}
	return out, nil
}

// page returns the bounds of one page of n items and the next token.
func page(token *string, size, n int) (start, end int, next *string, err error) {
	if token != nil {
		if start, err = strconv.Atoi(*token); err != nil || start > n {
			return 0, 0, nil, apiError("InvalidNextToken", "The specified token is not valid.")
		}
	}
	end = min(start+size, n)
	if end < n {
		next = aws.String(strconv.Itoa(end))
	}
	return start, end, next, nil
}

// SendCommand runs AWS-RunShellScript on online instances. It refuses, as
// SSM does, another document, parameters the document does not define, an
// executionTimeout outside 1–172800 s, more than 50 instances, a comment
// over 100 characters, and an instance whose agent is not online.
func (c *Cloud) SendCommand(_ context.Context, in *ssm.SendCommandInput, _ ...func(*ssm.Options)) (*ssm.SendCommandOutput, error) {
	return serve(c, "SendCommand", in, c.sendCommand)
}

func (c *Cloud) sendCommand(in *ssm.SendCommandInput) (*ssm.SendCommandOutput, error) {
	timeout, delivery, err := checkSend(in)
	if err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		i, ok := c.byID[id]
		if ok {
			if err := c.authorize(Request{Op: "SendCommand", Instance: id, Tags: maps.Clone(i.Tags)}, "AccessDeniedException"); err != nil {
				return nil, err
			}
		}
		if !ok || !c.online(i) {
			return nil, apiError("InvalidInstanceId", "Instances [[%s]] not in a valid state for account %s", id, Account)
		}
	}
	c.seq++
	cmdID := fmt.Sprintf("%08x-5e1d-4c0d-8000-%012x", c.seq, c.seq)
	var workdir string
	if v := in.Parameters["workingDirectory"]; len(v) > 0 {
		workdir = v[0]
	}
	for _, id := range in.InstanceIds {
		inv := &Invocation{
			CommandID: cmdID, InstanceID: id, Comment: aws.ToString(in.Comment), Status: "InProgress", ResponseCode: -1,
			Requested: c.clock.Now(), Started: c.clock.Now(),
			Commands: strings.Join(in.Parameters["commands"], "\n"), WorkingDirectory: workdir,
		}
		c.commands = append(c.commands, inv)
		if c.AgentGone != nil && c.AgentGone(id) {
			c.undelivered(c.byID[id], inv, delivery+timeout)
			continue
		}
		c.statusEvent(inv)
		c.start(c.byID[id], inv, Run{
			InstanceID: id, CommandID: cmdID, Comment: inv.Comment, Commands: inv.Commands,
			WorkingDirectory: workdir, Timeout: timeout,
		})
	}
	return &ssm.SendCommandOutput{Command: &types.Command{CommandId: aws.String(cmdID), Comment: in.Comment}}, nil
}

// checkSend validates a SendCommand request and returns its execution
// timeout and its delivery timeout (TimeoutSeconds).
func checkSend(in *ssm.SendCommandInput) (execution, delivery time.Duration, err error) {
	switch {
	case aws.ToString(in.DocumentName) != runShellScript:
		return 0, 0, notModelled("document %q (only %s)", aws.ToString(in.DocumentName), runShellScript)
	case len(in.Targets) > 0:
		return 0, 0, notModelled("SendCommand Targets (use InstanceIds)")
	case len(in.InstanceIds) == 0 || len(in.InstanceIds) > maxSendTargets:
		return 0, 0, apiError("ValidationException", "InstanceIds must have between 1 and %d items, got %d", maxSendTargets, len(in.InstanceIds))
	case len(aws.ToString(in.Comment)) > maxComment:
		return 0, 0, apiError("ValidationException", "Value at 'comment' failed to satisfy constraint: Member must have length less than or equal to %d", maxComment)
	}
	delivery = defaultDeliveryTimeout * time.Second
	if t := in.TimeoutSeconds; t != nil {
		if *t < 30 || *t > 2592000 {
			return 0, 0, apiError("ValidationException", "Value '%d' at 'timeoutSeconds' failed to satisfy constraint: Member must have value between 30 and 2592000", *t)
		}
		delivery = time.Duration(*t) * time.Second
	}
	for name, v := range in.Parameters {
		switch name {
		case "commands", "workingDirectory", "executionTimeout":
		default:
			return 0, 0, apiError("InvalidParameters", "Parameter %q is not defined in the document %s.", name, runShellScript)
		}
		if name != "commands" && len(v) != 1 {
			return 0, 0, apiError("InvalidParameters", "Parameter %q takes one value, got %d.", name, len(v))
		}
	}
	if len(in.Parameters["commands"]) == 0 {
		return 0, 0, apiError("InvalidParameters", "Parameter \"commands\" is required by the document %s.", runShellScript)
	}
	secs := defaultExecutionTimeout
	if v, ok := in.Parameters["executionTimeout"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > maxExecutionTimeout {
			return 0, 0, apiError("InvalidParameters", "Parameter \"executionTimeout\" value %q: want whole seconds from 1 to %d.", v[0], maxExecutionTimeout)
		}
		secs = n
	}
	return time.Duration(secs) * time.Second, delivery, nil
}

// undelivered leaves inv as SSM leaves a command whose agent has gone away:
// Delayed, never started, until it expires. A command expires after its
// delivery timeout plus its execution timeout (Run Command's documented
// total timeout); it then reads TimedOut, StatusDetails DeliveryTimedOut,
// with no exit code. It never runs: SSM does not start a command once its
// delivery timeout has passed.
func (c *Cloud) undelivered(i *Instance, inv *Invocation, expires time.Duration) {
	i.agentGone = true
	inv.Status, inv.Started = "Delayed", time.Time{}
	c.statusEvent(inv)
	gen := inv.gen
	c.clock.At(inv.Requested.Add(expires), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if inv.gen != gen || inv.Status != "Delayed" {
			return
		}
		inv.Status, inv.StatusDetails = "TimedOut", "DeliveryTimedOut"
		inv.gen++
		c.statusEvent(inv)
	})
}

// start hands a delivered command to the executor and schedules its end:
// by itself after its duration, at the execution timeout, or when the file
// it awaits is written.
func (c *Cloud) start(i *Instance, inv *Invocation, r Run) {
	exec := c.Exec
	if exec == nil {
		exec = ExecFunc(func(*Host, Run) Outcome { return Outcome{Duration: time.Minute} })
	}
	h := &Host{c: c, i: i}
	// Executors run outside the cloud's lock: they use the host, and a real
	// bash run takes real time.
	c.mu.Unlock()
	out := exec.Run(h, r)
	c.mu.Lock()
	inv.Output = out.Output
	inv.Hung, inv.Idle = out.Hang, out.Idle
	if inv.Status != "InProgress" {
		return
	}
	gen := inv.gen
	end, st, code, byItself := out.Duration, status(out.Exit), out.Exit, true
	switch {
	case out.Await != "":
		if v, ok := i.disk[out.Await]; ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				n = 1
			}
			c.finish(inv, status(n), n, "")
			return
		}
		inv.await = out.Await
		end, st, code, byItself = r.Timeout, "TimedOut", -1, false
	case out.Hang || out.Duration > r.Timeout:
		end, st, code, byItself = r.Timeout, "TimedOut", -1, false
	}
	if !byItself && c.IgnoreTimeouts {
		end = 1000 * time.Hour // SSM never ends it: only the caller or the instance can
	}
	if out.Interrupt != "" {
		inv.interrupt, inv.interruptGrace, inv.then, inv.host = out.Interrupt, out.InterruptGrace, out.Then, h
	}
	if out.Tick != nil && out.Every > 0 {
		c.tick(h, inv, gen, out.Every, out.Tick)
	}
	c.clock.At(c.clock.Now().Add(end), func() {
		c.mu.Lock()
		if inv.gen != gen || inv.Status != "InProgress" {
			c.mu.Unlock()
			return
		}
		c.finish(inv, st, code, "")
		c.mu.Unlock()
		if byItself && out.Then != nil {
			out.Then(h, code)
		}
	})
}

// tick runs f every period while the invocation's process lives.
func (c *Cloud) tick(h *Host, inv *Invocation, gen int, every time.Duration, f func(*Host)) {
	c.clock.At(c.clock.Now().Add(every), func() {
		c.mu.Lock()
		alive := inv.gen == gen && inv.Status == "InProgress"
		c.mu.Unlock()
		if alive {
			f(h)
			c.tick(h, inv, gen, every, f)
		}
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
	inv.StatusDetails = ""
	inv.Output += out
	inv.await, inv.interrupt = "", ""
	inv.gen++
	c.statusEvent(inv)
}

func (c *Cloud) statusEvent(inv *Invocation) {
	c.emit(Event{
		Source: "aws.ssm", DetailType: "EC2 Command Invocation Status-change Notification",
		Resources: []string{"arn:aws:ec2:" + Region + ":" + Account + ":instance/" + inv.InstanceID},
		Detail: map[string]string{
			"command-id": inv.CommandID, "document-name": runShellScript, "instance-id": inv.InstanceID,
			"requested-date-time": inv.Requested.UTC().Format(ssmTime), "status": inv.Status,
		},
	})
}

// killCommands ends the commands running on an instance that is going away:
// the agent dies with them, and SSM reports them failed without an exit
// code. A power-off timer armed before dies with the OS; the disk survives.
func (c *Cloud) killCommands(i *Instance) {
	i.timerGen++
	for _, inv := range c.commands {
		if inv.InstanceID == i.ID && inv.Status == "InProgress" {
			c.finish(inv, "Failed", -1, "")
		}
	}
}

// statusDetails is the StatusDetails SSM gives an invocation.
func statusDetails(inv *Invocation) string {
	switch {
	case inv.StatusDetails != "":
		return inv.StatusDetails
	case inv.Status == "TimedOut":
		return "ExecutionTimedOut"
	}
	return inv.Status
}

// GetCommandInvocation reads one invocation.
func (c *Cloud) GetCommandInvocation(_ context.Context, in *ssm.GetCommandInvocationInput, _ ...func(*ssm.Options)) (*ssm.GetCommandInvocationOutput, error) {
	return serve(c, "GetCommandInvocation", in, c.getCommandInvocation)
}

func (c *Cloud) getCommandInvocation(in *ssm.GetCommandInvocationInput) (*ssm.GetCommandInvocationOutput, error) {
	if in.PluginName != nil {
		return nil, notModelled("GetCommandInvocation PluginName")
	}
	for _, inv := range c.commands {
		if inv.CommandID == aws.ToString(in.CommandId) && inv.InstanceID == aws.ToString(in.InstanceId) {
			out := &ssm.GetCommandInvocationOutput{
				CommandId: aws.String(inv.CommandID), InstanceId: aws.String(inv.InstanceID), Comment: aws.String(inv.Comment),
				Status: types.CommandInvocationStatus(inv.Status), StatusDetails: aws.String(statusDetails(inv)),
				ResponseCode: int32(inv.ResponseCode), StandardOutputContent: aws.String(inv.Output),
				DocumentName:           aws.String(runShellScript),
				ExecutionStartDateTime: aws.String(""), // not started: SSM gives an empty time
			}
			if !inv.Started.IsZero() {
				out.ExecutionStartDateTime = aws.String(inv.Started.UTC().Format(ssmTime))
			}
			if !inv.Ended.IsZero() {
				out.ExecutionEndDateTime = aws.String(inv.Ended.UTC().Format(ssmTime))
			}
			return out, nil
		}
	}
	return nil, apiError("InvocationDoesNotExist", "")
}

// ListCommandInvocations lists invocations, newest first, by instance
// and/or command, with MaxResults/NextToken paging.
func (c *Cloud) ListCommandInvocations(_ context.Context, in *ssm.ListCommandInvocationsInput, _ ...func(*ssm.Options)) (*ssm.ListCommandInvocationsOutput, error) {
	return serve(c, "ListCommandInvocations", in, c.listCommandInvocations)
}

func (c *Cloud) listCommandInvocations(in *ssm.ListCommandInvocationsInput) (*ssm.ListCommandInvocationsOutput, error) {
	if len(in.Filters) > 0 {
		return nil, notModelled("ListCommandInvocations filters")
	}
	size := 50
	if in.MaxResults != nil {
		if size = int(aws.ToInt32(in.MaxResults)); size < 1 || size > 50 {
			return nil, apiError("ValidationException", "Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50", size)
		}
	}
	var match []*Invocation
	for k := len(c.commands) - 1; k >= 0; k-- {
		inv := c.commands[k]
		if (in.InstanceId == nil || inv.InstanceID == *in.InstanceId) && (in.CommandId == nil || inv.CommandID == *in.CommandId) {
			match = append(match, inv)
		}
	}
	start, end, next, err := page(in.NextToken, size, len(match))
	if err != nil {
		return nil, err
	}
	out := &ssm.ListCommandInvocationsOutput{NextToken: next}
	for _, inv := range match[start:end] {
		out.CommandInvocations = append(out.CommandInvocations, types.CommandInvocation{
			CommandId: aws.String(inv.CommandID), InstanceId: aws.String(inv.InstanceID),
			Comment: aws.String(inv.Comment), Status: types.CommandInvocationStatus(inv.Status),
			StatusDetails: aws.String(statusDetails(inv)), DocumentName: aws.String(runShellScript),
		})
	}
	return out, nil
}

// CancelCommand cancels the in-progress invocations of a command (their
// processes are killed) and the delayed ones (they are never delivered).
func (c *Cloud) CancelCommand(_ context.Context, in *ssm.CancelCommandInput, _ ...func(*ssm.Options)) (*ssm.CancelCommandOutput, error) {
	return serve(c, "CancelCommand", in, c.cancelCommand)
}

func (c *Cloud) cancelCommand(in *ssm.CancelCommandInput) (*ssm.CancelCommandOutput, error) {
	for _, inv := range c.commands {
		if inv.CommandID != aws.ToString(in.CommandId) || len(in.InstanceIds) > 0 && !slices.Contains(in.InstanceIds, inv.InstanceID) {
			continue
		}
		if i := c.byID[inv.InstanceID]; i != nil {
			if err := c.authorize(Request{Op: "CancelCommand", Instance: i.ID, Tags: maps.Clone(i.Tags)}, "AccessDeniedException"); err != nil {
				return nil, err
			}
		}
		if inv.Status == "InProgress" || inv.Status == "Delayed" {
			c.finish(inv, "Cancelled", -1, "")
		}
	}
	return &ssm.CancelCommandOutput{}, nil
}

// GetParameter reads a parameter from Parameters.
func (c *Cloud) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	return serve(c, "GetParameter", in, c.getParameter)
}

func (c *Cloud) getParameter(in *ssm.GetParameterInput) (*ssm.GetParameterOutput, error) {
	v, ok := c.Parameters[aws.ToString(in.Name)]
	if !ok {
		return nil, apiError("ParameterNotFound", "")
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Name: in.Name, Value: aws.String(v), Type: types.ParameterTypeString}}, nil
}

// Session opens (open=true) or closes a Session Manager session to an
// instance, as a person does with the console or the CLI; closing closes
// every session to it.
func (c *Cloud) Session(instanceID string, open bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if open {
		c.seq++
		c.sessions = append(c.sessions, session{id: fmt.Sprintf("someone-%d", c.seq), target: instanceID})
		return
	}
	c.sessions = slices.DeleteFunc(c.sessions, func(s session) bool { return s.target == instanceID })
}

// DescribeSessions lists the active sessions, 50 per page unless
// MaxResults says otherwise. The history (State History) and filters are
// not modelled.
func (c *Cloud) DescribeSessions(_ context.Context, in *ssm.DescribeSessionsInput, _ ...func(*ssm.Options)) (*ssm.DescribeSessionsOutput, error) {
	return serve(c, "DescribeSessions", in, c.describeSessions)
}

func (c *Cloud) describeSessions(in *ssm.DescribeSessionsInput) (*ssm.DescribeSessionsOutput, error) {
	switch {
	case in.State != types.SessionStateActive:
		return nil, notModelled("DescribeSessions State %q (only Active)", in.State)
	case len(in.Filters) > 0:
		return nil, notModelled("DescribeSessions filters")
	}
	size := 50
	if in.MaxResults != nil {
		if size = int(aws.ToInt32(in.MaxResults)); size < 1 || size > 200 {
			return nil, apiError("ValidationException", "Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 200", size)
		}
	}
	start, end, next, err := page(in.NextToken, size, len(c.sessions))
	if err != nil {
		return nil, err
	}
	out := &ssm.DescribeSessionsOutput{NextToken: next}
	for _, s := range c.sessions[start:end] {
		out.Sessions = append(out.Sessions, types.Session{SessionId: aws.String(s.id), Target: aws.String(s.target), Status: types.SessionStatusConnected, DocumentName: s.document})
	}
	return out, nil
}
