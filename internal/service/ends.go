package service

import (
	"context"
	"log/slog"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// endCounter is the jobs store with every job's end counted (a JobsEnded
// document, metrics.JobEnded): a write that takes a job from a live state
// into a terminal one, or records a rejected message. Every such write is
// conditional on the job's state and version, so each end is written, and
// counted, once, by whichever function made it; the scheduler need not know.
// A write that fails is not counted, even one DynamoDB may have applied
// before the error (a timeout): the count can miss an end, never double one.
type endCounter struct {
	store.Jobs
	log *slog.Logger
	now func() time.Time
}

// Create writes a new job, counted when it is born ended (REJECTED).
func (e endCounter) Create(ctx context.Context, j *job.Job) error {
	if err := e.Jobs.Create(ctx, j); err != nil {
		return err
	}
	metrics.JobEnded(ctx, e.log, j.State, e.now())
	return nil
}

// Update writes j, counted when it moves from a live state to a terminal one.
func (e endCounter) Update(ctx context.Context, j *job.Job, from job.State, ops ...store.Op) error {
	if err := e.Jobs.Update(ctx, j, from, ops...); err != nil {
		return err
	}
	if !from.Terminal() {
		metrics.JobEnded(ctx, e.log, j.State, e.now())
	}
	return nil
}
