// Package fleet finds, launches, starts and stops nightshift's EC2 instances.
// It only ever acts on instances tagged nightshift:managed=true, except that
// it stops, when the watchdog asks, those tagged nightshift:watch=true.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// Tags nightshift puts on and reads from its instances.
const (
	TagManaged = "nightshift:managed"
	TagPool    = "nightshift:pool"
	TagJob     = "nightshift:job"
	TagAttempt = "nightshift:attempt"
	TagName    = "Name"
	// TagReady records an instance's measured start-to-ready time, in seconds.
	TagReady = "nightshift:ready-seconds"
	// TagWatch marks an instance nightshift did not launch but must stop
	// when idle (a notebook a person started by hand, say).
	TagWatch = "nightshift:watch"
	// TagStartRefused records when StartInstances first refused a stopped
	// instance for capacity (RFC 3339), in the streak of refusals that a
	// successful start ends (it is then set empty): every container, and a
	// person at the console, sees how long the instance has been unable to
	// start.
	TagStartRefused = "nightshift:start-refused"
	// TagStartLeft records when a job last gave up waiting for the
	// instance's start and went elsewhere (RFC 3339): the instance is not
	// offered to a job again for UnavailableTTL after it.
	TagStartLeft = "nightshift:start-left"
)

// Instance states, as EC2 names them.
const (
	StatePending      = string(types.InstanceStateNamePending)
	StateRunning      = string(types.InstanceStateNameRunning)
	StateStopping     = string(types.InstanceStateNameStopping)
	StateStopped      = string(types.InstanceStateNameStopped)
	StateShuttingDown = string(types.InstanceStateNameShuttingDown)
	StateTerminated   = string(types.InstanceStateNameTerminated)
)

// describePageSize is the largest DescribeInstances page: one call per
// thousand instances keeps the sweep's call count growing with pages.
const describePageSize = 1000

// amiCacheTTL is how long a resolved AMI id is reused: the DLAMI parameter
// changes at most every few days, and a warm Lambda container should not
// ask SSM on every launch.
const amiCacheTTL = 15 * time.Minute

// EC2 is the part of the EC2 API the fleet uses.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	StartInstances(ctx context.Context, in *ec2.StartInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error)
	StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error)
	TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Parameters is the part of the SSM API used to resolve AMI parameters.
type Parameters interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var (
	_ EC2        = (*ec2.Client)(nil)
	_ Parameters = (*ssm.Client)(nil)
)

// Config is the deployment's launch settings.
type Config struct {
	Region           string
	LaunchTemplateID string
	// Subnets to launch into, tried in order when a zone has no capacity.
	Subnets []string
	// AMIParameter is the SSM parameter holding the default AMI id.
	AMIParameter string
	// UnavailableTTL, when set, replaces UnavailableTTL; negative: the
	// fleet remembers no refused offering (a benchmark's baseline).
	UnavailableTTL time.Duration
	// PlacementScores has a spot rung try the subnets in descending order
	// of their zones' spot placement scores for the request's types
	// (GetSpotPlacementScores, cached PlacementScoresTTL; DescribeSubnets
	// for the zone ids, once) rather than in the configured order; ties,
	// unscored subnets and any error keep the configured order. Each
	// rung's client token stays its place in the configured ladder.
	PlacementScores bool
}

// Fleet acts on nightshift's instances.
type Fleet struct {
	ec2    EC2
	params Parameters
	cfg    Config
	now    func() time.Time

	mu       sync.Mutex
	amiCache map[string]cachedAMI
	// offerings are the offerings EC2 just refused for capacity.
	offerings unavailable
	// scores are the spot placement scores and subnets' zone ids (scores.go).
	scores placement
	// onSkip, when set, is told of every rung the ladder skips.
	onSkip func(Skip)
}

// Skip is one rung of the launch ladder passed over without a call,
// because EC2 refused its offering for capacity within UnavailableTTL.
type Skip struct {
	At           time.Time
	Type, Subnet string
	Spot         bool
	// Until is when the fleet asks for the offering again.
	Until time.Time
}

// OnSkip has fn told of every rung the ladder skips, as it skips it (a
// harness checks the memory of refused offerings against the cloud's own
// log of refusals). fn must not call the fleet.
func (f *Fleet) OnSkip(fn func(Skip)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onSkip = fn
}

type cachedAMI struct {
	id string
	at time.Time
}

// New returns a Fleet.
func New(e EC2, p Parameters, cfg Config, now func() time.Time) *Fleet {
	return &Fleet{ec2: e, params: p, cfg: cfg, now: now, amiCache: map[string]cachedAMI{}}
}

// Instance is nightshift's view of one EC2 instance.
type Instance struct {
	ID    string
	Type  string
	State string // pending, running, stopping, stopped, shutting-down, terminated
	Pool  string
	// Job and Attempt are the launch tags: the job the instance was launched for.
	Job        string
	Attempt    int
	Spot       bool
	Managed    bool
	Watched    bool // the nightshift:watch=true tag: the watchdog may stop it
	LaunchTime time.Time
	Zone       string
	Tags       map[string]string
	// Detailed is EC2 detailed monitoring (Monitoring.State enabled): its
	// AWS/EC2 metrics come every minute, not every 5.
	Detailed bool
	// LaunchNote is set by Launch only: what the launch passed over to get
	// this instance, when that changes what the job gets (spot refused, so
	// on-demand), in words for the job's reason and the log; empty
	// otherwise.
	LaunchNote string
}

// Live reports whether the instance exists and can run or be started.
func (i Instance) Live() bool {
	return i.State != StateTerminated && i.State != StateShuttingDown
}

// Up reports whether the instance is booting or running: it bills, and
// its disk and processes are there.
func (i Instance) Up() bool { return i.State == StatePending || i.State == StateRunning }

// List returns every managed instance, terminated ones included (EC2 lists
// them for about an hour: a caller can tell an instance gone from one not
// listed yet), reading DescribeInstances in pages of up to 1000.
func (f *Fleet) List(ctx context.Context) ([]Instance, error) {
	return Describe(ctx, f.ec2, []types.Filter{
		{Name: aws.String("tag:" + TagManaged), Values: []string{"true"}},
		{Name: aws.String("instance-state-name"), Values: []string{StatePending, StateRunning, StateStopping, StateStopped, StateShuttingDown, StateTerminated}},
	})
}

// Describe returns the instances that match filters, reading
// DescribeInstances in pages of up to 1000: its calls grow with pages, not
// with instances.
func Describe(ctx context.Context, c ec2.DescribeInstancesAPIClient, filters []types.Filter) ([]Instance, error) {
	in := &ec2.DescribeInstancesInput{Filters: filters, MaxResults: aws.Int32(describePageSize)}
	var out []Instance
	p := ec2.NewDescribeInstancesPaginator(c, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances: %w", err)
		}
		for _, r := range page.Reservations {
			for _, i := range r.Instances {
				out = append(out, FromEC2(i))
			}
		}
	}
	return out, nil
}

// FromEC2 is the one place an EC2 instance becomes a fleet.Instance.
func FromEC2(i types.Instance) Instance {
	tags := make(map[string]string, len(i.Tags))
	for _, t := range i.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	in := Instance{
		ID:         aws.ToString(i.InstanceId),
		Type:       string(i.InstanceType),
		Pool:       tags[TagPool],
		Job:        tags[TagJob],
		Spot:       i.InstanceLifecycle == types.InstanceLifecycleTypeSpot,
		Managed:    tags[TagManaged] == "true",
		Watched:    tags[TagWatch] == "true",
		LaunchTime: aws.ToTime(i.LaunchTime),
		Tags:       tags,
		Detailed:   i.Monitoring != nil && i.Monitoring.State == types.MonitoringStateEnabled,
	}
	in.Attempt, _ = strconv.Atoi(tags[TagAttempt])
	if i.State != nil {
		in.State = string(i.State.Name)
	}
	if i.Placement != nil {
		in.Zone = aws.ToString(i.Placement.AvailabilityZone)
	}
	return in
}

// LaunchRequest says what to launch for one job attempt.
type LaunchRequest struct {
	// Token is the job's client token for this try; each (type, market,
	// subnet) combination gets its own suffix, so a retry after a crash
	// repeats the same calls and gets the same instance back.
	Token   string
	Pool    string
	Job     string
	Attempt int
	Types   []string
	Market  string // on-demand, spot, spot-then-on-demand
	// AMI overrides the deployment's AMI parameter: an id or resolve:ssm:NAME.
	AMI      string
	VolumeGB int
	// NoRoom, when set, is the caller's vCPU quota preflight: a (type,
	// market) it says has no room is not asked for (each of its rungs
	// keeps its client token), its error standing as the launch's last.
	NoRoom func(instanceType string, spot bool) error
	// Chose says which of the request the job's own message set, rather
	// than its pool or the deployment: EC2 refusing one of those is the
	// job's to fix (ErrJob), refusing the others the deployment's.
	Chose Chosen
}

// Chosen says which parts of a launch request a job's message chose.
type Chosen struct {
	AMI, Volume, Types bool
}

// Launch runs one instance for the request, trying each instance type (and,
// for spot-then-on-demand, spot before on-demand) and each subnet in order
// (a spot rung's best placement score first, with Config.PlacementScores),
// moving on after capacity and zone errors. The last error is returned when
// nothing launched; it is a *LaunchError for the kinds it knows, and wraps
// ErrNoAnswer when AWS did not answer it.
func (f *Fleet) Launch(ctx context.Context, r LaunchRequest) (Instance, error) {
	inst, err := f.launch(ctx, r)
	if err != nil && !awserr.Answered(err) {
		return Instance{}, fmt.Errorf("%w: %w", ErrNoAnswer, err)
	}
	return inst, err
}

func (f *Fleet) launch(ctx context.Context, r LaunchRequest) (Instance, error) {
	ami, err := f.ami(ctx, r.AMI)
	if err != nil {
		return Instance{}, classify(err, "", false, f.cfg.Region, r)
	}
	markets := catalog.Markets(r.Market)
	subnets := f.cfg.Subnets
	if len(subnets) == 0 {
		subnets = []string{""}
	}
	var last error
	var spotRefused refusals
	configured := make([]int, len(subnets))
	for i := range configured {
		configured[i] = i
	}
	var spotOrder []int // the spot rungs' subnet order, asked at the first
	for ti, t := range r.Types {
		for mi, spot := range markets {
			if r.NoRoom != nil {
				if err := r.NoRoom(t, spot); err != nil {
					last = err
					if spot {
						spotRefused.add(t, "", err) // the on-demand instance's note says so
					}
					continue
				}
			}
			order := configured
			if spot {
				if spotOrder == nil {
					spotOrder = f.spotOrder(ctx, r.Types, subnets)
				}
				order = spotOrder
			}
			for _, si := range order {
				subnet := subnets[si]
				// Every rung keeps its place in the count, tried or not, and
				// in whatever order its subnets are tried: the client token
				// of a rung is its position in the configured ladder (types ×
				// markets × subnets, from 1), the same on every pass, so a
				// launch repeated after a crash gets its instance back
				// whatever the unavailable offerings, the quota preflight, a
				// quota refusal or the placement scores skip or reorder by
				// then.
				try := (ti*len(markets)+mi)*len(subnets) + si + 1
				o := offering{typ: t, subnet: subnet, spot: spot}
				if err, ok := f.blocked(o); ok {
					last = err
					if spot {
						spotRefused.add(t, subnet, err)
					}
					continue
				}
				in := f.runInput(r, t, spot, subnet, ami, fmt.Sprintf("%s-%d", r.Token, try))
				// No SDK retries: InsufficientInstanceCapacity comes back as
				// HTTP 500, which the SDK would retry for seconds. Moving on to
				// the next type or zone now, and retrying on the next
				// reconcile, is faster and keeps the Lambda short.
				out, err := f.ec2.RunInstances(ctx, in, func(o *ec2.Options) { o.RetryMaxAttempts = 1 })
				if err == nil && len(out.Instances) > 0 {
					inst := FromEC2(out.Instances[0])
					if !spot && r.Market == "spot-then-on-demand" {
						inst.LaunchNote = spotRefused.note(inst)
					}
					return inst, nil
				}
				if err == nil {
					err = errors.New("RunInstances returned no instance")
				}
				last = classify(err, t, spot, f.cfg.Region, r)
				if errors.Is(last, ErrCapacity) {
					f.refused(o, last)
				}
				if spot && (errors.Is(last, ErrCapacity) || errors.Is(last, ErrSpotQuota) || errors.Is(last, ErrUnsupported)) {
					spotRefused.add(t, subnet, last)
				}
				if errors.Is(last, ErrThrottled) || !Transient(last) {
					return Instance{}, last
				}
				if errors.Is(last, ErrQuota) || errors.Is(last, ErrSpotQuota) {
					break // another subnet does not help with a quota
				}
			}
		}
	}
	return Instance{}, last
}

func (f *Fleet) runInput(r LaunchRequest, instanceType string, spot bool, subnet, ami, token string) *ec2.RunInstancesInput {
	tags := []types.Tag{
		{Key: aws.String(TagManaged), Value: aws.String("true")},
		{Key: aws.String(TagPool), Value: aws.String(r.Pool)},
		{Key: aws.String(TagJob), Value: aws.String(r.Job)},
		{Key: aws.String(TagAttempt), Value: aws.String(strconv.Itoa(r.Attempt))},
		{Key: aws.String(TagName), Value: aws.String("nightshift " + r.Pool + " " + r.Job)},
	}
	in := &ec2.RunInstancesInput{
		MinCount:     aws.Int32(1),
		MaxCount:     aws.Int32(1),
		ClientToken:  aws.String(token),
		ImageId:      aws.String(ami),
		InstanceType: types.InstanceType(instanceType),
		// Every field, the same as the launch template's MetadataOptions
		// (internal/deploy checks). Parameters of the request override the
		// template's, and EC2 does not document whether a partial
		// MetadataOptions is merged with the template's or replaces it,
		// leaving the fields it omits at EC2's defaults (hop limit 1, no
		// tags in IMDS). Setting all of them makes the result the same
		// either way, and keeps an instance IMDSv2-only even when it is
		// launched without the template.
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
			HttpTokens:   types.HttpTokensStateRequired,
			// 2 lets a container on the instance reach IMDS; no further.
			HttpPutResponseHopLimit: aws.Int32(2),
			// The wrapper script reads its own nightshift:* tags from IMDS.
			InstanceMetadataTags: types.InstanceMetadataTagsStateEnabled,
			HttpProtocolIpv6:     types.InstanceMetadataProtocolStateDisabled,
		},
		// An on-demand instance that shuts itself down (the dead-man timer)
		// stops rather than terminates: its disk and environment survive.
		InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop,
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	if f.cfg.LaunchTemplateID != "" {
		in.LaunchTemplate = &types.LaunchTemplateSpecification{LaunchTemplateId: aws.String(f.cfg.LaunchTemplateID), Version: aws.String("$Latest")}
	}
	if subnet != "" {
		in.SubnetId = aws.String(subnet)
	}
	if spot {
		// A one-time spot instance cannot be stopped; it terminates on
		// interruption and on its own shutdown, and nightshift terminates it
		// when idle.
		in.InstanceInitiatedShutdownBehavior = types.ShutdownBehaviorTerminate
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
			MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{
				SpotInstanceType:             types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	if r.VolumeGB > 0 {
		in.BlockDeviceMappings = []types.BlockDeviceMapping{{
			DeviceName: aws.String("/dev/sda1"),
			Ebs: &types.EbsBlockDevice{
				VolumeSize: aws.Int32(int32(r.VolumeGB)), VolumeType: types.VolumeTypeGp3,
				Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
			},
		}}
	}
	return in
}

// ami resolves the AMI to launch: an explicit id, else the value of an SSM
// parameter (the job's resolve:ssm:NAME, or the deployment's DLAMI parameter).
func (f *Fleet) ami(ctx context.Context, want string) (string, error) {
	name := f.cfg.AMIParameter
	switch {
	case len(want) > 4 && want[:4] == "ami-":
		return want, nil
	case len(want) > 12 && want[:12] == "resolve:ssm:":
		name = want[12:]
	}
	f.mu.Lock()
	c, ok := f.amiCache[name]
	f.mu.Unlock()
	if ok && f.now().Sub(c.at) < amiCacheTTL {
		return c.id, nil
	}
	out, err := f.params.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
	if err != nil {
		return "", fmt.Errorf("resolve AMI from %s: %w", name, err)
	}
	id := aws.ToString(out.Parameter.Value)
	f.mu.Lock()
	f.amiCache[name] = cachedAMI{id: id, at: f.now()}
	f.mu.Unlock()
	return id, nil
}

// Start starts a stopped managed instance.
func (f *Fleet) Start(ctx context.Context, i Instance) error {
	if !i.Managed {
		return fmt.Errorf("start %s: %w", i.ID, ErrNotManaged)
	}
	if _, err := f.ec2.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{i.ID}}); err != nil {
		return fmt.Errorf("start %s: %w", i.ID, classify(err, i.Type, i.Spot, f.cfg.Region, LaunchRequest{}))
	}
	return nil
}

// Stop stops a managed instance; a spot instance, which cannot be stopped, is terminated.
func (f *Fleet) Stop(ctx context.Context, i Instance) error {
	if !i.Managed {
		return fmt.Errorf("stop %s: %w", i.ID, ErrNotManaged)
	}
	if i.Spot {
		return f.Terminate(ctx, i)
	}
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{i.ID}}); err != nil {
		return fmt.Errorf("stop %s: %w", i.ID, err)
	}
	return nil
}

// StopWatched stops an instance the watchdog found idle: a watched one with
// StopInstances (whatever its market: a person chose how it stops), a
// managed one as Stop does. It refuses, before any EC2 call, an instance
// that carries neither tag (S4: nightshift never acts on what it does not own).
func (f *Fleet) StopWatched(ctx context.Context, i Instance) error {
	switch {
	case i.Managed:
		return f.Stop(ctx, i)
	case !i.Watched:
		return fmt.Errorf("stop %s: %w", i.ID, ErrNotManaged)
	}
	if _, err := f.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{i.ID}}); err != nil {
		return fmt.Errorf("stop %s: %w", i.ID, err)
	}
	return nil
}

// Terminate terminates a managed instance.
func (f *Fleet) Terminate(ctx context.Context, i Instance) error {
	if !i.Managed {
		return fmt.Errorf("terminate %s: %w", i.ID, ErrNotManaged)
	}
	if _, err := f.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{i.ID}}); err != nil {
		return fmt.Errorf("terminate %s: %w", i.ID, err)
	}
	return nil
}

// Tag sets one tag on a managed instance.
func (f *Fleet) Tag(ctx context.Context, i Instance, key, value string) error {
	if !i.Managed {
		return fmt.Errorf("tag %s: %w", i.ID, ErrNotManaged)
	}
	_, err := f.ec2.CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{i.ID},
		Tags:      []types.Tag{{Key: aws.String(key), Value: aws.String(value)}},
	})
	if err != nil {
		return fmt.Errorf("tag %s: %w", i.ID, err)
	}
	return nil
}
