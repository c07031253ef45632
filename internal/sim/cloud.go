package sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/catalog"
)

// Delays of the simulated cloud, close to what GPU instances show.
const (
	// DefaultBoot is pending → running for a GPU instance.
	DefaultBoot = 40 * time.Second
	// DefaultAgent is running → SSM agent Online.
	DefaultAgent = 50 * time.Second
	// DefaultStop is stopping → stopped.
	DefaultStop = 30 * time.Second
	// spotNotice is how far ahead a spot interruption is announced.
	spotNotice = 2 * time.Minute
)

// ErrCrash is returned by a call the simulation crashed: the invocation that
// made it must stop as if its process had died.
var ErrCrash = errors.New("sim: invocation crashed")

// Cloud is the simulated AWS account.
type Cloud struct {
	mu    sync.Mutex
	clock *Clock

	// Boot, Agent and Stop are the delays of instance life; Agent < 0 means
	// the agent never comes online.
	Boot, Agent, StopDelay time.Duration
	// Capacity caps how many more instances of a type may launch; absent means unlimited.
	Capacity map[string]int
	// Quota caps running vCPUs per quota code (catalog.QuotaG.Code, …); absent means unlimited.
	Quota map[string]int
	// Fault, when set, runs before every call; an error it returns is the call's result.
	Fault func(op string) error
	// After, when set, runs after every call took effect; an error it
	// returns replaces the response (the effect stays: a lost response).
	After func(op string) error
	// Exec runs commands; nil means every command succeeds after a minute.
	Exec Executor
	// Parameters are the SSM parameters GetParameter reads.
	Parameters map[string]string
	// Usage, when set, says what an instance does at a time (for its
	// metrics); returning false falls back to the default model.
	Usage func(instanceID string, t time.Time) (Usage, bool)
	// IgnoreTimeouts makes SSM fail to enforce execution timeouts, so the
	// watchdog's own deadline is what ends a hung command.
	IgnoreTimeouts bool
	// SpotDiscount is the spot price as a fraction of on-demand (default 0.3).
	SpotDiscount float64

	// Calls counts API calls by operation.
	Calls map[string]int
	// AgentDelay, when set, gives an instance its own agent delay (< 0: never online).
	AgentDelay func(instanceID string) (time.Duration, bool)
	// Violations lists calls that acted on an instance nightshift does not
	// own (S4): any mutation of an instance without nightshift:managed=true,
	// other than stopping or tagging one with nightshift:watch=true.
	Violations []string

	instances []*Instance
	byID      map[string]*Instance
	tokens    map[string]string
	commands  []*Invocation
	events    []Event
	seq       int
	sessions  []string
	messages  []Message
}

// New returns an empty cloud on clock.
func New(clock *Clock) *Cloud {
	return &Cloud{
		clock: clock, Boot: DefaultBoot, Agent: DefaultAgent, StopDelay: DefaultStop,
		Capacity: map[string]int{}, Quota: map[string]int{}, Calls: map[string]int{},
		byID: map[string]*Instance{}, tokens: map[string]string{},
		Parameters: map[string]string{},
	}
}

// Clock returns the cloud's clock.
func (c *Cloud) Clock() *Clock { return c.clock }

// call counts a call and applies the fault hook.
func (c *Cloud) call(op string) error {
	c.Calls[op]++
	if c.Fault != nil {
		return c.Fault(op)
	}
	return nil
}

// owned checks that a mutating call may act on the instance, recording a
// violation when not. watchOK says the call is allowed on watched instances.
func (c *Cloud) owned(op, id string, watchOK bool) {
	i, ok := c.byID[id]
	if !ok || i.Tags["nightshift:managed"] == "true" || watchOK && i.Tags["nightshift:watch"] == "true" {
		return
	}
	c.Violations = append(c.Violations, fmt.Sprintf("%s on %s (tags %v) at %s", op, id, i.Tags, c.clock.Now().Format(time.RFC3339)))
}

// after applies the after hook.
func (c *Cloud) after(op string) error {
	if c.After != nil {
		return c.After(op)
	}
	return nil
}

// apiError is an AWS error as the SDK returns it.
func apiError(code, format string, args ...any) error {
	return &smithy.GenericAPIError{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (c *Cloud) nextID(prefix string) string {
	c.seq++
	return fmt.Sprintf("%s%017x", prefix, 0xa000+c.seq)
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
		"detail-type": e.DetailType, "source": e.Source, "account": "123456789012",
		"time": e.At.UTC().Format(time.RFC3339), "region": "us-east-1",
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
// at on-demand prices (spot at 30% of it: a typical discount).
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
		t, _ := catalog.Lookup(i.Type)
		rate := t.Hourly
		if i.Spot {
			rate = c.spotPrice(i.Type)
		}
		usd += rate * s / 3600
	}
	return seconds, usd
}

// Instances returns a copy of every instance, in launch order.
func (c *Cloud) Instances() []Instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Instance, 0, len(c.instances))
	for _, i := range c.instances {
		cp := *i
		cp.Tags = copyTags(i.Tags)
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

func copyTags(m map[string]string) map[string]string {
	cp := make(map[string]string, len(m))
	for k, v := range m {
		cp[k] = v
	}
	return cp
}

func sortedTagKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Cloud) spotPrice(typ string) float64 {
	t, _ := catalog.Lookup(typ)
	d := c.SpotDiscount
	if d == 0 {
		d = 0.3
	}
	return t.Hourly * d
}
