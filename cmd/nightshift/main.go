// Command nightshift is nightshift's command line. For now it has one
// command, run: a local run of the real handlers on the simulated cloud.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
)

const usage = `usage: nightshift run [flags]

run sends a job message through nightshift's real handlers and Reconcile
against a simulated AWS (EC2, SSM, EventBridge, SQS, DynamoDB in memory, on a
virtual clock), executing the job's wrapper script for real with bash in a
scratch directory. No AWS account, no network.

flags:
`

func main() {
	if len(os.Args) < 2 || os.Args[1] != "run" {
		fmt.Fprint(os.Stderr, usage)
		runFlags(nil).PrintDefaults()
		os.Exit(2)
	}
	var o runOptions
	fs := runFlags(&o)
	if err := fs.Parse(os.Args[2:]); err != nil {
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "nightshift run:", err)
		os.Exit(1)
	}
}

func runFlags(o *runOptions) *flag.FlagSet {
	if o == nil {
		o = &runOptions{}
	}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.Message, "job", defaultJob, "the job message (JSON), or @FILE to read it from a file")
	fs.DurationVar(&o.KeepWarm, "keep-warm", 0, "a fixed keep-warm window for the pool (default: auto, the instance's measured start-to-ready time, as deployed)")
	fs.StringVar(&o.Dir, "dir", "", "scratch directory for the instances' disks (default: a new temporary directory, removed afterwards)")
	return fs
}
