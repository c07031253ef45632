package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// countJobs is how many queued jobs the count test makes: with the DynamoDB
// store's test page limit of 10, the count takes several pages.
const countJobs = 35

// testCount checks Count against Live for every live state, across pages,
// and that it refuses a state with no index.
func testCount(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	var jobs []*job.Job
	for i := range countJobs {
		jobs = append(jobs, newJob(fmt.Sprintf("job-%02d", i), i%3, t0))
	}
	mustCreate(t, s, jobs...)
	for _, j := range jobs[:4] {
		mustMove(t, s, j, job.Placed)
	}
	mustMove(t, s, jobs[0], job.Running)
	mustMove(t, s, jobs[1], job.Running)
	mustMove(t, s, jobs[2], job.Cancelled)
	mustMove(t, s, jobs[4], job.Cancelled)

	tests := []struct {
		give job.State
		want int
	}{
		{job.Queued, countJobs - 5},
		{job.Placed, 1},
		{job.Running, 2},
	}
	for _, tt := range tests {
		got, err := s.Count(ctx, tt.give)
		if err != nil || got != tt.want {
			t.Errorf("Count(%s) = %d, %v; want %d", tt.give, got, err, tt.want)
		}
		live, err := s.Live(ctx, tt.give)
		if err != nil || len(live) != got {
			t.Errorf("Count(%s) = %d; Live(%s) has %d (%v)", tt.give, got, tt.give, len(live), err)
		}
	}
	if got, err := s.Count(ctx, job.Cancelled); err == nil {
		t.Errorf("Count(%s) = %d, nil; want an error (no index of ended jobs)", job.Cancelled, got)
	}
}

func TestMemoryCount(t *testing.T) { testCount(t, store.NewMemory()) }

func TestMemoryCountCalls(t *testing.T) {
	m := store.NewMemory()
	var ops []string
	m.Before = func(op string) error { ops = append(ops, op); return nil }
	if _, err := m.Count(context.Background(), job.Queued); err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0] != "Count" {
		t.Errorf("Count called Before with %v; want [Count]", ops)
	}
}

// queries records the Query requests the store sends to moto.
type queries struct {
	*serialized
	mu   sync.Mutex
	sent []*dynamodb.QueryInput
}

func (q *queries) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	q.mu.Lock()
	q.sent = append(q.sent, in)
	q.mu.Unlock()
	out, err := q.serialized.Query(ctx, in, opts...)
	if err == nil && len(out.Items) > 0 && in.Select == types.SelectCount {
		return nil, fmt.Errorf("a COUNT query returned %d items", len(out.Items))
	}
	return out, err
}

// TestDynamoDBCount counts on moto, and checks what it asks DynamoDB: COUNT
// queries of the live index only, one per page of the state's entries.
func TestDynamoDBCount(t *testing.T) {
	srv := awstest.Moto(t)
	client := dynamodb.NewFromConfig(srv.Config())
	if _, err := client.CreateTable(t.Context(), store.TableInput(testTable)); err != nil {
		t.Fatalf("CreateTable(%s) = %v; want nil", testTable, err)
	}
	q := &queries{serialized: &serialized{client: client}}
	d := store.NewDynamoDB(q, testTable)
	store.SetPageLimit(d, testPageLimit)
	testCount(t, d)

	q.sent = nil
	n, err := d.Count(t.Context(), job.Queued)
	if err != nil || n != countJobs-5 {
		t.Fatalf("Count(QUEUED) = %d, %v; want %d", n, err, countJobs-5)
	}
	// 30 entries in pages of 10: three full pages, and one that finds the end.
	if len(q.sent) < 3 || len(q.sent) > 4 {
		t.Errorf("Count(QUEUED) of %d jobs sent %d queries; want 3 or 4 pages of %d", n, len(q.sent), testPageLimit)
	}
	for _, in := range q.sent {
		if in.Select != types.SelectCount || in.IndexName == nil || *in.IndexName != "live" {
			t.Errorf("Count sent Query{Select: %q, IndexName: %v}; want a COUNT of the live index", in.Select, in.IndexName)
		}
	}
}
