package sim

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// Instance is a simulated EC2 instance.
type Instance struct {
	ID, Type, State, Token, Image string
	Spot                          bool
	Tags                          map[string]string
	LaunchTime                    time.Time
	// AgentOnline is when the SSM agent registers; zero while not running.
	AgentOnline time.Time
	// ShutdownAt is the instance's own power-off timer (shutdown -P), if armed.
	ShutdownAt time.Time
	// StoppedBy says who stopped or terminated the instance last.
	StoppedBy string
	// GPUMetrics: the CloudWatch agent publishes nvidia_smi_utilization_gpu.
	GPUMetrics bool
	// Stops counts how often the instance was stopped or terminated.
	Stops int

	bootedAt  time.Time
	billed    time.Duration
	billSince time.Time
	gen       int // bumps on every start/stop, cancelling stale timers
	timerGen  int // bumps on every shutdown timer change
	disk      map[string]*attemptRun
}

// DescribeInstances lists instances, honouring the instance-id,
// instance-state-name and tag:KEY filters and MaxResults/NextToken paging.
func (c *Cloud) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("DescribeInstances"); err != nil {
		return nil, err
	}
	var match []*Instance
	for _, i := range c.instances {
		if (len(in.InstanceIds) == 0 || slices.Contains(in.InstanceIds, i.ID)) && filtersMatch(in.Filters, i) {
			match = append(match, i)
		}
	}
	start := 0
	if in.NextToken != nil {
		start, _ = strconv.Atoi(*in.NextToken)
	}
	size := len(match)
	if in.MaxResults != nil {
		size = int(*in.MaxResults)
	}
	end := min(start+size, len(match))
	out := &ec2.DescribeInstancesOutput{}
	for _, i := range match[start:end] {
		out.Reservations = append(out.Reservations, types.Reservation{Instances: []types.Instance{i.sdk()}})
	}
	if end < len(match) {
		out.NextToken = aws.String(strconv.Itoa(end))
	}
	return out, c.after("DescribeInstances")
}

func filtersMatch(fs []types.Filter, i *Instance) bool {
	for _, f := range fs {
		name := aws.ToString(f.Name)
		var v string
		switch {
		case name == "instance-state-name":
			v = i.State
		case name == "instance-id":
			v = i.ID
		case strings.HasPrefix(name, "tag:"):
			var ok bool
			if v, ok = i.Tags[strings.TrimPrefix(name, "tag:")]; !ok {
				return false
			}
		default:
			continue
		}
		if !slices.Contains(f.Values, v) {
			return false
		}
	}
	return true
}

func (i *Instance) sdk() types.Instance {
	out := types.Instance{
		InstanceId:   aws.String(i.ID),
		Placement:    &types.Placement{AvailabilityZone: aws.String("us-east-1a")},
		InstanceType: types.InstanceType(i.Type),
		ImageId:      aws.String(i.Image),
		State:        &types.InstanceState{Name: types.InstanceStateName(i.State)},
		LaunchTime:   aws.Time(i.LaunchTime),
	}
	if i.Spot {
		out.InstanceLifecycle = types.InstanceLifecycleTypeSpot
	}
	for _, k := range sortedTagKeys(i.Tags) {
		out.Tags = append(out.Tags, types.Tag{Key: aws.String(k), Value: aws.String(i.Tags[k])})
	}
	return out
}

// RunInstances launches one instance, with client-token idempotency,
// capacity and vCPU quota checks.
func (c *Cloud) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("RunInstances"); err != nil {
		return nil, err
	}
	typ := string(in.InstanceType)
	spot := in.InstanceMarketOptions != nil && in.InstanceMarketOptions.MarketType == types.MarketTypeSpot
	if tok := aws.ToString(in.ClientToken); tok != "" {
		if id, ok := c.tokens[tok]; ok {
			i := c.byID[id]
			if i.Type != typ {
				return nil, apiError("IdempotentParameterMismatch", "client token %s was used with other parameters", tok)
			}
			return &ec2.RunInstancesOutput{Instances: []types.Instance{i.sdk()}}, c.after("RunInstances")
		}
	}
	t, ok := catalog.Lookup(typ)
	switch {
	case !ok:
		return nil, apiError("InvalidParameterValue", "invalid instance type %q", typ)
	case aws.ToString(in.ImageId) == "":
		return nil, apiError("MissingParameter", "ImageId is required")
	}
	if left, capped := c.Capacity[typ]; capped && left <= 0 {
		return nil, apiError("InsufficientInstanceCapacity", "We currently do not have sufficient %s capacity in the Availability Zone you requested.", typ)
	}
	q := catalog.QuotaFor(typ, spot)
	if limit, capped := c.Quota[q.Code]; capped && c.vcpus(q)+t.VCPUs > limit {
		code := "VcpuLimitExceeded"
		if spot {
			code = "MaxSpotInstanceCountExceeded"
		}
		return nil, apiError(code, "You have requested more vCPU capacity than your current vCPU limit of %d allows for the instance bucket that the specified instance type belongs to.", limit)
	}
	if _, capped := c.Capacity[typ]; capped {
		c.Capacity[typ]--
	}
	i := &Instance{
		ID: c.nextID("i-"), Type: typ, Token: aws.ToString(in.ClientToken), Image: aws.ToString(in.ImageId),
		Spot: spot, Tags: map[string]string{}, LaunchTime: c.clock.Now(), disk: map[string]*attemptRun{},
		GPUMetrics: true, // the stack's State Manager association installs the agent
	}
	for _, ts := range in.TagSpecifications {
		if ts.ResourceType == types.ResourceTypeInstance {
			for _, tag := range ts.Tags {
				i.Tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
		}
	}
	c.instances = append(c.instances, i)
	c.byID[i.ID] = i
	if i.Token != "" {
		c.tokens[i.Token] = i.ID
	}
	c.boot(i)
	return &ec2.RunInstancesOutput{Instances: []types.Instance{i.sdk()}}, c.after("RunInstances")
}

// vcpus counts the vCPUs of live instances under quota q.
func (c *Cloud) vcpus(q catalog.Quota) int {
	n := 0
	for _, i := range c.instances {
		if (i.State == "pending" || i.State == "running") && catalog.QuotaFor(i.Type, i.Spot) == q {
			t, _ := catalog.Lookup(i.Type)
			n += t.VCPUs
		}
	}
	return n
}

// boot moves i to pending now, running after Boot, agent online after Agent.
func (c *Cloud) boot(i *Instance) {
	i.LaunchTime = c.clock.Now() // EC2's LaunchTime is the last start
	i.gen++
	gen := i.gen
	c.setState(i, "pending", "")
	c.clock.At(c.clock.Now().Add(c.Boot), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i.gen != gen || i.State != "pending" {
			return
		}
		c.setState(i, "running", "")
		i.bootedAt = c.clock.Now()
		agent := c.Agent
		if c.AgentDelay != nil {
			if d, ok := c.AgentDelay(i.ID); ok {
				agent = d
			}
		}
		if agent >= 0 {
			i.AgentOnline = c.clock.Now().Add(agent)
		}
	})
}

// setState changes i's state, keeps its bill, and emits the state-change event.
func (c *Cloud) setState(i *Instance, state, by string) {
	now := c.clock.Now()
	if i.State == state {
		return
	}
	billing := func(s string) bool { return s == "running" || s == "stopping" || s == "shutting-down" }
	if billing(state) && !billing(i.State) {
		i.billSince = now
	}
	if !billing(state) && billing(i.State) {
		i.billed += now.Sub(i.billSince)
		i.billSince = time.Time{}
	}
	i.State = state
	if state != "running" {
		i.AgentOnline = time.Time{}
	}
	if by != "" {
		i.StoppedBy = by
	}
	c.emit(Event{
		Source: "aws.ec2", DetailType: "EC2 Instance State-change Notification",
		Resources: []string{"arn:aws:ec2:us-east-1:123456789012:instance/" + i.ID},
		Detail:    map[string]string{"instance-id": i.ID, "state": state},
	})
}

// StartInstances starts stopped instances.
func (c *Cloud) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("StartInstances"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		c.owned("StartInstances", id, false)
		i, ok := c.byID[id]
		if !ok {
			return nil, apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		switch i.State {
		case "stopped":
			if left, capped := c.Capacity[i.Type]; capped && left <= 0 {
				return nil, apiError("InsufficientInstanceCapacity", "Insufficient capacity.")
			}
			c.boot(i)
		case "pending", "running":
		default:
			return nil, apiError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		}
	}
	return &ec2.StartInstancesOutput{}, c.after("StartInstances")
}

// StopInstances stops running instances; spot instances cannot be stopped.
func (c *Cloud) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("StopInstances"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		c.owned("StopInstances", id, true)
		i, ok := c.byID[id]
		switch {
		case !ok:
			return nil, apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		case i.Spot:
			return nil, apiError("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request.", id)
		}
		c.stop(i, "StopInstances")
	}
	return &ec2.StopInstancesOutput{}, c.after("StopInstances")
}

// stop moves i through stopping to stopped; commands on it die.
func (c *Cloud) stop(i *Instance, by string) {
	if i.State != "pending" && i.State != "running" {
		return
	}
	i.gen++
	i.Stops++
	gen := i.gen
	c.setState(i, "stopping", by)
	c.killCommands(i)
	c.clock.At(c.clock.Now().Add(c.StopDelay), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i.gen == gen && i.State == "stopping" {
			c.setState(i, "stopped", "")
		}
	})
}

// TerminateInstances terminates instances.
func (c *Cloud) TerminateInstances(_ context.Context, in *ec2.TerminateInstancesInput, _ ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call("TerminateInstances"); err != nil {
		return nil, err
	}
	for _, id := range in.InstanceIds {
		c.owned("TerminateInstances", id, false)
		i, ok := c.byID[id]
		if !ok {
			return nil, apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		c.terminate(i, "TerminateInstances")
	}
	return &ec2.TerminateInstancesOutput{}, c.after("TerminateInstances")
}

func (c *Cloud) terminate(i *Instance, by string) {
	if i.State == "terminated" || i.State == "shutting-down" {
		return
	}
	i.gen++
	i.Stops++
	gen := i.gen
	c.setState(i, "shutting-down", by)
	c.killCommands(i)
	c.clock.At(c.clock.Now().Add(c.StopDelay), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if i.gen == gen {
			c.setState(i, "terminated", "")
		}
	})
}

// Interrupt announces a spot interruption of instance id and terminates it
// two minutes later, as EC2 does.
func (c *Cloud) Interrupt(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.byID[id]
	c.emit(Event{
		Source: "aws.ec2", DetailType: "EC2 Spot Instance Interruption Warning",
		Resources: []string{"arn:aws:ec2:us-east-1:123456789012:instance/" + id},
		Detail:    map[string]string{"instance-id": id, "instance-action": "terminate"},
	})
	c.clock.At(c.clock.Now().Add(spotNotice), func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.terminate(i, "spot interruption")
	})
}

// ByHand stops ("stop") or terminates ("terminate") an instance the way a
// person does from the console, outside nightshift.
func (c *Cloud) ByHand(id, action string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.byID[id]
	if action == "terminate" {
		c.terminate(i, "a person")
		return
	}
	c.stop(i, "a person")
}

// Launch puts an instance in the account as a person would, with the given
// tags; it does not count as a nightshift call.
func (c *Cloud) Launch(typ string, tags map[string]string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := &Instance{
		ID: c.nextID("i-"), Type: typ, Tags: copyTags(tags), LaunchTime: c.clock.Now(), Image: "ami-byhand", disk: map[string]*attemptRun{},
		GPUMetrics: tags["nightshift:watch"] == "true", // the association reaches watched instances too
	}
	c.instances = append(c.instances, i)
	c.byID[i.ID] = i
	c.boot(i)
	return i.ID
}

// SetGPUMetrics says whether the instance's CloudWatch agent publishes GPU metrics.
func (c *Cloud) SetGPUMetrics(id string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byID[id].GPUMetrics = on
}
