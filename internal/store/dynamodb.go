package store

// The jobs table. TableInput and the SAM template (template.yaml) declare it;
// change them together.
//
// Table: billing PAY_PER_REQUEST, one table for jobs and leases.
//
//	AttributeDefinitions   pk S, sk S, live_pk S, live_sk S, submitted_pk S, submitted_sk S
//	                       (only key attributes are declared)
//	KeySchema              pk HASH, sk RANGE
//	GlobalSecondaryIndex   IndexName "live": live_pk HASH, live_sk RANGE, Projection ALL
//	GlobalSecondaryIndex   IndexName "submitted": submitted_pk HASH, submitted_sk RANGE, Projection ALL
//	TimeToLiveSpecification expires_at
//
// Job item: pk = "JOB#<id>", sk = "JOB". While the job is QUEUED, PLACED or
// RUNNING it also carries the live index attributes (the index is sparse: a
// terminal job has neither, so it drops out of the index):
//
//	live_pk = "LIVE#<state>"                       e.g. "LIVE#QUEUED"
//	live_sk = "<999-priority>#<submitted_at>#<id>" e.g. "989#2026-11-25T02:00:00.000000000Z#train-1"
//
// where 999-priority is three zero-padded digits and submitted_at is UTC with
// a fixed nine-digit fraction, so one Query on live_pk returns the state's
// jobs highest priority first, then oldest first. Every job, live or not,
// carries the submitted index attributes:
//
//	submitted_pk = "SUBMITTED#<UTC month>"   e.g. "SUBMITTED#2026-11"
//	submitted_sk = "<submitted_at>#<id>"     e.g. "2026-11-25T02:00:00.000000000Z#train-1"
//
// so one Query with a range on submitted_sk returns the jobs submitted in
// part of a month (a day, since a time) in order. The partition is a month,
// not a day, so that "since D" costs a Query per month, not per day. All
// job writes of the moment go to one partition key of the index, with a day
// as with a month: a partition takes 1,000 write units a second, and a job
// write costs one per KB of its item, a few. A terminal job's item also
// carries expires_at (epoch seconds, N), the table's TTL attribute, when
// the store has a retention (see Retention). Every field of the job is its
// own attribute, so the console shows them as columns:
//
//	id S, name S, state S, version N, reason S, attempt N, pool S, priority N,
//	submitted_at S, instance_id S, instance_type S, market S, launch_try N,
//	dispatched_at S, command_id S, log_stream S, exit_code N, stalled_at S,
//	placed_at S, started_at S, ended_at S, updated_at S, cost N, source S,
//	spec M {id S, name S, command S, workdir S, setup S, env M{S},
//	        instance M {pool S, types L[S], market S, volume_gb N, ami S},
//	        max_runtime N (nanoseconds), inputs L[M {s3 S, path S}],
//	        outputs L[M {s3 S, path S}], retries N, priority N, notify S,
//	        scheduled_at S, on_stall S, stall_timeout N (nanoseconds)},
//	history L[M {at S, from S, to S, reason S, attempt N, instance_id S,
//	             instance_type S, command_id S, log_stream S}] (oldest first),
//	history_dropped N
//
// Lease item: pk = "LEASE", sk = <instance id>, so one Query lists every
// lease without a scan:
//
//	instance_id S, pool S, job_id S, attempt N, idle_since S, stopping_at S, version N
//
// Spend items: pk = "SPEND", sk = the period (see spend.go).
//
// Slot items: pk = "SLOT#<pool>", sk = the slot's index (see slot_dynamodb.go).
//
// Times are RFC 3339 strings in UTC with nanoseconds (time.RFC3339Nano).
// Empty strings, zero times and absent optional values are left out of the
// item rather than stored empty. Versions count every write of an item.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// dynamoAPI is the part of the DynamoDB client the store uses.
type dynamoAPI interface {
	GetItem(ctx context.Context, params *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, params *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, params *dynamodb.UpdateItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, params *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Query(ctx context.Context, params *dynamodb.QueryInput, optFns ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	TransactWriteItems(ctx context.Context, params *dynamodb.TransactWriteItemsInput, optFns ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
}

var _ dynamoAPI = (*dynamodb.Client)(nil)

// DynamoDB is the store in a DynamoDB table laid out as described above.
type DynamoDB struct {
	client dynamoAPI
	table  string
	settings
	// pageLimit, when positive, caps the items per Query page (tests use it
	// to exercise pagination); zero leaves DynamoDB's 1 MB pages.
	pageLimit int32
}

var _ Jobs = (*DynamoDB)(nil)

// NewDynamoDB returns the store in the named table.
func NewDynamoDB(client dynamoAPI, table string, opts ...Option) *DynamoDB {
	return &DynamoDB{client: client, table: table, settings: newSettings(opts)}
}

// jobItem is the item of j as this store writes it: with its expiry.
func (d *DynamoDB) jobItem(j *job.Job) (item, error) {
	it, err := marshalJob(j)
	if err != nil {
		return nil, err
	}
	if exp := d.expiresAt(j); exp != 0 {
		it[attrExpiresAt] = num(exp)
	}
	return it, nil
}

// Create writes a new job; ErrExists if its id is taken by a record that
// has not expired.
func (d *DynamoDB) Create(ctx context.Context, j *job.Job) error {
	if j.ID == "" {
		return errors.New("create job: empty id")
	}
	it, err := d.jobItem(j)
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	_, err = d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 aws.String(d.table),
		Item:                      it,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #exp <= :now"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK, "#exp": attrExpiresAt},
		ExpressionAttributeValues: item{":now": num(d.now().Unix())},
	})
	if conditionFailed(err) {
		return fmt.Errorf("create job %s: %w", j.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("create job %s: %w", j.ID, err)
	}
	return nil
}

// Job reads one job; ErrNotFound if absent or expired.
func (d *DynamoDB) Job(ctx context.Context, id string) (*job.Job, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            jobKey(id),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", id, err)
	}
	if out.Item == nil || expired(itemExpiry(out.Item), d.now()) {
		return nil, fmt.Errorf("job %s: %w", id, ErrNotFound)
	}
	return unmarshalJob(out.Item)
}

// Update writes j if the stored job is still in state from at version
// j.Version, then sets j.Version to the new version. With lease ops, the job
// write and every lease change are one transaction.
func (d *DynamoDB) Update(ctx context.Context, j *job.Job, from job.State, ops ...Op) error {
	if err := checkOps(ops); err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	next := *j
	next.Version = j.Version + 1
	it, err := d.jobItem(&next)
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	cond := aws.String("#state = :from AND #version = :v")
	names := map[string]string{"#state": "state", "#version": "version"}
	values := item{":from": str(string(from)), ":v": num(j.Version)}
	if len(ops) == 0 {
		_, err = d.client.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                 aws.String(d.table),
			Item:                      it,
			ConditionExpression:       cond,
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		})
		if conditionFailed(err) || transactionConflict(err) {
			return fmt.Errorf("update job %s: %w", j.ID, ErrConflict)
		}
	} else {
		writes := make([]types.TransactWriteItem, 0, 1+len(ops))
		writes = append(writes, types.TransactWriteItem{Put: &types.Put{
			TableName:                 aws.String(d.table),
			Item:                      it,
			ConditionExpression:       cond,
			ExpressionAttributeNames:  names,
			ExpressionAttributeValues: values,
		}})
		for _, op := range ops {
			switch op := op.(type) {
			case LeaseOp:
				writes = append(writes, types.TransactWriteItem{Update: d.leaseUpdate(j, op)})
			case SlotOp:
				writes = append(writes, d.slotWrite(j, op))
			}
		}
		_, err = d.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: writes})
		if lost, ok := cancelled(err, ops); ok {
			return fmt.Errorf("update job %s: %s: %w", j.ID, lost, ErrConflict)
		}
	}
	if err != nil {
		return fmt.Errorf("update job %s: %w", j.ID, err)
	}
	j.Version = next.Version
	return nil
}

// leaseUpdate is the transaction item of one lease op for job j.
func (d *DynamoDB) leaseUpdate(j *job.Job, op LeaseOp) *types.Update {
	u := &types.Update{
		TableName: aws.String(d.table),
		Key:       leaseKey(op.InstanceID),
		ExpressionAttributeNames: map[string]string{
			"#job": "job_id", "#attempt": "attempt", "#version": "version",
		},
		ExpressionAttributeValues: item{":job": str(j.ID), ":one": num(1)},
	}
	if op.Acquire {
		// On an absent lease the condition holds and the update creates it.
		set := "#iid = :iid, #job = :job, #attempt = :attempt, #version = if_not_exists(#version, :zero) + :one"
		u.ExpressionAttributeNames["#iid"] = "instance_id"
		u.ExpressionAttributeNames["#idle"] = "idle_since"
		u.ExpressionAttributeNames["#stopping"] = "stopping_at"
		u.ExpressionAttributeValues[":iid"] = str(op.InstanceID)
		u.ExpressionAttributeValues[":attempt"] = num(j.Attempt)
		u.ExpressionAttributeValues[":zero"] = num(0)
		if op.Pool != "" {
			set += ", #pool = :pool"
			u.ExpressionAttributeNames["#pool"] = "pool"
			u.ExpressionAttributeValues[":pool"] = str(op.Pool)
		}
		u.UpdateExpression = aws.String("SET " + set + " REMOVE #idle")
		u.ConditionExpression = aws.String("(attribute_not_exists(#job) AND attribute_not_exists(#stopping)) OR (#job = :job AND #attempt = :attempt)")
		return u
	}
	u.ExpressionAttributeNames["#idle"] = "idle_since"
	u.ExpressionAttributeValues[":at"] = timeValue(op.At)
	u.UpdateExpression = aws.String("SET #idle = :at, #version = #version + :one REMOVE #job, #attempt")
	u.ConditionExpression = aws.String("#job = :job")
	return u
}

// Live lists the jobs in live state s, highest priority first, then oldest
// first, from the live index. The index is eventually consistent: a job may
// show its previous state for a moment, which a conditional Update catches.
func (d *DynamoDB) Live(ctx context.Context, s job.State) ([]*job.Job, error) {
	if !isLive(s) {
		return nil, fmt.Errorf("live jobs: %s is not a live state", s)
	}
	var jobs []*job.Job
	err := d.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(indexLive),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrLivePK},
		ExpressionAttributeValues: item{":pk": str(livePK(s))},
	}, func(it item) error {
		j, err := unmarshalJob(it)
		if err == nil {
			jobs = append(jobs, j)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("live %s jobs: %w", s, err)
	}
	return jobs, nil
}

// Leases lists every lease, sorted by instance id.
func (d *DynamoDB) Leases(ctx context.Context) ([]Lease, error) {
	var leases []Lease
	err := d.query(ctx, &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrPK},
		ExpressionAttributeValues: item{":pk": str(leasePK)},
		ConsistentRead:            aws.Bool(true),
	}, func(it item) error {
		l, err := unmarshalLease(it)
		if err == nil {
			leases = append(leases, l)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return leases, nil
}

// query runs a Query through all its pages, calling fn for each item.
// Head lists at most n jobs of live state s, in Live's order.
func (d *DynamoDB) Head(ctx context.Context, s job.State, n int) ([]*job.Job, error) {
	if !isLive(s) {
		return nil, fmt.Errorf("live jobs: %s is not a live state", s)
	}
	if n <= 0 {
		return nil, nil
	}
	var jobs []*job.Job
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(indexLive),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrLivePK},
		ExpressionAttributeValues: item{":pk": str(livePK(s))},
		Limit:                     aws.Int32(int32(min(n, 1000))),
	}
	err := d.query(ctx, in, func(it item) error {
		j, err := unmarshalJob(it)
		if err != nil {
			return err
		}
		jobs = append(jobs, j)
		if len(jobs) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, fmt.Errorf("live %s jobs: %w", s, err)
	}
	return jobs, nil
}

// errEnough stops a query whose caller has what it asked for.
var errEnough = errors.New("enough")

func (d *DynamoDB) query(ctx context.Context, in *dynamodb.QueryInput, fn func(item) error) error {
	if d.pageLimit > 0 && (in.Limit == nil || *in.Limit > d.pageLimit) {
		in.Limit = aws.Int32(d.pageLimit)
	}
	p := dynamodb.NewQueryPaginator(d.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, it := range out.Items {
			if err := fn(it); err != nil {
				return err
			}
		}
	}
	return nil
}

// Lease reads one lease; ErrNotFound if absent.
func (d *DynamoDB) Lease(ctx context.Context, instanceID string) (Lease, error) {
	out, err := d.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(d.table),
		Key:            leaseKey(instanceID),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Lease{}, fmt.Errorf("get lease %s: %w", instanceID, err)
	}
	if out.Item == nil {
		return Lease{}, fmt.Errorf("lease %s: %w", instanceID, ErrNotFound)
	}
	return unmarshalLease(out.Item)
}

// PutLease creates a free lease at version 1 if none exists (nil if one
// does). l.JobID must be empty: a lease is taken only by Update.
func (d *DynamoDB) PutLease(ctx context.Context, l Lease) error {
	if err := checkNewLease(l); err != nil {
		return err
	}
	l.Version = 1
	_, err := d.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                aws.String(d.table),
		Item:                     marshalLease(l),
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": attrPK},
	})
	if err != nil && !conditionFailed(err) {
		return fmt.Errorf("put lease %s: %w", l.InstanceID, err)
	}
	return nil
}

// MarkStopping sets StoppingAt on a free lease at version l.Version;
// ErrConflict if it was taken or changed meanwhile, or is gone.
func (d *DynamoDB) MarkStopping(ctx context.Context, l Lease, at time.Time) error {
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       leaseKey(l.InstanceID),
		UpdateExpression:          aws.String("SET #stopping = :at, #version = #version + :one"),
		ConditionExpression:       aws.String("#version = :v AND attribute_not_exists(#job)"),
		ExpressionAttributeNames:  map[string]string{"#stopping": "stopping_at", "#version": "version", "#job": "job_id"},
		ExpressionAttributeValues: item{":at": timeValue(at), ":one": num(1), ":v": num(l.Version)},
	})
	if conditionFailed(err) || transactionConflict(err) {
		return fmt.Errorf("mark lease %s stopping: %w", l.InstanceID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("mark lease %s stopping: %w", l.InstanceID, err)
	}
	return nil
}

// ClearStopping removes StoppingAt once the instance is seen stopped;
// ErrNotFound if the lease is gone.
func (d *DynamoDB) ClearStopping(ctx context.Context, instanceID string) error {
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       leaseKey(instanceID),
		UpdateExpression:          aws.String("SET #version = #version + :one REMOVE #stopping"),
		ConditionExpression:       aws.String("attribute_exists(#pk)"),
		ExpressionAttributeNames:  map[string]string{"#stopping": "stopping_at", "#version": "version", "#pk": attrPK},
		ExpressionAttributeValues: item{":one": num(1)},
	})
	if conditionFailed(err) {
		return fmt.Errorf("clear lease %s stopping: %w", instanceID, ErrNotFound)
	}
	if transactionConflict(err) {
		return fmt.Errorf("clear lease %s stopping: %w", instanceID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("clear lease %s stopping: %w", instanceID, err)
	}
	return nil
}

// DeleteLease removes a free lease; ErrConflict if held. Deleting an absent
// lease succeeds.
func (d *DynamoDB) DeleteLease(ctx context.Context, instanceID string) error {
	_, err := d.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:                aws.String(d.table),
		Key:                      leaseKey(instanceID),
		ConditionExpression:      aws.String("attribute_not_exists(#job)"),
		ExpressionAttributeNames: map[string]string{"#job": "job_id"},
	})
	if conditionFailed(err) || transactionConflict(err) {
		return fmt.Errorf("delete lease %s: %w", instanceID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("delete lease %s: %w", instanceID, err)
	}
	return nil
}

// conditionFailed reports a write whose condition expression was false.
func conditionFailed(err error) bool { return awserr.DynamoDBConditionFailed.Has(err) }

// transactionConflict reports a single write refused because a transaction
// on the same item was in flight: someone else is moving it, so read again.
func transactionConflict(err error) bool { return awserr.DynamoDBTransactionConflict.Has(err) }

// cancelled reports whether err is a transaction of Update cancelled because
// a condition failed or another transaction was in flight, and names the
// items that lost: "job" and "lease <instance id>". Without reasons, a
// cancellation counts as lost: the caller reads again, which is always safe.
func cancelled(err error, ops []Op) (string, bool) {
	var e *types.TransactionCanceledException
	if !errors.As(err, &e) {
		return "", false
	}
	if len(e.CancellationReasons) == 0 {
		return "transaction cancelled", true
	}
	var lost []string
	for i, r := range e.CancellationReasons {
		// Only a reason that means another writer won; the others
		// (throttling, validation, capacity) are errors of their own.
		if !awserr.DynamoDBLostRace.Contains(aws.ToString(r.Code)) {
			continue
		}
		if i == 0 {
			lost = append(lost, "job")
		} else if i-1 < len(ops) {
			lost = append(lost, ops[i-1].item())
		}
	}
	if len(lost) == 0 {
		return "", false
	}
	return strings.Join(lost, ", "), true
}

// FreeLease releases a lease still held, at version l.Version, by the job
// it names: for a lease its job left behind (see Jobs.FreeLease).
func (d *DynamoDB) FreeLease(ctx context.Context, l Lease, at time.Time) error {
	_, err := d.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(d.table),
		Key:                       leaseKey(l.InstanceID),
		UpdateExpression:          aws.String("SET #idle = :at, #version = #version + :one REMOVE #job, #attempt"),
		ConditionExpression:       aws.String("#version = :v AND #job = :job"),
		ExpressionAttributeNames:  map[string]string{"#idle": "idle_since", "#version": "version", "#job": "job_id", "#attempt": "attempt"},
		ExpressionAttributeValues: item{":at": timeValue(at), ":one": num(1), ":v": num(l.Version), ":job": str(l.JobID)},
	})
	if conditionFailed(err) || transactionConflict(err) {
		return fmt.Errorf("free lease %s: %w", l.InstanceID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("free lease %s: %w", l.InstanceID, err)
	}
	return nil
}
