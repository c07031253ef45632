package waste

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// handParams are round numbers to compute by hand: a 2-minute boot (1 min
// pending, not billed; 1 min to ready, billed), a 30 s stop (billed), $1
// an hour, 2 pool instances; someone looks at 09:00, 13:00 and 18:00
// Monday to Friday; the nightly stop is at 20:00.
func handParams() Params {
	p := DefaultParams()
	p.Pending, p.Agent, p.StopDelay = time.Minute, time.Minute, 30*time.Second
	p.Price, p.Cap = 1, 2
	return p
}

// handTrace parses lines after "start,2026-11-30" (a Monday, UTC).
func handTrace(t *testing.T, lines string) *Trace {
	t.Helper()
	tr, err := Parse(strings.NewReader("start,2026-11-30\n" + lines))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tr
}

// policyNamed returns the baseline called name, or nil for the bound.
func policyNamed(t *testing.T, tr *Trace, p Params, name string) Policy {
	t.Helper()
	bs := Baselines(tr, p)
	switch name {
	case "hand":
		return bs[0]
	case "autostop":
		return bs[1]
	case "sagemaker":
		return bs[2]
	case "nightly":
		return bs[3]
	case "bound":
		return nil
	}
	t.Fatalf("no policy %q", name)
	return nil
}

func dur(s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

func durs(ss ...string) []time.Duration {
	var out []time.Duration
	for _, s := range ss {
		out = append(out, dur(s))
	}
	return out
}

// TestPolicies checks every model on tiny traces computed by hand. Times
// below are on Monday 2026-11-30 unless named. A cold job submitted at
// 10:00 is billed from 10:01 and starts at 10:02; a stop at T is billed
// until T+30s.
func TestPolicies(t *testing.T) {
	const oneJob = "d0 10:00,job,a,1h\n"
	tests := []struct {
		name   string
		policy string
		give   string
		want   Result
	}{
		// One 1-hour job at 10:00: it runs 10:02-11:02.
		{
			name: "by hand: stopped at the next look, 13:00", policy: "hand", give: oneJob,
			want: Result{Billed: dur("2h59m30s"), Training: time.Hour, Starts: 1, Waits: durs("2m")},
		},
		{
			// skylet checks at 10:02 + k min; the 11:01 check is the last to
			// see the job; floor((11:06 - 11:01) / 1m) = 5: stop at 11:06,
			// 4 min after the job's end.
			name: "SkyPilot: the last check that saw the job + 5 min", policy: "autostop", give: oneJob,
			want: Result{Billed: dur("1h5m30s"), Training: time.Hour, Starts: 1, Waits: durs("2m")},
		},
		{
			// Idle > 3600 s after 12:02; the first */5 cron tick after that is 12:05.
			name: "SageMaker: first cron tick more than 60 min after the end", policy: "sagemaker", give: oneJob,
			want: Result{Billed: dur("2h4m30s"), Training: time.Hour, Starts: 1, Waits: durs("2m")},
		},
		{
			name: "nightly stop: runs until 20:00", policy: "nightly", give: oneJob,
			want: Result{Billed: dur("9h59m30s"), Training: time.Hour, Starts: 1, Waits: durs("2m")},
		},
		{
			// 1 h of training, one boot's billed minute and one stop's 30 s; no wait.
			name: "bound: training plus one billed boot and stop", policy: "bound", give: oneJob,
			want: Result{Billed: dur("1h1m30s"), Training: time.Hour, Starts: 1, Waits: durs("0s")},
		},
		{
			// Ends 11:02:30: the 11:02 check still saw it, so the stop is at 11:07.
			name: "SkyPilot: a job ending between checks", policy: "autostop", give: "d0 10:00,job,a,1h30s\n",
			want: Result{Billed: dur("1h6m30s"), Training: dur("1h30s"), Starts: 1, Waits: durs("2m")},
		},
		{
			// Ends 11:00: 12:00 is exactly 3600 s later, not more; the next tick is 12:05.
			name: "SageMaker: idle must exceed the idle time", policy: "sagemaker", give: "d0 10:00,job,a,58m\n",
			want: Result{Billed: dur("2h4m30s"), Training: dur("58m"), Starts: 1, Waits: durs("2m")},
		},
		{
			// Friday 17:00 for 2 h: ends 19:02, after the last look; Monday 09:00.
			name: "by hand: a job ending Friday evening runs the weekend", policy: "hand", give: "d4 17:00,job,a,2h\n",
			want: Result{Billed: dur("63h59m30s"), Training: 2 * time.Hour, Starts: 1, Waits: durs("2m")},
		},
		{
			// The second job reuses the running instance at 11:30, without a boot.
			name: "by hand: a running instance is reused", policy: "hand", give: "d0 10:00,job,a,1h\nd0 11:30,job,b,30m\n",
			want: Result{Billed: dur("2h59m30s"), Training: 90 * time.Minute, Starts: 1, Waits: durs("2m", "0s")},
		},
		{
			// a: 10:01-11:06:30 billed. b: started again at 11:30, billed
			// from 11:31, runs 11:32-12:02, stopped 12:06: 35m30s.
			name: "SkyPilot: a stopped instance is started again", policy: "autostop", give: "d0 10:00,job,a,1h\nd0 11:30,job,b,30m\n",
			want: Result{Billed: dur("1h41m"), Training: 90 * time.Minute, Starts: 2, Waits: durs("2m", "2m")},
		},
		{
			// The oracle runs a at 10:00-11:00 and b at 11:30-12:00: a 30 min
			// gap costs more than a stop and a boot (1m30s), so two bursts.
			name: "bound: two bursts", policy: "bound", give: "d0 10:00,job,a,1h\nd0 11:30,job,b,30m\n",
			want: Result{Billed: dur("1h33m"), Training: 90 * time.Minute, Starts: 2, Waits: durs("0s", "0s")},
		},
		{
			// The oracle runs b at 11:00:40, 40 s after a: the gap is cheaper
			// than a stop and a boot, so one burst: 1h + 40s + 30m + 1m30s.
			name: "bound: one burst across a short gap", policy: "bound", give: "d0 10:00,job,a,1h\nd0 11:00:40,job,b,30m\n",
			want: Result{Billed: dur("1h32m10s"), Training: 90 * time.Minute, Starts: 1, Waits: durs("0s", "0s")},
		},
		{
			// Cap 2: c waits for the first instance to free up at 11:02 and
			// runs until 12:02 on it (stop 12:06); the other stops at 11:06.
			name: "SkyPilot: a job beyond the cap waits", policy: "autostop", give: "d0 10:00,job,a,1h\nd0 10:00,job,b,1h\nd0 10:00,job,c,1h\n",
			want: Result{Billed: dur("3h11m"), Training: 3 * time.Hour, Starts: 2, Waits: durs("2m", "2m", "1h2m")},
		},
		{
			// Monday 18:00 for 4 h: runs 18:02, killed at 20:00 (1h58m lost,
			// billed 18:01-20:00:30). Resubmitted at Tuesday's 09:00 look,
			// runs 09:02-13:02 out of the schedule, stopped at Tuesday 20:00
			// (billed 09:01-20:00:30). It waited 15h02m in all.
			name: "nightly stop: kills a job, resubmitted at the next look", policy: "nightly", give: "d0 18:00,job,a,4h\n",
			want: Result{Billed: dur("12h59m"), Training: 4 * time.Hour, Killed: dur("1h58m"), Starts: 2, Waits: durs("15h2m")},
		},
		{
			name: "by hand: the same job runs the night", policy: "hand", give: "d0 18:00,job,a,4h\n",
			want: Result{Billed: dur("14h59m30s"), Training: 4 * time.Hour, Starts: 1, Waits: durs("2m")},
		},
		// A notebook session at 10:00, active 2 h: ready at 10:02, its user
		// active until 12:02. Notebooks have no job waits.
		{
			name: "notebook by hand", policy: "hand", give: "d0 10:00,notebook,nb,2h\n",
			want: Result{Billed: dur("2h59m30s"), Training: 2 * time.Hour, Starts: 1},
		},
		{
			name: "notebook with SkyPilot", policy: "autostop", give: "d0 10:00,notebook,nb,2h\n",
			want: Result{Billed: dur("2h5m30s"), Training: 2 * time.Hour, Starts: 1},
		},
		{
			name: "notebook with SageMaker's sample", policy: "sagemaker", give: "d0 10:00,notebook,nb,2h\n",
			want: Result{Billed: dur("3h4m30s"), Training: 2 * time.Hour, Starts: 1},
		},
		{
			// Active from 19:02; stopped under its user at 20:00 (billed
			// 19:01-20:00:30), who starts it again: billed from 20:01:30,
			// active 20:02:30-21:04:30, then up until Tuesday 20:00.
			name: "notebook under the nightly stop", policy: "nightly", give: "d0 19:00,notebook,nb,2h\n",
			want: Result{Billed: dur("24h58m30s"), Training: 2 * time.Hour, Starts: 2, Interruptions: 1},
		},
		// Sessions with phases. Ready 10:02 after a 10:00 arrival.
		{
			// Work 10:02-10:32: the 10:31 check is the last to see the
			// tunnel; the cell trains with the laptop closed from 10:32, idle
			// to the skylet: stopped at 10:36 (4 min of the run lost), billed
			// 10:01-10:36:30. Started again at once: ready 10:38:30, the run
			// again in full, kept up (a sky job), until 11:38:30; work until
			// 11:48:30 (last check 11:47:30); stopped 11:52:30.
			name: "SkyPilot stops a busy kernel with the laptop closed", policy: "autostop", give: "d0 10:00,notebook,nb,30m busy:1h 10m\n",
			want: Result{Billed: dur("1h51m"), Training: dur("1h40m"), Killed: dur("4m"), Starts: 2, Interruptions: 1},
		},
		{
			// Reading keeps the tunnel open: stopped 4 min after the work.
			name: "SkyPilot: reading with the tab open is not idle", policy: "autostop", give: "d0 10:00,notebook,nb,30m read:70m 10m\n",
			want: Result{Billed: dur("1h55m30s"), Training: dur("1h50m"), Starts: 1},
		},
		{
			// The last kernel activity is 10:32; reading runs no cell; the
			// first tick more than 60 min later is 11:35, 63 min into the
			// reading: stopped under the reader (billed 10:01-11:35:30).
			// Ready again 11:37:30, 7 min more reading, work until 11:54:30;
			// stopped 12:55 (billed 11:36:30-12:55:30).
			name: "SageMaker stops someone reading for 70 minutes", policy: "sagemaker", give: "d0 10:00,notebook,nb,30m read:70m 10m\n",
			want: Result{Billed: dur("2h53m30s"), Training: dur("1h50m"), Starts: 2, Interruptions: 1},
		},
		{
			// A busy kernel is not idle to the sample: the cell trains
			// 10:32-11:32; stopped at the first tick after 12:32, 12:35.
			name: "SageMaker waits for a busy kernel", policy: "sagemaker", give: "d0 10:00,notebook,nb,30m busy:1h\n",
			want: Result{Billed: dur("2h34m30s"), Training: dur("1h30m"), Starts: 1},
		},
		{
			// Leaves at 12:02; the 13:00 look stops it; they come back at
			// 13:20, within 30 min: an interruption. Ready 13:22, work until
			// 14:22, stopped at 18:00.
			name: "by hand: the person comes back 20 min after a look", policy: "hand", give: "d0 10:00,notebook,nb,2h\nd0 13:20,notebook,nb,1h\n",
			want: Result{Billed: dur("7h39m"), Training: 3 * time.Hour, Starts: 2, Interruptions: 1},
		},
		{
			// The cell trains 11:32-14:32 over the 13:00 look: someone's work.
			name: "by hand: a busy kernel is not stopped", policy: "hand", give: "d0 11:00,notebook,nb,30m busy:3h\n",
			want: Result{Billed: dur("6h59m30s"), Training: dur("3h30m"), Starts: 1},
		},
		{
			// The tab is open but its person has gone: stopped at 13:00.
			name: "by hand: a tab left open is stopped", policy: "hand", give: "d0 10:00,notebook,nb,1h,open\n",
			want: Result{Billed: dur("2h59m30s"), Training: time.Hour, Starts: 1},
		},
		{
			// The tunnel stays open OpenTabLimit (72 h) after 11:02: the
			// last check to see it is Thursday 11:01; stopped 11:06.
			name: "SkyPilot: a tab left open keeps it up", policy: "autostop", give: "d0 10:00,notebook,nb,1h,open\n",
			want: Result{Billed: dur("73h5m30s"), Training: time.Hour, Starts: 1},
		},
		{
			// The cell trains 19:32-20:32; the 20:00 stop loses 28 min of it
			// (billed 19:01-20:00:30). Ready again 20:02:30, the run again,
			// out of the schedule, until 21:02:30; stopped Tuesday 20:00
			// (billed 20:01:30-20:00:30).
			name: "nightly stop kills a busy kernel", policy: "nightly", give: "d0 19:00,notebook,nb,30m busy:1h\n",
			want: Result{Billed: dur("24h58m30s"), Training: dur("1h30m"), Killed: dur("28m"), Starts: 2, Interruptions: 1},
		},
		{
			// Billed while in a session (2h10m), plus one boot and one stop.
			name: "bound: notebook phases, whatever the end", policy: "bound", give: "d0 10:00,notebook,nb,30m read:40m busy:1h,open\n",
			want: Result{Billed: dur("2h11m30s"), Training: dur("2h10m"), Starts: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := handParams()
			tr := handTrace(t, tt.give)
			var got Result
			if pol := policyNamed(t, tr, p, tt.policy); pol != nil {
				got = Model(tr, p, pol)
			} else {
				got = Bound(tr, p)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "USD"), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("%s on %q (-want +got):\n%s", tt.policy, tt.give, diff)
			}
			if math.Abs(got.USD-got.Billed.Hours()*p.Price) > 1e-9 {
				t.Errorf("USD = %v; want %v h × $%v", got.USD, got.Billed.Hours(), p.Price)
			}
		})
	}
}

func TestPriorityOrder(t *testing.T) {
	// One instance: a runs 10:02-11:02; b (10:10) and c (10:20, priority
	// 5) wait; c goes first, 11:02-11:12, then b, 11:12-11:22.
	p := handParams()
	p.Cap = 1
	tr := handTrace(t, "d0 10:00,job,a,1h\nd0 10:10,job,b,10m\nd0 10:20,job,c,10m,5\n")
	got := Model(tr, p, policyNamed(t, tr, p, "autostop")).Waits
	if want := durs("2m", "42m", "1h2m"); !cmp.Equal(got, want) {
		t.Errorf("waits in order of completion = %v; want %v", got, want)
	}
}

func TestWaitPercentile(t *testing.T) {
	r := Result{Waits: durs("5s", "1s", "4s", "2s", "3s", "6s", "7s", "8s", "9s", "10s")}
	tests := []struct {
		give float64
		want time.Duration
	}{
		{50, 5 * time.Second}, {95, 10 * time.Second}, {10, time.Second}, {100, 10 * time.Second},
	}
	for _, tt := range tests {
		if got := r.Wait(tt.give); got != tt.want {
			t.Errorf("Wait(%v) = %v; want %v", tt.give, got, tt.want)
		}
	}
	if got := (Result{}).Wait(50); got != 0 {
		t.Errorf("Wait(50) with no jobs = %v; want 0", got)
	}
}

func TestNightlyNext(t *testing.T) {
	paris, _ := time.LoadLocation("Europe/Paris")
	n := nightly{at: 20 * time.Hour, run: schedulerRun, loc: paris}
	at := func(d, h, m int) time.Time { return time.Date(2026, 11, d, h, m, 0, 0, paris) }
	tests := []struct {
		name   string
		give   time.Time
		strict bool
		want   time.Time
	}{
		{"before the stop", at(30, 10, 0), false, at(30, 20, 0)},
		{"at the stop", at(30, 20, 0), false, at(30, 20, 0)},
		{"at the stop, strictly after", at(30, 20, 0), true, at(31, 20, 0)},
		{"after the stop: the next day's", at(30, 21, 0), false, at(31, 20, 0)},
		{"in the small hours", at(30, 2, 0), false, at(30, 20, 0)},
	}
	for _, tt := range tests {
		if got := n.next(tt.give, tt.strict); !got.Equal(tt.want) {
			t.Errorf("%s: next(%v, %v) = %v; want %v", tt.name, tt.give, tt.strict, got, tt.want)
		}
	}
	// A stop time off the scheduler's 5-minute grid acts at the next run.
	n.at = 20*time.Hour + 2*time.Minute
	if got, want := n.next(at(30, 10, 0), false), at(30, 20, 5); !got.Equal(want) {
		t.Errorf("stop at 20:02: next = %v; want the 20:05 run", got)
	}
}
