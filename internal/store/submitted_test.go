package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// submittedAll lists every job in [since, until) by pages of limit,
// checking each page's size against its cursor.
func submittedAll(t *testing.T, s store.Jobs, since, until time.Time, limit int) []*job.Job {
	t.Helper()
	var all []*job.Job
	after := ""
	for range 1000 {
		page, next, err := s.Submitted(t.Context(), since, until, after, limit)
		if err != nil {
			t.Fatalf("Submitted(%v, %v, %q, %d) = %v; want nil", since, until, after, limit, err)
		}
		if len(page) > limit || (next != "") != (len(page) == limit) {
			t.Fatalf("Submitted(%v, %v, %q, %d) = %d jobs, cursor %q; want at most %d, a cursor only with %[4]d", since, until, after, limit, len(page), next, limit)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		if next == after {
			t.Fatalf("Submitted(%v, %v, %q, %d) = cursor %[3]q; want one that moves on", since, until, after, limit)
		}
		after = next
	}
	t.Fatalf("Submitted(%v, %v, …, %d): no end after 1,000 pages", since, until, limit)
	return nil
}

func testSubmitted(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	cet := time.FixedZone("CET", 3600)
	jobs := mustCreate(t, s,
		newJob("oct-31-last", 0, day(2026, 11, 1).Add(-time.Nanosecond)),
		newJob("nov-1-first", 0, day(2026, 11, 1)),
		newJob("nov-25-b", 0, t0),
		newJob("nov-25-a", 5, t0), // the same time: by id, whatever the priority
		newJob("nov-25-nano", 0, t0.Add(time.Nanosecond)),
		newJob("nov-30-last", 0, day(2026, 12, 1).Add(-time.Nanosecond)),
		newJob("dec-1-first", 0, day(2026, 12, 1)),
		newJob("jan-15", 0, time.Date(2027, 1, 15, 12, 0, 0, 0, time.UTC)),
		job.NewRejected("rejected", errors.New("unknown field"), t0.Add(time.Hour)),
	)
	// A time in another zone is filed under its UTC day and month:
	// 00:30 CET on Nov 26 is 23:30 UTC on Nov 25.
	// 00:30 CET on Dec 1 is 23:30 UTC on Nov 30, in November's partition.
	cetJob := newJob("nov-25-cet", 0, t0)
	cetJob.SubmittedAt = time.Date(2026, 11, 26, 0, 30, 0, 0, cet)
	cetMonthJob := newJob("nov-30-cet", 0, t0)
	cetMonthJob.SubmittedAt = time.Date(2026, 12, 1, 0, 30, 0, 0, cet)
	mustCreate(t, s, cetJob, cetMonthJob)
	byID := map[string]*job.Job{"nov-25-cet": cetJob, "nov-30-cet": cetMonthJob}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	// Ended jobs are listed as live ones are.
	mustMove(t, s, byID["nov-25-b"], job.Placed)
	mustMove(t, s, byID["nov-25-b"], job.Running)
	mustMove(t, s, byID["nov-25-b"], job.Succeeded)
	mustMove(t, s, byID["nov-1-first"], job.Cancelled)

	nov25 := []string{"nov-25-a", "nov-25-b", "nov-25-nano", "rejected", "nov-25-cet"}
	november := append(append([]string{"nov-1-first"}, nov25...), "nov-30-cet", "nov-30-last")
	tests := []struct {
		name         string
		since, until time.Time
		want         []string
	}{
		{name: "a day", since: day(2026, 11, 25), until: day(2026, 11, 26), want: nov25},
		{name: "a month, to its bounds", since: day(2026, 11, 1), until: day(2026, 12, 1), want: november},
		{
			name: "months", since: day(2026, 10, 1), until: day(2027, 2, 1),
			want: append(append([]string{"oct-31-last"}, november...), "dec-1-first", "jan-15"),
		},
		{name: "since a time", since: t0.Add(time.Nanosecond), until: day(2026, 12, 1), want: []string{"nov-25-nano", "rejected", "nov-25-cet", "nov-30-cet", "nov-30-last"}},
		{name: "until is left out", since: day(2026, 10, 1), until: t0, want: []string{"oct-31-last", "nov-1-first"}},
		{name: "times in another zone", since: day(2026, 11, 25).In(cet), until: day(2026, 11, 26).In(cet), want: nov25},
		{
			name: "a day in another zone, across UTC months", since: time.Date(2026, 12, 1, 0, 0, 0, 0, cet), until: time.Date(2026, 12, 2, 0, 0, 0, 0, cet),
			want: []string{"nov-30-cet", "nov-30-last", "dec-1-first"},
		},
		{name: "a month without jobs", since: day(2026, 6, 1), until: day(2026, 7, 1)},
		{name: "empty range", since: t0, until: t0},
		{name: "reversed range", since: day(2026, 12, 1), until: day(2026, 11, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, cursor, err := s.Submitted(ctx, tt.since, tt.until, "", 100)
			if err != nil || cursor != "" {
				t.Fatalf("Submitted(%v, %v, \"\", 100) = %v, %q, %v; want %v, \"\", nil", tt.since, tt.until, ids(got), cursor, err, tt.want)
			}
			if diff := cmp.Diff(tt.want, ids(got), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Submitted(%v, %v) ids mismatch (-want +got):\n%s", tt.since, tt.until, diff)
			}
			for _, j := range got {
				if diff := cmp.Diff(byID[j.ID], j); diff != "" {
					t.Errorf("Submitted(%v, %v) job %s mismatch (-want +got):\n%s", tt.since, tt.until, j.ID, diff)
				}
			}
		})
	}
}

func testSubmittedPages(t *testing.T, s store.Jobs) {
	// Jobs six hours apart from Oct 20 to Dec 21, created out of order;
	// every seventh one ended.
	const n = 250
	start := day(2026, 10, 20)
	at := func(i int) time.Time { return start.Add(time.Duration(i)*6*time.Hour + time.Duration(i%7)) }
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("job-%03d", i)
	}
	for k := range n {
		i := k * 37 % n
		j := mustCreate(t, s, newJob(want[i], i%3, at(i)))[0]
		if i%7 == 0 {
			mustMove(t, s, j, job.Cancelled)
		}
	}
	tests := []struct {
		name         string
		since, until time.Time
		limit        int
		want         []string
	}{
		{name: "pages of 7", since: start, until: day(2027, 1, 1), limit: 7, want: want},
		{name: "pages of the test page limit", since: start, until: day(2027, 1, 1), limit: testPageLimit, want: want},
		{name: "one page of all", since: start, until: day(2027, 1, 1), limit: n, want: want},
		{name: "one page of more", since: start, until: day(2027, 1, 1), limit: 1000, want: want},
		{name: "part of the range", since: at(50), until: at(200), limit: 9, want: want[50:200]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := submittedAll(t, s, tt.since, tt.until, tt.limit)
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("Submitted(%v, %v) by %d ids mismatch (-want +got):\n%s", tt.since, tt.until, tt.limit, diff)
			}
		})
	}

	// A cursor from before since starts at since; one past until ends.
	_, early, err := s.Submitted(t.Context(), start, at(3), "", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.Submitted(t.Context(), at(100), at(103), early, 10); err != nil || !cmp.Equal(ids(got), want[100:103]) {
		t.Errorf("Submitted(job 100 to 103, after job 0) = %v, %v; want %v, nil", ids(got), err, want[100:103])
	}
	if got, cursor, err := s.Submitted(t.Context(), start, at(3), mustCursor(t, s, at(5)), 10); err != nil || len(got) != 0 || cursor != "" {
		t.Errorf("Submitted(job 0 to 3, after job 5) = %v, %q, %v; want [], \"\", nil", ids(got), cursor, err)
	}
}

// mustCursor returns the cursor that resumes after the job submitted at at.
func mustCursor(t *testing.T, s store.Jobs, at time.Time) string {
	t.Helper()
	got, cursor, err := s.Submitted(t.Context(), at, at.Add(time.Nanosecond), "", 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Submitted(%v, +1ns, \"\", 1) = %v, %q, %v; want one job", at, ids(got), cursor, err)
	}
	return cursor
}

func testSubmittedErrors(t *testing.T, s store.Jobs) {
	mustCreate(t, s, newJob("a", 0, t0))
	tests := []struct {
		name  string
		since time.Time
		after string
		limit int
	}{
		{name: "no limit", since: t0, limit: 0},
		{name: "negative limit", since: t0, limit: -1},
		{name: "no since", limit: 10},
		{name: "a cursor of nothing", since: t0, after: "nope", limit: 10},
		{name: "a cursor without an id", since: t0, after: "2026-11-25T02:00:00.000000000Z", limit: 10},
		{name: "a cursor without a time", since: t0, after: "2026-13-25T02:00:00.000000000Z#a", limit: 10},
	}
	for _, tt := range tests {
		if got, cursor, err := s.Submitted(t.Context(), tt.since, t0.Add(time.Hour), tt.after, tt.limit); err == nil {
			t.Errorf("Submitted(%s) = %v, %q, nil; want an error", tt.name, ids(got), cursor)
		}
	}
}
