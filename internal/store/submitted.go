package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// maxSubmittedPage caps the items one Query of Submitted asks for, as Head
// does: a caller asking for more gets them over several pages.
const maxSubmittedPage = 1000

// cursorWidth is the length of a time in sortTimeLayout, in UTC.
var cursorWidth = len(sortTimeLayout) - len("Z07:00") + len("Z")

// submittedRange is one call of Submitted, checked: the submitted_sk
// bounds, the months to read, and where to resume.
type submittedRange struct {
	lo, hi string // submitted_sk ≥ lo and < hi: [since, until)
	// after is a submitted_sk to resume after ("" for none), in the
	// month afterMonth.
	after      string
	afterMonth time.Time
	months     []time.Time
	limit      int
}

// newSubmittedRange checks Submitted's arguments; until zero is now.
func newSubmittedRange(since, until time.Time, after string, limit int, now time.Time) (submittedRange, error) {
	if limit <= 0 {
		return submittedRange{}, fmt.Errorf("submitted jobs: limit %d: want at least 1", limit)
	}
	if since.IsZero() {
		// Every month since year 1 is a Query each.
		return submittedRange{}, fmt.Errorf("submitted jobs: no since time")
	}
	if until.IsZero() {
		until = now
	}
	r := submittedRange{
		lo:    since.UTC().Format(sortTimeLayout),
		hi:    until.UTC().Format(sortTimeLayout),
		limit: limit,
	}
	start := since
	if after != "" {
		at, err := parseCursor(after)
		if err != nil {
			return submittedRange{}, err
		}
		if after > r.lo {
			r.after, r.afterMonth, start = after, monthOf(at), at
		}
	}
	if !start.Before(until) {
		return r, nil // nothing left
	}
	last := monthOf(until.Add(-time.Nanosecond))
	for m := monthOf(start); !m.After(last); m = m.AddDate(0, 1, 0) {
		r.months = append(r.months, m)
	}
	return r, nil
}

// monthOf returns the start of t's UTC month.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// parseCursor reads the time of a cursor Submitted returned: a
// submitted_sk, "<submitted_at>#<id>".
func parseCursor(c string) (time.Time, error) {
	if len(c) < cursorWidth+2 || c[cursorWidth] != '#' {
		return time.Time{}, fmt.Errorf("submitted jobs: cursor %q: not one Submitted returned", c)
	}
	t, err := time.Parse(sortTimeLayout, c[:cursorWidth])
	if err != nil {
		return time.Time{}, fmt.Errorf("submitted jobs: cursor %q: %w", c, err)
	}
	return t, nil
}

// in reports whether a submitted_sk falls in the range, past the cursor.
func (r submittedRange) in(sk string) bool {
	return sk >= r.lo && sk < r.hi && sk > r.after
}

// Submitted lists the jobs submitted in [since, until), oldest first, from
// the submitted index, reading only the pages it needs (see Jobs.Submitted).
//
// What a window costs. The index is partitioned by UTC month
// (submitted_pk), so a window of N days touches at most N/28 + 2 months,
// and Submitted sends one Query per month touched, in order, with the
// window's bounds as a range on submitted_sk: an empty month costs one
// Query that reads nothing. A month's Query takes more pages only when it
// holds more than one page of the window's jobs: a page ends at the jobs
// still wanted (limit less those found), at maxSubmittedPage items, or at
// DynamoDB's 1 MB a response (about 250 jobs of 4 KB; the largest job
// item, about 150 KB, gives pages of 6). So a month of a few hundred jobs
// is one or two Queries. Submitted stops at limit jobs: the months after
// are not read, and the next call resumes in the cursor's month. Records
// past their retention that TTL has not deleted yet (it takes up to a few
// days) are read and billed but filtered out, as AWS documents for TTL;
// they are at most those few days' worth of ended jobs.
//
// Why Projection ALL. Submitted returns whole jobs, so the CLI's listing,
// cost sum and any column it adds later come from one Query, where KEYS_ONLY
// would need a GetItem per job, and INCLUDE would hand back partial jobs
// that look whole and would fix the listing's columns in the index (a
// projection cannot be changed without rebuilding the index). The price is
// that each job write is written again to the index at the item's size: a
// job is written some ten times in its life, a few KB each, which is a
// few dozen write units against hours of GPU. The live index already
// projects ALL for the same reason.
func (d *DynamoDB) Submitted(ctx context.Context, since, until time.Time, after string, limit int) ([]*job.Job, string, error) {
	now := d.now()
	r, err := newSubmittedRange(since, until, after, limit, now)
	if err != nil {
		return nil, "", err
	}
	var jobs []*job.Job
	for _, m := range r.months {
		in := &dynamodb.QueryInput{
			TableName:              aws.String(d.table),
			IndexName:              aws.String(indexSubmitted),
			KeyConditionExpression: aws.String("#pk = :pk AND #sk BETWEEN :lo AND :hi"),
			// TTL deletes lazily: an expired record may still be there.
			FilterExpression:         aws.String("attribute_not_exists(#exp) OR #exp > :now"),
			ExpressionAttributeNames: map[string]string{"#pk": attrSubmittedPK, "#sk": attrSubmittedSK, "#exp": attrExpiresAt},
			ExpressionAttributeValues: item{
				":pk": str(submittedPK(m)), ":lo": str(r.lo), ":hi": str(r.hi), ":now": num(now.Unix()),
			},
		}
		if r.after != "" && r.afterMonth.Equal(m) {
			// newSubmittedRange keeps the cursor strictly inside
			// (lo, hi): AWS refuses a start key outside the key
			// condition's bounds with a ValidationException.
			in.ExclusiveStartKey = cursorKey(r.after, m)
		}
		for {
			in.Limit = aws.Int32(int32(min(r.limit-len(jobs), maxSubmittedPage)))
			if d.pageLimit > 0 && *in.Limit > d.pageLimit {
				in.Limit = aws.Int32(d.pageLimit)
			}
			out, err := d.client.Query(ctx, in)
			if err != nil {
				return nil, "", fmt.Errorf("submitted jobs %s: %w", m.Format(monthLayout), err)
			}
			// BETWEEN includes hi, but no key equals it: each ends in
			// "#<id>", so one submitted at until sorts after it.
			for _, it := range out.Items {
				j, err := unmarshalJob(it)
				if err != nil {
					return nil, "", fmt.Errorf("submitted jobs %s: %w", m.Format(monthLayout), err)
				}
				jobs = append(jobs, j)
			}
			if len(jobs) >= r.limit {
				jobs = jobs[:r.limit]
				return jobs, submittedSK(jobs[len(jobs)-1]), nil
			}
			if out.LastEvaluatedKey == nil {
				break
			}
			in.ExclusiveStartKey = out.LastEvaluatedKey
		}
	}
	return jobs, "", nil
}

// cursorKey is the ExclusiveStartKey that resumes a Query of the submitted
// index of month m after the job whose submitted_sk is c: the index's key
// and the table's, all of which c gives.
func cursorKey(c string, m time.Time) item {
	k := jobKey(c[cursorWidth+1:])
	k[attrSubmittedPK] = str(submittedPK(m))
	k[attrSubmittedSK] = str(c)
	return k
}

// Submitted lists the jobs submitted in [since, until), oldest first (see
// Jobs.Submitted).
func (m *Memory) Submitted(ctx context.Context, since, until time.Time, after string, limit int) ([]*job.Job, string, error) {
	if err := m.enter(ctx, "Submitted"); err != nil {
		return nil, "", err
	}
	now := m.now()
	r, err := newSubmittedRange(since, until, after, limit, now)
	if err != nil || len(r.months) == 0 {
		return nil, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	type keyed struct {
		key string
		j   *job.Job
	}
	var found []keyed
	for id, j := range m.jobs {
		if sk := submittedSK(j); r.in(sk) && !expired(m.expires[id], now) {
			found = append(found, keyed{sk, j})
		}
	}
	slices.SortFunc(found, func(a, b keyed) int { return strings.Compare(a.key, b.key) })
	cursor := ""
	if len(found) >= r.limit {
		found = found[:r.limit]
		cursor = found[len(found)-1].key
	}
	var jobs []*job.Job // nil when none, as from DynamoDB
	for _, k := range found {
		j, err := m.readCopy(k.j)
		if err != nil {
			return nil, "", fmt.Errorf("submitted jobs: %w", err)
		}
		jobs = append(jobs, j)
	}
	return jobs, cursor, nil
}
