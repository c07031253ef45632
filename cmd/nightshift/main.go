// Command nightshift is nightshift's command line. For now it has one
// command, run: a local run of the real handlers on the simulated cloud.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

const usage = `usage: nightshift run [flags]

run sends a job message through nightshift's real handlers and Reconcile
against a simulated AWS (EC2, SSM, EventBridge, SQS, DynamoDB in memory, on a
virtual clock), executing the job's wrapper script for real with bash in a
scratch directory. No AWS account, no network: on the instances, aws and
shutdown are stand-ins (an S3 sync is skipped and says so).

flags:
`

func main() { os.Exit(cli(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }

// minKeepWarm is the shortest fixed keep-warm window the local run takes:
// the instance's own idle timer counts in whole minutes, and the watchdog
// ticks once a minute.
const minKeepWarm = time.Minute

// cli runs the command line args and returns the exit status: 0, 1 when
// the run failed, 2 for a usage error (nothing run).
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 || args[0] != "run" {
		printUsage(stderr, runFlags(nil))
		return 2
	}
	var o runOptions
	fs := runFlags(&o)
	fs.SetOutput(stderr)
	// The flag package prints this itself for -h and for a bad flag.
	fs.Usage = func() { printUsage(stderr, fs) }
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case fs.NArg() == 1:
		fmt.Fprintf(stderr, "nightshift run: unexpected argument %s (a job message goes in -job)\n", fs.Arg(0))
		return 2
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "nightshift run: unexpected arguments %s (a job message goes in -job)\n", strings.Join(fs.Args(), " "))
		return 2
	case o.KeepWarm != 0 && o.KeepWarm < minKeepWarm:
		fmt.Fprintf(stderr, "nightshift run: -keep-warm %v: want at least %v, or no -keep-warm for auto\n", o.KeepWarm, minKeepWarm)
		return 2
	}
	if err := run(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "nightshift run:", err)
		return 1
	}
	return 0
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprint(w, usage)
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func runFlags(o *runOptions) *flag.FlagSet {
	if o == nil {
		o = &runOptions{}
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.Message, "job", defaultJob, "the job message (JSON), or @FILE to read it from a file")
	fs.DurationVar(&o.KeepWarm, "keep-warm", 0, "a fixed keep-warm window for the pool, at least 1m (default: auto, the instance's measured start-to-ready time, as deployed)")
	fs.StringVar(&o.Dir, "dir", "", "scratch directory for the instances' disks (default: a new temporary directory, removed afterwards)")
	return fs
}
