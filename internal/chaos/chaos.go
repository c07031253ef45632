// Package chaos runs nightshift's real handlers and Reconcile through
// randomized histories on the simulated cloud — duplicate and reordered
// deliveries, lost events, crashes between any two AWS calls, throttling,
// capacity and quota errors, spot interruptions, dead agents, hung commands,
// people stopping instances, notebooks, the control plane going away — and
// checks every invariant of the design after every step. A history is a
// function of its seed alone: a failure prints the seed, and the seed
// replays it exactly.
package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Shape of a history. Each is a named constant with why it has its value.
const (
	// Length is the faulty part of a history: long enough for jobs to queue
	// behind the cap, retry, time out, and for keep-warm to expire.
	Length = 8 * time.Hour
	// MaxDrain bounds the fault-free tail in which everything accepted must
	// end: a backlog of a few dozen multi-hour jobs behind a cap of 3.
	MaxDrain = 96 * time.Hour
	// Cap is the pool's instance cap: small, so jobs contend.
	Cap = 3
	// KeepWarm is the pool's keep-warm window.
	KeepWarm = 10 * time.Minute
	// IdleTimeout is the watched instances' idle timeout.
	IdleTimeout = 30 * time.Minute
	// Grace is the watched instances' grace.
	Grace = 10 * time.Minute
	// step is how far the clock moves between planned actions at most.
	step = time.Minute
	// SQSBatches is how many intake invocations run at once in a
	// concurrent history: the template's MaximumConcurrency.
	SQSBatches = 5
	// LambdaTimeout is the functions' timeout in the template.
	LambdaTimeout = 60 * time.Second
)

// Violation is a broken invariant.
type Violation struct {
	Seed      uint64
	Mode      Mode
	Step      int
	At        time.Duration
	Invariant string
	Detail    string
}

func (v *Violation) Error() string {
	flag := ""
	if v.Mode == Concurrent {
		flag = " -concurrent"
	}
	return fmt.Sprintf("seed %d (%s): %s broken at step %d (T+%v): %s\nreplay: go test ./internal/chaos -run TestReplay -seed %d%s -v",
		v.Seed, v.Mode, v.Invariant, v.Step, v.At, v.Detail, v.Seed, flag)
}

// Stats counts what a history did.
type Stats struct {
	Steps, Jobs, Messages, Crashes, Throttles, Dropped, Duplicated int
	Launches, Commands                                             int
	// Notebooks counts notebook sessions; Waited the jobs failed for
	// waiting past their max_wait.
	Notebooks, Waited int
	// ZoneFaults counts offerings (type, zone, market) taken out; Skips the
	// rungs the fleet skipped; Leaves the streaks of refused starts in
	// which a job left its stopped instance (said once a streak).
	ZoneFaults, Skips, Leaves int
	// Fallbacks counts spot-then-on-demand launches on-demand, spot
	// refused; StartRefused the instances a start was refused for capacity.
	Fallbacks, StartRefused int
	// Fresh counts the histories on a brand-new account; QuotaRequests
	// the increase requests nightshift filed.
	Fresh, QuotaRequests int
	// Resumes counts the lost attempts of checkpointed jobs that resumed
	// from their checkpoint without a retry.
	Resumes int
}

// history is one seeded run.
type history struct {
	seed  uint64
	mode  Mode
	rng   *rand.Rand
	w     *sim.World
	ctx   context.Context
	stats Stats
	check *checker
	// jobs are the ids of the valid jobs sent, with their max runtime.
	jobs map[string]time.Duration
	// crashes is the crash plan of each invocation in flight, by id.
	crashes map[int]*crash
	faulty  bool
	// checking is set while the checker reads: its reads are not faulted.
	checking bool
	// autoKeepWarm: the pool keeps each instance warm for its own measured
	// start-to-ready time.
	autoKeepWarm bool
	// cleanTicks counts watchdog invocations that no injected fault hit
	// (no crash, no throttling): whatever such a tick returns, it had its
	// chance to act. An error of nightshift's own making does not excuse
	// it, or a bug that fails every tick would hold every liveness bound
	// off.
	cleanTicks int
	// rates of this history's faults
	pCrash, pThrottle, pDrop, pDup float64
	downUntil, upSince             time.Time
	capacityUntil, quotaUntil      time.Time
	// fresh: the account is brand new (fresh.go): quotas 0, nightshift
	// asks, AWS opens a case after caseAfter and approves after
	// approveAfter.
	fresh                   bool
	caseAfter, approveAfter time.Duration
	// quotaBack is when the last low-quota fault ended: nightshift reads
	// the raised value within quota.DefaultTTL (its cache), as it would
	// read an increase a person made in the console.
	quotaBack time.Time
	// flaps are the types whose capacity is gone, until when.
	flaps map[string]time.Time
	// budget is the daily budget in USD (policy cancel); 0 for none.
	budget float64
	// zones: the history has two subnets and capacity faults per zone and
	// market, drawn from zr; zoneOut are the offerings out, until when.
	zones   bool
	zr      *rand.Rand
	zoneOut map[awssim.Offering]time.Time
	// skips are the rungs the fleet skipped (U1), skipsSeen how many the
	// checker has looked at.
	skips []fleet.Skip
}

// crash is when one invocation dies: before (or, with after, just after)
// its call number at+1, if at ≥ 0; dead once it has.
type crash struct {
	at, calls   int
	after, dead bool
	// faulted: a call of the invocation was throttled.
	faulted bool
}

// Mode says how a history runs its Lambda invocations.
type Mode int

// The modes.
const (
	// Serial runs each invocation to its end before the next starts.
	Serial Mode = iota
	// Concurrent runs them at once, interleaved call by call, as AWS does.
	Concurrent
)

func (m Mode) String() string { return [...]string{"serial", "concurrent"}[m] }

// Run plays the serial history of seed and returns the first broken invariant.
func Run(seed uint64) (Stats, error) { return RunLogged(seed, Serial, nil) }

// RunConcurrent plays the concurrent history of seed.
func RunConcurrent(seed uint64) (Stats, error) { return RunLogged(seed, Concurrent, nil) }

// RunLogged plays a history with the handlers' log (nil: none), for replays.
func RunLogged(seed uint64, mode Mode, log *slog.Logger) (Stats, error) {
	h := &history{
		seed: seed, mode: mode,
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		ctx:     context.Background(),
		jobs:    map[string]time.Duration{},
		crashes: map[int]*crash{},
		flaps:   map[string]time.Time{},
	}
	// A third of the histories have a daily budget that binds (a few hours
	// of the pool's instances): drawn from a source of their own, so the
	// other histories stay as they were.
	if b := rand.New(rand.NewPCG(seed^0x243f6a8885a308d3, seed)); b.IntN(3) == 0 {
		h.budget = float64(4 + b.IntN(9))
	}
	// Half the histories keep warm for a fixed window, half "auto" (each
	// instance's measured start-to-ready time, at most KeepWarm here: boot
	// and agent take under 6 minutes in these histories).
	pool := scheduler.Pool{Types: []string{"g4dn.xlarge", "g5.xlarge"}, MaxInstances: Cap, KeepWarm: job.Duration(KeepWarm)}
	if h.rng.IntN(2) == 0 {
		pool.KeepWarm, pool.KeepWarmAuto = 0, true
		h.autoKeepWarm = true
	}
	subnets := h.drawZones()
	h.freshAccount()
	quotaMax := 0
	if h.fresh {
		quotaMax = FreshQuotaMax
	}
	h.w = sim.NewWorld(sim.Config{
		QuotaRequestMax: quotaMax,
		Subnets:         subnets,
		Pools:           map[string]scheduler.Pool{"default": pool},
		KeepWarm:        KeepWarm,
		Retries:         3,
		Watchdog:        watchdog.Config{IdleTimeout: IdleTimeout, Grace: Grace, StallTimeout: 45 * time.Minute, DailyBudget: h.budget, Policy: watchdog.PolicyCancel},
		Log:             log,
	})
	if mode == Concurrent {
		// Its own source, so the interleaving does not shift the history's
		// other draws; the step between calls is drawn per history.
		h.w.Concurrent = &sim.Concurrency{
			Rand:       rand.New(rand.NewPCG(seed^0x5bd1e995, seed)),
			SQSBatches: SQSBatches,
			MaxStep:    []time.Duration{100 * time.Millisecond, time.Second, 3 * time.Second}[h.rng.IntN(3)],
			Timeout:    LambdaTimeout,
			// Half the histories interleave uniformly, half by PCT.
			Preempt: []float64{0, 0.02, 0.1}[h.rng.IntN(3)],
		}
	}
	h.w.Svc.Fleet.OnSkip(func(s fleet.Skip) { h.skips = append(h.skips, s) })
	h.freshCloud()
	h.check = newChecker(h)
	h.w.Stepped = h.check.step
	h.faults()
	h.upSince = h.w.Clock.Now()
	start := h.w.Clock.Now()
	plan := h.plan()
	for _, a := range plan {
		h.advance(start.Add(a.at))
		if log != nil {
			log.Info("chaos: "+a.name, "at", a.at)
		}
		a.do(h)
		if err := h.check.all(); err != nil {
			return h.stats, err
		}
	}
	h.advance(start.Add(Length))
	// Drain: no more faults, the control plane is up; everything must end.
	h.faulty = false
	h.w.Down = false
	h.w.Cloud.Capacity = map[string]int{}
	h.w.Cloud.ZoneCapacity = map[awssim.Offering]int{}
	h.zoneOut = map[awssim.Offering]time.Time{}
	h.flaps = map[string]time.Time{}
	if !h.fresh {
		h.w.Cloud.Quota = map[string]int{} // a fresh account's quotas are AWS's to raise
	}
	h.upSince = h.w.Clock.Now()
	for end := h.w.Clock.Now().Add(MaxDrain); h.w.Clock.Now().Before(end) && h.check.err == nil; {
		h.advance(h.w.Clock.Now().Add(time.Hour))
		if h.quiet() {
			h.advance(h.w.Clock.Now().Add(KeepWarm + slack))
			break
		}
	}
	if err := h.check.final(); err != nil {
		return h.stats, err
	}
	h.stats.Jobs = len(h.jobs)
	for id := range h.jobs {
		if j, err := h.w.Store.Job(context.Background(), id); err == nil {
			h.stats.Resumes += j.Resumes
		}
	}
	h.stats.Launches = h.w.Cloud.Calls["RunInstances"]
	if h.fresh {
		h.stats.Fresh++
	}
	h.stats.QuotaRequests = len(h.w.Cloud.QuotaRequests())
	h.stats.Commands = len(h.w.Invocations())
	h.stats.Skips = len(h.skips)
	for _, n := range h.w.Cloud.Notifications() {
		if strings.HasPrefix(n.Subject, "nightshift: leave") {
			h.stats.Leaves++
		}
		if strings.HasPrefix(n.Subject, "nightshift: launch") {
			h.stats.Fallbacks++
		}
	}
	for _, i := range h.w.Cloud.Instances() {
		if _, ok := i.Tags[fleet.TagStartRefused]; ok {
			h.stats.StartRefused++
		}
	}
	return h.stats, nil
}

// advance moves the clock to t a step at a time, checking after each.
func (h *history) advance(t time.Time) {
	for h.w.Clock.Now().Before(t) && h.check.err == nil {
		next := h.w.Clock.Now().Add(step)
		if next.After(t) {
			next = t
		}
		if h.w.Down && !h.w.Clock.Now().Before(h.downUntil) {
			h.w.Down = false
			h.upSince = h.w.Clock.Now()
		}
		if !h.capacityUntil.IsZero() && !h.w.Clock.Now().Before(h.capacityUntil) {
			h.w.Cloud.Capacity = map[string]int{}
			h.capacityUntil = time.Time{}
		}
		for typ, until := range h.flaps {
			if !h.w.Clock.Now().Before(until) {
				if h.capacityUntil.IsZero() {
					delete(h.w.Cloud.Capacity, typ)
				}
				delete(h.flaps, typ)
			}
		}
		h.zonesBack()
		if !h.quotaUntil.IsZero() && !h.w.Clock.Now().Before(h.quotaUntil) {
			h.w.Cloud.Quota = map[string]int{}
			h.quotaUntil = time.Time{}
			h.quotaBack = h.w.Clock.Now()
		}
		h.w.Run(h.ctx, next.Sub(h.w.Clock.Now()))
		h.stats.Steps++
		h.check.step()
	}
}

// faults wires the fault injectors; their rates are drawn from the seed.
func (h *history) faults() {
	h.faulty = true
	h.pCrash = []float64{0, 0.05, 0.15}[h.rng.IntN(3)]
	h.pThrottle = []float64{0, 0.02, 0.08}[h.rng.IntN(3)]
	h.pDrop = []float64{0, 0.1, 0.3}[h.rng.IntN(3)]
	h.pDup = []float64{0, 0.1, 0.3}[h.rng.IntN(3)]
	w := h.w
	w.Invoke = func(l *sim.Lambda) func(error) {
		c := &crash{at: -1}
		if h.faulty && h.rng.Float64() < h.pCrash {
			c.at = h.rng.IntN(25)
			c.after = h.rng.IntN(2) == 0
		}
		h.crashes[l.ID] = c
		return func(err error) {
			if c.dead {
				h.stats.Crashes++
			}
			if l.Function == "watchdog" && !c.dead && !c.faulted {
				h.cleanTicks++
			} else if l.Function == "watchdog" {
				h.check.excuse(scheduler.Period) // a sweep that failed accrues nothing
			}
			delete(h.crashes, l.ID)
			h.check.step()
		}
	}
	// current is the crash plan of the invocation making a call; nil for
	// the harness's own reads.
	current := func() *crash {
		if h.checking || w.Current() == nil {
			return nil
		}
		return h.crashes[w.Current().ID]
	}
	w.Cloud.Fault = func(op string, _ any) error {
		c := current()
		if c == nil {
			return nil
		}
		if c.dead {
			return awssim.ErrCrash
		}
		c.calls++
		if c.at >= 0 && c.calls > c.at && !c.after {
			c.dead = true
			return awssim.ErrCrash
		}
		if h.faulty && h.rng.Float64() < h.pThrottle {
			h.stats.Throttles++
			c.faulted = true
			return throttle(op)
		}
		return nil
	}
	w.Cloud.After = func(op string) error {
		if c := current(); c != nil && c.at >= 0 && c.calls > c.at && c.after && !c.dead {
			c.dead = true // the call took effect; its answer is lost with the process
			return awssim.ErrCrash
		}
		return nil
	}
	w.Mangle = func(evs []awssim.Event) []awssim.Event {
		if !h.faulty {
			return evs
		}
		var out []awssim.Event
		for _, e := range evs {
			if h.rng.Float64() < h.pDrop {
				h.stats.Dropped++
				continue
			}
			out = append(out, e)
			if h.rng.Float64() < h.pDup {
				h.stats.Duplicated++
				out = append(out, e)
			}
		}
		h.rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	w.Cloud.AgentDelay = func(string) (time.Duration, bool) {
		if h.faulty && h.rng.Float64() < 0.05 {
			return -1, true // this agent never comes online
		}
		return time.Duration(20+h.rng.IntN(280)) * time.Second, true
	}
	w.Exec = sim.ExecFunc(func(r sim.Run) sim.Outcome {
		switch x := h.rng.Float64(); {
		case x < 0.05:
			return sim.Outcome{Hang: true}
		case x < 0.12:
			return sim.Outcome{Exit: 1 + h.rng.IntN(3), Duration: time.Duration(1+h.rng.IntN(20)) * time.Minute}
		}
		return sim.Outcome{Duration: time.Duration(1+h.rng.IntN(150)) * time.Minute}
	})
}

// throttle is the throttling error of the service behind op.
func throttle(op string) error {
	code := "RequestLimitExceeded" // EC2
	switch op {
	case "SendCommand", "GetCommandInvocation", "ListCommandInvocations", "CancelCommand", "DescribeInstanceInformation", "DescribeSessions", "GetParameter":
		code = "ThrottlingException"
	case "GetMetricData":
		code = "Throttling"
	}
	if len(op) > 6 && op[:6] == "store." {
		code = "ProvisionedThroughputExceededException"
	}
	return &smithy.GenericAPIError{Code: code, Message: "Rate exceeded (simulated)"}
}

func (s *Stats) add(o Stats) {
	s.Steps += o.Steps
	s.Jobs += o.Jobs
	s.Messages += o.Messages
	s.Crashes += o.Crashes
	s.Throttles += o.Throttles
	s.Dropped += o.Dropped
	s.Duplicated += o.Duplicated
	s.Launches += o.Launches
	s.Commands += o.Commands
	s.Notebooks += o.Notebooks
	s.Waited += o.Waited
	s.ZoneFaults += o.ZoneFaults
	s.Skips += o.Skips
	s.Leaves += o.Leaves
	s.Fallbacks += o.Fallbacks
	s.StartRefused += o.StartRefused
	s.Fresh += o.Fresh
	s.QuotaRequests += o.QuotaRequests
	s.Resumes += o.Resumes
}

// quiet reports whether every job the history sent has ended and every
// notebook has had the time to be found idle.
func (h *history) quiet() bool {
	h.checking = true
	defer func() { h.checking = false }()
	for _, busyUntil := range h.check.notebooks {
		if h.w.Clock.Now().Before(busyUntil.Add(Grace + IdleTimeout + metricLag)) {
			return false
		}
	}
	for id := range h.jobs {
		if j, err := h.w.Store.Job(h.ctx, id); err != nil || !j.State.Terminal() {
			return false
		}
	}
	return true
}
