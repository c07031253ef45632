package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func (a *app) instancesCmd() *cobra.Command {
	var all bool
	c := &cobra.Command{
		Use:   "instances",
		Short: "List nightshift's instances and the watched ones",
		Long: `List the instances nightshift manages (tag nightshift:managed=true) and
the ones it watches for idleness (tag nightshift:watch=true): their
state, pool, the job that holds them, since when they are free, the last
thing nightshift did to them, and what they cost an hour on demand. A
notebook's own instance says so ("notebook alice"): it is stopped
between the notebook's sessions, its disk kept for the next.
Terminated instances are left out unless --all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			rows, err := instanceRows(cmd.Context(), c, all)
			if err != nil {
				return err
			}
			if a.json {
				if rows == nil {
					rows = []instanceRow{}
				}
				return printJSON(a.stdout, rows)
			}
			return a.printInstances(rows)
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "include terminated instances")
	return c
}

// instanceRow is one instance as instances prints it.
type instanceRow struct {
	ID    string `json:"id"`
	Type  string `json:"type"`
	State string `json:"state"`
	Kind  string `json:"kind"` // managed or watched
	Pool  string `json:"pool,omitempty"`
	// Notebook names the notebook whose own instance this is: stopped
	// between its sessions, its disk kept.
	Notebook   string    `json:"notebook,omitempty"`
	Job        string    `json:"job,omitempty"`
	FreeSince  time.Time `json:"free_since,omitzero"`
	LastAction string    `json:"last_action,omitempty"`
	Spot       bool      `json:"spot,omitempty"`
	Hourly     float64   `json:"hourly_usd,omitempty"`
	Launched   time.Time `json:"launched,omitzero"`
}

// instanceRows reads the instances (two DescribeInstances filters, a page
// of up to 1000 each) and the leases (one Query).
func instanceRows(ctx context.Context, c *cloud, all bool) ([]instanceRow, error) {
	leases, err := c.jobs.Leases(ctx)
	if err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	byID := map[string]store.Lease{}
	for _, l := range leases {
		byID[l.InstanceID] = l
	}
	var rows []instanceRow
	for _, kind := range []struct{ name, tag string }{{"managed", fleet.TagManaged}, {"watched", fleet.TagWatch}} {
		is, err := fleet.Describe(ctx, c.ec2, []ec2types.Filter{{Name: aws.String("tag:" + kind.tag), Values: []string{"true"}}})
		if err != nil {
			return nil, fmt.Errorf("list %s instances: %w", kind.name, err)
		}
		for _, i := range is {
			if i.State == fleet.StateTerminated && !all || kind.name == "watched" && i.Managed {
				continue
			}
			r := instanceRow{ID: i.ID, Type: i.Type, State: i.State, Kind: kind.name, Pool: i.Pool, LastAction: i.Tags[notice.TagLastAction], Spot: i.Spot, Launched: i.LaunchTime}
			if nb, ok := job.NotebookOf(i.Pool); ok {
				r.Notebook = nb
			}
			if t, ok := catalog.Lookup(i.Type); ok {
				r.Hourly = t.Hourly
			}
			// The lease says who holds it; an instance being started for a
			// job has its tag before the job's lease is written.
			r.Job = i.Job
			if l, ok := byID[i.ID]; ok {
				r.Job = l.JobID
				if !l.Held() {
					r.FreeSince = l.IdleSince
				}
			}
			rows = append(rows, r)
		}
	}
	slices.SortStableFunc(rows, func(x, y instanceRow) int {
		if x.Kind != y.Kind {
			return strings.Compare(x.Kind, y.Kind)
		}
		if x.Pool != y.Pool {
			return strings.Compare(x.Pool, y.Pool)
		}
		return strings.Compare(x.ID, y.ID)
	})
	return rows, nil
}

func (a *app) printInstances(rows []instanceRow) error {
	if len(rows) == 0 {
		fmt.Fprintln(a.stderr, "no instances: nightshift launches them when jobs come")
		return nil
	}
	now := a.now()
	t := newTable(a.stdout, "INSTANCE", "TYPE", "STATE", "KIND", "POOL", "JOB", "FREE FOR", "$/H", "LAST ACTION")
	for _, r := range rows {
		free := "-"
		if !r.FreeSince.IsZero() {
			free = short(now.Sub(r.FreeSince))
		}
		rate := usd(r.Hourly)
		if r.Spot {
			rate += " (spot: less)"
		}
		state, kind := r.State, r.Kind
		if r.Notebook != "" {
			kind = "notebook " + r.Notebook
			if r.State == fleet.StateStopped {
				state = "stopped, disk kept"
			}
		}
		t.row(r.ID, r.Type, state, kind, orDash(r.Pool), orDash(r.Job), free, rate, orDash(clip(r.LastAction, 80)))
	}
	return t.flush()
}
