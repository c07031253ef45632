package store

import (
	"errors"
	"fmt"
)

// maxTransactItems is DynamoDB's limit on the items of one TransactWriteItems
// call; the job write takes one of them.
const maxTransactItems = 100

// checkOps rejects lease ops that DynamoDB would refuse as a whole (the
// memory store refuses them too, so the simulation finds such bugs): an
// empty instance id, two ops on one lease, too many ops.
func checkOps(ops []LeaseOp) error {
	if len(ops) > maxTransactItems-1 {
		return fmt.Errorf("%d lease ops: at most %d fit in one transaction", len(ops), maxTransactItems-1)
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if op.InstanceID == "" {
			return errors.New("lease op with no instance id")
		}
		if seen[op.InstanceID] {
			return fmt.Errorf("two lease ops on %s in one write", op.InstanceID)
		}
		seen[op.InstanceID] = true
	}
	return nil
}

// checkNewLease rejects a lease PutLease may not create.
func checkNewLease(l Lease) error {
	switch {
	case l.InstanceID == "":
		return errors.New("put lease: empty instance id")
	case l.JobID != "":
		return fmt.Errorf("put lease %s: held by %s; a lease is taken only by Update", l.InstanceID, l.JobID)
	}
	return nil
}
