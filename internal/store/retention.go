package store

import (
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Option configures a store (NewDynamoDB, NewMemory).
type Option func(*settings)

// settings is what the options set; both stores keep one.
type settings struct {
	retention time.Duration
	now       func() time.Time
}

// Retention keeps the record of a job that ended for d after its end: the
// store writes it with expires_at (the table's TTL attribute, epoch
// seconds) set to ended_at + d, DynamoDB deletes it some time after that
// (its TTL deletes lazily, typically within two days), and from that second
// on the store treats it as deleted: Job does not find it, Submitted leaves
// it out, and Create may take its id again. 0, the default, or a negative
// d keeps records for ever. A record keeps the expiry it was written with:
// changing the retention changes only records written afterwards.
func Retention(d time.Duration) Option {
	return func(s *settings) { s.retention = max(d, 0) }
}

// Clock sets the clock the store tells expired records by; time.Now by default.
func Clock(now func() time.Time) Option {
	return func(s *settings) { s.now = now }
}

func newSettings(opts []Option) settings {
	s := settings{now: time.Now}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// expiresAt returns the epoch second from which j's record counts as
// deleted, or 0 for never: only a terminal job's record expires, counted
// from when it ended (or, for a record without an end, its last update).
func (s settings) expiresAt(j *job.Job) int64 {
	if s.retention == 0 || !j.State.Terminal() {
		return 0
	}
	end := j.EndedAt
	if end.IsZero() {
		end = j.UpdatedAt
	}
	if end.IsZero() {
		return 0
	}
	return end.Add(s.retention).Unix()
}

// expired reports whether a record that expires at exp (epoch seconds, 0
// for never) is deleted as far as readers go at now. It is the filter AWS
// documents for items TTL has not deleted yet: expires_at ≤ now.
func expired(exp int64, now time.Time) bool {
	return exp != 0 && exp <= now.Unix()
}

// itemExpiry reads the TTL attribute of an item: 0 when it has none, or
// one that is not a number, which DynamoDB's TTL ignores too.
func itemExpiry(it item) int64 {
	n, ok := it[attrExpiresAt].(*types.AttributeValueMemberN)
	if !ok {
		return 0
	}
	exp, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		return 0
	}
	return exp
}
