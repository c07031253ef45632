package waste

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Replay settings, each with its reason.
const (
	// ReplayRuntimeMargin is added to a job's duration for its max_runtime:
	// a user names a limit above what the job needs.
	ReplayRuntimeMargin = 30 * time.Minute
	// drainStep and drainLimit: after the last event the replay runs until
	// every job has ended and every instance is stopped, looking every
	// drainStep, for at most drainLimit (longer means something never stops).
	drainStep  = 5 * time.Minute
	drainLimit = 30 * 24 * time.Hour
)

var (
	// activeUsage is a notebook whose user is working: GPU, CPU and network
	// far above the watchdog's idle thresholds.
	activeUsage = awssim.Usage{GPU: 90, CPU: 40, NetBytesPerSec: 5e5}
	// leftOpenUsage is a notebook left open: a Jupyter server and the
	// agents' chatter, far below every threshold.
	leftOpenUsage = awssim.Usage{GPU: 0, CPU: 1, NetBytesPerSec: 150}
)

// Replayed is what nightshift did with a trace.
type Replayed struct {
	Result
	// Ticks counts the watchdog's one-minute ticks over the replay.
	Ticks int
	// APICalls counts the calls nightshift made to the simulated AWS.
	APICalls int
	// PoolIdle spans, over every stop of a pool instance, the time from its
	// last command's end to the stop (DESIGN.md L1: at most keep-warm plus
	// one watchdog period).
	PoolIdle Spread
	// NotebookIdle spans, over every stop of a notebook, the time from the
	// end of its last use the watchdog could see — activity, or a browser
	// connected — to the stop (L1: the idle timeout plus one period).
	NotebookIdle Spread
	// Findings are what went wrong in nightshift while replaying: jobs that
	// did not end as their trace line says, handler errors, notebooks
	// stopped under their user, instances that never stopped.
	Findings []string
}

// Spread is the least and the most of some durations, and how many.
type Spread struct {
	Min, Max time.Duration
	N        int
}

func (s *Spread) add(d time.Duration) {
	if s.N == 0 || d < s.Min {
		s.Min = d
	}
	if s.N == 0 || d > s.Max {
		s.Max = d
	}
	s.N++
}

// replay drives a sim.World through a trace.
type replay struct {
	ctx   context.Context
	tr    *Trace
	p     Params
	w     *sim.World
	shift time.Duration // sim time - trace time
	// actions are the trace's happenings, on a queue of their own: the
	// world runs up to each before it happens.
	actions *vclock.Clock
	// jobIDs maps a trace event's index to its nightshift job id (a cron
	// job's id has its schedule time folded in), learned when it runs.
	jobIDs map[int]string
	// nb acts out the notebook sessions (replay_notebook.go).
	nb       notebookDriver
	findings []string
	// stops are the times instances began stopping, from EC2's events.
	stops map[string][]time.Time
}

// Replay runs the trace through nightshift's real intake, dispatch and
// watchdog handlers and Reconcile against the simulated cloud: each job is
// sent to the queue at its time (a cron job with scheduled_at, as
// EventBridge Scheduler sends it), its command runs for its duration and
// exits with its code; each notebook is an instance launched by hand,
// tagged nightshift:watch=true, started again by its person for each
// session, its metrics busy in work and busy phases, a Session Manager
// session open while a browser is connected (see watchedNotebooks). It reads the bill from the
// simulated EC2 and the jobs' start times from the jobs table.
func Replay(ctx context.Context, tr *Trace, p Params) (Replayed, error) {
	if err := p.Check(); err != nil {
		return Replayed{}, err
	}
	return newReplay(ctx, tr, p).run(), nil
}

// newReplay builds the world and schedules the trace's events.
func newReplay(ctx context.Context, tr *Trace, p Params) *replay {
	w := sim.NewWorld(sim.Config{
		Pools: map[string]scheduler.Pool{"default": {
			Types: []string{p.Type}, MaxInstances: p.Cap, KeepWarm: job.Duration(p.KeepWarm), KeepWarmAuto: p.KeepWarm == 0,
		}},
		KeepWarm: p.KeepWarm,
		Watchdog: watchdog.Config{IdleTimeout: p.IdleTimeout},
	})
	w.Cloud.Boot, w.Cloud.Agent, w.Cloud.StopDelay = p.Pending, p.Agent, p.StopDelay
	rp := &replay{
		ctx: ctx, tr: tr, p: p, w: w, shift: vclock.Epoch.Sub(tr.Start),
		jobIDs: map[int]string{}, stops: map[string][]time.Time{}, actions: vclock.New(),
	}
	rp.nb = newJobNotebooks(rp)
	if p.WatchedNotebooks {
		rp.nb = newWatchedNotebooks(rp)
	}
	// EventBridge loses nothing; the hook only watches the events go by.
	w.Drop = func(e awssim.Event) bool {
		if e.DetailType == "EC2 Instance State-change Notification" && e.Detail["state"] == "stopping" {
			rp.stops[e.Detail["instance-id"]] = append(rp.stops[e.Detail["instance-id"]], e.At)
		}
		return false
	}
	w.Exec = sim.ExecFunc(rp.exec)
	w.Cloud.Usage = rp.nb.usage
	for k, ev := range tr.Events {
		rp.at(ev.At.Add(rp.shift), func() { rp.arrive(k, ev) })
	}
	return rp
}

// run acts out the trace, then runs until everything has stopped.
func (rp *replay) run() Replayed {
	w := rp.w
	for next, ok := rp.actions.Next(); ok; next, ok = rp.actions.Next() {
		if d := next.Sub(w.Clock.Now()); d > 0 {
			w.Run(rp.ctx, d)
		}
		rp.actions.AdvanceTo(next)
	}
	for waited := time.Duration(0); !rp.quiet(); waited += drainStep {
		if waited >= drainLimit {
			rp.finding("after %v past the trace's last event, not every job has ended or not every instance is stopped", drainLimit)
			break
		}
		w.Run(rp.ctx, drainStep)
	}
	return rp.measure()
}

func (rp *replay) at(t time.Time, f func()) { rp.actions.At(t, f) }

func (rp *replay) finding(format string, args ...any) {
	rp.findings = append(rp.findings, fmt.Sprintf(format, args...))
}

// arrive acts out trace event k at its time.
func (rp *replay) arrive(k int, ev Event) {
	if ev.Kind == Notebook {
		rp.nb.arrive(ev)
		return
	}
	msg := map[string]any{
		"id":          jobID(k, ev.Name),
		"name":        ev.Name,
		"command":     "python train.py",
		"max_runtime": (ev.Duration.Round(time.Minute) + ReplayRuntimeMargin).String(),
	}
	if ev.Priority != 0 {
		msg["priority"] = ev.Priority
	}
	if ev.Kind == Cron {
		msg["scheduled_at"] = rp.w.Clock.Now().UTC().Format(time.RFC3339)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		rp.finding("line %d: %v", ev.Line, err)
		return
	}
	rp.w.Send(string(body))
	rp.w.Poll(rp.ctx) // the SQS event source delivers within about a second
}

// jobID is the id the replay gives trace event k; its index leads, so the
// executor finds the event again from a cron job's folded id too.
func jobID(k int, name string) string { return "j" + strconv.Itoa(k) + "-" + name }

// eventOf returns the trace event index a nightshift job id was made from.
func eventOf(id string) (int, bool) {
	rest, ok := strings.CutPrefix(id, "j")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	k, err := strconv.Atoi(num)
	return k, err == nil
}

// exec is the simulated instance running a job's command: it takes the
// trace line's duration and ends with its exit code.
func (rp *replay) exec(r sim.Run) sim.Outcome {
	k, ok := eventOf(r.JobID)
	if !ok || k >= len(rp.tr.Events) {
		rp.finding("a command ran for job %q, which no trace line asked for", r.JobID)
		return sim.Outcome{Duration: time.Minute}
	}
	rp.jobIDs[k] = r.JobID
	ev := rp.tr.Events[k]
	return sim.Outcome{Duration: ev.Duration, Exit: ev.Exit}
}

func (rp *replay) instance(id string) (awssim.Instance, bool) {
	for _, i := range rp.w.Cloud.Instances() {
		if i.ID == id {
			return i, true
		}
	}
	return awssim.Instance{}, false
}

// quiet reports whether every job has ended and every instance is stopped.
func (rp *replay) quiet() bool {
	for _, st := range job.Live {
		if js, err := rp.w.Store.Live(rp.ctx, st); err != nil || len(js) > 0 {
			return false
		}
	}
	for _, i := range rp.w.Cloud.Instances() {
		if i.State != "stopped" && i.State != "terminated" {
			return false
		}
	}
	return true
}

// measure reads the bill, the commands and the jobs table.
func (rp *replay) measure() Replayed {
	w := rp.w
	var r Replayed
	seconds, _ := w.Cloud.Bill()
	for _, s := range seconds {
		r.Billed += time.Duration(s * float64(time.Second))
	}
	r.USD = r.Billed.Hours() * rp.p.Price
	for _, i := range w.Cloud.Instances() {
		r.Starts += i.Stops
		if i.State != "stopped" && i.State != "terminated" {
			r.Starts++
			rp.finding("instance %s (%s) is still %s at the end", i.ID, i.Tags["Name"], i.State)
		}
	}
	var want time.Duration
	for k, ev := range rp.tr.Events {
		if ev.Kind != Notebook {
			want += ev.Duration
			rp.checkJob(k, ev, &r)
		}
	}
	rp.idleBeforeStops(&r)
	var ran time.Duration
	for _, inv := range w.Invocations() {
		if inv.Duplicate || inv.Ended.IsZero() || inv.Stop || rp.nb.owns(inv.InstanceID) {
			continue // a notebook's JupyterLab is measured by its person's sessions (measure)
		}
		if d := inv.Ended.Sub(inv.Started); inv.ResponseCode >= 0 {
			ran += d
		} else {
			r.Killed += d // the instance or its agent went away under the command
		}
	}
	if ran != want {
		rp.finding("job commands ran %v in all; the trace's jobs last %v", ran, want)
	}
	r.Training = ran
	rp.nb.measure(&r, rp.stops)
	r.Ticks = int(w.Clock.Now().Sub(vclock.Epoch) / scheduler.Period)
	for _, n := range w.Cloud.Calls {
		r.APICalls += n
	}
	if n := len(w.Errors); n > 0 {
		var distinct []string
		for _, err := range w.Errors {
			if s := err.Error(); !slices.Contains(distinct, s) && len(distinct) < 3 {
				distinct = append(distinct, s)
			}
		}
		rp.finding("handlers returned %d errors, e.g. %q", n, distinct)
	}
	r.Findings = rp.findings
	return r
}

// idleBeforeStops measures, for every stop of a pool instance, how long it
// had been idle: since its last command ended. (Notebooks: measure.)
func (rp *replay) idleBeforeStops(r *Replayed) {
	lastEnd := func(ends []time.Time, before time.Time) (time.Time, bool) {
		var last time.Time
		for _, e := range ends {
			if !e.After(before) && e.After(last) {
				last = e
			}
		}
		return last, !last.IsZero()
	}
	ends := map[string][]time.Time{}
	for _, inv := range rp.w.Invocations() {
		if !inv.Duplicate && !inv.Ended.IsZero() {
			ends[inv.InstanceID] = append(ends[inv.InstanceID], inv.Ended)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rp.stops)) {
		if rp.nb.owns(id) {
			continue
		}
		for _, at := range rp.stops[id] {
			if end, ok := lastEnd(ends[id], at); ok {
				r.PoolIdle.add(at.Sub(end))
			}
		}
	}
}

// checkJob reads trace job k's record: its wait, and whether it ended as
// the trace says (exit 0: SUCCEEDED, else FAILED).
func (rp *replay) checkJob(k int, ev Event, r *Replayed) {
	id, ok := rp.jobIDs[k]
	if !ok {
		rp.finding("line %d: job %s never ran", ev.Line, ev.Name)
		return
	}
	j, err := rp.w.Store.Job(rp.ctx, id)
	if err != nil {
		rp.finding("line %d: job %s: %v", ev.Line, id, err)
		return
	}
	want := job.Succeeded
	if ev.Exit != 0 {
		want = job.Failed
	}
	if j.State != want {
		rp.finding("line %d: job %s is %s (%s); want %s", ev.Line, id, j.State, j.Reason, want)
	}
	if j.Attempt != 1 {
		rp.finding("line %d: job %s took %d attempts (%s)", ev.Line, id, j.Attempt, j.Reason)
	}
	r.Waits = append(r.Waits, j.StartedAt.Sub(j.SubmittedAt))
}
