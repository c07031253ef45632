package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// defaultSince is how far back ls --all and cost look without --since.
const defaultSince = 7 * 24 * time.Hour

func (a *app) lsCmd() *cobra.Command {
	var all bool
	var since, state string
	c := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List jobs: the live ones, or all submitted since a time",
		Long: `List jobs. By default the live ones (QUEUED, PLACED, RUNNING), from the
table's live index; --all lists every job submitted since --since (7 days
by default), newest first, from the index by submission time: neither
scans the table.`,
		Example: `  nightshift ls
  nightshift ls --all --since 2d
  nightshift ls --all --state FAILED`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var want job.State
			if state != "" {
				want = job.State(strings.ToUpper(state))
				if !slices.Contains(allStates, want) {
					return usagef("--state %q: want one of %s", state, joinStates(allStates))
				}
			}
			if cmd.Flags().Changed("since") {
				all = true
			}
			if want != "" && want.Terminal() {
				all = true // a finished job is not in the live index
			}
			c, err := a.use(ctx)
			if err != nil {
				return err
			}
			var jobs []*job.Job
			if all {
				from, err := parseSince(since, a.now())
				if err != nil {
					return usagef("%v", err)
				}
				if jobs, err = a.submittedSince(ctx, c, from); err != nil {
					return err
				}
			} else if jobs, err = liveJobs(ctx, c); err != nil {
				return err
			}
			if want != "" {
				jobs = slices.DeleteFunc(jobs, func(j *job.Job) bool { return j.State != want })
			}
			if a.json {
				if jobs == nil {
					jobs = []*job.Job{}
				}
				return printJSON(a.stdout, jobs)
			}
			return a.printJobs(jobs, all)
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "list finished jobs too, submitted since --since")
	c.Flags().StringVar(&since, "since", "7d", "with --all: how far back (90m, 36h, 7d, 2w) or from when (2026-11-01)")
	c.Flags().StringVar(&state, "state", "", "only jobs in this state ("+joinStates(allStates)+")")
	_ = c.RegisterFlagCompletionFunc("state", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		var out []string
		for _, s := range allStates {
			out = append(out, string(s))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	})
	return c
}

var allStates = []job.State{job.Queued, job.Placed, job.Running, job.Succeeded, job.Failed, job.TimedOut, job.Cancelled, job.Rejected}

func joinStates(ss []job.State) string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s))
	}
	return strings.Join(out, ", ")
}

// liveJobs reads the live index: one Query per live state (a page each,
// unless a state has more than a page of jobs), running first.
func liveJobs(ctx context.Context, c *cloud) ([]*job.Job, error) {
	var out []*job.Job
	for _, st := range []job.State{job.Running, job.Placed, job.Queued} {
		js, err := c.jobs.Live(ctx, st)
		if err != nil {
			return nil, fmt.Errorf("read %s jobs: %w", st, err)
		}
		out = append(out, js...)
	}
	return out, nil
}

// printJobs prints the jobs table.
func (a *app) printJobs(jobs []*job.Job, all bool) error {
	if len(jobs) == 0 {
		if all {
			fmt.Fprintln(a.stderr, "no jobs submitted in that time")
		} else {
			fmt.Fprintln(a.stderr, "no live jobs (nightshift ls --all lists finished ones)")
		}
		return nil
	}
	now := a.now()
	t := newTable(a.stdout, "ID", "NAME", a.paint(ansiPlain, "STATE"), "POOL/TYPE", "INSTANCE", "AGE", "RAN", "COST", "REASON")
	for _, j := range jobs {
		where := j.Pool
		if j.InstanceType != "" {
			where += "/" + j.InstanceType
		}
		if where == "" {
			where = "-"
		}
		reason := j.Reason
		if a.tty {
			reason = clip(reason, 60)
		}
		t.row(j.ID, orDash(clip(jobName(j), 24)), a.stateText(j.State), where, orDash(j.InstanceID), short(now.Sub(j.SubmittedAt)), short(runTime(j, now)), usd(j.Cost), reason)
	}
	return t.flush()
}

// jobName is a job's name as the tables show it: a notebook session's
// says it is one, "notebook alice".
func jobName(j *job.Job) string {
	if nb, ok := notebookOf(j); ok {
		return "notebook " + nb
	}
	return j.Name
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
