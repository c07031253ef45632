package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func day(year int, m time.Month, d int) time.Time { return time.Date(year, m, d, 0, 0, 0, 0, time.UTC) }

const retention = 90 * 24 * time.Hour

func testRetention(t *testing.T, newStore newStoreFunc) {
	ctx := t.Context()
	clk := &clock{t: t0}
	s := newStore(t, store.Retention(retention), store.Clock(clk.Now))

	done := newJob("done", 0, t0)
	live := newJob("live", 0, t0.Add(time.Minute))
	rejected := job.NewRejected("rejected", errors.New("bad"), t0.Add(2*time.Minute))
	mustCreate(t, s, done, live, rejected)
	mustMove(t, s, done, job.Cancelled) // ends at t0
	// A job's expiry counts from its end, which the scheduler may set
	// after the move (to when the command ended).
	late := newJob("late", 0, t0.Add(3*time.Minute))
	mustCreate(t, s, late)
	if err := late.Move(job.Failed, "exit code 1", t0); err != nil {
		t.Fatal(err)
	}
	late.EndedAt = t0.Add(time.Hour)
	if err := s.Update(ctx, late, job.Queued); err != nil {
		t.Fatalf("Update(late) = %v; want nil", err)
	}

	tests := []struct {
		name string
		at   time.Time
		want []string // listed and found, in order
		gone []string // neither
	}{
		{name: "kept", at: t0.Add(retention - time.Second), want: []string{"done", "live", "rejected", "late"}},
		{name: "done expires", at: t0.Add(retention), want: []string{"live", "rejected", "late"}, gone: []string{"done"}},
		{name: "rejected expires", at: t0.Add(retention + 2*time.Minute), want: []string{"live", "late"}, gone: []string{"done", "rejected"}},
		{name: "late expires", at: t0.Add(retention + time.Hour), want: []string{"live"}, gone: []string{"done", "rejected", "late"}},
		{name: "live jobs never expire", at: t0.Add(100 * retention), want: []string{"live"}, gone: []string{"done", "rejected", "late"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.at)
			got := submittedAll(t, s, day(2026, 11, 1), day(2026, 12, 1), 2)
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("Submitted(November) at %v ids mismatch (-want +got):\n%s", tt.at, diff)
			}
			for _, id := range tt.want {
				if _, err := s.Job(ctx, id); err != nil {
					t.Errorf("Job(%s) at %v = %v; want nil", id, tt.at, err)
				}
			}
			for _, id := range tt.gone {
				if _, err := s.Job(ctx, id); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Job(%s) at %v = %v; want %v", id, tt.at, err, store.ErrNotFound)
				}
			}
		})
	}

	// Until zero is the store's now.
	clk.Set(t0.Add(90 * time.Second))
	if got, _, err := s.Submitted(ctx, day(2026, 11, 1), time.Time{}, "", 10); err != nil || !cmp.Equal(ids(got), []string{"done", "live"}) {
		t.Errorf("Submitted(November, until now %v) = %v, %v; want [done live], nil", clk.Now(), ids(got), err)
	}

	// An expired record's id is free again, as it is once TTL deletes it;
	// one that has not expired is not.
	clk.Set(t0.Add(retention + time.Minute))
	again := newJob("done", 0, t0.Add(retention))
	mustCreate(t, s, again)
	wantJob(t, s, again)
	if err := s.Create(ctx, newJob("late", 0, t0.Add(retention))); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create(late, before it expires) = %v; want %v", err, store.ErrExists)
	}
	if err := s.Create(ctx, newJob("live", 0, t0.Add(retention))); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create(live) = %v; want %v", err, store.ErrExists)
	}
}

func testNoRetention(t *testing.T, newStore newStoreFunc) {
	clk := &clock{t: t0}
	s := newStore(t, store.Clock(clk.Now))
	done := mustCreate(t, s, newJob("done", 0, t0))[0]
	mustMove(t, s, done, job.Cancelled)
	clk.Set(t0.Add(100 * 365 * 24 * time.Hour))
	wantJob(t, s, done)
	if got, _, err := s.Submitted(t.Context(), t0, t0.Add(time.Second), "", 10); err != nil || !cmp.Equal(ids(got), []string{"done"}) {
		t.Errorf("Submitted(t0, +1s) a century on = %v, %v; want [done], nil", ids(got), err)
	}
}
