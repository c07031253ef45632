// Package store keeps jobs and instance leases in DynamoDB. Every job
// transition is a conditional write on the job's state and version; a job
// gets an instance only through a conditional write on the instance's lease,
// done in the same transaction as the job's own write.
package store

import (
	"context"
	"errors"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Errors callers branch on.
var (
	// ErrExists: a job with this id was already created.
	ErrExists = errors.New("job already exists")
	// ErrNotFound: no such job or lease.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a conditional write lost; someone else moved first. Read again.
	ErrConflict = errors.New("conditional write lost")
)

// Lease is the record of one managed instance: which job holds it, if any.
type Lease struct {
	InstanceID string
	Pool       string
	// JobID and Attempt name the holder; empty when the instance is free.
	JobID   string
	Attempt int
	// IdleSince is when the instance last became free; keep-warm counts from it.
	IdleSince time.Time
	// StoppingAt is set, while free, by the decision to stop the instance; a
	// placement may not take a lease that is being stopped.
	StoppingAt time.Time
	Version    int64
}

// Held reports whether a job holds the lease.
func (l Lease) Held() bool { return l.JobID != "" }

// LeaseOp is a change to a lease made in the same transaction as a job write.
type LeaseOp struct {
	InstanceID string
	Pool       string
	// Acquire takes the lease for the job being written: it succeeds only if
	// the lease is absent or free and not being stopped, or already held by
	// the same job and attempt (so a retried write is idempotent).
	// Otherwise the lease is released: that requires the job (at any
	// attempt) to hold it, and the whole Update fails with ErrConflict if it
	// does not, so pass a release only for a lease the job holds.
	Acquire bool
	// At is the time recorded as IdleSince on release.
	At time.Time
}

// Jobs is what the scheduler needs from the store.
type Jobs interface {
	// Create writes a new job; ErrExists if its id is taken (by a record
	// that has not expired: see Retention).
	Create(ctx context.Context, j *job.Job) error
	// Job reads one job; ErrNotFound if absent or expired.
	Job(ctx context.Context, id string) (*job.Job, error)
	// Update writes j if the stored job is still in state from at version
	// j.Version, then sets j.Version to the new version. Lease and slot ops
	// run in the same transaction. ErrConflict if any condition fails.
	Update(ctx context.Context, j *job.Job, from job.State, ops ...Op) error
	// Live lists the jobs in a live state, highest priority first, then oldest
	// first, without scanning the table.
	Live(ctx context.Context, s job.State) ([]*job.Job, error)
	// Head lists at most n jobs of a live state, in the same order as Live,
	// reading no more of the index than it needs: a deep queue costs a
	// reconcile what it can place, not its whole length.
	Head(ctx context.Context, s job.State, n int) ([]*job.Job, error)
	// Submitted lists the jobs, live or ended, submitted at or after since
	// and before until (zero: now), oldest first, then by id; at most
	// limit (≥ 1) of them, and a cursor. Pass the cursor back as after,
	// with the same since and until, for the next jobs: it is "" when
	// fewer than limit came back, as there are no more; a call that got
	// limit jobs returns a cursor, and the next call may then return none.
	// Records past their retention are left out (see Retention). since
	// must not be zero.
	//
	// It is the list behind "every job since D" and "the cost since D":
	// the table keeps an index of every job by UTC month of submission, so
	// a call costs one Query per month it spans (an empty month too) plus
	// one per page of at most limit jobs, never a scan. The index is
	// eventually consistent: a job written a moment ago may be missing, or
	// show its previous state; Job reads it as it is. A record written
	// before the index existed lacks its keys and is not in it until it is
	// written again: a live job is at its next move, so what stays out is
	// the jobs that had already ended (Job still finds them).
	Submitted(ctx context.Context, since, until time.Time, after string, limit int) ([]*job.Job, string, error)
	// Counter counts the jobs of a live state (count.go).
	Counter
	// Leases lists every lease, without scanning the table.
	Leases(ctx context.Context) ([]Lease, error)
	// Lease reads one lease; ErrNotFound if absent.
	Lease(ctx context.Context, instanceID string) (Lease, error)
	// PutLease creates a free lease if none exists (nil if one does).
	PutLease(ctx context.Context, l Lease) error
	// MarkStopping sets StoppingAt on a free lease at version l.Version;
	// ErrConflict if it was taken or changed meanwhile.
	MarkStopping(ctx context.Context, l Lease, at time.Time) error
	// FreeLease releases a lease that is still held, at version l.Version, by
	// the job l names. It is for a lease whose job no longer holds the
	// instance (moved on without releasing it): the caller checks the job
	// first. ErrConflict if the lease changed meanwhile.
	FreeLease(ctx context.Context, l Lease, at time.Time) error
	// ClearStopping removes StoppingAt once the instance is seen stopped.
	ClearStopping(ctx context.Context, instanceID string) error
	// DeleteLease removes a free lease (its instance is gone); ErrConflict if held.
	DeleteLease(ctx context.Context, instanceID string) error
	// Slots lists a pool's taken slots, by index.
	Slots(ctx context.Context, pool string) ([]Slot, error)
	// FreeSlot deletes a slot at version s.Version: its instance is gone,
	// or its launch is over without one. ErrConflict if it changed meanwhile.
	FreeSlot(ctx context.Context, s Slot) error
	// AdoptSlot records on a slot at version s.Version the instance its
	// launch made, when the job did not record it itself (it moved on
	// before). ErrConflict if the slot changed meanwhile.
	AdoptSlot(ctx context.Context, s Slot, instanceID string, at time.Time) error
	// PoolStatus reads a pool's launch status; ErrNotFound if it has none.
	PoolStatus(ctx context.Context, pool string) (PoolStatus, error)
	// PutPoolStatus writes s if the stored record is at version s.Version
	// (0: absent), then sets s.Version; ErrConflict otherwise.
	PutPoolStatus(ctx context.Context, s *PoolStatus) error
	// QuotaRequest reads nightshift's record of a quota's increase
	// request; ErrNotFound if it never asked.
	QuotaRequest(ctx context.Context, code string) (QuotaRequest, error)
	// QuotaRequests lists every quota's request record, by code.
	QuotaRequests(ctx context.Context) ([]QuotaRequest, error)
	// PutQuotaRequest writes q if the stored record is at version
	// q.Version (0: absent), then sets q.Version; ErrConflict otherwise.
	PutQuotaRequest(ctx context.Context, q *QuotaRequest) error
	// Spend reads a spend record (a day, a month, or BudgetStatus); ErrNotFound if absent.
	Spend(ctx context.Context, period string) (Spend, error)
	// PutSpend writes s if the stored record is at version s.Version (0:
	// absent), then sets s.Version; ErrConflict otherwise.
	PutSpend(ctx context.Context, s *Spend) error
}
