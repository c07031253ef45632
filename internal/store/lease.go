package store

import (
	"errors"
	"fmt"
)

// maxTransactItems is DynamoDB's limit on the items of one TransactWriteItems
// call; the job write takes one of them.
const maxTransactItems = 100

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
