package waste

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// Params are what every policy of one report shares: the instance type and
// price, the cap on pool instances, the delays of an instance's life (the
// simulated cloud's, so nightshift and the models boot alike), and the
// parameters of the person and the schedules the baselines stand for.
type Params struct {
	// Type is the GPU instance type of the pool and of the notebooks.
	Type string
	// Price is its on-demand price, USD per hour.
	Price float64
	// Cap is the most pool instances that exist at once (stopped ones
	// included), as nightshift's pool MaxInstances counts them. Notebook
	// instances are outside the cap.
	Cap int
	// Pending is launch or start → running: not billed.
	Pending time.Duration
	// Agent is running → ready for a command (SSM agent online): billed.
	Agent time.Duration
	// StopDelay is stopping → stopped. It is billed, because the simulated
	// cloud bills it (EC2 does not: see docs/waste.md); the models follow
	// the simulator so that every column is billed by the same rules.
	StopDelay time.Duration

	// KeepWarm and IdleTimeout configure nightshift: the pool's keep-warm
	// window (0: "auto", each instance's measured start-to-ready time, the
	// deployment default) and the watchdog's idle timeout for watched notebooks.
	KeepWarm, IdleTimeout time.Duration
	// NotebookIdle and NotebookIdleConnected are for nightshift's own
	// notebook jobs: how long a notebook with no kernel activity is kept up
	// with no browser connected, and with one connected.
	NotebookIdle, NotebookIdleConnected time.Duration
	// WatchedNotebooks replays each notebook as an instance its person
	// launches by hand, tagged nightshift:watch=true, which the watchdog
	// stops from EC2's metrics after IdleTimeout — nightshift before it had
	// notebooks of its own — instead of nightshift's own notebooks.
	WatchedNotebooks bool

	// Looks are the times of day someone looks at the instances, on
	// Workdays (policy "by hand"; also when a killed job is resubmitted).
	Looks    []time.Duration
	Workdays []time.Weekday
	// StopAt is the time of day of the nightly stop (policy "nightly stop").
	StopAt time.Duration
}

// Defaults of the person and the schedules, each with its reason.
const (
	// autostopIdle and autostopCheck are SkyPilot's: `sky autostop` without
	// -i is 5 minutes; skylet's AutostopEvent runs every 60 s.
	autostopIdle  = 5 * time.Minute
	autostopCheck = time.Minute
	// sagemakerIdle and sagemakerCron are the auto-stop-idle sample's
	// IDLE_TIME=3600 and its crontab line "*/5 * * * *".
	sagemakerIdle = time.Hour
	sagemakerCron = 5 * time.Minute
	// schedulerRun is how often Instance Scheduler on AWS runs (its default).
	schedulerRun = 5 * time.Minute
	// defaultNotebookIdle and defaultNotebookIdleConnected: a notebook job
	// nobody is connected to and nothing runs on is stopped after 5 min (as
	// SkyPilot's autostop); one with a browser connected but no kernel
	// activity after 60 min (as the SageMaker sample).
	defaultNotebookIdle          = 5 * time.Minute
	defaultNotebookIdleConnected = 60 * time.Minute
)

// DefaultParams are nightshift's deployment defaults (g4dn.xlarge, a pool
// of 2, keep-warm 10 min, watched idle timeout 60 min), the simulated
// cloud's delays, someone who looks at 09:00, 13:00 and 18:00 on workdays,
// and a nightly stop at 20:00.
func DefaultParams() Params {
	const typ = "g4dn.xlarge"
	t, _ := catalog.Lookup(typ)
	return Params{
		Type: typ, Price: t.Hourly, Cap: 2,
		Pending: awssim.DefaultBoot, Agent: awssim.DefaultAgent, StopDelay: awssim.DefaultStop,
		KeepWarm: 0, IdleTimeout: watchdog.DefaultIdleTimeout,
		NotebookIdle: defaultNotebookIdle, NotebookIdleConnected: defaultNotebookIdleConnected,
		Looks:    []time.Duration{9 * time.Hour, 13 * time.Hour, 18 * time.Hour},
		Workdays: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday},
		StopAt:   20 * time.Hour,
	}
}

// Check reports a parameter no policy can run with.
func (p Params) Check() error {
	switch {
	case !catalog.Known(p.Type):
		return fmt.Errorf("instance type %q: not one nightshift knows", p.Type)
	case p.Price <= 0:
		return fmt.Errorf("price %v: want > 0", p.Price)
	case p.Cap < 1:
		return fmt.Errorf("cap %d: want at least 1 instance", p.Cap)
	case len(p.Looks) == 0 || len(p.Workdays) == 0:
		return fmt.Errorf("looks: want at least one time of day and one workday")
	case p.StopAt < 0 || p.StopAt >= 24*time.Hour:
		return fmt.Errorf("nightly stop %v: want a time of day", p.StopAt)
	case p.IdleTimeout <= 0 || p.NotebookIdle <= 0 || p.NotebookIdleConnected <= 0:
		return fmt.Errorf("idle timeouts %v, %v, %v: want each > 0", p.IdleTimeout, p.NotebookIdle, p.NotebookIdleConnected)
	}
	for _, l := range p.Looks {
		if l < 0 || l >= 24*time.Hour {
			return fmt.Errorf("look at %v: want a time of day", l)
		}
	}
	return nil
}

// ParseClock reads "HH:MM" as a time of day.
func ParseClock(s string) (time.Duration, error) {
	t, err := time.Parse("15:04", strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q: want a time of day such as 09:00", s)
	}
	return time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute, nil
}

// ParseClocks reads "09:00,13:00,18:00".
func ParseClocks(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := ParseClock(f)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	slices.Sort(out)
	return out, nil
}

// clock renders a time of day as "09:00".
func clock(d time.Duration) string {
	return fmt.Sprintf("%02d:%02d", int(d/time.Hour), int(d/time.Minute%60))
}

// KeepWarmWords names a keep-warm setting: "auto" or the window.
func KeepWarmWords(d time.Duration) string {
	if d == 0 {
		return "auto"
	}
	return short(d)
}
