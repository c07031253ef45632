package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func take(pool string, index int) store.SlotOp {
	return store.SlotOp{Kind: store.TakeSlot, Pool: pool, Index: index, At: t0}
}

func wantSlots(t *testing.T, s store.Jobs, pool string, want []store.Slot) {
	t.Helper()
	got, err := s.Slots(t.Context(), pool)
	if err != nil {
		t.Fatalf("Slots(%s) = %v", pool, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Slots(%s) (-want +got):\n%s", pool, diff)
	}
}

// testSlots: a slot is taken only where there is none, bound and released
// only by the attempt that took it, freed and adopted only at its version.
func testSlots(t *testing.T, s store.Jobs) {
	a, b := newJob("a", 0, t0), newJob("b", 0, t0)
	mustCreate(t, s, a, b)
	mustMove(t, s, a, job.Placed, take("gpu", 0))
	if err := tryMove(t, s, b, job.Placed, take("gpu", 0)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Update(b, take gpu/0 held by a) = %v; want ErrConflict", err)
	}
	wantJob(t, s, b) // unchanged: the job's write and the slot's are one
	mustMove(t, s, b, job.Placed, take("gpu", 1))
	taken := []store.Slot{
		{Pool: "gpu", Index: 0, JobID: "a", Attempt: 1, TakenAt: t0, Version: 1},
		{Pool: "gpu", Index: 1, JobID: "b", Attempt: 1, TakenAt: t0, Version: 1},
	}
	wantSlots(t, s, "gpu", taken)
	wantSlots(t, s, "other", nil)

	bind := store.SlotOp{Kind: store.BindSlot, Pool: "gpu", Index: 0, InstanceID: "i-a", At: t0.Add(1)}
	if err := tryMove(t, s, b, job.Placed, bind); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(b, bind gpu/0 held by a) = %v; want ErrConflict", err)
	}
	mustMove(t, s, a, job.Placed, bind)
	release := func(index int) store.SlotOp { return store.SlotOp{Kind: store.ReleaseSlot, Pool: "gpu", Index: index} }
	if err := tryMove(t, s, a, job.Queued, release(0)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(a, release gpu/0 with its instance) = %v; want ErrConflict: an instance keeps its slot", err)
	}
	mustMove(t, s, b, job.Queued, release(1))
	bound := store.Slot{Pool: "gpu", Index: 0, JobID: "a", Attempt: 1, InstanceID: "i-a", TakenAt: t0, BoundAt: t0.Add(1), Version: 2}
	wantSlots(t, s, "gpu", []store.Slot{bound})

	stale := bound
	stale.Version = 1
	if err := s.FreeSlot(t.Context(), stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FreeSlot(at an old version) = %v; want ErrConflict", err)
	}
	if err := s.AdoptSlot(t.Context(), stale, "i-x", t0); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AdoptSlot(at an old version) = %v; want ErrConflict", err)
	}
	if err := s.AdoptSlot(t.Context(), bound, "i-b", t0.Add(2)); err != nil {
		t.Fatalf("AdoptSlot = %v", err)
	}
	adopted := bound
	adopted.InstanceID, adopted.BoundAt, adopted.Version = "i-b", t0.Add(2), 3
	wantSlots(t, s, "gpu", []store.Slot{adopted})
	if err := s.FreeSlot(t.Context(), adopted); err != nil {
		t.Fatalf("FreeSlot = %v", err)
	}
	wantSlots(t, s, "gpu", nil)
	if err := s.FreeSlot(t.Context(), adopted); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FreeSlot(gone) = %v; want ErrConflict", err)
	}
}

// testSlotTakenAgain: a slot freed and taken again by another launch
// starts at version 1 again, so a pass still holding the first take's slot
// (read at version 1) must not free or bind the second's: the version alone
// would let it, and the pool would have one instance more than its cap.
func testSlotTakenAgain(t *testing.T, s store.Jobs) {
	a, b := newJob("a", 0, t0), newJob("b", 0, t0)
	mustCreate(t, s, a, b)
	mustMove(t, s, a, job.Placed, take("gpu", 0))
	first := store.Slot{Pool: "gpu", Index: 0, JobID: "a", Attempt: 1, TakenAt: t0, Version: 1}
	wantSlots(t, s, "gpu", []store.Slot{first})
	if err := s.FreeSlot(t.Context(), first); err != nil {
		t.Fatalf("FreeSlot(first take) = %v", err)
	}
	// Taken again at the same instant (a clock that did not move), by b.
	mustMove(t, s, b, job.Placed, take("gpu", 0))
	second := store.Slot{Pool: "gpu", Index: 0, JobID: "b", Attempt: 1, TakenAt: t0, Version: 1}
	wantSlots(t, s, "gpu", []store.Slot{second})
	if err := s.FreeSlot(t.Context(), first); !errors.Is(err, store.ErrConflict) {
		t.Errorf("FreeSlot(the first take, again) = %v; want ErrConflict: the slot is b's now", err)
	}
	if err := s.AdoptSlot(t.Context(), first, "i-a", t0.Add(1)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("AdoptSlot(the first take) = %v; want ErrConflict: the slot is b's now", err)
	}
	wantSlots(t, s, "gpu", []store.Slot{second})
}

// testSlotRace: many launches racing for a pool's slots, each taking the
// first slot its own view shows free, never take more than there are.
func testSlotRace(t *testing.T, s store.Jobs) {
	const slots, racers = 3, 8
	for round := range raceRounds {
		pool := fmt.Sprintf("pool-%d", round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		won := 0
		for r := range racers {
			j := newJob(fmt.Sprintf("%s-%d", pool, r), 0, t0)
			mustCreate(t, s, j)
			wg.Go(func() {
				for index := range slots { // a stale view: it tries each in turn
					err := tryMove(t, s, j, job.Placed, take(pool, index))
					if err == nil {
						mu.Lock()
						won++
						mu.Unlock()
						return
					}
					if !errors.Is(err, store.ErrConflict) {
						t.Errorf("Update(%s, take %s/%d) = %v; want nil or ErrConflict", j.ID, pool, index, err)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := s.Slots(t.Context(), pool)
		if err != nil {
			t.Fatal(err)
		}
		if won != slots || len(got) != slots {
			t.Fatalf("round %d: %d launches won, %d slots taken; want %d and %d", round, won, len(got), slots, slots)
		}
	}
}

// testBadSlotOps: ops DynamoDB would refuse are refused whole.
func testBadSlotOps(t *testing.T, s store.Jobs) {
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	tests := []struct {
		name string
		give []store.Op
	}{
		{name: "no pool", give: []store.Op{take("", 0)}},
		{name: "negative index", give: []store.Op{take("gpu", -1)}},
		{name: "bind nothing", give: []store.Op{store.SlotOp{Kind: store.BindSlot, Pool: "gpu"}}},
		{name: "same slot twice", give: []store.Op{take("gpu", 0), take("gpu", 0)}},
	}
	for _, tt := range tests {
		if err := tryMove(t, s, a, job.Placed, tt.give...); err == nil || errors.Is(err, store.ErrConflict) {
			t.Errorf("%s: Update(a, %v) = %v; want an error other than ErrConflict", tt.name, tt.give, err)
		}
		wantJob(t, s, a)
	}
}

// testPoolStatus: a pool's status is written at its version only, and
// reads back exactly.
func testPoolStatus(t *testing.T, s store.Jobs) {
	if _, err := s.PoolStatus(t.Context(), "gpu"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PoolStatus(none) = %v; want ErrNotFound", err)
	}
	st := store.PoolStatus{Pool: "gpu", Code: "InvalidSubnetID.NotFound", Message: "gone", Since: t0, NextTry: t0.Add(time.Minute), Tries: 1}
	if err := s.PutPoolStatus(t.Context(), &st); err != nil || st.Version != 1 {
		t.Fatalf("PutPoolStatus(new) = %v, version %d; want nil, 1", err, st.Version)
	}
	stale := st
	stale.Version = 0
	if err := s.PutPoolStatus(t.Context(), &stale); !errors.Is(err, store.ErrConflict) {
		t.Errorf("PutPoolStatus(at version 0 over 1) = %v; want ErrConflict", err)
	}
	st.Tries, st.Notified = 2, true
	if err := s.PutPoolStatus(t.Context(), &st); err != nil {
		t.Fatalf("PutPoolStatus = %v", err)
	}
	got, err := s.PoolStatus(t.Context(), "gpu")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("PoolStatus(gpu) (-want +got):\n%s", diff)
	}
}

// testQuotaRequest: a quota's request record is written at its version
// only (one pass asks), and reads back exactly, every field.
func testQuotaRequest(t *testing.T, s store.Jobs) {
	if _, err := s.QuotaRequest(t.Context(), "L-DB2E81BA"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("QuotaRequest(none) = %v; want ErrNotFound", err)
	}
	q := store.QuotaRequest{Code: "L-DB2E81BA", Status: store.QuotaAsking, Desired: 16, AskedAt: t0}
	if err := s.PutQuotaRequest(t.Context(), &q); err != nil || q.Version != 1 {
		t.Fatalf("PutQuotaRequest(new) = %v, version %d; want nil, 1", err, q.Version)
	}
	rival := store.QuotaRequest{Code: "L-DB2E81BA", Status: store.QuotaAsking, Desired: 32, AskedAt: t0}
	if err := s.PutQuotaRequest(t.Context(), &rival); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a second intent at version 0 = %v; want ErrConflict", err)
	}
	q.ID, q.CaseID, q.Status, q.Notified = "d3adb33f", "17000000001", "CASE_OPENED", "PENDING"
	q.CheckedAt, q.DecidedAt, q.NextTry, q.Message = t0.Add(time.Minute), t0.Add(2*time.Minute), t0.Add(time.Hour), "m"
	if err := s.PutQuotaRequest(t.Context(), &q); err != nil {
		t.Fatalf("PutQuotaRequest = %v", err)
	}
	got, err := s.QuotaRequest(t.Context(), "L-DB2E81BA")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(q, got); diff != "" {
		t.Errorf("QuotaRequest (-want +got):\n%s", diff)
	}
	p := store.QuotaRequest{Code: "L-417A185B", Status: "PENDING", Desired: 96, AskedAt: t0}
	if err := s.PutQuotaRequest(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
	all, err := s.QuotaRequests(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.QuotaRequest{p, q}, all); diff != "" {
		t.Errorf("QuotaRequests (-want +got):\n%s", diff)
	}
}
