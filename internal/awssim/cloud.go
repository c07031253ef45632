// Package awssim is a simulated AWS account — EC2, SSM (Run Command,
// Parameter Store, Session Manager), CloudWatch, SNS, SQS, EventBridge and
// Service Quotas (EC2's GPU vCPU quotas) —
// in process, on a virtual clock. Its methods have the AWS SDK's exact
// signatures, so the product's real clients' consumers run against it
// unchanged. It models what AWS documents: boot and agent-registration
// delays, client-token idempotency, capacity and vCPU quota errors, spot
// interruptions, IAM refusals, the instance's own shutdown timer and disk.
// A filter or parameter it does not model is answered with an error, never
// ignored.
//
// It imports nothing of nightshift: what runs on an instance is an
// Executor given to it, and the harness in internal/sim wires the product
// onto it.
package awssim

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// Delays of the simulated cloud, close to what GPU instances show.
const (
	// DefaultBoot is pending → running for a GPU instance.
	DefaultBoot = 40 * time.Second
	// DefaultAgent is running → SSM agent Online.
	DefaultAgent = 50 * time.Second
	// DefaultStop is stopping → stopped.
	DefaultStop = 30 * time.Second
	// spotNotice is how far ahead EC2 announces a spot interruption.
	spotNotice = 2 * time.Minute
)

// The simulated account.
const (
	Region  = "us-east-1"
	Account = "123456789012"
	// DefaultZone is where an instance launched without a subnet runs.
	DefaultZone = "us-east-1a"
)

// ErrCrash is returned by a call the simulation crashed: the invocation that
// made it must stop as if its process had died.
var ErrCrash = errors.New("awssim: invocation crashed")

// Cloud is the simulated AWS account.
type Cloud struct {
	mu    sync.Mutex
	clock *vclock.Clock

	// Boot, Agent and StopDelay are the delays of instance life; Agent < 0
	// means the agent never comes online.
	Boot, Agent, StopDelay time.Duration
	// Subnets maps each subnet id to its Availability Zone. RunInstances
	// with an unknown subnet fails; without one it uses DefaultZone.
	Subnets map[string]string
	// Capacity caps how many more instances of a type may launch or start;
	// absent means unlimited.
	Capacity map[string]int
	// ZoneCapacity caps, beside Capacity, how many more instances of a
	// type may launch or start in one Availability Zone on one market: 0
	// says that offering has no capacity (InsufficientInstanceCapacity),
	// N that N more fit; absent means no cap of its own. RunInstances
	// counts against the subnet's zone and the request's market,
	// StartInstances against the stopped instance's own zone and market
	// (it starts where it was launched). Each launch or start counts one
	// down.
	ZoneCapacity map[Offering]int
	// SpotScores sets GetSpotPlacementScores' score (1–10) of a spot
	// offering (Spot true) that has capacity; absent: DefaultSpotScore. An
	// offering without capacity scores 1 whatever it says.
	SpotScores map[Offering]int
	// ZoneIDs maps a zone name to its Availability Zone id (DescribeSubnets,
	// GetSpotPlacementScores); absent: a fixed mapping of us-east-1's
	// zones whose letters and numbers differ, as an account's do.
	ZoneIDs map[string]string
	// Quota caps running vCPUs per quota code (QuotaFor); absent means unlimited.
	Quota map[string]int
	// Images are the AMIs the account may launch; empty means any.
	Images map[string]Image
	// LaunchTemplates are the launch template ids that exist; empty means any.
	LaunchTemplates map[string]bool
	// Fault, when set, runs before every call with its input (nil for calls
	// that are not AWS API calls); an error it returns is the call's result.
	Fault func(op string, in any) error
	// Yield, when set, runs before every API call, outside the cloud's lock:
	// a harness that interleaves concurrent callers call by call parks the
	// caller there. An error it returns is the call's result (the caller
	// was killed while it waited).
	Yield func(op string) error
	// After, when set, runs after every call took effect; an error it
	// returns replaces the response (the effect stays: a lost response).
	After func(op string) error
	// Policy, when set, is the caller's IAM policy: it is asked before every
	// call that acts on an instance, every Service Quotas call, and
	// GetSpotPlacementScores and DescribeSubnets. A refused call fails
	// with UnauthorizedOperation (AccessDeniedException for SSM and
	// Service Quotas) and is recorded in Denied.
	Policy func(Request) bool
	// Exec runs what SSM delivers to an instance; nil means every command
	// succeeds after a minute.
	Exec Executor
	// Parameters are the SSM parameters GetParameter reads.
	Parameters map[string]string
	// Usage, when set, says what an instance does at a time (for its
	// metrics); returning false falls back to the default model.
	Usage func(instanceID string, t time.Time) (Usage, bool)
	// IgnoreTimeouts makes SSM fail to enforce execution timeouts, so only
	// the caller or the instance itself can end a hung command.
	IgnoreTimeouts bool
	// BrokenShutdown makes the instances' own power-off timers never fire
	// (shutdown missing or broken on the image): only API calls stop them.
	BrokenShutdown bool
	// SpotDiscount is the spot price as a fraction of on-demand (default 0.3).
	SpotDiscount float64
	// AgentDelay, when set, gives an instance its own agent delay (< 0: never online).
	AgentDelay func(instanceID string) (time.Duration, bool)
	// AgentGone, when set, is asked as SSM delivers a command to an
	// instance whose agent reports Online; true means the agent went away
	// after it last reported (it crashed, the instance froze, its network
	// broke): SendCommand has accepted the command, but it never reaches the
	// agent. The invocation waits Delayed and, at its delivery timeout,
	// ends TimedOut with StatusDetails DeliveryTimedOut; the agent reports
	// ConnectionLost until the instance boots again. A command still
	// waiting when the instance comes back is not delivered then (not
	// modelled).
	AgentGone func(instanceID string) bool
	// QuotaDecision, when set, is the life of each Service Quotas increase
	// request: its steps after the request (DefaultQuotaDecision when nil).
	QuotaDecision func(code string, desired float64) []QuotaStep
	// QuotaAskedWhileOpen counts the increase requests refused because the
	// quota had one open (ResourceAlreadyExistsException): a caller that
	// asks twice.
	QuotaAskedWhileOpen int
	// FilterAfterPage makes DescribeInstanceInformation page through every
	// managed node and filter each page afterwards, so that a page comes
	// back short, or empty, with a NextToken, as SSM's pages have been seen
	// to do under filters (aws/aws-cli#2626): only a caller that follows
	// NextToken to the end sees every node asked for.
	FilterAfterPage bool

	// Calls counts API calls by operation.
	Calls map[string]int
	// Launches logs every RunInstances call that reached the capacity
	// check, in order, with its answer: what a checker compares the
	// fleet's memory of refused offerings against.
	Launches []LaunchCall
	// Denied lists the calls Policy refused.
	Denied []string

	instances []*Instance
	byID      map[string]*Instance
	tokens    map[string]string
	commands  []*Invocation
	events    []Event
	seq       int
	sessions  []session
	jupyter   map[string]Jupyter
	notes     []Notification
	published map[metricKey][]point
	queue     queue
	// quotaRequests are the Service Quotas increase requests, oldest first.
	quotaRequests []*quotaRequest
	// imds is what each instance's metadata service shows beyond what
	// DescribeInstances says (imds.go); objects is S3 (s3.go). Both are
	// made on first use.
	imds    map[string]*metadata
	objects map[string]string
}

// New returns an empty cloud on clock.
func New(clock *vclock.Clock) *Cloud {
	return &Cloud{
		clock: clock, Boot: DefaultBoot, Agent: DefaultAgent, StopDelay: DefaultStop,
		Subnets: map[string]string{}, Capacity: map[string]int{}, ZoneCapacity: map[Offering]int{}, Quota: map[string]int{}, Calls: map[string]int{},
		Images: map[string]Image{}, LaunchTemplates: map[string]bool{},
		byID: map[string]*Instance{}, tokens: map[string]string{}, Parameters: map[string]string{},
		published: map[metricKey][]point{},
	}
}

// Clock returns the cloud's clock.
func (c *Cloud) Clock() *vclock.Clock { return c.clock }

// call counts a call and applies the fault hook.
func (c *Cloud) call(op string, in any) error {
	c.Calls[op]++
	if c.Fault != nil {
		return c.Fault(op, in)
	}
	return nil
}

// after applies the after hook.
func (c *Cloud) after(op string) error {
	if c.After != nil {
		return c.After(op)
	}
	return nil
}

// Request is what IAM sees of a call on an instance.
type Request struct {
	Op string
	// Instance is the instance acted on; empty for RunInstances.
	Instance string
	// Tags are the instance's tags (aws:ResourceTag), or for RunInstances
	// the tags the request puts on it (aws:RequestTag).
	Tags map[string]string
	// TagKeys are the keys CreateTags sets (aws:TagKeys).
	TagKeys []string
	// Quota is the Service Quotas quota code a call acts on (its resource,
	// ec2/CODE); empty for the calls on instances and for
	// GetRequestedServiceQuotaChange, which names a request.
	Quota string
}

// authorize asks the policy whether the request may go ahead.
func (c *Cloud) authorize(r Request, code string) error {
	if c.Policy == nil || c.Policy(r) {
		return nil
	}
	what := r.Instance
	switch {
	case r.Quota != "":
		what = "quota ec2/" + r.Quota
	case what == "" && r.Op == "RunInstances":
		what = "a new instance"
	case what == "":
		what = "*"
	}
	c.Denied = append(c.Denied, fmt.Sprintf("%s on %s (tags %v, tag keys %v) at %s", r.Op, what, r.Tags, r.TagKeys, c.clock.Now().Format(time.RFC3339)))
	return apiError(code, "You are not authorized to perform %s on %s.", r.Op, what)
}

// apiError is an AWS error as the SDK returns it.
func apiError(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// notModelled answers a request the simulation does not model: an error,
// so that a test never passes on an answer AWS would not give.
func notModelled(format string, args ...any) error {
	return apiError("NotModelledBySimulation", "awssim: "+format, args...)
}

func (c *Cloud) nextID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s%017x", prefix, 0xa000+c.seq)
}

// Image is an AMI: its root snapshot and that snapshot's size.
type Image struct {
	Snapshot   string
	SnapshotGB int
}

// Event is an EventBridge event the cloud emitted.
type Event struct {
	At         time.Time
	Source     string
	DetailType string
	Resources  []string
	Detail     map[string]string
}

// JSON renders the event exactly as EventBridge delivers it to Lambda.
func (e Event) JSON() []byte {
	b, _ := json.Marshal(map[string]any{
		"version": "0", "id": fmt.Sprintf("%08x-sim", e.At.UnixNano()&0xffffffff),
		"detail-type": e.DetailType, "source": e.Source, "account": Account,
		"time": e.At.UTC().Format(time.RFC3339), "region": Region,
		"resources": e.Resources, "detail": e.Detail,
	})
	return b
}

func (c *Cloud) emit(e Event) {
	e.At = c.clock.Now()
	c.events = append(c.events, e)
}

// Events removes and returns the events emitted so far, oldest first.
func (c *Cloud) Events() []Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	ev := c.events
	c.events = nil
	return ev
}

// Bill returns the instance-seconds billed per instance type and the cost
// at on-demand prices (spot at the spot price).
func (c *Cloud) Bill() (seconds map[string]float64, usd float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	seconds = map[string]float64{}
	for _, i := range c.instances {
		s := i.billed.Seconds()
		if !i.billSince.IsZero() {
			s += now.Sub(i.billSince).Seconds()
		}
		seconds[i.Type] += s
		t, _ := LookupType(i.Type)
		rate := t.Hourly
		if i.Spot {
			rate = c.spotPrice(i.Type)
		}
		usd += rate * s / 3600
	}
	return seconds, usd
}

// Charge is one line of the bill: the instance-seconds of one instance type
// in one market, at the price charged for them.
type Charge struct {
	Type string
	Spot bool
	// Seconds are the instance-seconds billed.
	Seconds float64
	// Hourly is the price charged per hour: on-demand, or the spot price.
	Hourly float64
	// USD is Seconds at Hourly.
	USD float64
}

// Charges returns the bill line by line, by instance type and then
// on-demand before spot; the lines add up to Bill's total.
func (c *Cloud) Charges() []Charge {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	type key struct {
		typ  string
		spot bool
	}
	lines := map[key]*Charge{}
	for _, i := range c.instances {
		s := i.billed.Seconds()
		if !i.billSince.IsZero() {
			s += now.Sub(i.billSince).Seconds()
		}
		k := key{i.Type, i.Spot}
		if lines[k] == nil {
			t, _ := LookupType(i.Type)
			rate := t.Hourly
			if i.Spot {
				rate = c.spotPrice(i.Type)
			}
			lines[k] = &Charge{Type: i.Type, Spot: i.Spot, Hourly: rate}
		}
		lines[k].Seconds += s
		lines[k].USD += lines[k].Hourly * s / 3600
	}
	out := make([]Charge, 0, len(lines))
	for _, l := range lines {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(a, b Charge) int {
		if a.Type != b.Type {
			return strings.Compare(a.Type, b.Type)
		}
		if a.Spot == b.Spot {
			return 0
		}
		if b.Spot {
			return -1
		}
		return 1
	})
	return out
}

// RunningUSD returns what the instances keep selects cost for the time
// they ran (EC2's billing: running only, spot at the spot price), since
// the cloud began.
func (c *Cloud) RunningUSD(keep func(Instance) bool) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	usd := 0.0
	for _, i := range c.instances {
		if !keep(*i) {
			continue
		}
		ran := i.ran
		if !i.ranSince.IsZero() {
			ran += now.Sub(i.ranSince)
		}
		t, _ := LookupType(i.Type)
		rate := t.Hourly
		if i.Spot {
			rate = c.spotPrice(i.Type)
		}
		usd += rate * ran.Hours()
	}
	return usd
}

// Disk reads a file of an instance's root volume, as a test looks at what
// a process left there.
func (c *Cloud) Disk(instanceID, path string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range c.instances {
		if i.ID == instanceID {
			v, ok := i.disk[path]
			return v, ok
		}
	}
	return "", false
}

// Instances returns a copy of every instance, in launch order.
func (c *Cloud) Instances() []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Instance, 0, len(c.instances))
	for _, i := range c.instances {
		cp := *i
		cp.Tags = maps.Clone(i.Tags)
		cp.disk = nil
		out = append(out, cp)
	}
	return out
}

// Invocations returns a copy of every command invocation, in send order.
func (c *Cloud) Invocations() []Invocation {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Invocation, 0, len(c.commands))
	for _, inv := range c.commands {
		out = append(out, *inv)
	}
	return out
}

func (c *Cloud) spotPrice(typ string) float64 {
	t, _ := LookupType(typ)
	d := c.SpotDiscount
	if d == 0 {
		d = 0.3
	}
	return t.Hourly * d
}

// zones returns the Availability Zones of the cloud's subnets, sorted.
func (c *Cloud) zones() []string {
	if len(c.Subnets) == 0 {
		return []string{DefaultZone}
	}
	zs := slices.Collect(maps.Values(c.Subnets))
	slices.Sort(zs)
	return slices.Compact(zs)
}

// Inject applies the fault hook to a call of a service the cloud does not
// model (DynamoDB, which the harness's in-memory store stands for), under
// the cloud's lock, so that every fault of a history is drawn in one order.
// It is not counted in Calls.
func (c *Cloud) Inject(op string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Fault != nil {
		return c.Fault(op, nil)
	}
	return nil
}

// serve is every API call's frame: the caller may be parked first (Yield);
// then, under the cloud's lock, the call is counted and faulted, answered
// by f, and the after hook sees only calls that took effect.
func serve[I, O any](c *Cloud, op string, in I, f func(I) (O, error)) (O, error) {
	var zero O
	if c.Yield != nil {
		if err := c.Yield(op); err != nil {
			return zero, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.call(op, in); err != nil {
		return zero, err
	}
	out, err := f(in)
	if err != nil {
		return zero, err
	}
	if err := c.after(op); err != nil {
		return out, err
	}
	return out, nil
}
