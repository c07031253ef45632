package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// minKeepWarm is the shortest fixed keep-warm window the local run takes:
// the instance's own idle timer counts in whole minutes, and the watchdog
// ticks once a minute.
const minKeepWarm = time.Minute

func (a *app) localCmd() *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:     "local",
		Aliases: []string{"run"},
		Short:   "Run a job through nightshift on a simulated AWS, here",
		Long: `local sends a job message through nightshift's real handlers and Reconcile
against a simulated AWS (EC2, SSM, EventBridge, SQS, DynamoDB in memory, on
a virtual clock), executing the job's wrapper script for real with bash in
a scratch directory. No AWS account, no network: on the instances, aws and
shutdown are stand-ins (an S3 sync is skipped and says so).`,
		Example: `  nightshift local
  nightshift local --job '{"command": "echo hi", "max_runtime": "10m"}'
  nightshift local --job @job.json --keep-warm 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("keep-warm") && o.KeepWarm < minKeepWarm {
				return usagef("--keep-warm %v: want at least %v, or no --keep-warm for auto", o.KeepWarm, minKeepWarm)
			}
			if err := run(cmd.Context(), o, a.stdout); err != nil {
				return fmt.Errorf("local run: %w", err)
			}
			return nil
		},
	}
	c.Flags().StringVar(&o.Message, "job", defaultJob, "the job message (JSON), or @FILE to read it from a file")
	c.Flags().DurationVar(&o.KeepWarm, "keep-warm", 0, "a fixed keep-warm window for the pool, at least 1m (default: auto, the instance's measured start-to-ready time, as deployed)")
	c.Flags().StringVar(&o.Dir, "dir", "", "scratch directory for the instances' disks (default: a new temporary directory, removed afterwards)")
	return c
}
