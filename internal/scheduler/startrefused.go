package scheduler

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
)

// StartRefusedBound is how long a job placed on a stopped instance keeps
// asking StartInstances, refused for capacity, before it leaves the
// instance and is launched elsewhere: the fleet's own horizon for an
// offering refused for capacity (fleet.UnavailableTTL, three minutes: at
// one pass a minute, three or four refused starts). A zone out of a type
// for that long tends to stay out for a while, and a launch in another
// zone or of another type costs about what the start would have (a boot
// and the agent's registration): waiting longer only delays the job. The
// instance's disk is a cache for a job, not a home — except a notebook's,
// which never leaves its instance.
const StartRefusedBound = fleet.UnavailableTTL

// startRefusedSince is when StartInstances first refused i for capacity in
// its current streak of refusals (tag nightshift:start-refused).
func startRefusedSince(i fleet.Instance) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, i.Tags[fleet.TagStartRefused])
	return t, err == nil
}

// startLeftRecently reports whether a job gave up on starting the stopped
// instance i within the last UnavailableTTL: it is not offered to another
// job (free) or readopted (launchedFor) until then — the fleet's
// horizon for asking a refused offering again. It stays stopped and free,
// counted in its pool's cap (S5 counts every live instance, and its slot
// stays bound to it), so that starting it later never takes the pool past
// its cap.
func startLeftRecently(now time.Time, i fleet.Instance) bool {
	if i.State != fleet.StateStopped || isNotebookPool(i.Pool) {
		return false
	}
	if _, refused := startRefusedSince(i); !refused {
		return false
	}
	left, err := time.Parse(time.RFC3339, i.Tags[fleet.TagStartLeft])
	return err == nil && now.Sub(left) < fleet.UnavailableTTL
}

// tagged sets one tag on i and records it in the snapshot; a failure is
// logged, not returned: the tags speed the next decision, they do not
// make it safe.
func (s *Scheduler) tagged(ctx context.Context, w *world, i fleet.Instance, key, value string) fleet.Instance {
	if err := s.fleet.Tag(ctx, i, key, value); err != nil {
		s.log.WarnContext(ctx, "could not tag instance", "instance", i.ID, "tag", key, "err", err)
		return i
	}
	// The snapshot's tag map is shared with its other copies: copy it.
	i.Tags = maps.Clone(i.Tags)
	if i.Tags == nil {
		i.Tags = map[string]string{}
	}
	i.Tags[key] = value
	w.instances[i.ID] = i
	return i
}

// started ends i's streak of refused starts, if it had one.
func (s *Scheduler) started(ctx context.Context, w *world, i fleet.Instance) {
	if i.Tags[fleet.TagStartRefused] != "" {
		s.tagged(ctx, w, i, fleet.TagStartRefused, "")
	}
}

// startRefused handles a start of j's stopped instance i that EC2 refused
// for capacity: the job keeps asking, each pass, for StartRefusedBound;
// then it leaves the instance — its lease released, the instance left
// stopped and free for later, the job back in the queue on the same
// attempt — and the next pass launches it elsewhere. It stays when
// leaving would not help: a notebook keeps its own instance (its disk
// holds the person's files), and a job whose pool has no room for a launch
// and no other free instance would only wait in the queue instead.
func (s *Scheduler) startRefused(ctx context.Context, w *world, j *job.Job, i fleet.Instance, err error) error {
	first, ok := startRefusedSince(i)
	if !ok {
		first = w.now
		i = s.tagged(ctx, w, i, fleet.TagStartRefused, w.now.UTC().Format(time.RFC3339))
	}
	zone := i.Zone
	if zone == "" {
		zone = fleet.ErrZone(err)
	}
	code := fleet.ErrCode(err)
	if code == "" {
		code = "insufficient capacity"
	}
	waited := w.now.Sub(first).Round(time.Second)
	what := fmt.Sprintf("instance %s could not start for %v: %s in %s", i.ID, waited, code, zone)
	switch {
	case isNotebookPool(j.Pool):
		return s.setReason(ctx, j, what+fmt.Sprintf("; a notebook keeps its own instance (its disk holds the person's files): waiting for %s capacity in %s", i.Type, zone))
	case w.now.Sub(first) < StartRefusedBound:
		return s.setReason(ctx, j, what+fmt.Sprintf("; trying again each pass, for up to %v, then launching another", StartRefusedBound))
	}
	if why, ok := s.noElsewhere(w, j); ok {
		return s.setReason(ctx, j, what+"; "+why+": trying to start it again each pass")
	}
	// Leave. The tag first: a pass that reads it offers the instance to
	// no job for a while; should the job's write then lose a race, the
	// instance is only rested early.
	prev, perr := time.Parse(time.RFC3339, i.Tags[fleet.TagStartLeft])
	firstLeave := perr != nil || prev.Before(first)
	i = s.tagged(ctx, w, i, fleet.TagStartLeft, w.now.UTC().Format(time.RFC3339))
	why := what + "; launching another, the stopped instance stays for later"
	from, id := j.State, j.InstanceID
	ops := release(w, j)
	if err := j.Move(job.Queued, why, w.now); err != nil {
		return err
	}
	j.InstanceID, j.InstanceType = "", ""
	j.DispatchedAt = time.Time{}
	ok, werr := s.write(ctx, j, from, ops...)
	if !ok {
		return werr
	}
	freedLease(w, id, j.ID)
	s.log.WarnContext(ctx, "left an instance that could not start", "job", j.ID, "instance", id, "zone", zone, "waited", waited, "code", code)
	if !firstLeave {
		// Said once per streak of refusals: in a long outage the instance
		// is offered again after each rest, refused again, and left again.
		return werr
	}
	return errors.Join(werr, s.say(ctx, notice.Action{Instance: id, Verb: "leave", Job: j.ID, Why: why}))
}

// noElsewhere says why leaving j's instance would not get j placed: its
// pool has no other free instance and no room, or no leave, to launch one.
func (s *Scheduler) noElsewhere(w *world, j *job.Job) (string, bool) {
	_, types := s.pool(j)
	if _, ok := s.free(w, j.Pool, types); ok {
		return "", false
	}
	if err, ok := w.blocked[j.Pool]; ok {
		return "launches of pool " + j.Pool + " are refused too (" + err.Error() + ")", true
	}
	if why, ok := paused(w, j.Pool); ok {
		return why, true
	}
	pool, _ := s.pool(j)
	if _, room := freeSlot(w, j.Pool, pool.MaxInstances); s.count(w, j.Pool) >= pool.MaxInstances || !room {
		return fmt.Sprintf("pool %s is at its cap of %d instances, this stopped one included, and none other is free", j.Pool, pool.MaxInstances), true
	}
	return "", false
}
