package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// The contract every store.Jobs implementation keeps. TestMemory and
// TestDynamoDB run it; a behaviour that differs between them fails here.

var t0 = time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC)

// liveJobs is how many jobs the pagination test lists: with the DynamoDB
// store's test page limit of 10, that is 25 pages, while moto takes well
// under a second to write them.
const liveJobs = 250

// newStoreFunc makes an empty store of the implementation under test.
type newStoreFunc func(t *testing.T, opts ...store.Option) store.Jobs

func testJobs(t *testing.T, newStore newStoreFunc) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Jobs)
	}{
		{"Create", testCreate},
		{"NotFound", testNotFound},
		{"Update", testUpdate},
		{"Live", testLive},
		{"LivePagination", testLivePagination},
		{"RoundTrip", testRoundTrip},
		{"Copies", testCopies},
		{"Acquire", testAcquire},
		{"AcquireHeld", testAcquireHeld},
		{"Reacquire", testReacquire},
		{"Release", testRelease},
		{"BadOps", testBadOps},
		{"Stopping", testStopping},
		{"PutLease", testPutLease},
		{"DeleteLease", testDeleteLease},
		{"Leases", testLeases},
		{"AcquireRace", testAcquireRace},
		{"Spend", testSpend},
		{"Head", testHead},
		{"FreeLease", testFreeLease},
		{"Slots", testSlots},
		{"SlotTakenAgain", testSlotTakenAgain},
		{"SlotRace", testSlotRace},
		{"BadSlotOps", testBadSlotOps},
		{"PoolStatus", testPoolStatus},
		{"QuotaRequest", testQuotaRequest},
		{"Submitted", testSubmitted},
		{"SubmittedPages", testSubmittedPages},
		{"SubmittedErrors", testSubmittedErrors},
		{"LargestJob", testLargestJob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore(t)) })
	}
	// These make their own stores, with options.
	withOptions := []struct {
		name string
		run  func(t *testing.T, newStore newStoreFunc)
	}{
		{"Retention", testRetention},
		{"NoRetention", testNoRetention},
	}
	for _, tt := range withOptions {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newStore) })
	}
}

func newJob(id string, priority int, submitted time.Time) *job.Job {
	retries := 2
	return job.New(job.Spec{
		ID:         id,
		Command:    "python train.py",
		Instance:   job.Instance{Pool: "gpu"},
		MaxRuntime: job.Duration(time.Hour),
		Retries:    &retries,
		Priority:   priority,
	}, "gpu", submitted)
}

// mustCreate creates the jobs and returns them.
func mustCreate(t *testing.T, s store.Jobs, jobs ...*job.Job) []*job.Job {
	t.Helper()
	for _, j := range jobs {
		if err := s.Create(t.Context(), j); err != nil {
			t.Fatalf("Create(%s) = %v; want nil", j.ID, err)
		}
	}
	return jobs
}

// mustMove moves j to state to and writes it with ops.
func mustMove(t *testing.T, s store.Jobs, j *job.Job, to job.State, ops ...store.Op) {
	t.Helper()
	from := j.State
	if err := j.Move(to, "test", t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(t.Context(), j, from, ops...); err != nil {
		t.Fatalf("Update(%s %s→%s, %v) = %v; want nil", j.ID, from, to, ops, err)
	}
}

// tryMove moves a copy of j to state to and tries to write it with ops.
func tryMove(t *testing.T, s store.Jobs, j *job.Job, to job.State, ops ...store.Op) error {
	t.Helper()
	c := *j
	if err := c.Move(to, "test", t0); err != nil {
		t.Fatal(err)
	}
	err := s.Update(t.Context(), &c, j.State, ops...)
	if err == nil {
		*j = c
	}
	return err
}

func acquire(iid string) store.LeaseOp {
	return store.LeaseOp{InstanceID: iid, Pool: "gpu", Acquire: true}
}

func release(iid string, at time.Time) store.LeaseOp {
	return store.LeaseOp{InstanceID: iid, At: at}
}

// wantJob fails the test unless the stored job equals want.
func wantJob(t *testing.T, s store.Jobs, want *job.Job) {
	t.Helper()
	got, err := s.Job(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("Job(%s) = %v; want nil", want.ID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Job(%s) mismatch (-want +got):\n%s", want.ID, diff)
	}
}

// wantLease fails the test unless the stored lease equals want.
func wantLease(t *testing.T, s store.Jobs, want store.Lease) {
	t.Helper()
	got, err := s.Lease(t.Context(), want.InstanceID)
	if err != nil {
		t.Fatalf("Lease(%s) = %v; want nil", want.InstanceID, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Lease(%s) mismatch (-want +got):\n%s", want.InstanceID, diff)
	}
}

func ids(jobs []*job.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

func testCreate(t *testing.T, s store.Jobs) {
	j := mustCreate(t, s, newJob("a", 5, t0))[0]
	wantJob(t, s, j)

	dup := newJob("a", 9, t0.Add(time.Hour))
	dup.Reason = "duplicate"
	if err := s.Create(t.Context(), dup); !errors.Is(err, store.ErrExists) {
		t.Errorf("Create(duplicate a) = %v; want %v", err, store.ErrExists)
	}
	wantJob(t, s, j)
}

func testNotFound(t *testing.T, s store.Jobs) {
	if _, err := s.Job(t.Context(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Job(nope) = %v; want %v", err, store.ErrNotFound)
	}
	if _, err := s.Lease(t.Context(), "i-nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lease(i-nope) = %v; want %v", err, store.ErrNotFound)
	}
}

func testUpdate(t *testing.T, s store.Jobs) {
	tests := []struct {
		name    string
		missing bool // the job was never created
		from    job.State
		version int64
		want    error
	}{
		{name: "current", from: job.Queued, version: 0, want: nil},
		{name: "stale version", from: job.Queued, version: 3, want: store.ErrConflict},
		{name: "older version", from: job.Queued, version: -1, want: store.ErrConflict},
		{name: "wrong state", from: job.Placed, version: 0, want: store.ErrConflict},
		{name: "missing", missing: true, from: job.Queued, version: 0, want: store.ErrConflict},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := newJob(fmt.Sprintf("job-%d", i), 0, t0)
			if !tt.missing {
				mustCreate(t, s, orig)
			}
			j := *orig
			j.Version = tt.version
			j.Reason = "updated"
			err := s.Update(t.Context(), &j, tt.from)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Update(%s from %s v%d) = %v; want %v", j.ID, tt.from, tt.version, err, tt.want)
			}
			switch {
			case tt.missing:
				if _, err := s.Job(t.Context(), j.ID); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("Job(%s) after a lost Update = %v; want %v", j.ID, err, store.ErrNotFound)
				}
			case err != nil:
				if j.Version != tt.version {
					t.Errorf("j.Version after a lost Update = %d; want %d", j.Version, tt.version)
				}
				wantJob(t, s, orig)
			default:
				if j.Version != tt.version+1 {
					t.Errorf("j.Version after Update = %d; want %d", j.Version, tt.version+1)
				}
				wantJob(t, s, &j)
			}
		})
	}

	t.Run("chain", func(t *testing.T) {
		j := mustCreate(t, s, newJob("chain", 0, t0))[0]
		mustMove(t, s, j, job.Placed)
		mustMove(t, s, j, job.Running)
		mustMove(t, s, j, job.Succeeded)
		if j.Version != 3 {
			t.Errorf("Version after three updates = %d; want 3", j.Version)
		}
		wantJob(t, s, j)
	})
}

func testLive(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	jobs := mustCreate(t, s,
		newJob("old-low", 0, t0),
		newJob("new-high", 10, t0.Add(2*time.Hour)),
		newJob("nano", 0, t0.Add(time.Nanosecond)), // RFC3339Nano text would sort it before old-low
		newJob("same-b", 0, t0.Add(30*time.Minute)),
		newJob("same-a", 0, t0.Add(30*time.Minute)),
		newJob("old-high", 10, t0.Add(time.Hour)),
		newJob("top", 999, t0.Add(3*time.Hour)),
		newJob("gone", 999, t0),
	)
	byID := map[string]*job.Job{}
	for _, j := range jobs {
		byID[j.ID] = j
	}
	mustMove(t, s, byID["new-high"], job.Placed)
	mustMove(t, s, byID["top"], job.Placed)
	mustMove(t, s, byID["top"], job.Running)
	mustMove(t, s, byID["gone"], job.Cancelled)

	tests := []struct {
		give job.State
		want []string
	}{
		{give: job.Queued, want: []string{"old-high", "old-low", "nano", "same-a", "same-b"}},
		{give: job.Placed, want: []string{"new-high"}},
		{give: job.Running, want: []string{"top"}},
	}
	for _, tt := range tests {
		got, err := s.Live(ctx, tt.give)
		if err != nil {
			t.Fatalf("Live(%s) = %v; want nil", tt.give, err)
		}
		if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
			t.Errorf("Live(%s) ids mismatch (-want +got):\n%s", tt.give, diff)
		}
		for _, j := range got {
			if diff := cmp.Diff(byID[j.ID], j); diff != "" {
				t.Errorf("Live(%s) job %s mismatch (-want +got):\n%s", tt.give, j.ID, diff)
			}
		}
	}

	if got, err := s.Live(ctx, job.Cancelled); err == nil {
		t.Errorf("Live(%s) = %v, nil; want an error", job.Cancelled, ids(got))
	}
}

func testLivePagination(t *testing.T, s store.Jobs) {
	var want []string
	for i := range liveJobs {
		// Priorities and times interleave, so that order comes from the key.
		j := newJob(fmt.Sprintf("job-%03d", i), i%3, t0.Add(time.Duration(liveJobs-i)*time.Second))
		mustCreate(t, s, j)
	}
	for p := 2; p >= 0; p-- {
		for i := liveJobs - 1; i >= 0; i-- {
			if i%3 == p {
				want = append(want, fmt.Sprintf("job-%03d", i))
			}
		}
	}
	got, err := s.Live(t.Context(), job.Queued)
	if err != nil {
		t.Fatalf("Live(QUEUED) = %v; want nil", err)
	}
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Errorf("Live(QUEUED) ids mismatch (-want +got):\n%s", diff)
	}
}

// fullJob returns a job with every field set, for the round-trip test.
func fullJob() *job.Job {
	retries, exit := 0, 0 // pointers to zero must stay pointers
	tz := time.FixedZone("CET", 3600)
	at := func(ns int) time.Time { return t0.Add(time.Duration(ns)).In(tz) }
	return &job.Job{
		ID:   "full",
		Name: "résumé ✓",
		Spec: job.Spec{
			ID:      "full",
			Name:    "résumé ✓",
			Command: "python train.py --lr '1e-3' \"$X\"\nnext line",
			Workdir: "/home/ubuntu/w",
			Setup:   ". /opt/pytorch/bin/activate",
			Env:     job.Env{"A": {Value: "1"}, "EMPTY": {}, "QUOTE": {Value: `it's "x"`}, "KEY": {SSM: "/nightshift/secrets/key"}},
			Instance: job.Instance{
				Pool:     "gpu",
				Types:    []string{"g6.xlarge", "g5.xlarge", "g4dn.xlarge"},
				Market:   job.SpotThenOnDemand,
				VolumeGB: 200,
				AMI:      "resolve:ssm:/aws/service/deeplearning/ami",
			},
			MaxRuntime:   job.Duration(90*time.Minute + time.Nanosecond),
			Inputs:       []job.Sync{{S3: "s3://b/in", Path: "data"}, {S3: "s3://b/cfg", Path: "cfg"}},
			Outputs:      []job.Sync{{S3: "s3://b/out", Path: "out"}},
			Retries:      &retries,
			Priority:     7,
			Notify:       "arn:aws:sns:us-east-1:123456789012:nightshift",
			ScheduledAt:  "2026-11-25T02:00:00Z",
			OnStall:      job.StallCancel,
			StallTimeout: job.Duration(45*time.Minute + 1),
			MaxWait:      job.Duration(6*time.Hour + 3),
			Notebook:     &job.Notebook{Name: "alice", Idle: job.Duration(5*time.Minute + 1), IdleConnected: job.Duration(time.Hour + 2)},
			Checkpoint:   &job.Checkpoint{Path: "runs/ckpt ✓", S3: "s3://ckpt-bucket/résumé/run-1", Every: job.Duration(10*time.Minute + 3)},
		},
		State:        job.Running,
		Version:      41,
		Reason:       "running since 02:05",
		Attempt:      2,
		Resumes:      1,
		Pool:         "gpu",
		Priority:     7,
		SubmittedAt:  at(123456789),
		InstanceID:   "i-0123456789abcdef0",
		InstanceType: "g5.xlarge",
		Market:       job.Spot,
		LaunchTry:    3,
		DispatchedAt: at(2e9),
		CommandID:    "c0ffee00-0000-4000-8000-000000000000",
		LogStream:    "full/2",
		StalledAt:    at(3e9 + 7),

		CancelRequestedAt: at(3e9 + 11),
		CancelReason:      "wrong learning rate",
		StopCommandID:     "5709c0de-0000-4000-8000-000000000000",
		StopSentAt:        at(3e9 + 13),
		ExitCode:          &exit,
		PlacedAt:          at(1e9 + 1),
		StartedAt:         at(3e9),
		EndedAt:           at(4e9),
		UpdatedAt:         at(5e9),
		Cost:              1.2345678901234567,
		Source:            "0b1c2d3e-msg",
		History: []job.Transition{
			// Every field of an entry set, and one with only what an
			// entry always has: zero fields must stay zero.
			{
				At: at(2e9 + 5), From: job.Placed, To: job.Running, Reason: "running on i-0123456789abcdef0 ✓",
				Attempt: 2, InstanceID: "i-0123456789abcdef0", InstanceType: "g5.xlarge",
				CommandID: "c0ffee00-0000-4000-8000-000000000000", LogStream: "full/2",
			},
			{To: job.Queued},
		},
		HistoryDropped: 3,
	}
}

// zeroFields lists the fields of v (a struct) left at their zero value,
// descending into nested structs other than time.Time.
func zeroFields(v reflect.Value, path string) []string {
	var zero []string
	for i := range v.NumField() {
		f, name := v.Field(i), path+v.Type().Field(i).Name
		switch {
		case f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[time.Time]():
			zero = append(zero, zeroFields(f, name+".")...)
		case f.IsZero():
			zero = append(zero, name)
		}
	}
	return zero
}

func TestFullJobSetsEveryField(t *testing.T) {
	// A field added to job.Job, job.Spec or job.Transition must be added
	// to fullJob, and so to the round-trip test, and so to the item encoding.
	full := fullJob()
	if zero := zeroFields(reflect.ValueOf(*full), ""); len(zero) > 0 {
		t.Errorf("fullJob() leaves %v zero; set them so the round-trip test covers them", zero)
	}
	if zero := zeroFields(reflect.ValueOf(full.History[0]), "History[0]."); len(zero) > 0 {
		t.Errorf("fullJob() leaves %v zero; set them so the round-trip test covers them", zero)
	}
}

func testRoundTrip(t *testing.T, s store.Jobs) {
	tests := []struct {
		name string
		give *job.Job
	}{
		{name: "every field", give: fullJob()},
		{name: "zero values", give: &job.Job{ID: "zero", State: job.Queued}},
		{name: "empty collections", give: &job.Job{ID: "empty", State: job.Queued, History: []job.Transition{}, Spec: job.Spec{
			Env:      job.Env{},
			Instance: job.Instance{Types: []string{}},
			Inputs:   []job.Sync{},
			Outputs:  []job.Sync{},
		}}},
		{name: "priority beyond range", give: &job.Job{ID: "neg", State: job.Queued, Priority: -5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			j := tt.give
			mustCreate(t, s, j)
			wantJob(t, s, j)
			from := j.State
			j.Reason = "updated"
			if err := s.Update(ctx, j, from); err != nil {
				t.Fatalf("Update(%s) = %v; want nil", j.ID, err)
			}
			wantJob(t, s, j)
			live, err := s.Live(ctx, j.State)
			if err != nil || len(live) != 1 {
				t.Fatalf("Live(%s) = %v, %v; want [%s], nil", j.State, ids(live), err, j.ID)
			}
			if diff := cmp.Diff(j, live[0]); diff != "" {
				t.Errorf("Live(%s)[0] mismatch (-want +got):\n%s", j.State, diff)
			}
			// Leave the index, so that the next case's Live sees only its job.
			j.State = job.Succeeded
			if err := s.Update(ctx, j, from); err != nil {
				t.Fatalf("Update(%s) = %v; want nil", j.ID, err)
			}
			wantJob(t, s, j)
		})
	}
}

// testLargestJob writes and reads the largest record nightshift can make:
// DynamoDB (and moto) refuse an item past 400 KB.
func testLargestJob(t *testing.T, s store.Jobs) {
	j := store.LargestJob()
	mustCreate(t, s, j)
	wantJob(t, s, j)
	j.Reason = "updated"
	if err := s.Update(t.Context(), j, j.State); err != nil {
		t.Fatalf("Update(largest job) = %v; want nil", err)
	}
	wantJob(t, s, j)
}

func testCopies(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	j := fullJob()
	j.State = job.Queued
	want := fullJob()
	want.State = job.Queued
	mustCreate(t, s, j)

	// Mutating what was written, or what was read, changes nothing stored.
	j.Spec.Env["A"] = job.EnvValue{Value: "changed"}
	j.Spec.Instance.Types[0] = "changed"
	*j.Spec.Retries = 9
	*j.ExitCode = 9
	j.History[0].Reason = "changed"
	got, err := s.Job(ctx, "full")
	if err != nil {
		t.Fatalf("Job(full) = %v; want nil", err)
	}
	got.Spec.Env["A"] = job.EnvValue{Value: "changed"}
	got.Spec.Inputs[0].Path = "changed"
	*got.Spec.Retries = 9
	got.History[1].Attempt = 9
	live, err := s.Live(ctx, job.Queued)
	if err != nil {
		t.Fatalf("Live(QUEUED) = %v; want nil", err)
	}
	live[0].Spec.Env["A"] = job.EnvValue{Value: "changed"}
	wantJob(t, s, want)
}

func testAcquire(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	jobs := mustCreate(t, s, newJob("a", 0, t0), newJob("b", 0, t0))
	a, b := jobs[0], jobs[1]

	// An absent lease is created by the acquire.
	mustMove(t, s, a, job.Placed, acquire("i-1"))
	wantJob(t, s, a)
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "a", Attempt: 1, Version: 1})

	// A free lease loses its idle time; its pool is kept when the op names none.
	if err := s.PutLease(ctx, store.Lease{InstanceID: "i-2", Pool: "big", IdleSince: t0}); err != nil {
		t.Fatalf("PutLease(i-2) = %v; want nil", err)
	}
	mustMove(t, s, b, job.Placed, store.LeaseOp{InstanceID: "i-2", Acquire: true})
	wantLease(t, s, store.Lease{InstanceID: "i-2", Pool: "big", JobID: "b", Attempt: 1, Version: 2})
}

func testAcquireHeld(t *testing.T, s store.Jobs) {
	jobs := mustCreate(t, s, newJob("a", 0, t0), newJob("b", 0, t0))
	a, b := jobs[0], jobs[1]
	mustMove(t, s, a, job.Placed, acquire("i-1"))
	if err := s.PutLease(t.Context(), store.Lease{InstanceID: "i-2", Pool: "gpu"}); err != nil {
		t.Fatalf("PutLease(i-2) = %v; want nil", err)
	}
	origB := *b

	tests := []struct {
		name string
		give []store.Op
	}{
		{name: "held", give: []store.Op{acquire("i-1")}},
		// The free lease named first must not be taken when the second is lost.
		{name: "free then held", give: []store.Op{acquire("i-2"), acquire("i-1")}},
		{name: "held then free", give: []store.Op{acquire("i-1"), acquire("i-2")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tryMove(t, s, b, job.Placed, tt.give...); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("Update(b, %v) = %v; want %v", tt.give, err, store.ErrConflict)
			}
			wantJob(t, s, &origB)
			wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "a", Attempt: 1, Version: 1})
			wantLease(t, s, store.Lease{InstanceID: "i-2", Pool: "gpu", Version: 1})
		})
	}
}

func testReacquire(t *testing.T, s store.Jobs) {
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	mustMove(t, s, a, job.Placed, acquire("i-1"))

	// The same job and attempt may write the acquire again (a retried step).
	mustMove(t, s, a, job.Running, acquire("i-1"))
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "a", Attempt: 1, Version: 2})

	// Another attempt of the same job may not: the lease is the old attempt's.
	next := *a
	next.Attempt = 2
	if err := tryMove(t, s, &next, job.Queued, acquire("i-1")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(a attempt 2, acquire i-1) = %v; want %v", err, store.ErrConflict)
	}
	wantJob(t, s, a)
}

func testRelease(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	jobs := mustCreate(t, s, newJob("a", 0, t0), newJob("b", 0, t0), newJob("c", 0, t0))
	a, b, c := jobs[0], jobs[1], jobs[2]
	mustMove(t, s, a, job.Placed, acquire("i-1"))
	mustMove(t, s, a, job.Running)

	t1 := t0.Add(time.Hour + time.Millisecond)
	mustMove(t, s, a, job.Succeeded, release("i-1", t1))
	wantJob(t, s, a)
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t1, Version: 2})
	if live, err := s.Live(ctx, job.Running); err != nil || len(live) != 0 {
		t.Errorf("Live(RUNNING) = %v, %v; want [], nil", ids(live), err)
	}

	// The freed lease can be taken again.
	mustMove(t, s, b, job.Placed, acquire("i-1"))
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "b", Attempt: 1, Version: 3})

	// A release by a job that does not hold the lease loses the whole write.
	tests := []struct {
		name string
		give store.LeaseOp
	}{
		{name: "held by another", give: release("i-1", t1)},
		{name: "absent", give: release("i-9", t1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := *c
			if err := tryMove(t, s, c, job.Cancelled, tt.give); !errors.Is(err, store.ErrConflict) {
				t.Errorf("Update(c, %v) = %v; want %v", tt.give, err, store.ErrConflict)
			}
			wantJob(t, s, &orig)
			wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "b", Attempt: 1, Version: 3})
		})
	}

	// Requeue after a lost instance: release the old lease and take a new
	// one in one write.
	mustMove(t, s, b, job.Queued, release("i-1", t1), acquire("i-2"))
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t1, Version: 4})
	wantLease(t, s, store.Lease{InstanceID: "i-2", Pool: "gpu", JobID: "b", Attempt: 1, Version: 1})
}

func testBadOps(t *testing.T, s store.Jobs) {
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	tests := []struct {
		name string
		give []store.Op
	}{
		{name: "no instance", give: []store.Op{store.LeaseOp{Acquire: true}}},
		{name: "same lease twice", give: []store.Op{acquire("i-1"), release("i-1", t0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tryMove(t, s, a, job.Placed, tt.give...)
			if err == nil || errors.Is(err, store.ErrConflict) {
				t.Errorf("Update(a, %v) = %v; want an error other than %v", tt.give, err, store.ErrConflict)
			}
			wantJob(t, s, a)
		})
	}
}

func testStopping(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	if err := s.PutLease(ctx, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0}); err != nil {
		t.Fatalf("PutLease(i-1) = %v; want nil", err)
	}
	l, err := s.Lease(ctx, "i-1")
	if err != nil {
		t.Fatalf("Lease(i-1) = %v; want nil", err)
	}
	t1 := t0.Add(time.Hour)
	if err := s.MarkStopping(ctx, l, t1); err != nil {
		t.Fatalf("MarkStopping(%v) = %v; want nil", l, err)
	}
	stopping := store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0, StoppingAt: t1, Version: 2}
	wantLease(t, s, stopping)

	// A stale lease, or a lease being stopped, cannot be marked or taken.
	if err := s.MarkStopping(ctx, l, t1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkStopping(stale %v) = %v; want %v", l, err, store.ErrConflict)
	}
	if err := tryMove(t, s, a, job.Placed, acquire("i-1")); !errors.Is(err, store.ErrConflict) {
		t.Errorf("Update(a, acquire stopping i-1) = %v; want %v", err, store.ErrConflict)
	}
	wantJob(t, s, a)
	wantLease(t, s, stopping)

	if err := s.ClearStopping(ctx, "i-1"); err != nil {
		t.Fatalf("ClearStopping(i-1) = %v; want nil", err)
	}
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0, Version: 3})
	mustMove(t, s, a, job.Placed, acquire("i-1"))

	// A held lease cannot be marked, even at its current version.
	held, err := s.Lease(ctx, "i-1")
	if err != nil {
		t.Fatalf("Lease(i-1) = %v; want nil", err)
	}
	if err := s.MarkStopping(ctx, held, t1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkStopping(held %v) = %v; want %v", held, err, store.ErrConflict)
	}
	wantLease(t, s, held)

	gone := store.Lease{InstanceID: "i-gone", Version: 1}
	if err := s.MarkStopping(ctx, gone, t1); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MarkStopping(%v) = %v; want %v", gone, err, store.ErrConflict)
	}
	if err := s.ClearStopping(ctx, "i-gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ClearStopping(i-gone) = %v; want %v", err, store.ErrNotFound)
	}
	if _, err := s.Lease(ctx, "i-gone"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lease(i-gone) = %v; want %v", err, store.ErrNotFound)
	}
}

func testPutLease(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	tests := []struct {
		name    string
		give    store.Lease
		wantErr bool
		want    store.Lease
	}{
		{
			name: "new",
			give: store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0, Version: 7},
			want: store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0, Version: 1},
		},
		{
			name: "exists",
			give: store.Lease{InstanceID: "i-1", Pool: "other"},
			want: store.Lease{InstanceID: "i-1", Pool: "gpu", IdleSince: t0, Version: 1},
		},
		{
			name:    "held",
			give:    store.Lease{InstanceID: "i-2", Pool: "gpu", JobID: "a", Attempt: 1},
			wantErr: true,
		},
		{name: "no instance", give: store.Lease{Pool: "gpu"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.PutLease(ctx, tt.give)
			if (err != nil) != tt.wantErr {
				t.Fatalf("PutLease(%v) = %v; want error %v", tt.give, err, tt.wantErr)
			}
			if tt.wantErr {
				if tt.give.InstanceID != "" {
					if _, err := s.Lease(ctx, tt.give.InstanceID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("Lease(%s) = %v; want %v", tt.give.InstanceID, err, store.ErrNotFound)
					}
				}
				return
			}
			wantLease(t, s, tt.want)
		})
	}
}

func testDeleteLease(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	mustMove(t, s, a, job.Placed, acquire("i-1"))
	if err := s.PutLease(ctx, store.Lease{InstanceID: "i-2", Pool: "gpu"}); err != nil {
		t.Fatalf("PutLease(i-2) = %v; want nil", err)
	}

	tests := []struct {
		give string
		want error
	}{
		{give: "i-1", want: store.ErrConflict}, // held
		{give: "i-2", want: nil},
		{give: "i-2", want: nil}, // already gone
		{give: "i-9", want: nil}, // never existed
	}
	for _, tt := range tests {
		if err := s.DeleteLease(ctx, tt.give); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("DeleteLease(%s) = %v; want %v", tt.give, err, tt.want)
		}
	}
	wantLease(t, s, store.Lease{InstanceID: "i-1", Pool: "gpu", JobID: "a", Attempt: 1, Version: 1})
	if _, err := s.Lease(ctx, "i-2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Lease(i-2) after DeleteLease = %v; want %v", err, store.ErrNotFound)
	}
}

func testLeases(t *testing.T, s store.Jobs) {
	ctx := t.Context()
	if got, err := s.Leases(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Leases() on an empty store = %v, %v; want [], nil", got, err)
	}
	const n = 25 // several pages at the DynamoDB test page limit
	var want []store.Lease
	for i := n - 1; i >= 0; i-- {
		l := store.Lease{InstanceID: fmt.Sprintf("i-%03d", i), Pool: "gpu", IdleSince: t0.Add(time.Duration(i) * time.Minute)}
		if err := s.PutLease(ctx, l); err != nil {
			t.Fatalf("PutLease(%v) = %v; want nil", l, err)
		}
	}
	for i := range n {
		want = append(want, store.Lease{InstanceID: fmt.Sprintf("i-%03d", i), Pool: "gpu", IdleSince: t0.Add(time.Duration(i) * time.Minute), Version: 1})
	}
	a := mustCreate(t, s, newJob("a", 0, t0))[0]
	mustMove(t, s, a, job.Placed, acquire("i-007"))
	want[7] = store.Lease{InstanceID: "i-007", Pool: "gpu", JobID: "a", Attempt: 1, Version: 2}

	got, err := s.Leases(ctx)
	if err != nil {
		t.Fatalf("Leases() = %v; want nil", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Leases() mismatch (-want +got):\n%s", diff)
	}
}

// raceRounds is how many times two jobs race for one lease; a few rounds
// catch a store that is not atomic without slowing the suite.
const raceRounds = 5

func testAcquireRace(t *testing.T, s store.Jobs) {
	for round := range raceRounds {
		iid := fmt.Sprintf("i-%d", round)
		jobs := mustCreate(t, s, newJob(fmt.Sprintf("a-%d", round), 0, t0), newJob(fmt.Sprintf("b-%d", round), 0, t0))
		orig := []job.Job{*jobs[0], *jobs[1]}
		errs := make([]error, len(jobs))
		var wg sync.WaitGroup
		for i, j := range jobs {
			wg.Go(func() { errs[i] = tryMove(t, s, j, job.Placed, acquire(iid)) })
		}
		wg.Wait()

		var winners []string
		for i, err := range errs {
			switch {
			case err == nil:
				winners = append(winners, jobs[i].ID)
				wantJob(t, s, jobs[i])
			case errors.Is(err, store.ErrConflict):
				wantJob(t, s, &orig[i])
			default:
				t.Errorf("Update(%s, acquire %s) = %v; want nil or %v", jobs[i].ID, iid, err, store.ErrConflict)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("round %d: winners %v; want exactly one", round, winners)
		}
		wantLease(t, s, store.Lease{InstanceID: iid, Pool: "gpu", JobID: winners[0], Attempt: 1, Version: 1})
	}
}
