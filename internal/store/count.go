package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// Counter counts live jobs.
type Counter interface {
	// Count returns how many jobs are in live state s, from the index Live
	// reads, without reading the jobs themselves.
	Count(ctx context.Context, s job.State) (int, error)
}

var (
	_ Counter = (*DynamoDB)(nil)
	_ Counter = (*Memory)(nil)
)

// Count asks the live index for the number of jobs in state s (Select
// COUNT): one Query, and one more per 1 MB of the state's index entries,
// the same pages as Live, but no item comes back.
func (d *DynamoDB) Count(ctx context.Context, s job.State) (int, error) {
	if !isLive(s) {
		return 0, fmt.Errorf("count jobs: %s is not a live state", s)
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(d.table),
		IndexName:                 aws.String(indexLive),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrLivePK},
		ExpressionAttributeValues: item{":pk": str(livePK(s))},
		Select:                    types.SelectCount,
	}
	if d.pageLimit > 0 {
		in.Limit = aws.Int32(d.pageLimit)
	}
	n := 0
	p := dynamodb.NewQueryPaginator(d.client, in)
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("count %s jobs: %w", s, err)
		}
		n += int(out.Count)
	}
	return n, nil
}

// Count returns the number of jobs in live state s.
func (m *Memory) Count(ctx context.Context, s job.State) (int, error) {
	if err := m.enter(ctx, "Count"); err != nil {
		return 0, err
	}
	if !isLive(s) {
		return 0, fmt.Errorf("count jobs: %s is not a live state", s)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, j := range m.jobs {
		if j.State == s {
			n++
		}
	}
	return n, nil
}
