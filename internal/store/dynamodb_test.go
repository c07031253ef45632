package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// testPageLimit makes every Query of the DynamoDB tests paginate.
const testPageLimit = 10

const testTable = "nightshift-jobs"

// newDynamoDB returns the DynamoDB store in a new table in moto.
func newDynamoDB(t *testing.T, opts ...store.Option) store.Jobs {
	d, _ := newDynamoDBClient(t, opts...)
	return d
}

// newDynamoDBClient returns the DynamoDB store in a new table in moto, and
// the client it uses, to read what it wrote.
func newDynamoDBClient(t *testing.T, opts ...store.Option) (*store.DynamoDB, *dynamodb.Client) {
	srv := awstest.Moto(t)
	client := dynamodb.NewFromConfig(srv.Config())
	if _, err := client.CreateTable(t.Context(), store.TableInput(testTable)); err != nil {
		t.Fatalf("CreateTable(%s) = %v; want nil", testTable, err)
	}
	// moto keeps expired items, like DynamoDB before its TTL gets to them:
	// the store's own filtering is what the tests see.
	if _, err := client.UpdateTimeToLive(t.Context(), store.TimeToLive(testTable)); err != nil {
		t.Fatalf("UpdateTimeToLive(%s) = %v; want nil", testTable, err)
	}
	d := store.NewDynamoDB(&serialized{client: client}, testTable, opts...)
	store.SetPageLimit(d, testPageLimit)
	return d, client
}

func TestDynamoDB(t *testing.T) {
	testJobs(t, newDynamoDB)
}

// serialized sends one request at a time to moto. DynamoDB isolates
// conditional writes and transactions from each other; moto does not: it
// serves requests on threads, evaluates a transaction's conditions and
// writes item by item with no lock, and rolls a failed transaction back by
// restoring a copy of the whole table. Concurrent requests to moto can thus
// both pass a condition, or undo each other's writes. Serializing them gives
// the isolation of the real service, so the race test still checks that the
// store's conditions let exactly one writer win, and runs the store's own
// code concurrently (under -race).
type serialized struct {
	mu     sync.Mutex
	client *dynamodb.Client
}

func (s *serialized) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.GetItem(ctx, in, opts...)
}

func (s *serialized) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.PutItem(ctx, in, opts...)
}

func (s *serialized) UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.UpdateItem(ctx, in, opts...)
}

func (s *serialized) DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.DeleteItem(ctx, in, opts...)
}

func (s *serialized) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	if err := checkStartKey(in); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.Query(ctx, in, opts...)
}

// checkStartKey refuses, as AWS does and moto does not, a Query of the
// submitted index whose ExclusiveStartKey lies outside its key condition:
// another partition, or a sort key not strictly between the condition's
// bounds (:lo and :hi, as Submitted names them).
func checkStartKey(in *dynamodb.QueryInput) error {
	sk, ok := in.ExclusiveStartKey["submitted_sk"].(*types.AttributeValueMemberS)
	if !ok {
		return nil
	}
	pk, _ := in.ExclusiveStartKey["submitted_pk"].(*types.AttributeValueMemberS)
	wantPK, _ := in.ExpressionAttributeValues[":pk"].(*types.AttributeValueMemberS)
	lo, _ := in.ExpressionAttributeValues[":lo"].(*types.AttributeValueMemberS)
	hi, _ := in.ExpressionAttributeValues[":hi"].(*types.AttributeValueMemberS)
	if pk == nil || wantPK == nil || lo == nil || hi == nil || pk.Value != wantPK.Value || sk.Value <= lo.Value || sk.Value >= hi.Value {
		return &smithy.GenericAPIError{Code: "ValidationException", Message: "The provided starting key is outside query boundaries based on provided conditions"}
	}
	return nil
}

func (s *serialized) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.client.TransactWriteItems(ctx, in, opts...)
}

// fakeDynamo answers every call with err.
type fakeDynamo struct{ err error }

func (f fakeDynamo) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return nil, f.err
}

func (f fakeDynamo) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return nil, f.err
}

func (f fakeDynamo) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, f.err
}

func (f fakeDynamo) DeleteItem(context.Context, *dynamodb.DeleteItemInput, ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error) {
	return nil, f.err
}

func (f fakeDynamo) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return nil, f.err
}

func (f fakeDynamo) TransactWriteItems(context.Context, *dynamodb.TransactWriteItemsInput, ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	return nil, f.err
}

func reasons(codes ...string) *types.TransactionCanceledException {
	e := &types.TransactionCanceledException{Message: aws.String("Transaction cancelled")}
	for _, c := range codes {
		e.CancellationReasons = append(e.CancellationReasons, types.CancellationReason{Code: aws.String(c)})
	}
	return e
}

func TestDynamoDBErrors(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException", Message: "slow down"}
	conditional := &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed")}
	tests := []struct {
		name string
		give error
		ops  []store.Op
		want error // nil: an error that is none of the sentinels
	}{
		{name: "condition", give: conditional, want: store.ErrConflict},
		{name: "condition, by its code", give: &smithy.GenericAPIError{Code: "ConditionalCheckFailedException"}, want: store.ErrConflict},
		{name: "transaction in flight, by its code", give: fmt.Errorf("put: %w", &smithy.GenericAPIError{Code: "TransactionConflictException"}), want: store.ErrConflict},
		{name: "transaction in flight", give: &types.TransactionConflictException{}, want: store.ErrConflict},
		{name: "throttled", give: throttled},
		{name: "lease lost", give: reasons("None", "ConditionalCheckFailed"), ops: []store.Op{acquire("i-1")}, want: store.ErrConflict},
		{name: "job lost", give: reasons("ConditionalCheckFailed", "None"), ops: []store.Op{acquire("i-1")}, want: store.ErrConflict},
		{name: "other transaction", give: reasons("None", "TransactionConflict"), ops: []store.Op{acquire("i-1")}, want: store.ErrConflict},
		{name: "no reasons", give: reasons(), ops: []store.Op{acquire("i-1")}, want: store.ErrConflict},
		{name: "transaction throttled", give: reasons("None", "ThrottlingError"), ops: []store.Op{acquire("i-1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := store.NewDynamoDB(fakeDynamo{err: tt.give}, testTable)
			j := newJob("a", 0, t0)
			err := d.Update(t.Context(), j, job.Queued, tt.ops...)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("Update(%v) = %v; want %v", tt.ops, err, tt.want)
				}
				return
			}
			if err == nil || errors.Is(err, store.ErrConflict) || !errors.Is(err, tt.give) {
				t.Errorf("Update(%v) = %v; want %v, not %v", tt.ops, err, tt.give, store.ErrConflict)
			}
		})
	}

	t.Run("create", func(t *testing.T) {
		tests := []struct {
			give error
			want error
		}{
			{give: conditional, want: store.ErrExists},
			{give: throttled, want: throttled},
		}
		for _, tt := range tests {
			d := store.NewDynamoDB(fakeDynamo{err: tt.give}, testTable)
			if err := d.Create(t.Context(), newJob("a", 0, t0)); !errors.Is(err, tt.want) {
				t.Errorf("Create(a) with %v = %v; want %v", tt.give, err, tt.want)
			}
		}
	})
}

// queryCounter counts the Queries sent and the items they return.
type queryCounter struct {
	*serialized
	queries, items int
}

func (c *queryCounter) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	out, err := c.serialized.Query(ctx, in, opts...)
	c.queries++
	if err == nil {
		c.items += len(out.Items)
	}
	return out, err
}

// TestDynamoDBSubmittedReads checks that Submitted reads only what it
// returns: one Query per month of the range, of at most limit items, and
// only the items of the range.
//
// Where moto and AWS differ, for this test and the contract tests: moto
// updates a GSI within the write, AWS a moment after it (index reads are
// eventually consistent), so reading the index right after writing, as
// these tests do, is only reliable on moto. moto does not refuse an
// ExclusiveStartKey outside the key condition's bounds, as AWS does:
// serialized.Query refuses one (checkStartKey), so that the cursor cases
// of testSubmittedPages (a cursor before since, one past until) check that
// newSubmittedRange keeps the key inside. moto cuts a page at 1 MB of
// its own reckoning of item size; no test here reaches it.
func TestDynamoDBSubmittedReads(t *testing.T) {
	ctx := t.Context()
	srv := awstest.Moto(t)
	client := dynamodb.NewFromConfig(srv.Config())
	if _, err := client.CreateTable(ctx, store.TableInput(testTable)); err != nil {
		t.Fatalf("CreateTable(%s) = %v; want nil", testTable, err)
	}
	c := &queryCounter{serialized: &serialized{client: client}}
	d := store.NewDynamoDB(c, testTable)
	// 90 jobs in November, three a day; 5 in January; none in December.
	for i := range 90 {
		mustCreate(t, d, newJob(fmt.Sprintf("nov-%02d", i), 0, day(2026, 11, 1+i/3).Add(time.Duration(i%3)*time.Hour)))
	}
	for i := range 5 {
		mustCreate(t, d, newJob(fmt.Sprintf("jan-%d", i), 0, day(2027, 1, 10+i)))
	}
	since, until := day(2026, 11, 1), day(2027, 2, 1)
	tests := []struct {
		name         string
		since, until time.Time
		after        string // "last": the previous case's cursor
		limit        int
		wantJobs     int
		wantQueries  int
		wantItems    int
	}{
		{name: "the first page", since: since, until: until, limit: 5, wantJobs: 5, wantQueries: 1, wantItems: 5},
		{name: "a day", since: day(2026, 11, 25), until: day(2026, 11, 26), limit: 100, wantJobs: 3, wantQueries: 1, wantItems: 3},
		{name: "every month", since: since, until: until, limit: 200, wantJobs: 95, wantQueries: 3, wantItems: 95},
		{name: "all of November", since: since, until: until, limit: 90, wantJobs: 90, wantQueries: 1, wantItems: 90},
		// The rest of November (none), December (none), January.
		{name: "after November", since: since, until: until, after: "last", limit: 90, wantJobs: 5, wantQueries: 3, wantItems: 5},
	}
	last := ""
	for _, tt := range tests {
		c.queries, c.items = 0, 0
		after := ""
		if tt.after == "last" {
			after = last
		}
		got, cursor, err := d.Submitted(ctx, tt.since, tt.until, after, tt.limit)
		if err != nil {
			t.Fatalf("%s: Submitted = %v; want nil", tt.name, err)
		}
		last = cursor
		if len(got) != tt.wantJobs || c.queries != tt.wantQueries || c.items != tt.wantItems {
			t.Errorf("%s: Submitted = %d jobs in %d queries of %d items; want %d in %d of %d", tt.name, len(got), c.queries, c.items, tt.wantJobs, tt.wantQueries, tt.wantItems)
		}
	}
}

// TestDynamoDBIndexAttributes checks the attributes the layout at the top
// of dynamodb.go promises: the submitted index keys on every job, and
// expires_at on an ended one only.
func TestDynamoDBIndexAttributes(t *testing.T) {
	ctx := t.Context()
	clk := &clock{t: t0}
	d, client := newDynamoDBClient(t, store.Retention(retention), store.Clock(clk.Now))
	jobs := mustCreate(t, d, newJob("live", 0, t0), newJob("done", 0, t0.Add(time.Nanosecond)))
	done := jobs[1]
	mustMove(t, d, done, job.Cancelled)
	tests := []struct {
		id   string
		want map[string]string // attribute: its value, as text; "" for none
	}{
		{id: "live", want: map[string]string{
			"submitted_pk": "SUBMITTED#2026-11", "submitted_sk": "2026-11-25T02:00:00.000000000Z#live", "expires_at": "",
		}},
		{id: "done", want: map[string]string{
			"submitted_pk": "SUBMITTED#2026-11", "submitted_sk": "2026-11-25T02:00:00.000000001Z#done",
			"expires_at": fmt.Sprint(done.EndedAt.Add(retention).Unix()),
		}},
	}
	for _, tt := range tests {
		out, err := client.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(testTable),
			Key:       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "JOB#" + tt.id}, "sk": &types.AttributeValueMemberS{Value: "JOB"}},
		})
		if err != nil {
			t.Fatalf("GetItem(%s) = %v; want nil", tt.id, err)
		}
		for name, want := range tt.want {
			got := ""
			switch v := out.Item[name].(type) {
			case *types.AttributeValueMemberS:
				got = v.Value
			case *types.AttributeValueMemberN:
				got = v.Value
			}
			if got != want {
				t.Errorf("item %s attribute %s = %q; want %q", tt.id, name, got, want)
			}
		}
	}
}
