package watchdog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// fakeCloud is an in-memory Provider: instances, series, sessions and spot
// prices as set, a failure per method, and a record of every call. Its Stop
// refuses an instance with neither nightshift tag, as the fleet does.
type fakeCloud struct {
	insts    []Instance
	series   map[Request]Series
	sessions map[string]bool
	spot     map[SpotKey]float64
	fail     map[string]error

	calls     map[string]int
	reads     []seriesRead
	spotAsked [][]string
	stopped   []string
}

// seriesRead is one Series call's arguments.
type seriesRead struct {
	reqs     []Request
	from, to time.Time
}

var _ Provider = (*fakeCloud)(nil)

func (f *fakeCloud) call(name string) error {
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[name]++
	return f.fail[name]
}

// Instances returns the instances set; one set without a State is running,
// as most tests here need.
func (f *fakeCloud) Instances(context.Context) ([]Instance, error) {
	if err := f.call("Instances"); err != nil {
		return nil, err
	}
	out := slices.Clone(f.insts)
	for k := range out {
		if out[k].State == "" {
			out[k].State = fleet.StateRunning
		}
	}
	return out, nil
}

func (f *fakeCloud) Sessions(context.Context) (map[string]bool, error) {
	if err := f.call("Sessions"); err != nil {
		return nil, err
	}
	return f.sessions, nil
}

func (f *fakeCloud) Series(_ context.Context, reqs []Request, from, to time.Time) (map[Request]Series, error) {
	f.reads = append(f.reads, seriesRead{reqs: reqs, from: from, to: to})
	if err := f.call("Series"); err != nil {
		return nil, err
	}
	out := map[Request]Series{}
	for _, r := range reqs {
		for _, p := range f.series[r] {
			if !p.At.Before(from) && !p.At.After(to) {
				out[r] = append(out[r], p)
			}
		}
	}
	return out, nil
}

func (f *fakeCloud) SpotPrices(_ context.Context, types []string) (map[SpotKey]float64, error) {
	f.spotAsked = append(f.spotAsked, types)
	if err := f.call("SpotPrices"); err != nil {
		return nil, err
	}
	return f.spot, nil
}

func (f *fakeCloud) Stop(_ context.Context, i Instance) error {
	if err := f.call("Stop"); err != nil {
		return err
	}
	if !i.Managed && !i.Watched {
		return fleet.ErrNotManaged
	}
	f.stopped = append(f.stopped, i.ID)
	return nil
}

// fakeNotice records what was said.
type fakeNotice struct{ said []notice.Action }

func (n *fakeNotice) Say(_ context.Context, a notice.Action) error {
	n.said = append(n.said, a)
	return nil
}

// fakeRunner records the commands cancelled.
type fakeRunner struct{ cancelled []string }

func (r *fakeRunner) Cancel(_ context.Context, commandID, instanceID string) error {
	r.cancelled = append(r.cancelled, commandID+"@"+instanceID)
	return nil
}

// world is what one sweep test sets up.
type world struct {
	cloud  *fakeCloud
	store  *store.Memory
	notice *fakeNotice
	runner *fakeRunner
	w      *Watchdog
}

func newWorld(t *testing.T, cloud *fakeCloud, cfg Config, jobs ...*job.Job) *world {
	t.Helper()
	st := store.NewMemory()
	for _, j := range jobs {
		if err := st.Create(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	n, r := &fakeNotice{}, &fakeRunner{}
	return &world{cloud: cloud, store: st, notice: n, runner: r, w: New(Deps{
		Cloud: cloud, Runner: r, Store: st, Notice: n, Config: cfg, Now: func() time.Time { return sweepAt },
	})}
}

// said returns what was said, as a person reads it.
func (w *world) said() []string {
	var out []string
	for _, a := range w.notice.said {
		out = append(out, a.String())
	}
	return out
}

// watched and managed are instances up two hours (past any grace).
func watched(id string, tags ...string) Instance {
	i := Instance{ID: id, Type: "g5.xlarge", Zone: "us-east-1a", Watched: true, LaunchTime: sweepAt.Add(-2 * time.Hour), Tags: map[string]string{TagWatch: "true"}}
	for k := 0; k+1 < len(tags); k += 2 {
		i.Tags[tags[k]] = tags[k+1]
	}
	return i
}

func managed(id string, spot bool) Instance {
	return Instance{ID: id, Type: "g4dn.xlarge", Zone: "us-east-1a", Managed: true, Spot: spot, LaunchTime: sweepAt.Add(-2 * time.Hour), Tags: map[string]string{fleet.TagManaged: "true"}}
}

// load returns two hours of metrics for an instance at a GPU level,
// quiet otherwise, and its wrapper's progress seconds.
func load(series map[Request]Series, id string, gpu, progress float64) map[Request]Series {
	if series == nil {
		series = map[Request]Series{}
	}
	from := sweepAt.Add(-2 * time.Hour)
	series[Request{id, GPU}] = flat(from, sweepAt, GPU.Period, gpu)
	series[Request{id, CPU}] = flat(from, sweepAt, CPU.Period, 1)
	series[Request{id, NetworkIn}] = flat(from, sweepAt, NetworkIn.Period, 1000)
	series[Request{id, NetworkOut}] = flat(from, sweepAt, NetworkOut.Period, 1000)
	series[Request{id, Progress}] = Series{{At: sweepAt, Value: progress}}
	return series
}

func runningJob(id, instance string, onStall string) *job.Job {
	return &job.Job{ID: id, State: job.Running, Attempt: 1, InstanceID: instance, CommandID: "cmd-" + id, StartedAt: sweepAt.Add(-90 * time.Minute), Spec: job.Spec{OnStall: onStall}}
}

const quietWhy = "GPU max 0% (< 5%), CPU max 1% (< 10%), network max 2.0 kB per 5 min (< 5.0 MB), no open session"

func TestSweep(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException"}
	tests := []struct {
		name string
		cfg  Config
		give fakeCloud
		jobs []*job.Job

		wantStopped []string
		wantSaid    []string
		wantCancels []string
		wantCalls   map[string]int
		wantErr     error
		wantBlocked bool
	}{
		{
			name: "the idle watched instance is stopped, the others left",
			cfg:  Config{IdleTimeout: 30 * time.Minute},
			give: fakeCloud{
				insts: []Instance{
					watched("i-idle"), watched("i-busy"), watched("i-session"), managed("i-managed", false),
					func() Instance { i := watched("i-fresh"); i.LaunchTime = sweepAt.Add(-10 * time.Minute); return i }(),
				},
				series:   load(load(load(load(load(nil, "i-idle", 0, 0), "i-busy", 90, 0), "i-session", 0, 0), "i-managed", 0, 0), "i-fresh", 0, 0),
				sessions: map[string]bool{"i-session": true},
			},
			wantStopped: []string{"i-idle"},
			wantSaid:    []string{"stop i-idle: idle for 30m0s: " + quietWhy},
			wantCalls:   map[string]int{"Instances": 1, "Series": 1, "Sessions": 1, "Stop": 1},
		},
		{
			name: "an idle-timeout tag shortens one instance's window",
			cfg:  Config{IdleTimeout: 3 * time.Hour},
			give: fakeCloud{
				insts:  []Instance{watched("i-short", TagIdleTimeout, "20m"), watched("i-default"), watched("i-bad-tag", TagIdleTimeout, "1m")},
				series: load(load(load(nil, "i-short", 0, 0), "i-default", 0, 0), "i-bad-tag", 0, 0),
			},
			wantStopped: []string{"i-short"},
			wantSaid:    []string{"stop i-short: idle for 20m0s: " + quietWhy},
			wantCalls:   map[string]int{"Instances": 1, "Series": 1, "Sessions": 1, "Stop": 1},
		},
		{
			name:      "dry run: nothing stopped, the stop said as would",
			cfg:       Config{IdleTimeout: 30 * time.Minute, DryRun: true},
			give:      fakeCloud{insts: []Instance{watched("i-idle")}, series: load(nil, "i-idle", 0, 0)},
			wantSaid:  []string{"would stop i-idle: idle for 30m0s: " + quietWhy},
			wantCalls: map[string]int{"Instances": 1, "Series": 1, "Sessions": 1},
		},
		{
			name:      "nothing past its grace: no metrics or sessions read",
			cfg:       Config{IdleTimeout: 30 * time.Minute, Grace: 3 * time.Hour},
			give:      fakeCloud{insts: []Instance{watched("i-new")}, series: load(nil, "i-new", 0, 0)},
			wantCalls: map[string]int{"Instances": 1},
		},
		{
			name:      "no instance at all",
			give:      fakeCloud{},
			wantCalls: map[string]int{"Instances": 1},
		},
		{
			name:      "instances unreadable: the sweep stops there",
			cfg:       Config{DailyBudget: 1},
			give:      fakeCloud{fail: map[string]error{"Instances": throttled}},
			wantErr:   throttled,
			wantCalls: map[string]int{"Instances": 1},
		},
		{
			name: "metrics unreadable: nothing stopped, the budget still accounted",
			cfg:  Config{IdleTimeout: 30 * time.Minute, DailyBudget: 1},
			give: fakeCloud{insts: []Instance{watched("i-idle"), managed("i-m", false)}, series: load(nil, "i-idle", 0, 0), fail: map[string]error{"Series": throttled}},
			wantSaid: []string{
				"notify: daily spend estimate $1.05 is 105% of the $1.00 budget",
				"notify: daily budget of $1.00 reached ($1.05 spent): placement paused, idle instances stopped, running jobs left to finish",
			},
			wantErr:     throttled,
			wantCalls:   map[string]int{"Instances": 1, "Series": 1},
			wantBlocked: true,
		},
		{
			name:      "sessions unreadable: nothing stopped",
			cfg:       Config{IdleTimeout: 30 * time.Minute},
			give:      fakeCloud{insts: []Instance{watched("i-idle")}, series: load(nil, "i-idle", 0, 0), fail: map[string]error{"Sessions": throttled}},
			wantErr:   throttled,
			wantCalls: map[string]int{"Instances": 1, "Series": 1, "Sessions": 1},
		},
		{
			name:      "stop refused: not said",
			cfg:       Config{IdleTimeout: 30 * time.Minute},
			give:      fakeCloud{insts: []Instance{watched("i-idle")}, series: load(nil, "i-idle", 0, 0), fail: map[string]error{"Stop": fleet.ErrNotManaged}},
			wantErr:   fleet.ErrNotManaged,
			wantCalls: map[string]int{"Instances": 1, "Series": 1, "Sessions": 1, "Stop": 1},
		},
		{
			name: "a stalled job is reported, a busy one and one on a stopped instance are not",
			cfg:  Config{StallTimeout: 20 * time.Minute},
			give: fakeCloud{
				insts:  []Instance{managed("i-hung", false), managed("i-busy", false)},
				series: load(load(load(nil, "i-hung", 0, 1800), "i-busy", 95, 0), "i-gone", 0, 1800),
			},
			jobs:      []*job.Job{runningJob("hung", "i-hung", job.StallNotify), runningJob("busy", "i-busy", job.StallCancel), runningJob("lost", "i-gone", job.StallCancel)},
			wantSaid:  []string{"notify i-hung (job hung): stalled: GPU max 0% and no output or heartbeat for 30m0s"},
			wantCalls: map[string]int{"Instances": 1, "Series": 1},
		},
		{
			name:        "a stalled job that asked for it is cancelled",
			cfg:         Config{StallTimeout: 20 * time.Minute},
			give:        fakeCloud{insts: []Instance{managed("i-hung", false)}, series: load(nil, "i-hung", 0, 1800)},
			jobs:        []*job.Job{runningJob("hung", "i-hung", job.StallCancel)},
			wantSaid:    []string{"cancel i-hung (job hung): stalled: GPU max 0% and no output or heartbeat for 30m0s"},
			wantCancels: []string{"cmd-hung@i-hung"},
			wantCalls:   map[string]int{"Instances": 1, "Series": 1},
		},
		{
			name:      "a stall in a dry run: said, nothing cancelled",
			cfg:       Config{StallTimeout: 20 * time.Minute, DryRun: true},
			give:      fakeCloud{insts: []Instance{managed("i-hung", false)}, series: load(nil, "i-hung", 0, 1800)},
			jobs:      []*job.Job{runningJob("hung", "i-hung", job.StallCancel)},
			wantSaid:  []string{"would cancel i-hung (job hung): stalled: GPU max 0% and no output or heartbeat for 30m0s"},
			wantCalls: map[string]int{"Instances": 1, "Series": 1},
		},
		{
			name: "budget reached on spot prices, cancel policy: every running job cancelled",
			cfg:  Config{DailyBudget: 1, Policy: PolicyCancel, StallTimeout: 10 * time.Hour},
			give: fakeCloud{
				insts: []Instance{managed("i-spot", true), managed("i-od", false)},
				spot:  map[SpotKey]float64{{"g4dn.xlarge", "us-east-1a"}: 0.25},
			},
			jobs: []*job.Job{runningJob("a", "i-spot", ""), runningJob("b", "i-od", "")},
			wantSaid: []string{
				"notify: daily spend estimate $1.55 is 155% of the $1.00 budget",
				"notify: daily budget of $1.00 reached ($1.55 spent): placement paused, idle instances stopped, running jobs cancelled",
				"cancel i-spot (job a): budget: daily budget of $1.00 reached ($1.55 spent); placement resumes when the period ends or the budget is raised",
				"cancel i-od (job b): budget: daily budget of $1.00 reached ($1.55 spent); placement resumes when the period ends or the budget is raised",
			},
			wantCancels: []string{"cmd-a@i-spot", "cmd-b@i-od"},
			wantCalls:   map[string]int{"Instances": 1, "SpotPrices": 1},
			wantBlocked: true,
		},
		{
			name:      "spot prices unreadable: no budget decision",
			cfg:       Config{DailyBudget: 1},
			give:      fakeCloud{insts: []Instance{managed("i-spot", true)}, fail: map[string]error{"SpotPrices": throttled}},
			wantErr:   throttled,
			wantCalls: map[string]int{"Instances": 1, "SpotPrices": 1},
		},
		{
			name: "budget in a dry run: said, the status not written",
			cfg:  Config{DailyBudget: 1, DryRun: true},
			give: fakeCloud{insts: []Instance{managed("i-od", false), managed("i-od2", false)}},
			wantSaid: []string{
				"would notify: daily spend estimate $2.10 is 210% of the $1.00 budget",
				"would notify: daily budget of $1.00 reached ($2.10 spent): placement paused, idle instances stopped, running jobs left to finish",
			},
			wantCalls: map[string]int{"Instances": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			cloud := tt.give
			w := newWorld(t, &cloud, tt.cfg, tt.jobs...)
			_, err := w.w.Sweep(ctx)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Errorf("Sweep() = %v; want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantStopped, cloud.stopped); diff != "" {
				t.Errorf("Sweep() stopped (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSaid, w.said()); diff != "" {
				t.Errorf("Sweep() said (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCancels, w.runner.cancelled); diff != "" {
				t.Errorf("Sweep() cancelled (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCalls, cloud.calls); diff != "" {
				t.Errorf("Sweep() provider calls (-want +got):\n%s", diff)
			}
			status, err := w.store.Spend(ctx, BudgetStatus)
			if blocked := err == nil && status.Reached; blocked != tt.wantBlocked {
				t.Errorf("Sweep() budget status %+v, %v; want reached %v", status, err, tt.wantBlocked)
			}
		})
	}
}

// TestSweepReads: each rule's series come in one read over the longest
// window it needs, with the four idle metrics of each watched instance due
// (CPU and network at its resolution) and the GPU and progress of each running job due; spot prices are asked
// for the spot types only.
func TestSweepReads(t *testing.T) {
	cloud := &fakeCloud{insts: []Instance{
		watched("i-a", TagIdleTimeout, "45m"), func() Instance { i := watched("i-b"); i.Detailed = true; return i }(),
		func() Instance { i := watched("i-new"); i.LaunchTime = sweepAt.Add(-time.Minute); return i }(),
		managed("i-m", true), managed("i-n", false),
	}}
	slow := runningJob("slow", "i-m", "")
	slow.Spec.StallTimeout = job.Duration(50 * time.Minute)
	fresh := runningJob("fresh", "i-n", "")
	fresh.StartedAt = sweepAt.Add(-5 * time.Minute)
	w := newWorld(t, cloud, Config{IdleTimeout: 30 * time.Minute, StallTimeout: 20 * time.Minute, MonthlyBudget: 100}, slow, fresh)
	if _, err := w.w.Sweep(context.Background()); err != nil {
		t.Fatalf("Sweep() = %v", err)
	}
	want := []seriesRead{
		// i-b has detailed monitoring: its CPU and network at 60 s. From
		// one 5-minute period before the window (Idle's slack).
		{reqs: []Request{{"i-a", GPU}, {"i-a", CPU}, {"i-a", NetworkIn}, {"i-a", NetworkOut},
			{"i-b", GPU}, {"i-b", CPU.Every(time.Minute)}, {"i-b", NetworkIn.Every(time.Minute)}, {"i-b", NetworkOut.Every(time.Minute)}}, from: sweepAt.Add(-50 * time.Minute), to: sweepAt},
		{reqs: []Request{{"i-m", GPU}, {"i-m", Progress}}, from: sweepAt.Add(-50 * time.Minute), to: sweepAt},
	}
	if diff := cmp.Diff(want, cloud.reads, cmp.AllowUnexported(seriesRead{})); diff != "" {
		t.Errorf("Sweep() series reads (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([][]string{{"g4dn.xlarge"}}, cloud.spotAsked); diff != "" {
		t.Errorf("Sweep() spot prices asked (-want +got):\n%s", diff)
	}
}

// TestSweepStallOnce: a stall is recorded on the job and reported once;
// the next sweep leaves it alone.
func TestSweepStallOnce(t *testing.T) {
	ctx := context.Background()
	cloud := &fakeCloud{insts: []Instance{managed("i-hung", false)}, series: load(nil, "i-hung", 0, 1800)}
	w := newWorld(t, cloud, Config{StallTimeout: 20 * time.Minute}, runningJob("hung", "i-hung", job.StallNotify))
	for range 2 {
		if _, err := w.w.Sweep(ctx); err != nil {
			t.Fatalf("Sweep() = %v", err)
		}
	}
	if len(w.notice.said) != 1 {
		t.Errorf("two sweeps said %q; want one stall notice", w.said())
	}
	j, err := w.store.Job(ctx, "hung")
	if err != nil {
		t.Fatal(err)
	}
	if !j.StalledAt.Equal(sweepAt) || !strings.HasPrefix(j.Reason, "running on i-hung; stalled:") || j.State != job.Running {
		t.Errorf("stalled job = %s, stalled at %v, reason %q; want RUNNING, stalled at %v, the reason said", j.State, j.StalledAt, j.Reason, sweepAt)
	}
	if cloud.calls["Series"] != 1 {
		t.Errorf("two sweeps read series %d times; want once (a reported job is not looked at again)", cloud.calls["Series"])
	}
}

// TestSweepBudgetOnce: the 80% and 100% notices go out once each over
// successive sweeps, the spend records grow, and the status pauses placement.
func TestSweepBudgetOnce(t *testing.T) {
	ctx := context.Background()
	// One g4dn.xlarge overridden to $1/h, launched at 08:00: $2 by 10:00.
	inst := managed("i-m", false)
	now := sweepAt
	cloud := &fakeCloud{insts: []Instance{inst}}
	st := store.NewMemory()
	n := &fakeNotice{}
	w := New(Deps{Cloud: cloud, Runner: &fakeRunner{}, Store: st, Notice: n, Now: func() time.Time { return now },
		Config: Config{DailyBudget: 2.5, Prices: map[string]float64{"g4dn.xlarge": 1}}})
	tests := []struct {
		give      time.Duration // after 10:00
		want      []string
		wantDay   float64
		wantBlock bool
	}{
		{give: 0, want: []string{"notify: daily spend estimate $2.00 is 80% of the $2.50 budget"}, wantDay: 2},
		{give: 15 * time.Minute, wantDay: 2.25},
		{give: 30 * time.Minute, want: []string{"notify: daily budget of $2.50 reached ($2.50 spent): placement paused, idle instances stopped, running jobs left to finish"}, wantDay: 2.5, wantBlock: true},
		{give: 45 * time.Minute, wantDay: 2.75, wantBlock: true},
	}
	for _, tt := range tests {
		now = sweepAt.Add(tt.give)
		before := len(n.said)
		rep, err := w.Sweep(ctx)
		if err != nil {
			t.Fatalf("Sweep() at %v = %v", now, err)
		}
		var got []string
		for _, a := range n.said[before:] {
			got = append(got, a.String())
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("Sweep() at %v said (-want +got):\n%s", now, diff)
		}
		if rep.DaySpend != tt.wantDay || rep.MonthSpend != tt.wantDay {
			t.Errorf("Sweep() at %v = day $%v, month $%v; want $%v both", now, rep.DaySpend, rep.MonthSpend, tt.wantDay)
		}
		status, err := st.Spend(ctx, BudgetStatus)
		if blocked := err == nil && status.Reached; blocked != tt.wantBlock {
			t.Errorf("Sweep() at %v budget status %+v, %v; want reached %v", now, status, err, tt.wantBlock)
		}
	}
}

// spendFails is a store whose reads of the budget periods' records fail
// while fail is set (throttled), the status record excepted.
type spendFails struct {
	*store.Memory
	fail bool
}

func (s *spendFails) Spend(ctx context.Context, period string) (store.Spend, error) {
	if s.fail && period != BudgetStatus {
		return store.Spend{}, errors.New("ProvisionedThroughputExceededException: Rate exceeded")
	}
	return s.Memory.Spend(ctx, period)
}

// TestSweepBudgetUnreadKeepsStatus: a sweep that cannot read the day's
// spend record leaves a reached budget reached: a throttled read is not a
// new day, and placement must not resume.
func TestSweepBudgetUnreadKeepsStatus(t *testing.T) {
	ctx := context.Background()
	now := sweepAt.Add(45 * time.Minute)
	st := &spendFails{Memory: store.NewMemory()}
	w := New(Deps{Cloud: &fakeCloud{insts: []Instance{managed("i-m", false)}}, Runner: &fakeRunner{}, Store: st, Notice: &fakeNotice{}, Now: func() time.Time { return now },
		Config: Config{DailyBudget: 2.5, Prices: map[string]float64{"g4dn.xlarge": 1}}})
	if _, err := w.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if s, err := st.Spend(ctx, BudgetStatus); err != nil || !s.Reached {
		t.Fatalf("budget status after a sweep past the budget: %+v, %v; want reached", s, err)
	}
	st.fail = true
	now = now.Add(time.Minute)
	if _, err := w.Sweep(ctx); err == nil {
		t.Error("Sweep() with the spend records unreadable = nil; want the read's error")
	}
	if s, err := st.Spend(ctx, BudgetStatus); err != nil || !s.Reached {
		t.Errorf("budget status after a sweep that could not read the spend: %+v, %v; want still reached", s, err)
	}
}
