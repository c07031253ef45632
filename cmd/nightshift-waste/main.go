// Command nightshift-waste prints the waste report: for each workload
// trace, GPU hours billed, trained and idle, job waits and dollars, side by
// side for nightshift (its real handlers replayed on the simulated AWS) and
// the policies people use instead. It also generates the month trace.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // traces name IANA time zones; a bare container has no zoneinfo

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/waste"
)

const usage = `usage: nightshift-waste [flags] TRACE...
       nightshift-waste -gen month [-seed N] > traces/small-team-month.trace

For each trace, prints one markdown table: GPU instance-hours billed, hours
training, idle hours, notebook interruptions (stops under someone's work),
job wait p50/p95 and dollars, for nightshift and for
stopping by hand, SkyPilot autostop, the SageMaker auto-stop-idle sample, a
nightly Instance Scheduler stop, and the lower bound. The trace format and
every model are in docs/waste.md.

flags:
`

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nightshift-waste:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	p := waste.DefaultParams()
	fs := flag.NewFlagSet("nightshift-waste", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	gen := fs.String("gen", "", "write a generated trace to stdout instead: "+strings.Join(waste.Generators, ", "))
	seed := fs.Uint64("seed", 1, "seed of the generated trace")
	fs.StringVar(&p.Type, "type", p.Type, "GPU instance type of every policy (price from nightshift's table)")
	fs.IntVar(&p.Cap, "cap", p.Cap, "most pool instances of every policy (nightshift's MaxInstances)")
	fs.Var(keepWarmFlag{&p.KeepWarm}, "keep-warm", `nightshift's keep-warm window: "auto" (measured start-to-ready, the default) or a duration`)
	fs.DurationVar(&p.IdleTimeout, "idle-timeout", p.IdleTimeout, "nightshift's idle timeout for watched notebooks")
	fs.DurationVar(&p.NotebookIdle, "notebook-idle", p.NotebookIdle, "nightshift's notebook jobs: stop after this long with no kernel activity and no browser connected")
	fs.BoolVar(&p.WatchedNotebooks, "watched-notebooks", false, "replay notebooks as instances started by hand and watched (nightshift:watch), as before nightshift had notebooks of its own")
	fs.DurationVar(&p.NotebookIdleConnected, "notebook-idle-connected", p.NotebookIdleConnected, "nightshift's notebook jobs: stop after this long with no kernel activity, a browser connected")
	looks := fs.String("looks", "09:00,13:00,18:00", "when someone looks at the instances on workdays (by hand; resubmitting killed jobs)")
	stop := fs.String("stop-at", "20:00", "time of the nightly stop (Instance Scheduler)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *gen != "" {
		return waste.Generate(out, *gen, *seed)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return fmt.Errorf("no trace given")
	}
	var err error
	if p.Looks, err = waste.ParseClocks(*looks); err != nil {
		return fmt.Errorf("-looks: %w", err)
	}
	if p.StopAt, err = waste.ParseClock(*stop); err != nil {
		return fmt.Errorf("-stop-at: %w", err)
	}
	t, ok := catalog.Lookup(p.Type)
	if !ok {
		return fmt.Errorf("-type %q: not an instance type nightshift knows", p.Type)
	}
	p.Price = t.Hourly
	for _, path := range fs.Args() {
		if err := report(ctx, path, p, out); err != nil {
			return err
		}
	}
	return nil
}

func report(ctx context.Context, path string, p waste.Params, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tr, err := waste.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	rep, err := waste.Compare(ctx, path, tr, p)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return rep.Markdown(out)
}

// keepWarmFlag reads "auto" (0) or a duration.
type keepWarmFlag struct{ d *time.Duration }

func (f keepWarmFlag) String() string {
	if f.d == nil {
		return "auto"
	}
	return waste.KeepWarmWords(*f.d)
}

func (f keepWarmFlag) Set(s string) error {
	if s == "auto" {
		*f.d = 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want auto or a positive duration, got %q", s)
	}
	*f.d = d
	return nil
}
