package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func testSpend(t *testing.T, s store.Jobs) {
	ctx := context.Background()
	if _, err := s.Spend(ctx, "D2026-11-25"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Spend(absent) = %v; want ErrNotFound", err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 123, time.UTC)
	day := store.Spend{Period: "D2026-11-25", USD: 1.25, AccountedUntil: at, Warned: true}
	if err := s.PutSpend(ctx, &day); err != nil || day.Version != 1 {
		t.Fatalf("PutSpend(new) = %v, version %d; want nil, 1", err, day.Version)
	}
	// A second writer that read nothing (version 0) loses.
	stale := store.Spend{Period: "D2026-11-25", USD: 99}
	if err := s.PutSpend(ctx, &stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutSpend(stale create) = %v; want ErrConflict", err)
	}
	day.USD, day.Reached, day.Reason = 2.5, true, "budget: daily"
	if err := s.PutSpend(ctx, &day); err != nil || day.Version != 2 {
		t.Fatalf("PutSpend(update) = %v, version %d; want nil, 2", err, day.Version)
	}
	old := day
	old.Version = 1
	if err := s.PutSpend(ctx, &old); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutSpend(old version) = %v; want ErrConflict", err)
	}
	got, err := s.Spend(ctx, "D2026-11-25")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(day, got); diff != "" {
		t.Errorf("Spend() mismatch (-want +got):\n%s", diff)
	}
	// Spend records are not leases and not jobs.
	if ls, err := s.Leases(ctx); err != nil || len(ls) != 0 {
		t.Errorf("Leases() = %v, %v; want none", ls, err)
	}
}

func testHead(t *testing.T, s store.Jobs) {
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)
	var want []string
	for k := range 25 {
		j := newJob(fmt.Sprintf("q%02d", k), 0, base.Add(time.Duration(k)*time.Second))
		mustCreate(t, s, j)
		want = append(want, j.ID)
	}
	for _, n := range []int{0, 1, 7, 25, 40} {
		got, err := s.Head(ctx, job.Queued, n)
		if err != nil {
			t.Fatalf("Head(%d) = %v", n, err)
		}
		w := want[:min(n, len(want))]
		if diff := cmp.Diff(w, ids(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Head(%d) mismatch (-want +got):\n%s", n, diff)
		}
	}
}

func testFreeLease(t *testing.T, s store.Jobs) {
	ctx := context.Background()
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	j := newJob("left", 0, at)
	mustCreate(t, s, j)
	mustMove(t, s, j, job.Placed, acquire("i-1"))
	l, err := s.Lease(ctx, "i-1")
	if err != nil || l.JobID != "left" {
		t.Fatalf("Lease(i-1) = %+v, %v; want held by left", l, err)
	}
	stale := l
	stale.Version--
	if err := s.FreeLease(ctx, stale, at); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FreeLease(old version) = %v; want ErrConflict", err)
	}
	other := l
	other.JobID = "someone-else"
	if err := s.FreeLease(ctx, other, at); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FreeLease(other holder) = %v; want ErrConflict", err)
	}
	if err := s.FreeLease(ctx, l, at); err != nil {
		t.Fatalf("FreeLease() = %v", err)
	}
	got, err := s.Lease(ctx, "i-1")
	if err != nil || got.Held() || !got.IdleSince.Equal(at) || got.Version != l.Version+1 {
		t.Errorf("after FreeLease: %+v, %v; want free, idle since %v, version %d", got, err, at, l.Version+1)
	}
}
