package scheduler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// Rechecker asks for a re-check of an instance after a delay: a delayed
// message on the jobs queue whose delivery runs Recheck. AWS sends no event
// when an instance's SSM agent comes online, nor when a keep-warm window
// ends; without re-checks both wait for the watchdog's next tick.
type Rechecker interface {
	Recheck(ctx context.Context, instanceID string, after time.Duration) error
}

// Re-check timing. Each is a named constant with its reason.
const (
	// RecheckDelay is how long after a launch, a start, or a re-check that
	// found the instance not ready the next re-check comes. A re-check
	// lands at a time uniform over the interval in which the agent comes
	// online, so the agent waits half of it on median for its command
	// (3 s), plus the event source's poll and the reconcile (a second or
	// two in AWS): within 5 s. Shorter costs more messages and Lambda
	// invocations per launch (about one per RecheckDelay of boot and
	// registration: 25 for a 40 s boot and a 105 s registration).
	RecheckDelay = 6 * time.Second
	// MaxRecheckDelay is the longest delay SQS takes (DelaySeconds ≤ 900):
	// a keep-warm window ending further ahead waits for the tick.
	MaxRecheckDelay = 15 * time.Minute
)

// UseRechecker makes the scheduler ask r for re-checks; nil (the default)
// asks for none, and everything waits for the watchdog's tick.
func (s *Scheduler) UseRechecker(r Rechecker) { s.recheck = r }

// askRecheck asks for instance id to be re-checked after the delay, once a
// pass. A failure is logged and costs only the tick's latency.
func (s *Scheduler) askRecheck(ctx context.Context, w *world, id string, after time.Duration) {
	if s.recheck == nil || w.rechecks[id] {
		return
	}
	if w.rechecks == nil {
		w.rechecks = map[string]bool{}
	}
	w.rechecks[id] = true
	if err := s.recheck.Recheck(ctx, id, after); err != nil {
		s.log.WarnContext(ctx, "recheck not sent; the watchdog's tick will do", "instance", id, "after", after, "err", err)
		return
	}
	s.log.DebugContext(ctx, "recheck asked", "instance", id, "after", after)
}

// recheckUnready asks for a re-check of i when it is not ready for a
// command yet: pending, or running with its agent offline.
func (s *Scheduler) recheckUnready(ctx context.Context, w *world, i fleet.Instance) {
	if i.State == fleet.StatePending || i.State == fleet.StateRunning && !w.online[i.ID] {
		s.askRecheck(ctx, w, i.ID, RecheckDelay)
	}
}

// recheckFreed asks, for each instance this pass freed (its job ended),
// for a re-check at the end of its keep-warm window, so that its stop
// comes on time rather than at the tick after.
func (s *Scheduler) recheckFreed(ctx context.Context, w *world) {
	if s.recheck == nil || w.budget != "" {
		return // a spent budget stops free instances in this pass already
	}
	for _, id := range slices.Sorted(maps.Keys(w.leases)) {
		l := w.leases[id]
		i, ok := w.instances[id]
		if !ok || l.Held() || !l.StoppingAt.IsZero() || w.taken[id] || !l.IdleSince.Equal(w.now) || !i.Up() {
			continue
		}
		if keep := s.keepWarm(i); keep <= MaxRecheckDelay {
			s.askRecheck(ctx, w, id, keep)
		}
	}
}

// Recheck reconciles, as re-check messages for the instances ids ask, then
// decides each one's next: asked again while a placed job waits on the
// instance, it is not ready yet and younger than AgentTimeout; dropped,
// with a log line, otherwise. A pass that could not read the world drops
// them too: the watchdog's tick reconciles.
func (s *Scheduler) Recheck(ctx context.Context, o Options, ids []string) error {
	w, err := s.reconcile(ctx, o)
	if w == nil {
		s.log.WarnContext(ctx, "recheck dropped: the world could not be read; the watchdog's tick reconciles", "instances", ids, "err", err)
		return err
	}
	for _, id := range slices.Compact(slices.Sorted(slices.Values(ids))) {
		if w.rechecks[id] {
			continue // this pass asked for its next re-check already
		}
		if why, again := s.recheckAgain(w, id); !again {
			s.log.InfoContext(ctx, "recheck done", "instance", id, "why", why)
			continue
		}
		s.askRecheck(ctx, w, id, RecheckDelay)
	}
	return err
}

// recheckAgain says whether instance id needs another re-check after this
// pass, and if not why not.
func (s *Scheduler) recheckAgain(w *world, id string) (string, bool) {
	var waiting *job.Job
	for _, st := range []job.State{job.Placed, job.Queued} {
		for _, j := range w.jobs[st] {
			// The pass moves jobs in place: read the state each has now.
			if j.State == job.Placed && j.InstanceID == id {
				waiting = j
			}
		}
	}
	if waiting == nil {
		return "no placed job waits on it", false
	}
	if !waiting.DispatchedAt.IsZero() {
		return "its job's command is sent or being sent", false
	}
	since := waiting.PlacedAt
	i, listed := w.instances[id]
	if listed && i.LaunchTime.After(since) {
		since = i.LaunchTime
	}
	if age := w.now.Sub(since); age > AgentTimeout {
		return fmt.Sprintf("not ready %v after its start: past the agent timeout %v", age.Round(time.Second), AgentTimeout), false
	}
	switch {
	case w.gone[id]:
		return "the instance is gone", false
	case !listed:
		return "", true // launched, and DescribeInstances does not list it yet
	case i.State == fleet.StatePending || i.State == fleet.StateRunning && !w.online[id]:
		return "", true
	case i.State == fleet.StateRunning:
		return "its agent is online: the pass dispatched or the tick will", false
	}
	return "the instance is " + i.State, false
}
