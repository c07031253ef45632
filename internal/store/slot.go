package store

import (
	"errors"
	"fmt"
	"time"
)

// Op is a change made in the same transaction as a job write: a LeaseOp or
// a SlotOp.
type Op interface {
	// item names the item the op changes, so that two ops on one item in
	// one write are refused, as DynamoDB refuses them.
	item() string
}

func (op LeaseOp) item() string { return "lease " + op.InstanceID }

func (op SlotOp) item() string { return fmt.Sprintf("slot %s/%d", op.Pool, op.Index) }

// Slot is one of a pool's MaxInstances places. A launch takes a free slot
// in the same transaction as its intent (the job's move to PLACED), and the
// instance it launches keeps the slot until the instance is gone; a launch
// EC2 refused gives it back with the job's move back to QUEUED. A slot is
// taken only by a conditional write on its absence, so however many
// invocations reconcile at once, a pool never has more instances launching
// or alive than its cap (S5).
type Slot struct {
	Pool  string
	Index int
	// JobID and Attempt name the launch that took the slot.
	JobID   string
	Attempt int
	// InstanceID is the instance that launch made, once recorded.
	InstanceID string
	// TakenAt is when the launch took the slot; BoundAt when its instance
	// was recorded.
	TakenAt, BoundAt time.Time
	Version          int64
}

// sameTake reports whether s is the slot o was read from, at the same
// version. The version alone does not tell: a freed slot taken again starts
// at version 1, so a pass holding the old one could free or bind the new
// one (another launch's) — which let a fifth instance into a pool of four
// in a concurrent history. The take's job, attempt and time tell.
func (s Slot) sameTake(o Slot) bool {
	return s.Version == o.Version && s.JobID == o.JobID && s.Attempt == o.Attempt && s.TakenAt.Equal(o.TakenAt)
}

// SlotKind says what a SlotOp does.
type SlotKind int

// The slot ops.
const (
	// TakeSlot creates the slot for the job's attempt; it must be absent.
	TakeSlot SlotKind = iota
	// BindSlot records the instance the job's attempt launched; the slot
	// must be held by that attempt.
	BindSlot
	// ReleaseSlot deletes the slot; it must be held by the job's attempt
	// and have no instance recorded.
	ReleaseSlot
)

// SlotOp changes one slot in the same transaction as a job write.
type SlotOp struct {
	Kind  SlotKind
	Pool  string
	Index int
	// Attempt is the attempt that holds the slot, for BindSlot and
	// ReleaseSlot; 0 means the written job's attempt. (A job that moves to
	// its next attempt gives back the slot of the one before.)
	Attempt int
	// InstanceID is the instance BindSlot records.
	InstanceID string
	// At is when the op happens (TakenAt, BoundAt).
	At time.Time
}

// checkOps rejects ops that DynamoDB would refuse as a whole (the memory
// store refuses them too, so the simulation finds such bugs): an empty
// instance id or pool, two ops on one item, too many ops.
func checkOps(ops []Op) error {
	if len(ops) > maxTransactItems-1 {
		return fmt.Errorf("%d ops: at most %d fit in one transaction", len(ops), maxTransactItems-1)
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		switch op := op.(type) {
		case LeaseOp:
			if op.InstanceID == "" {
				return errors.New("lease op with no instance id")
			}
		case SlotOp:
			if op.Pool == "" || op.Index < 0 {
				return fmt.Errorf("slot op on pool %q, index %d", op.Pool, op.Index)
			}
			if op.Kind == BindSlot && op.InstanceID == "" {
				return errors.New("bind slot op with no instance id")
			}
		default:
			return fmt.Errorf("unknown op %T", op)
		}
		if seen[op.item()] {
			return fmt.Errorf("two ops on %s in one write", op.item())
		}
		seen[op.item()] = true
	}
	return nil
}

// holder is the attempt of j that op names.
func (op SlotOp) holder(attempt int) int {
	if op.Attempt != 0 {
		return op.Attempt
	}
	return attempt
}

// Holds reports whether the slot was taken by the job's attempt.
func (s Slot) Holds(jobID string, attempt int) bool {
	return s.JobID == jobID && s.Attempt == attempt
}
