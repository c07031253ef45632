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
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Instance is a simulated EC2 instance.
type Instance struct {
	ID, Type, State, Token, Image string
	// Zone and Subnet are where it runs (Subnet is empty for the default).
	Zone, Subnet string
	Spot         bool
	// Persistent marks a spot instance of a persistent request that stops
	// when interrupted: unlike a one-time spot instance, it can be stopped
	// and started. (EC2 restarting it by itself when capacity returns is
	// not modelled.)
	Persistent bool
	Tags       map[string]string
	LaunchTime time.Time
	// AgentOnline is when the SSM agent registers; zero while not running.
	AgentOnline time.Time
	// ShutdownAt is the instance's own power-off timer (shutdown -P), if armed.
	ShutdownAt time.Time
	// StoppedBy says who stopped or terminated the instance last.
	StoppedBy string
	// GPUMetrics: the CloudWatch agent publishes nvidia_smi_utilization_gpu.
	GPUMetrics bool
	// Detailed is EC2 detailed monitoring (RunInstances' Monitoring,
	// MonitorInstances): its AWS/EC2 metrics come every minute, not every 5.
	Detailed bool
	// monitoringSince is when the last change of Detailed took effect (the
	// next 5-minute mark after the call); before it the metrics come at the
	// other resolution. Only the last change is remembered.
	monitoringSince time.Time
	// Stops counts how often the instance was stopped or terminated.
	Stops int

	bootedAt  time.Time
	billed    time.Duration
	billSince time.Time
	// ran and ranSince count the time running alone, which EC2 bills
	// (the simulator bills stopping too; see Bill).
	ran      time.Duration
	ranSince time.Time
	gen      int // bumps on every start/stop, cancelling stale timers
	// registered: its SSM agent has registered once; SSM lists it from then on.
	registered bool
	// agentGone: its agent went away (Cloud.AgentGone) until the next boot.
	agentGone bool
	timerGen  int // bumps on every shutdown timer change
	// disk is the root volume's files (path → content): it survives a stop.
	disk map[string]string
}

// DescribeInstances lists instances, honouring InstanceIds, the filters
// instance-id, instance-state-name, instance-type, availability-zone,
// tag:KEY and tag-key (values with EC2's * and ? wildcards), and
// MaxResults/NextToken paging.
func (c *Cloud) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	return serve(c, "DescribeInstances", in, c.describeInstances)
}

func (c *Cloud) describeInstances(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
	if err := checkFilters(in.Filters); err != nil {
		return nil, err
	}
	if in.MaxResults != nil {
		switch n := aws.ToInt32(in.MaxResults); {
		case len(in.InstanceIds) > 0:
			return nil, apiError("InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
		case n < 5 || n > 1000:
			return nil, apiError("InvalidParameterValue", "Value (%d) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", n)
		}
	}
	var match []*Instance
	for _, i := range c.instances {
		if (len(in.InstanceIds) == 0 || slices.Contains(in.InstanceIds, i.ID)) && filtersMatch(in.Filters, i) {
			match = append(match, i)
		}
	}
	start := 0
	if in.NextToken != nil {
		var err error
		if start, err = strconv.Atoi(*in.NextToken); err != nil || start > len(match) {
			return nil, apiError("InvalidParameterValue", "invalid NextToken %q", *in.NextToken)
		}
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
	return out, nil
}

// checkFilters refuses the filters the simulation does not model, as EC2
// refuses the names it does not know: a filter silently ignored would
// answer more than was asked.
func checkFilters(fs []types.Filter) error {
	for _, f := range fs {
		name := aws.ToString(f.Name)
		switch {
		case name == "instance-id", name == "instance-state-name", name == "instance-type", name == "availability-zone", name == "tag-key":
		case strings.HasPrefix(name, "tag:") && len(name) > 4:
		default:
			return apiError("InvalidParameterValue", "The filter '%s' is invalid", name)
		}
		if len(f.Values) == 0 {
			return apiError("InvalidParameterValue", "The filter '%s' has no values", name)
		}
	}
	return nil
}

// filterMatch reports whether v matches one of a filter's values. EC2's
// filter values take wildcards ("List and filter your resources", and each
// Describe operation's filter list): * matches zero or more characters,
// ? zero or one, and a backslash makes the next character literal.
func filterMatch(values []string, v string) bool {
	return slices.ContainsFunc(values, func(p string) bool { return wildMatch(p, v) })
}

func wildMatch(p, s string) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for k := 0; k <= len(s); k++ {
				if wildMatch(p[1:], s[k:]) {
					return true
				}
			}
			return false
		case '?':
			return wildMatch(p[1:], s) || len(s) > 0 && wildMatch(p[1:], s[1:])
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
		}
		if len(s) == 0 || s[0] != p[0] {
			return false
		}
		p, s = p[1:], s[1:]
	}
	return len(s) == 0
}

func filtersMatch(fs []types.Filter, i *Instance) bool {
	for _, f := range fs {
		name := aws.ToString(f.Name)
		if name == "tag-key" {
			if !slices.ContainsFunc(slices.Collect(maps.Keys(i.Tags)), func(k string) bool { return filterMatch(f.Values, k) }) {
				return false
			}
			continue
		}
		var v string
		switch {
		case name == "instance-state-name":
			v = i.State
		case name == "instance-id":
			v = i.ID
		case name == "instance-type":
			v = i.Type
		case name == "availability-zone":
			v = i.Zone
		case strings.HasPrefix(name, "tag:"):
			var ok bool
			if v, ok = i.Tags[strings.TrimPrefix(name, "tag:")]; !ok {
				return false
			}
		}
		if !filterMatch(f.Values, v) {
			return false
		}
	}
	return true
}

func (i *Instance) sdk() types.Instance {
	out := types.Instance{
		InstanceId:   aws.String(i.ID),
		Placement:    &types.Placement{AvailabilityZone: aws.String(i.Zone)},
		InstanceType: types.InstanceType(i.Type),
		ImageId:      aws.String(i.Image),
		State:        &types.InstanceState{Name: types.InstanceStateName(i.State)},
		LaunchTime:   aws.Time(i.LaunchTime),
		Monitoring:   &types.Monitoring{State: i.monitoringState()},
	}
	if i.Subnet != "" {
		out.SubnetId = aws.String(i.Subnet)
	}
	if i.Spot {
		out.InstanceLifecycle = types.InstanceLifecycleTypeSpot
	}
	for _, k := range slices.Sorted(maps.Keys(i.Tags)) {
		out.Tags = append(out.Tags, types.Tag{Key: aws.String(k), Value: aws.String(i.Tags[k])})
	}
	return out
}

// maxClientToken is EC2's limit on a ClientToken's length.
const maxClientToken = 64

// RunInstances launches one instance, with client-token idempotency,
// subnet, capacity and vCPU quota checks.
func (c *Cloud) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	return serve(c, "RunInstances", in, c.runInstances)
}

func (c *Cloud) runInstances(in *ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
	typ := string(in.InstanceType)
	spot := in.InstanceMarketOptions != nil && in.InstanceMarketOptions.MarketType == types.MarketTypeSpot
	persistent, err := persistentSpot(in)
	if err != nil {
		return nil, err
	}
	tok := aws.ToString(in.ClientToken)
	subnet := aws.ToString(in.SubnetId)
	detailed := in.Monitoring != nil && aws.ToBool(in.Monitoring.Enabled)
	switch {
	case in.MinCount == nil || in.MaxCount == nil:
		return nil, apiError("MissingParameter", "The request must contain the parameters MinCount and MaxCount")
	case aws.ToInt32(in.MinCount) != 1 || aws.ToInt32(in.MaxCount) != 1:
		return nil, notModelled("RunInstances with MinCount %d, MaxCount %d (only 1 and 1)", aws.ToInt32(in.MinCount), aws.ToInt32(in.MaxCount))
	case len(tok) > maxClientToken:
		return nil, apiError("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid. Length exceeds %d.", tok, maxClientToken)
	}
	if tok != "" {
		if id, ok := c.tokens[tok]; ok {
			i := c.byID[id]
			if i.Type != typ || i.Subnet != subnet || i.Spot != spot || i.Persistent != persistent || i.Image != aws.ToString(in.ImageId) || i.Detailed != detailed {
				return nil, apiError("IdempotentParameterMismatch", "client token %s was used with other parameters", tok)
			}
			return &ec2.RunInstancesOutput{Instances: []types.Instance{i.sdk()}}, nil
		}
	}
	t, ok := LookupType(typ)
	switch {
	case !ok:
		return nil, apiError("InvalidParameterValue", "Invalid value '%s' for InstanceType.", typ)
	case aws.ToString(in.ImageId) == "":
		return nil, apiError("MissingParameter", "The request must contain the parameter ImageId")
	}
	if err := c.checkLaunch(in); err != nil {
		return nil, err
	}
	zone := DefaultZone
	if subnet != "" {
		z, ok := c.Subnets[subnet]
		if !ok {
			return nil, apiError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnet)
		}
		zone = z
	}
	tags := map[string]string{}
	for _, ts := range in.TagSpecifications {
		switch ts.ResourceType {
		case types.ResourceTypeInstance:
			for _, tag := range ts.Tags {
				tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
		case types.ResourceTypeVolume:
		default:
			return nil, notModelled("tag specifications for %s", ts.ResourceType)
		}
	}
	if err := c.authorize(Request{Op: "RunInstances", Tags: tags}, "UnauthorizedOperation"); err != nil {
		return nil, err
	}
	o := Offering{Type: typ, Zone: zone, Spot: spot}
	if err := c.capacity(o); err != nil {
		c.Launches = append(c.Launches, LaunchCall{At: c.clock.Now(), Offering: o, Subnet: subnet, Token: tok, Code: "InsufficientInstanceCapacity"})
		return nil, err
	}
	q := QuotaFor(typ, spot)
	if limit, capped := c.Quota[q]; capped && c.vcpus(q)+t.VCPUs > limit {
		code := "VcpuLimitExceeded"
		if spot {
			code = "MaxSpotInstanceCountExceeded"
		}
		return nil, apiError(code, "You have requested more vCPU capacity than your current vCPU limit of %d allows for the instance bucket that the specified instance type belongs to.", limit)
	}
	if _, capped := c.Capacity[typ]; capped {
		c.Capacity[typ]--
	}
	c.consume(o)
	c.Launches = append(c.Launches, LaunchCall{At: c.clock.Now(), Offering: o, Subnet: subnet, Token: tok})
	i := &Instance{
		ID: c.nextID("i-"), Type: typ, Token: tok, Image: aws.ToString(in.ImageId), Zone: zone, Subnet: subnet,
		Spot: spot, Persistent: persistent, Tags: tags, LaunchTime: c.clock.Now(), disk: map[string]string{},
		GPUMetrics: true, // the stack's State Manager association installs the agent
		Detailed:   detailed,
	}
	c.instances = append(c.instances, i)
	c.byID[i.ID] = i
	if tok != "" {
		c.tokens[tok] = i.ID
	}
	c.boot(i)
	return &ec2.RunInstancesOutput{Instances: []types.Instance{i.sdk()}}, nil
}

// persistentSpot reports whether in asks for a spot instance of a
// persistent request. EC2's RunInstances takes a persistent request only
// with the interruption behaviour stop or hibernate (SpotMarketOptions in
// the EC2 API reference); hibernation, and the code EC2 refuses the other
// combinations with, are not modelled.
func persistentSpot(in *ec2.RunInstancesInput) (bool, error) {
	m := in.InstanceMarketOptions
	if m == nil || m.MarketType != types.MarketTypeSpot || m.SpotOptions == nil || m.SpotOptions.SpotInstanceType != types.SpotInstanceTypePersistent {
		return false, nil
	}
	if b := m.SpotOptions.InstanceInterruptionBehavior; b != types.InstanceInterruptionBehaviorStop {
		return false, notModelled("persistent spot requests with interruption behaviour %q (only stop)", b)
	}
	return true, nil
}

// checkLaunch refuses, as EC2 does, an image or launch template the
// account does not have, and a root volume smaller than the image's
// snapshot. Images and LaunchTemplates left empty accept anything.
func (c *Cloud) checkLaunch(in *ec2.RunInstancesInput) error {
	ami := aws.ToString(in.ImageId)
	img, known := c.Images[ami]
	if len(c.Images) > 0 && !known {
		if !strings.HasPrefix(ami, "ami-") {
			return apiError("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", ami)
		}
		return apiError("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", ami)
	}
	if lt := in.LaunchTemplate; lt != nil && len(c.LaunchTemplates) > 0 && !c.LaunchTemplates[aws.ToString(lt.LaunchTemplateId)] {
		return apiError("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", aws.ToString(lt.LaunchTemplateId))
	}
	for _, bd := range in.BlockDeviceMappings {
		if bd.Ebs != nil && bd.Ebs.VolumeSize != nil && int(*bd.Ebs.VolumeSize) < img.SnapshotGB {
			return apiError("InvalidBlockDeviceMapping", "Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", *bd.Ebs.VolumeSize, img.Snapshot, img.SnapshotGB)
		}
	}
	return nil
}

// vcpus counts the vCPUs of live instances under quota q.
func (c *Cloud) vcpus(q string) int {
	n := 0
	for _, i := range c.instances {
		if (i.State == "pending" || i.State == "running") && QuotaFor(i.Type, i.Spot) == q {
			t, _ := LookupType(i.Type)
			n += t.VCPUs
		}
	}
	return n
}

// boot moves i to pending now, running after Boot, agent online after Agent.
func (c *Cloud) boot(i *Instance) {
	i.LaunchTime = c.clock.Now() // EC2's LaunchTime is the last start
	i.gen++
	i.agentGone = false // a new boot starts a new agent
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
			c.clock.At(i.AgentOnline, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if i.gen == gen {
					i.registered = true
				}
			})
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
	if state == "running" {
		i.ranSince = now
	} else if i.State == "running" {
		i.ran += now.Sub(i.ranSince)
		i.ranSince = time.Time{}
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
		Resources: []string{"arn:aws:ec2:" + Region + ":" + Account + ":instance/" + i.ID},
		Detail:    map[string]string{"instance-id": i.ID, "state": state},
	})
}

// instance returns the instance named by id for a call that acts on it,
// after the policy allowed the call; tagKeys are what CreateTags sets.
func (c *Cloud) instance(op, id string, tagKeys ...string) (*Instance, error) {
	i, ok := c.byID[id]
	if !ok {
		return nil, apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	if err := c.authorize(Request{Op: op, Instance: id, Tags: maps.Clone(i.Tags), TagKeys: tagKeys}, "UnauthorizedOperation"); err != nil {
		return nil, err
	}
	return i, nil
}

// StartInstances starts stopped instances.
func (c *Cloud) StartInstances(_ context.Context, in *ec2.StartInstancesInput, _ ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	return serve(c, "StartInstances", in, c.startInstances)
}

func (c *Cloud) startInstances(in *ec2.StartInstancesInput) (*ec2.StartInstancesOutput, error) {
	for _, id := range in.InstanceIds {
		i, err := c.instance("StartInstances", id)
		if err != nil {
			return nil, err
		}
		switch i.State {
		case "stopped":
			o := Offering{Type: i.Type, Zone: i.Zone, Spot: i.Spot}
			if err := c.capacity(o); err != nil {
				return nil, err
			}
			c.consume(o)
			c.boot(i)
		case "pending", "running":
		default:
			return nil, apiError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		}
	}
	return &ec2.StartInstancesOutput{}, nil
}

// StopInstances stops running instances; spot instances cannot be
// stopped, except those of a persistent request.
func (c *Cloud) StopInstances(_ context.Context, in *ec2.StopInstancesInput, _ ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	return serve(c, "StopInstances", in, c.stopInstances)
}

func (c *Cloud) stopInstances(in *ec2.StopInstancesInput) (*ec2.StopInstancesOutput, error) {
	for _, id := range in.InstanceIds {
		i, err := c.instance("StopInstances", id)
		if err != nil {
			return nil, err
		}
		if i.Spot && !i.Persistent {
			return nil, apiError("UnsupportedOperation", "You can't stop the Spot Instance '%s' because it is associated with a one-time Spot Instance request. You can only stop Spot Instances associated with persistent Spot Instance requests.", id)
		}
		c.stop(i, "StopInstances")
	}
	return &ec2.StopInstancesOutput{}, nil
}

// stop moves i through stopping to stopped; commands on it die.
func (c *Cloud) stop(i *Instance, by string) {
	if i.State != "pending" && i.State != "running" {
		return
	}
	c.endSessions(i.ID) // its agent goes down with it: so do its sessions
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
	return serve(c, "TerminateInstances", in, c.terminateInstances)
}

func (c *Cloud) terminateInstances(in *ec2.TerminateInstancesInput) (*ec2.TerminateInstancesOutput, error) {
	for _, id := range in.InstanceIds {
		i, err := c.instance("TerminateInstances", id)
		if err != nil {
			return nil, err
		}
		c.terminate(i, "TerminateInstances")
	}
	return &ec2.TerminateInstancesOutput{}, nil
}

func (c *Cloud) terminate(i *Instance, by string) {
	if i.State == "terminated" || i.State == "shutting-down" {
		return
	}
	c.endSessions(i.ID) // its agent goes down with it: so do its sessions
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

// CreateTags sets tags on instances.
func (c *Cloud) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	return serve(c, "CreateTags", in, c.createTags)
}

func (c *Cloud) createTags(in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
	keys := make([]string, len(in.Tags))
	for k, t := range in.Tags {
		keys[k] = aws.ToString(t.Key)
	}
	for _, id := range in.Resources {
		i, err := c.instance("CreateTags", id, keys...)
		if err != nil {
			return nil, err
		}
		for _, t := range in.Tags {
			i.Tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return &ec2.CreateTagsOutput{}, nil
}

// MonitorInstances enables detailed monitoring: the instances' AWS/EC2
// metrics come every minute from the next 5-minute mark on. It answers
// pending, as EC2 does; DescribeInstances says enabled at once (the
// pending state there is not modelled).
func (c *Cloud) MonitorInstances(_ context.Context, in *ec2.MonitorInstancesInput, _ ...func(*ec2.Options)) (*ec2.MonitorInstancesOutput, error) {
	return serve(c, "MonitorInstances", in, func(in *ec2.MonitorInstancesInput) (*ec2.MonitorInstancesOutput, error) {
		out := &ec2.MonitorInstancesOutput{}
		err := c.monitor("MonitorInstances", in.InstanceIds, true, func(id string) {
			out.InstanceMonitorings = append(out.InstanceMonitorings, types.InstanceMonitoring{InstanceId: aws.String(id), Monitoring: &types.Monitoring{State: types.MonitoringStatePending}})
		})
		return out, err
	})
}

// UnmonitorInstances disables detailed monitoring (basic from the next
// 5-minute mark); it answers disabling, as EC2 does.
func (c *Cloud) UnmonitorInstances(_ context.Context, in *ec2.UnmonitorInstancesInput, _ ...func(*ec2.Options)) (*ec2.UnmonitorInstancesOutput, error) {
	return serve(c, "UnmonitorInstances", in, func(in *ec2.UnmonitorInstancesInput) (*ec2.UnmonitorInstancesOutput, error) {
		out := &ec2.UnmonitorInstancesOutput{}
		err := c.monitor("UnmonitorInstances", in.InstanceIds, false, func(id string) {
			out.InstanceMonitorings = append(out.InstanceMonitorings, types.InstanceMonitoring{InstanceId: aws.String(id), Monitoring: &types.Monitoring{State: types.MonitoringStateDisabling}})
		})
		return out, err
	})
}

func (c *Cloud) monitor(op string, ids []string, on bool, each func(string)) error {
	if len(ids) == 0 {
		return apiError("MissingParameter", "The request must contain the parameter InstanceId")
	}
	var insts []*Instance
	for _, id := range ids {
		i, err := c.instance(op, id)
		if err != nil {
			return err
		}
		insts = append(insts, i)
	}
	for _, i := range insts {
		c.setDetailed(i, on)
		each(i.ID)
	}
	return nil
}

// setDetailed switches i's monitoring from the next 5-minute mark.
func (c *Cloud) setDetailed(i *Instance, on bool) {
	if i.Detailed == on {
		return
	}
	i.Detailed = on
	now := c.clock.Now()
	i.monitoringSince = now.Truncate(basicPeriod)
	if i.monitoringSince.Before(now) {
		i.monitoringSince = i.monitoringSince.Add(basicPeriod)
	}
}

func (i *Instance) monitoringState() types.MonitoringState {
	if i.Detailed {
		return types.MonitoringStateEnabled
	}
	return types.MonitoringStateDisabled
}

// DescribeSpotPriceHistory returns the current spot price of each type
// asked, in each zone of the cloud's subnets: SpotDiscount × the on-demand
// price. Only the newest price (StartTime now or unset) is modelled.
func (c *Cloud) DescribeSpotPriceHistory(_ context.Context, in *ec2.DescribeSpotPriceHistoryInput, _ ...func(*ec2.Options)) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	return serve(c, "DescribeSpotPriceHistory", in, c.describeSpotPriceHistory)
}

func (c *Cloud) describeSpotPriceHistory(in *ec2.DescribeSpotPriceHistoryInput) (*ec2.DescribeSpotPriceHistoryOutput, error) {
	if len(in.Filters) > 0 {
		return nil, notModelled("DescribeSpotPriceHistory filters")
	}
	for _, p := range in.ProductDescriptions {
		if p != string(types.RIProductDescriptionLinuxUnix) {
			return nil, notModelled("spot prices for %q (only Linux/UNIX)", p)
		}
	}
	out := &ec2.DescribeSpotPriceHistoryOutput{}
	for _, t := range in.InstanceTypes {
		if _, ok := LookupType(string(t)); !ok {
			continue // EC2 answers nothing for a type it has no price for
		}
		for _, z := range c.zones() {
			out.SpotPriceHistory = append(out.SpotPriceHistory, types.SpotPrice{
				InstanceType: t, AvailabilityZone: aws.String(z), Timestamp: aws.Time(c.clock.Now()),
				ProductDescription: types.RIProductDescriptionLinuxUnix,
				SpotPrice:          aws.String(strconv.FormatFloat(c.spotPrice(string(t)), 'f', 4, 64)),
			})
		}
	}
	return out, nil
}

// Interrupt announces a spot interruption of instance id and terminates it
// two minutes later, as EC2 does; one of a persistent request is stopped.
func (c *Cloud) Interrupt(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.byID[id]
	action := "terminate"
	if i.Persistent {
		action = "stop"
	}
	// The instance's metadata shows the notice as the event goes out
	// (spot/instance-action), until the instance is gone or stopped.
	at := c.clock.Now().Add(spotNotice)
	c.meta(id).notice = &SpotNotice{Action: action, At: at}
	c.emit(Event{
		Source: "aws.ec2", DetailType: "EC2 Spot Instance Interruption Warning",
		Resources: []string{"arn:aws:ec2:" + Region + ":" + Account + ":instance/" + id},
		Detail:    map[string]string{"instance-id": id, "instance-action": action},
	})
	c.clock.At(at, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.forget(id) // a stopped instance's next boot shows no notice
		if i.Persistent {
			c.stop(i, "spot interruption")
			return
		}
		c.terminate(i, "spot interruption")
	})
}

// ByHand starts ("start"), stops ("stop"), terminates ("terminate") an
// instance, or turns its detailed monitoring on ("monitor") or off
// ("unmonitor"), the way a person does from the console, with their own
// permissions: not a call of the caller's, not counted, not asked of Policy.
func (c *Cloud) ByHand(id, action string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.byID[id]
	if !ok {
		return apiError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
	}
	switch action {
	case "start":
		if i.State != "stopped" {
			return apiError("IncorrectInstanceState", "The instance '%s' is not in a state from which it can be started.", id)
		}
		o := Offering{Type: i.Type, Zone: i.Zone, Spot: i.Spot}
		if err := c.capacity(o); err != nil {
			return err
		}
		c.consume(o)
		c.boot(i)
	case "stop":
		c.stop(i, "a person")
	case "terminate":
		c.terminate(i, "a person")
	case "monitor", "unmonitor":
		c.setDetailed(i, action == "monitor")
	default:
		return fmt.Errorf("awssim: a person cannot %q an instance", action)
	}
	return nil
}

// Launch puts an instance in the account as a person would, with the given
// tags; it is not an API call of the caller's. The CloudWatch agent (GPU
// metrics) is there when gpuMetrics says so.
func (c *Cloud) Launch(typ string, tags map[string]string, gpuMetrics bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := &Instance{
		ID: c.nextID("i-"), Type: typ, Tags: maps.Clone(tags), LaunchTime: c.clock.Now(), Image: "ami-byhand",
		Zone: DefaultZone, disk: map[string]string{}, GPUMetrics: gpuMetrics,
	}
	if i.Tags == nil {
		i.Tags = map[string]string{}
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

// String names an instance for messages.
func (i Instance) String() string { return fmt.Sprintf("%s (%s, %s)", i.ID, i.Type, i.State) }

// Offering is an instance type in one Availability Zone, on one market.
type Offering struct {
	Type, Zone string
	Spot       bool
}

func (o Offering) String() string {
	m := "on-demand"
	if o.Spot {
		m = "spot"
	}
	return o.Type + " " + m + " in " + o.Zone
}

// LaunchCall is one RunInstances call as the capacity check saw it.
type LaunchCall struct {
	At time.Time
	Offering
	Subnet, Token string
	// Code is the error code it was refused with; empty for a launch.
	Code string
}

// capacity refuses, as EC2 does, an offering with no capacity left: the
// type's (Capacity) or the zone and market's own (ZoneCapacity).
func (c *Cloud) capacity(o Offering) error {
	left, capped := c.Capacity[o.Type]
	if zl, zcapped := c.ZoneCapacity[o]; zcapped && (!capped || zl < left) {
		left, capped = zl, true
	}
	if capped && left <= 0 {
		return apiError("InsufficientInstanceCapacity", "We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", o.Type, o.Zone)
	}
	return nil
}

// consume counts one launch or start down from the offering's own cap.
func (c *Cloud) consume(o Offering) {
	if _, capped := c.ZoneCapacity[o]; capped {
		c.ZoneCapacity[o]--
	}
}
