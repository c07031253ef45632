package scheduler

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
	"github.com/nightshift-dev/nightshift/internal/store"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// inst is a managed instance of pool "gpu", type g5.xlarge, started at t0.
func inst(id, state string) fleet.Instance {
	return fleet.Instance{ID: id, Type: "g5.xlarge", State: state, Pool: "gpu", Managed: true, LaunchTime: t0, Tags: map[string]string{}}
}

// newWorld is a snapshot at now of the given instances, each with a free
// lease, none online.
func newWorld(now time.Time, insts ...fleet.Instance) *world {
	w := &world{
		now: now, jobs: map[job.State][]*job.Job{}, leases: map[string]store.Lease{}, instances: map[string]fleet.Instance{},
		online: map[string]bool{}, taken: map[string]bool{}, blocked: map[string]error{}, launching: map[string]int{},
	}
	for _, i := range insts {
		w.instances[i.ID] = i
		w.leases[i.ID] = store.Lease{InstanceID: i.ID, Pool: i.Pool, IdleSince: t0}
	}
	return w
}

func gpuScheduler(maxInstances int, keepWarm Pool) *Scheduler {
	p := keepWarm
	p.Types, p.MaxInstances = []string{"g5.xlarge", "g4dn.xlarge"}, maxInstances
	return &Scheduler{cfg: Config{Pools: map[string]Pool{"gpu": p, "big": {Types: []string{"p4d.24xlarge"}, MaxInstances: 1}}}, log: slog.New(slog.DiscardHandler)}
}

func TestFree(t *testing.T) {
	now := t0.Add(5 * time.Minute)
	held := func(w *world, id string) {
		l := w.leases[id]
		l.JobID, l.Attempt = "other", 1
		w.leases[id] = l
	}
	tests := []struct {
		name  string
		give  func() *world
		types []string
		want  string // "" for none
	}{
		{
			name: "running and online first",
			give: func() *world {
				w := newWorld(now, inst("i-stopped", "stopped"), inst("i-pending", "pending"), inst("i-running", "running"), inst("i-online", "running"))
				w.online["i-online"] = true
				return w
			},
			want: "i-online",
		},
		{
			name: "then running, pending, stopped",
			give: func() *world {
				return newWorld(now, inst("i-stopped", "stopped"), inst("i-pending", "pending"), inst("i-running", "running"))
			},
			want: "i-running",
		},
		{
			name: "pending before stopped",
			give: func() *world { return newWorld(now, inst("i-b-stopped", "stopped"), inst("i-c-pending", "pending")) },
			want: "i-c-pending",
		},
		{
			name: "equal rank: the first id",
			give: func() *world { return newWorld(now, inst("i-2", "stopped"), inst("i-1", "stopped")) },
			want: "i-1",
		},
		{
			name: "a held lease is not free",
			give: func() *world { w := newWorld(now, inst("i-1", "running")); held(w, "i-1"); return w },
		},
		{
			name: "no lease yet is not free",
			give: func() *world { w := newWorld(now, inst("i-1", "running")); delete(w.leases, "i-1"); return w },
		},
		{
			name: "a stop decided is not free",
			give: func() *world {
				w := newWorld(now, inst("i-1", "running"))
				l := w.leases["i-1"]
				l.StoppingAt = now
				w.leases["i-1"] = l
				return w
			},
		},
		{
			name: "taken in this pass is not free",
			give: func() *world { w := newWorld(now, inst("i-1", "running")); w.taken["i-1"] = true; return w },
		},
		{
			name: "stopping cannot be started yet",
			give: func() *world { return newWorld(now, inst("i-1", "stopping")) },
		},
		{
			name: "another pool's instance",
			give: func() *world {
				i := inst("i-1", "running")
				i.Pool = "big"
				return newWorld(now, i)
			},
		},
		{
			name:  "a type the job does not run on",
			give:  func() *world { return newWorld(now, inst("i-1", "running")) },
			types: []string{"g4dn.xlarge"},
		},
		{
			name: "running without an agent past the agent timeout is broken",
			give: func() *world { return newWorld(t0.Add(AgentTimeout+time.Second), inst("i-1", "running")) },
		},
		{
			name: "running without an agent within the agent timeout",
			give: func() *world { return newWorld(t0.Add(AgentTimeout), inst("i-1", "running")) },
			want: "i-1",
		},
	}
	s := gpuScheduler(2, Pool{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			types := tt.types
			if types == nil {
				types = []string{"g5.xlarge"}
			}
			got, ok := s.free(tt.give(), "gpu", types)
			if tt.want == "" && ok || tt.want != "" && got.ID != tt.want {
				t.Errorf("free() = %q, %v; want %q", got.ID, ok, tt.want)
			}
		})
	}
}

func TestCount(t *testing.T) {
	placed := func(id, instance string) *job.Job {
		return &job.Job{ID: id, Pool: "gpu", State: job.Placed, InstanceID: instance}
	}
	tests := []struct {
		name string
		give func() *world
		want int
	}{
		{name: "none", give: func() *world { return newWorld(t0) }, want: 0},
		{
			name: "instances of the pool, whatever their state",
			give: func() *world {
				other := inst("i-big", "running")
				other.Pool = "big"
				return newWorld(t0, inst("i-1", "running"), inst("i-2", "stopped"), other)
			},
			want: 2,
		},
		{
			name: "a launch intended, no instance yet",
			give: func() *world { w := newWorld(t0); w.jobs[job.Placed] = []*job.Job{placed("a", "")}; return w },
			want: 1,
		},
		{
			name: "a job on an instance DescribeInstances does not list yet",
			give: func() *world { w := newWorld(t0); w.jobs[job.Placed] = []*job.Job{placed("a", "i-new")}; return w },
			want: 1,
		},
		{
			name: "a job on a listed instance counts once",
			give: func() *world {
				w := newWorld(t0, inst("i-1", "running"))
				w.jobs[job.Running] = []*job.Job{{ID: "a", Pool: "gpu", State: job.Running, InstanceID: "i-1"}}
				return w
			},
			want: 1,
		},
		{
			name: "launches this pass started",
			give: func() *world { w := newWorld(t0, inst("i-1", "running")); w.launching["gpu"] = 2; return w },
			want: 3,
		},
		{
			name: "another pool's jobs",
			give: func() *world {
				w := newWorld(t0)
				j := placed("a", "")
				j.Pool = "big"
				w.jobs[job.Placed] = []*job.Job{j}
				return w
			},
			want: 0,
		},
	}
	s := gpuScheduler(2, Pool{})
	for _, tt := range tests {
		if got := s.count(tt.give(), "gpu"); got != tt.want {
			t.Errorf("%s: count() = %d; want %d", tt.name, got, tt.want)
		}
	}
}

func TestKeepWarm(t *testing.T) {
	ready := func(secs string) fleet.Instance {
		i := inst("i-1", "running")
		if secs != "" {
			i.Tags[fleet.TagReady] = secs
		}
		return i
	}
	tests := []struct {
		name string
		pool Pool
		give fleet.Instance
		want time.Duration
	}{
		{name: "the pool's window", pool: Pool{KeepWarm: job.Duration(7 * time.Minute)}, give: ready("90"), want: 7 * time.Minute},
		{name: "no window: the default", pool: Pool{}, give: ready(""), want: DefaultKeepWarm},
		{name: "auto: the measured start-to-ready time", pool: Pool{KeepWarmAuto: true}, give: ready("150"), want: 150 * time.Second},
		{name: "auto, not measured yet", pool: Pool{KeepWarmAuto: true}, give: ready(""), want: DefaultKeepWarm},
		{name: "auto, a bad tag", pool: Pool{KeepWarmAuto: true}, give: ready("soon"), want: DefaultKeepWarm},
		{name: "auto, zero", pool: Pool{KeepWarmAuto: true}, give: ready("0"), want: DefaultKeepWarm},
		{name: "auto, at least a minute", pool: Pool{KeepWarmAuto: true}, give: ready("20"), want: MinAutoKeepWarm},
		{name: "auto, at most half an hour", pool: Pool{KeepWarmAuto: true}, give: ready(strconv.Itoa(int(2 * time.Hour / time.Second))), want: MaxAutoKeepWarm},
	}
	for _, tt := range tests {
		if got := gpuScheduler(2, tt.pool).keepWarm(tt.give); got != tt.want {
			t.Errorf("%s: keepWarm(%v) = %v; want %v", tt.name, tt.give.Tags, got, tt.want)
		}
	}
}

func TestPlaceable(t *testing.T) {
	tests := []struct {
		name string
		cap  int
		give func() *world
		want int
	}{
		{name: "empty: room under both caps", cap: 3, give: func() *world { return newWorld(t0) }, want: 3 + 1},
		{
			name: "free instances plus the room left",
			cap:  3,
			give: func() *world { return newWorld(t0, inst("i-1", "running"), inst("i-2", "stopped")) },
			want: 2 + 1 + 1,
		},
		{
			name: "a held instance uses room and is not free",
			cap:  2,
			give: func() *world {
				w := newWorld(t0, inst("i-1", "running"), inst("i-2", "running"))
				l := w.leases["i-1"]
				l.JobID = "a"
				w.leases["i-1"] = l
				return w
			},
			want: 1 + 0 + 1,
		},
		{name: "a pool over its cap adds nothing", cap: 1, give: func() *world { return newWorld(t0, inst("i-1", "running"), inst("i-2", "running")) }, want: 2 + 0 + 1},
		{name: "a paused pool", cap: 0, give: func() *world { return newWorld(t0) }, want: 0 + 1},
	}
	for _, tt := range tests {
		if got := gpuScheduler(tt.cap, Pool{}).placeable(tt.give()); got != tt.want {
			t.Errorf("%s: placeable() = %d; want %d", tt.name, got, tt.want)
		}
	}
}

// stubFleet lists fixed instances and launches new ones in order.
type stubFleet struct {
	insts    []fleet.Instance
	launched []string // job ids
}

func (f *stubFleet) List(context.Context) ([]fleet.Instance, error) {
	return slices.Clone(f.insts), nil
}

func (f *stubFleet) Launch(_ context.Context, r fleet.LaunchRequest) (fleet.Instance, error) {
	f.launched = append(f.launched, r.Job)
	i := inst("i-new-"+r.Job, "pending")
	i.Job, i.Attempt = r.Job, r.Attempt
	return i, nil
}
func (f *stubFleet) Start(context.Context, fleet.Instance) error               { return nil }
func (f *stubFleet) Stop(context.Context, fleet.Instance) error                { return nil }
func (f *stubFleet) Tag(context.Context, fleet.Instance, string, string) error { return nil }

// stubRunner has every running instance online and never gets as far as a command.
type stubRunner struct{ sent []string }

func (r *stubRunner) Online(_ context.Context, ids []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m, nil
}
func (r *stubRunner) Find(context.Context, *job.Job, string) (string, error) { return "", nil }
func (r *stubRunner) Send(_ context.Context, j *job.Job, _ string, _ time.Duration) (string, error) {
	r.sent = append(r.sent, j.ID)
	return "cmd-" + j.ID, nil
}
func (r *stubRunner) Result(context.Context, string, string) (runner.Result, error) {
	return runner.Result{Status: runner.Pending}, nil
}
func (r *stubRunner) Cancel(context.Context, string, string) error           { return nil }
func (r *stubRunner) Stop(context.Context, *job.Job, string) (string, error) { return "", nil }
func (r *stubRunner) SyncNow(context.Context, *job.Job, string) (string, error) {
	return "", nil
}

// TestPlacementOrder: one Reconcile gives the free instance to the highest
// priority, then the oldest job, launches for the next ones up to the cap,
// and leaves the rest queued with the reason.
func TestPlacementOrder(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	jobs := []struct {
		id       string
		priority int
		age      time.Duration
	}{
		{"low-old", 0, 3 * time.Hour},
		{"high-new", 50, time.Minute},
		{"high-old", 50, time.Hour},
		{"mid", 10, 2 * time.Hour},
		{"low-new", 0, time.Minute},
	}
	now := t0.Add(4 * time.Hour)
	for _, tt := range jobs {
		j := job.New(job.Spec{ID: tt.id, Command: "x", Priority: tt.priority, MaxRuntime: job.Duration(time.Hour)}, "gpu", now.Add(-tt.age))
		if err := st.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	warm := inst("i-warm", "running")
	if err := st.PutLease(ctx, store.Lease{InstanceID: warm.ID, Pool: "gpu", IdleSince: t0}); err != nil {
		t.Fatal(err)
	}
	f, r := &stubFleet{insts: []fleet.Instance{warm}}, &stubRunner{}
	s := New(st, f, r, nil, Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 3}}, DefaultPool: "gpu"}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	if err := s.Reconcile(ctx, Options{}); err != nil {
		t.Fatalf("Reconcile() = %v", err)
	}
	if diff := cmp.Diff([]string{"high-old"}, r.sent); diff != "" {
		t.Errorf("sent to the warm instance (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"high-new", "mid"}, f.launched); diff != "" {
		t.Errorf("launched for (-want +got):\n%s", diff)
	}
	for _, id := range []string{"low-old", "low-new"} {
		j, err := st.Job(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != job.Queued || j.Reason != "waiting for a free instance: pool gpu is at its cap of 3 instances" {
			t.Errorf("%s: %s (%s); want QUEUED at the cap", id, j.State, j.Reason)
		}
	}
}

func TestPause(t *testing.T) {
	tests := []struct {
		give int
		want time.Duration
	}{
		{0, Period}, {1, Period}, {2, 2 * Period}, {3, 4 * Period}, {5, 16 * Period},
		{6, maxPause}, {7, maxPause}, {1000, maxPause},
	}
	for _, tt := range tests {
		if got := pause(tt.give); got != tt.want {
			t.Errorf("pause(%d) = %v; want %v", tt.give, got, tt.want)
		}
	}
}
