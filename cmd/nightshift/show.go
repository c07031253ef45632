package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
)

func (a *app) showCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a job: its record, every transition and attempt, its links",
		Long: `Show one job's record (one GetItem): where it is and why, what it asked
for, its timeline of transitions, each attempt's instance, command and log
stream, and links to the same things in the AWS console.`,
		Example:           `  nightshift show resnet-cifar10`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			j, err := c.job(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			links := jobLinks(c.stack, j)
			if a.json {
				return printJSON(a.stdout, struct {
					*job.Job
					Links map[string]string `json:"links"`
				}{j, links})
			}
			a.printJob(a.stdout, j, links)
			return nil
		},
	}
}

// jobLinks are the console pages of a job: its record, output, command, instance.
func jobLinks(s Stack, j *job.Job) map[string]string {
	l := map[string]string{"record": tableURL(s.Region, s.Table)}
	if j.LogStream != "" {
		l["output"] = logsURL(s.Region, s.LogGroup, j.LogStream)
	}
	if j.CommandID != "" {
		l["command"] = commandURL(s.Region, j.CommandID)
	}
	if j.InstanceID != "" {
		l["instance"] = instanceURL(s.Region, j.InstanceID)
	}
	if s.DashboardURL != "" {
		l["dashboard"] = s.DashboardURL
	}
	return l
}

// printJob prints the human form of show.
func (a *app) printJob(w io.Writer, j *job.Job, links map[string]string) {
	now := a.now()
	title := "job " + j.ID
	if n := jobName(j); n != "" {
		title += " (" + n + ")"
	}
	fmt.Fprintln(w, title)
	field := func(k, v string) {
		if v != "" && v != "-" {
			fmt.Fprintf(w, "  %-11s %s\n", k, v)
		}
	}
	field("state", a.stateText(j.State)+"  "+j.Reason)
	if j.ExitCode != nil {
		field("exit code", fmt.Sprint(*j.ExitCode))
	}
	field("command", j.Spec.Command)
	where := j.Pool
	if t := j.Spec.Instance.Types; len(t) > 0 {
		where += ", types " + strings.Join(t, " then ")
	}
	if m := j.Market; m != "" {
		where += ", " + m
	} else if m := j.Spec.Instance.Market; m != "" {
		where += ", " + m
	}
	field("pool", where)
	if j.InstanceID != "" {
		field("instance", j.InstanceID+" ("+j.InstanceType+")")
	}
	if j.Resumes > 0 {
		// Lost attempts that resumed from the checkpoint use no retry.
		field("attempt", fmt.Sprintf("%d (%d resumed from its checkpoint; retries used %d of %d)", j.Attempt, j.Resumes, j.RetriesUsed(), j.Spec.RetryLimit()))
	} else {
		field("attempt", fmt.Sprintf("%d of %d", j.Attempt, j.Spec.RetryLimit()+1))
	}
	if c := j.Spec.Checkpoint; c != nil {
		field("checkpoint", fmt.Sprintf("%s, from %s, synced every %v", c.S3, c.Path, c.Every.D()))
	}
	field("priority", fmt.Sprint(j.Priority))
	if d := j.Spec.MaxRuntime.D(); d > 0 {
		field("max runtime", d.String())
	}
	field("submitted", stamp(j.SubmittedAt)+" UTC, "+short(now.Sub(j.SubmittedAt))+" ago")
	if !j.StartedAt.IsZero() {
		field("started", stamp(j.StartedAt)+" UTC")
	}
	if !j.EndedAt.IsZero() {
		field("ended", stamp(j.EndedAt)+" UTC")
	}
	if r := runTime(j, now); r > 0 {
		field("ran", short(r))
	}
	field("cost", usd(j.Cost))
	if j.CancelRequested() {
		field("cancel", "asked at "+stamp(j.CancelRequestedAt)+" UTC: "+orDash(j.CancelReason))
	}
	field("source", j.Source)
	if len(j.Spec.Env) > 0 {
		var names []string
		for _, k := range slices.Sorted(maps.Keys(j.Spec.Env)) {
			if v := j.Spec.Env[k]; v.Secret() {
				k += " (from " + v.SSM + ")"
			}
			names = append(names, k)
		}
		field("env", strings.Join(names, " "))
	}

	if len(j.History) > 0 {
		fmt.Fprintln(w, "\ntimeline (UTC)")
		if j.HistoryDropped > 0 {
			fmt.Fprintf(w, "  … %d earlier transitions not kept\n", j.HistoryDropped)
		}
		t := newTable(w, "  AT", "MOVE", "#", "WHY")
		for _, h := range j.History {
			move := string(h.To)
			if h.From != "" {
				move = string(h.From) + " → " + string(h.To)
			}
			t.row("  "+stamp(h.At), move, fmt.Sprint(h.Attempt), h.Reason)
		}
		_ = t.flush()
	}
	if att := attempts(j); len(att) > 0 {
		fmt.Fprintln(w, "\nattempts")
		t := newTable(w, "  #", "INSTANCE", "TYPE", "COMMAND", "LOG STREAM")
		for _, x := range att {
			t.row("  "+fmt.Sprint(x.n), orDash(x.instance), orDash(x.typ), orDash(x.command), orDash(x.stream))
		}
		_ = t.flush()
	}
	fmt.Fprintln(w, "\nin the console")
	for _, k := range []string{"record", "output", "command", "instance", "dashboard"} {
		if u, ok := links[k]; ok {
			fmt.Fprintf(w, "  %-10s%s\n", k, u)
		}
	}
}

// attempt is what one attempt of a job ran on.
type attempt struct {
	n                              int
	instance, typ, command, stream string
}

// attempts gathers each attempt's instance and command from the history,
// and the current attempt's from the record.
func attempts(j *job.Job) []attempt {
	by := map[int]*attempt{}
	note := func(n int, inst, typ, cmd, stream string) {
		if inst == "" && cmd == "" {
			return
		}
		x, ok := by[n]
		if !ok {
			x = &attempt{n: n}
			by[n] = x
		}
		if inst != "" {
			x.instance, x.typ = inst, typ
		}
		if cmd != "" {
			x.command, x.stream = cmd, stream
		}
	}
	for _, h := range j.History {
		note(h.Attempt, h.InstanceID, h.InstanceType, h.CommandID, h.LogStream)
	}
	note(j.Attempt, j.InstanceID, j.InstanceType, j.CommandID, j.LogStream)
	var out []attempt
	for _, n := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[n])
	}
	return out
}
