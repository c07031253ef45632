package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// submittedPage is how many jobs one read of the submitted index asks for:
// a page of the index, at most 1 MB of records, is what DynamoDB returns
// anyway.
const submittedPage = 200

// maxListed bounds what ls --all and cost read: past it they say so and
// stop, rather than page through a year of jobs.
const maxListed = 10_000

// submittedSince lists the jobs submitted from from until now, newest
// first, from the table's index by submission month: one Query per month
// the window spans, and one more per page of submittedPage jobs.
func (a *app) submittedSince(ctx context.Context, c *cloud, from time.Time) ([]*job.Job, error) {
	until := a.now()
	var jobs []*job.Job
	after := ""
	for {
		page, next, err := c.jobs.Submitted(ctx, from, until, after, submittedPage)
		if err != nil {
			return nil, fmt.Errorf("read jobs submitted since %s: %w", stamp(from), err)
		}
		jobs = append(jobs, page...)
		if next == "" {
			break
		}
		if len(jobs) >= maxListed {
			fmt.Fprintf(a.stderr, "nightshift: more than %d jobs since %s: showing the oldest %d; give a later --since\n", maxListed, stamp(from), len(jobs))
			break
		}
		after = next
	}
	slices.Reverse(jobs)
	return jobs, nil
}
