package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Memory is the store in memory, with the DynamoDB store's semantics: the
// same conditions, the same order, and records that read back exactly as
// they would from the table (each write and read goes through the item
// encoding, which also deep-copies: callers may mutate what they pass in and
// get back). It is safe for concurrent use and deterministic, for the
// simulation and the local run.
type Memory struct {
	// Before, if set, is called at the start of every method with the
	// method's name ("Create", "Update", "Live", …). If it returns an error
	// the method returns that error and does nothing: the simulation injects
	// crashes and throttling through it. Set it before the Memory is shared;
	// it is called without the Memory's lock held.
	Before func(op string) error

	settings

	mu        sync.Mutex
	jobWrites uint64
	jobs      map[string]*job.Job
	// items are the stored jobs as the table holds them: a read decodes
	// its copy from the item, as a DynamoDB read does, without encoding
	// the job again on every read.
	items  map[string]item
	slots  map[string]Slot
	leases map[string]Lease
	spend  memorySpend
	pools  memoryPools
	quotas memoryQuotas
	// expires holds each job's expires_at (epoch seconds), as the table
	// would; absent for a record that never expires.
	expires map[string]int64
}

var _ Jobs = (*Memory)(nil)

// NewMemory returns an empty store.
func NewMemory(opts ...Option) *Memory {
	return &Memory{
		settings: newSettings(opts),
		jobs:     map[string]*job.Job{}, items: map[string]item{}, expires: map[string]int64{},
		leases: map[string]Lease{}, slots: map[string]Slot{},
	}
}

// storeCopy returns j as the table would store it, and its item.
func storeCopy(j *job.Job) (*job.Job, item, error) {
	it, err := marshalJob(j)
	if err != nil {
		return nil, nil, err
	}
	stored, err := unmarshalJob(it)
	return stored, it, err
}

// readCopy returns the stored job j as a read of the table returns it.
func (m *Memory) readCopy(j *job.Job) (*job.Job, error) {
	if it, ok := m.items[j.ID]; ok {
		return unmarshalJob(it)
	}
	return copyJob(j)
}

// putJob stores j, a copy made by storeCopy, and its item, with its
// expiry; m.mu is held.
func (m *Memory) putJob(j *job.Job, it item) {
	m.jobs[j.ID] = j
	m.items[j.ID] = it
	if exp := m.expiresAt(j); exp != 0 {
		m.expires[j.ID] = exp
	} else {
		delete(m.expires, j.ID)
	}
	m.jobWrites++
}

// found returns the stored job with this id unless it is absent or
// expired at now; m.mu is held.
func (m *Memory) found(id string, now time.Time) (*job.Job, bool) {
	j, ok := m.jobs[id]
	if !ok || expired(m.expires[id], now) {
		return nil, false
	}
	return j, true
}

// JobWrites counts the job records written so far: a reader that saw the
// same count has seen every job as it is. It is not part of Jobs: the
// simulation's checker uses it to skip reading an unchanged table.
func (m *Memory) JobWrites() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.jobWrites
}

func (m *Memory) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.Before != nil {
		return m.Before(op)
	}
	return nil
}

// Create writes a new job; ErrExists if its id is taken by a record that
// has not expired.
func (m *Memory) Create(ctx context.Context, j *job.Job) error {
	if err := m.enter(ctx, "Create"); err != nil {
		return err
	}
	if j.ID == "" {
		return errors.New("create job: empty id")
	}
	stored, it, err := storeCopy(j)
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.found(j.ID, now); ok {
		return fmt.Errorf("create job %s: %w", j.ID, ErrExists)
	}
	m.putJob(stored, it)
	return nil
}

// Job reads one job; ErrNotFound if absent or expired.
func (m *Memory) Job(ctx context.Context, id string) (*job.Job, error) {
	if err := m.enter(ctx, "Job"); err != nil {
		return nil, err
	}
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.found(id, now)
	if !ok {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return m.readCopy(j)
}

// Update writes j if the stored job is still in state from at version
// j.Version, then sets j.Version to the new version. The job write and the
// lease and slot ops happen together or not at all.
func (m *Memory) Update(ctx context.Context, j *job.Job, from job.State, ops ...Op) error {
	if err := m.enter(ctx, "Update"); err != nil {
		return err
	}
	if err := checkOps(ops); err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	next := *j
	next.Version = j.Version + 1
	stored, it, err := storeCopy(&next)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var lost []string
	if cur, ok := m.jobs[j.ID]; !ok || cur.State != from || cur.Version != j.Version {
		lost = append(lost, "job")
	}
	var leases []Lease
	slots := map[string]*Slot{} // nil: deleted
	for _, op := range ops {
		switch op := op.(type) {
		case LeaseOp:
			l, ok := m.leaseOp(j, op)
			if !ok {
				lost = append(lost, op.item())
				continue
			}
			cp, err := copyLease(l)
			if err != nil {
				return fmt.Errorf("update job %s: %w", j.ID, err)
			}
			leases = append(leases, cp)
		case SlotOp:
			sl, ok := m.slotOp(j, op)
			if !ok {
				lost = append(lost, op.item())
				continue
			}
			slots[slotKey(op.Pool, op.Index)] = sl
		}
	}
	if lost != nil {
		if len(ops) == 0 {
			return fmt.Errorf("update job %s: %w", j.ID, ErrConflict)
		}
		return fmt.Errorf("update job %s: %s: %w", j.ID, strings.Join(lost, ", "), ErrConflict)
	}
	m.putJob(stored, it)
	for _, l := range leases {
		m.leases[l.InstanceID] = l
	}
	for k, sl := range slots {
		if sl == nil {
			delete(m.slots, k)
		} else {
			m.slots[k] = *sl
		}
	}
	j.Version = next.Version
	return nil
}

// leaseOp returns the lease as op leaves it, if op's condition holds.
func (m *Memory) leaseOp(j *job.Job, op LeaseOp) (Lease, bool) {
	l, ok := m.leases[op.InstanceID]
	if op.Acquire {
		free := !ok || (l.JobID == "" && l.StoppingAt.IsZero())
		mine := ok && l.JobID == j.ID && l.Attempt == j.Attempt
		if !free && !mine {
			return l, false
		}
		l.InstanceID, l.JobID, l.Attempt, l.IdleSince = op.InstanceID, j.ID, j.Attempt, time.Time{}
		if op.Pool != "" {
			l.Pool = op.Pool
		}
	} else {
		if !ok || l.JobID != j.ID {
			return l, false
		}
		l.JobID, l.Attempt, l.IdleSince = "", 0, op.At
	}
	l.Version++
	return l, true
}

// slotOp returns the slot as op leaves it (nil: deleted), if op's
// condition holds.
func (m *Memory) slotOp(j *job.Job, op SlotOp) (*Slot, bool) {
	cur, ok := m.slots[slotKey(op.Pool, op.Index)]
	switch op.Kind {
	case TakeSlot:
		if ok {
			return nil, false
		}
		return &Slot{Pool: op.Pool, Index: op.Index, JobID: j.ID, Attempt: j.Attempt, TakenAt: op.At.UTC(), Version: 1}, true
	case BindSlot:
		if !ok || !cur.Holds(j.ID, op.holder(j.Attempt)) {
			return nil, false
		}
		cur.InstanceID, cur.BoundAt = op.InstanceID, op.At.UTC()
		cur.Version++
		return &cur, true
	default: // ReleaseSlot
		if !ok || !cur.Holds(j.ID, op.holder(j.Attempt)) || cur.InstanceID != "" {
			return nil, false
		}
		return nil, true
	}
}

func slotKey(pool string, index int) string { return pool + "#" + strconv.Itoa(index) }

// Slots lists a pool's taken slots, by index.
func (m *Memory) Slots(ctx context.Context, pool string) ([]Slot, error) {
	if err := m.enter(ctx, "Slots"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Slot
	for _, s := range m.slots {
		if s.Pool == pool {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Slot) int { return a.Index - b.Index })
	return out, nil
}

// FreeSlot deletes a slot at version s.Version.
func (m *Memory) FreeSlot(ctx context.Context, s Slot) error {
	if err := m.enter(ctx, "FreeSlot"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := slotKey(s.Pool, s.Index)
	if cur, ok := m.slots[k]; !ok || !cur.sameTake(s) {
		return fmt.Errorf("free slot %s/%d: %w", s.Pool, s.Index, ErrConflict)
	}
	delete(m.slots, k)
	return nil
}

// AdoptSlot records the instance of a slot's launch, at version s.Version.
func (m *Memory) AdoptSlot(ctx context.Context, s Slot, instanceID string, at time.Time) error {
	if err := m.enter(ctx, "AdoptSlot"); err != nil {
		return err
	}
	if instanceID == "" {
		return fmt.Errorf("adopt slot %s/%d: empty instance id", s.Pool, s.Index)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := slotKey(s.Pool, s.Index)
	cur, ok := m.slots[k]
	if !ok || !cur.sameTake(s) {
		return fmt.Errorf("adopt slot %s/%d: %w", s.Pool, s.Index, ErrConflict)
	}
	cur.InstanceID, cur.BoundAt = instanceID, at.UTC()
	cur.Version++
	m.slots[k] = cur
	return nil
}

// Live lists the jobs in live state s, highest priority first, then oldest first.
func (m *Memory) Live(ctx context.Context, s job.State) ([]*job.Job, error) {
	if err := m.enter(ctx, "Live"); err != nil {
		return nil, err
	}
	return m.head(s, -1)
}

// Head lists at most n jobs of live state s, in Live's order.
func (m *Memory) Head(ctx context.Context, s job.State, n int) ([]*job.Job, error) {
	if err := m.enter(ctx, "Head"); err != nil {
		return nil, err
	}
	if n <= 0 && isLive(s) {
		return nil, nil
	}
	return m.head(s, n)
}

// head lists the jobs of state s in order, at most n of them (n < 0: all).
func (m *Memory) head(s job.State, n int) ([]*job.Job, error) {
	if !isLive(s) {
		return nil, fmt.Errorf("live jobs: %s is not a live state", s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	type keyed struct {
		key string
		j   *job.Job
	}
	var live []keyed
	for _, j := range m.jobs {
		if j.State == s {
			live = append(live, keyed{liveSK(j), j})
		}
	}
	slices.SortFunc(live, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	if n >= 0 && len(live) > n {
		live = live[:n]
	}
	var jobs []*job.Job // nil when none, as from DynamoDB
	for _, k := range live {
		j, err := m.readCopy(k.j)
		if err != nil {
			return nil, fmt.Errorf("live %s jobs: %w", s, err)
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// Leases lists every lease, sorted by instance id.
func (m *Memory) Leases(ctx context.Context) ([]Lease, error) {
	if err := m.enter(ctx, "Leases"); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var leases []Lease
	for _, l := range m.leases {
		leases = append(leases, l)
	}
	slices.SortFunc(leases, func(a, b Lease) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	return leases, nil
}

// Lease reads one lease; ErrNotFound if absent.
func (m *Memory) Lease(ctx context.Context, instanceID string) (Lease, error) {
	if err := m.enter(ctx, "Lease"); err != nil {
		return Lease{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.leases[instanceID]
	if !ok {
		return Lease{}, fmt.Errorf("lease %s: %w", instanceID, ErrNotFound)
	}
	return l, nil
}

// PutLease creates a free lease at version 1 if none exists (nil if one does).
func (m *Memory) PutLease(ctx context.Context, l Lease) error {
	if err := m.enter(ctx, "PutLease"); err != nil {
		return err
	}
	if err := checkNewLease(l); err != nil {
		return err
	}
	l.Version = 1
	stored, err := copyLease(l)
	if err != nil {
		return fmt.Errorf("put lease %s: %w", l.InstanceID, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.leases[l.InstanceID]; !ok {
		m.leases[l.InstanceID] = stored
	}
	return nil
}

// MarkStopping sets StoppingAt on a free lease at version l.Version;
// ErrConflict if it was taken or changed meanwhile, or is gone.
func (m *Memory) MarkStopping(ctx context.Context, l Lease, at time.Time) error {
	if err := m.enter(ctx, "MarkStopping"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.leases[l.InstanceID]
	if !ok || cur.Version != l.Version || cur.JobID != "" {
		return fmt.Errorf("mark lease %s stopping: %w", l.InstanceID, ErrConflict)
	}
	cur.StoppingAt = at
	cur.Version++
	if err := m.putLease(cur); err != nil {
		return fmt.Errorf("mark lease %s stopping: %w", l.InstanceID, err)
	}
	return nil
}

// ClearStopping removes StoppingAt; ErrNotFound if the lease is gone.
func (m *Memory) ClearStopping(ctx context.Context, instanceID string) error {
	if err := m.enter(ctx, "ClearStopping"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.leases[instanceID]
	if !ok {
		return fmt.Errorf("clear lease %s stopping: %w", instanceID, ErrNotFound)
	}
	cur.StoppingAt = time.Time{}
	cur.Version++
	if err := m.putLease(cur); err != nil {
		return fmt.Errorf("clear lease %s stopping: %w", instanceID, err)
	}
	return nil
}

// DeleteLease removes a free lease; ErrConflict if held. Deleting an absent
// lease succeeds.
func (m *Memory) DeleteLease(ctx context.Context, instanceID string) error {
	if err := m.enter(ctx, "DeleteLease"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leases[instanceID].JobID != "" {
		return fmt.Errorf("delete lease %s: %w", instanceID, ErrConflict)
	}
	delete(m.leases, instanceID)
	return nil
}

// putLease stores l as the table would; m.mu is held.
func (m *Memory) putLease(l Lease) error {
	stored, err := copyLease(l)
	if err != nil {
		return err
	}
	m.leases[l.InstanceID] = stored
	return nil
}

// copyJob returns j as it reads back from the table: a deep copy, times in UTC.
func copyJob(j *job.Job) (*job.Job, error) {
	it, err := marshalJob(j)
	if err != nil {
		return nil, err
	}
	return unmarshalJob(it)
}

// copyLease returns l as it reads back from the table.
func copyLease(l Lease) (Lease, error) {
	return unmarshalLease(marshalLease(l))
}

// FreeLease releases a lease still held, at version l.Version, by the job it names.
func (m *Memory) FreeLease(ctx context.Context, l Lease, at time.Time) error {
	if err := m.enter(ctx, "FreeLease"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.leases[l.InstanceID]
	if !ok || cur.Version != l.Version || cur.JobID == "" || cur.JobID != l.JobID {
		return fmt.Errorf("free lease %s: %w", l.InstanceID, ErrConflict)
	}
	cur.JobID, cur.Attempt, cur.IdleSince = "", 0, at
	cur.Version++
	if err := m.putLease(cur); err != nil {
		return fmt.Errorf("free lease %s: %w", l.InstanceID, err)
	}
	return nil
}
