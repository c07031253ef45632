package store_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func TestMemory(t *testing.T) {
	testJobs(t, func(_ *testing.T, opts ...store.Option) store.Jobs { return store.NewMemory(opts...) })
}

func TestMemoryBefore(t *testing.T) {
	ctx := t.Context()
	m := store.NewMemory()
	errCrash := errors.New("crash")
	var calls []string
	m.Before = func(op string) error {
		calls = append(calls, op)
		if op == "Update" {
			return errCrash
		}
		return nil
	}
	j := newJob("a", 0, t0)
	if err := m.Create(ctx, j); err != nil {
		t.Fatalf("Create(a) = %v; want nil", err)
	}
	moved := *j
	if err := moved.Move(job.Placed, "placed", t0); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(ctx, &moved, job.Queued, acquire("i-1")); !errors.Is(err, errCrash) {
		t.Errorf("Update(a) = %v; want %v", err, errCrash)
	}
	if moved.Version != 0 {
		t.Errorf("Version after a failed Update = %d; want 0", moved.Version)
	}
	wantJob(t, m, j)
	if _, err := m.Lease(ctx, "i-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lease(i-1) = %v; want %v", err, store.ErrNotFound)
	}
	m.Live(ctx, job.Queued)
	m.Leases(ctx)
	m.PutLease(ctx, store.Lease{InstanceID: "i-2"})
	m.MarkStopping(ctx, store.Lease{InstanceID: "i-2", Version: 1}, t0)
	m.ClearStopping(ctx, "i-2")
	m.DeleteLease(ctx, "i-2")
	want := []string{"Create", "Update", "Job", "Lease", "Live", "Leases", "PutLease", "MarkStopping", "ClearStopping", "DeleteLease"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("Before calls mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkMemoryUpdate(b *testing.B) {
	ctx := b.Context()
	m := store.NewMemory()
	j := fullJob()
	j.State = job.Running
	if err := m.Create(ctx, j); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Update(ctx, j, job.Running); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryLive(b *testing.B) {
	ctx := b.Context()
	m := store.NewMemory()
	for i := range 100 {
		if err := m.Create(ctx, newJob(fmt.Sprintf("job-%03d", i), i%5, t0.Add(time.Duration(i)*time.Second))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Live(ctx, job.Queued); err != nil {
			b.Fatal(err)
		}
	}
}
