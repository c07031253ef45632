package scheduler

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// maxPause bounds the back-off of a pool whose launches EC2 refuses for
// the deployment's own settings: a person who fixes the stack sees the
// pool launch again within half an hour, whatever the count of refusals.
const maxPause = 30 * time.Minute

// pause is how long a pool's launches wait after tries refusals in a row:
// one watchdog period, doubling, at most maxPause.
func pause(tries int) time.Duration {
	d := Period
	for range max(0, tries-1) {
		if d *= 2; d >= maxPause {
			return maxPause
		}
	}
	return d
}

// paused says, when the pool's launches wait for the deployment to be
// fixed, why and until when.
func paused(w *world, pool string) (string, bool) {
	st, ok := w.pools[pool]
	if !ok || st.Code == "" || !w.now.Before(st.NextTry) {
		return "", false
	}
	return fmt.Sprintf("launches in pool %s paused until %s: %s; tried %d times since %s",
		pool, st.NextTry.Format(time.RFC3339), st.Message, st.Tries, st.Since.Format(time.RFC3339)), true
}

// refused records that EC2 refused the deployment's launch settings for a
// pool: its launches pause, backing off, and a person is told once per
// refusal (a new code is a new refusal).
func (s *Scheduler) refused(ctx context.Context, w *world, pool string, err error) error {
	st := w.pools[pool]
	st.Pool = pool
	code := "refused"
	var le *fleet.LaunchError
	if errors.As(err, &le) {
		code = le.Code
	}
	if st.Code != code {
		st.Code, st.Since, st.Tries, st.Notified = code, w.now, 0, false
	}
	st.Message, st.Tries = err.Error(), st.Tries+1
	st.NextTry = w.now.Add(pause(st.Tries))
	notify := !st.Notified
	st.Notified = true
	if werr := s.store.PutPoolStatus(ctx, &st); werr != nil {
		if errors.Is(werr, store.ErrConflict) {
			return nil // another pass recorded it first
		}
		return werr
	}
	w.pools[pool] = st
	s.log.WarnContext(ctx, "launches paused", "pool", pool, "code", code, "until", st.NextTry, "tries", st.Tries)
	if !notify {
		return nil
	}
	return s.say(ctx, notice.Action{Verb: "notify", Why: fmt.Sprintf("launches in pool %s are paused: %s; nightshift retries with back-off and places the waiting jobs once a launch succeeds", pool, err)})
}

// recovered clears a pool's pause once a launch has succeeded.
func (s *Scheduler) recovered(ctx context.Context, w *world, pool string) error {
	st, ok := w.pools[pool]
	if !ok || st.Code == "" {
		return nil
	}
	st.Code, st.Message, st.Tries, st.Notified = "", "", 0, false
	st.Since, st.NextTry = time.Time{}, time.Time{}
	if err := s.store.PutPoolStatus(ctx, &st); err != nil && !errors.Is(err, store.ErrConflict) {
		return err
	}
	w.pools[pool] = st
	s.log.InfoContext(ctx, "launches resumed", "pool", pool)
	return nil
}

// failRefused ends a job whose own message asks for what EC2 refuses: no
// retry changes the answer.
func (s *Scheduler) failRefused(ctx context.Context, w *world, j *job.Job, err error) error {
	from, attempt := j.State, j.Attempt
	if merr := j.Move(job.Failed, err.Error(), w.now); merr != nil {
		return merr
	}
	ok, werr := s.write(ctx, j, from, releaseSlot(w, j)...)
	if ok {
		dropSlot(w, j.Pool, j.ID, attempt)
		s.log.WarnContext(ctx, "launch refused for the job", "job", j.ID, "err", err)
		s.ended(ctx, j)
	}
	return werr
}

// failWaited fails a queued job that has waited its max_wait, saying what
// it waited for: its last reason (capacity, quota, the pool's cap, a
// budget). A queued job holds nothing, so nothing is freed.
func (s *Scheduler) failWaited(ctx context.Context, w *world, j *job.Job, maxWait time.Duration) error {
	why := fmt.Sprintf("waited %v in the queue, its max_wait of %v: %s", w.now.Sub(j.QueuedSince()).Round(time.Second), maxWait, j.Reason)
	if err := j.Move(job.Failed, why, w.now); err != nil {
		return err
	}
	ok, err := s.write(ctx, j, job.Queued)
	if ok {
		s.log.WarnContext(ctx, "waited too long", "job", j.ID, "max_wait", maxWait, "why", why)
		s.ended(ctx, j)
	}
	return err
}

// expireDeepWaits fails the queued jobs past the head a pass reads whose
// max_wait is over: place() sees only the head, and a job deep in a long
// queue would wait on past its max_wait until it reached it. On the first
// tick of every QuotaFollowEvery window, and only when the head was full
// (the queue may be longer), it reads the whole queue: a deep job fails
// within max_wait and five minutes, a short queue costs nothing more.
func (s *Scheduler) expireDeepWaits(ctx context.Context, w *world) error {
	if !w.deepQueue || w.now.Sub(w.now.Truncate(QuotaFollowEvery)) >= Period {
		return nil
	}
	all, err := s.store.Live(ctx, job.Queued)
	if err != nil {
		return err
	}
	head := map[string]bool{}
	for _, j := range w.jobs[job.Queued] {
		head[j.ID] = true
	}
	var errs []error
	for _, j := range all {
		if mw := j.Spec.MaxWait.D(); !head[j.ID] && mw > 0 && w.now.Sub(j.QueuedSince()) >= mw {
			errs = append(errs, s.failWaited(ctx, w, j, mw))
		}
	}
	return errors.Join(errs...)
}
