package watchdog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// stallFinding is a running job found stalled.
type stallFinding struct {
	job    *job.Job
	action notice.Action
}

func (w *Watchdog) stallTimeout(j *job.Job) time.Duration {
	if d := j.Spec.StallTimeout.D(); d > 0 {
		return d
	}
	return w.cfg.StallTimeout
}

// stalled finds running jobs whose GPU stayed under its threshold and whose
// progress heartbeat stopped for their stall timeout. A job already reported
// for this attempt is not reported again.
func (w *Watchdog) stalled(ctx context.Context, managed []instance, running []*job.Job, now time.Time) ([]stallFinding, error) {
	up := map[string]bool{}
	for _, i := range managed {
		up[i.ID] = true
	}
	var reqs []request
	var jobs []*job.Job
	longest := time.Duration(0)
	for _, j := range running {
		to := w.stallTimeout(j)
		if !up[j.InstanceID] || !j.StalledAt.IsZero() || now.Sub(j.StartedAt) < to {
			continue
		}
		jobs = append(jobs, j)
		longest = max(longest, to)
		reqs = append(reqs, request{j.InstanceID, GPU}, request{j.InstanceID, Progress})
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	series, err := w.fetch(ctx, reqs, now.Add(-longest), now)
	if err != nil {
		return nil, err
	}
	var out []stallFinding
	for _, j := range jobs {
		to := w.stallTimeout(j)
		from := now.Add(-to)
		var gpu Series
		for _, p := range series[request{j.InstanceID, GPU}] {
			if !p.At.Before(from) {
				gpu = append(gpu, p)
			}
		}
		beat := series[request{j.InstanceID, Progress}]
		// Both signals must be there and agree: no GPU use over the whole
		// timeout, and no progress for as long.
		if !gpu.Covers(from, now, GPU.Period) || gpu.Max() >= w.cfg.GPUPercent || len(beat) == 0 || beat.Last() < (to-2*Progress.Period).Seconds() {
			continue
		}
		verb := "notify"
		if j.Spec.OnStall == job.StallCancel {
			verb = "cancel"
		}
		why := fmt.Sprintf("stalled: GPU max %.0f%% and no output or heartbeat for %v", gpu.Max(), time.Duration(beat.Last())*time.Second)
		out = append(out, stallFinding{job: j, action: notice.Action{Instance: j.InstanceID, Job: j.ID, Verb: verb, Why: why, DryRun: w.cfg.DryRun}})
	}
	return out, nil
}

// stall records a stalled job (reason and StalledAt, so it is reported once),
// cancels its command when the job asked for it, and says so.
func (w *Watchdog) stall(ctx context.Context, s stallFinding) error {
	if s.action.DryRun {
		return w.notice.Say(ctx, s.action)
	}
	j := s.job
	j.StalledAt = w.now().UTC()
	j.Reason = "running on " + j.InstanceID + "; " + s.action.Why
	j.UpdatedAt = j.StalledAt
	if err := w.store.Update(ctx, j, job.Running); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil // the job moved meanwhile; the next sweep looks again
		}
		return err
	}
	var errs []error
	if s.action.Verb == "cancel" {
		errs = append(errs, w.runner.Cancel(ctx, j.CommandID, j.InstanceID))
	}
	errs = append(errs, w.notice.Say(ctx, s.action))
	return errors.Join(errs...)
}
