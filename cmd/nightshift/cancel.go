package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

func (a *app) cancelCmd() *cobra.Command {
	var reason string
	var wait bool
	c := &cobra.Command{
		Use:   "cancel ID...",
		Short: "Cancel jobs",
		Long: `Cancel jobs through the pipeline: a cancel message, {"cancel": "ID",
"reason": "…"}, on the stack's jobs queue (the SQS console can send the
same). A QUEUED or PLACED job is cancelled at once and its instance
freed; a RUNNING one has its wrapper stopped (outputs synced) and then
its command cancelled, and its instance goes to the next job. A job that
has ended already is left as it is. --wait waits until each has ended.`,
		Example: `  nightshift cancel resnet-cifar10
  nightshift cancel --reason "wrong learning rate" --wait job-1 job-2`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: a.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(reason) > job.MaxCancelReason {
				return usagef("--reason: %d characters, at most %d", len(reason), job.MaxCancelReason)
			}
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			return a.cancel(cmd.Context(), c, args, reason, wait)
		},
	}
	c.Flags().StringVar(&reason, "reason", "", "why, recorded as the job's reason")
	c.Flags().BoolVar(&wait, "wait", false, "wait until each job has ended")
	return c
}

// cancelled is one line of cancel's report.
type cancelled struct {
	ID string `json:"id"`
	// Outcome: "sent", "ended already", "no such job".
	Outcome string    `json:"outcome"`
	State   job.State `json:"state,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// cancel sends a cancel message for each live job; an id with no job, or
// a job that has ended, gets none, and says so.
func (a *app) cancel(ctx context.Context, c *cloud, ids []string, reason string, wait bool) error {
	var report []cancelled
	failed := 0
	for _, id := range ids {
		j, err := c.jobs.Job(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			report = append(report, cancelled{ID: id, Outcome: "no such job"})
			failed++
			continue
		case err != nil:
			return err
		case j.State.Terminal():
			report = append(report, cancelled{ID: id, Outcome: "ended already", State: j.State, Reason: j.Reason})
			continue
		}
		body, err := json.Marshal(job.Cancel{ID: id, Reason: reason})
		if err != nil {
			return err
		}
		if _, err := job.ParseCancel(body); err != nil {
			return usagef("cancel %s: %v", id, err)
		}
		if _, err := c.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.stack.QueueURL), MessageBody: aws.String(string(body))}); err != nil {
			return fmt.Errorf("send the cancel of %s: %w", id, err)
		}
		report = append(report, cancelled{ID: id, Outcome: "sent", State: j.State, Reason: j.Reason})
	}
	if wait {
		for k, r := range report {
			if r.Outcome != "sent" {
				continue
			}
			j, err := a.follow(ctx, c, r.ID, followOptions{wait: true})
			if err != nil {
				return err
			}
			report[k].State, report[k].Reason = j.State, j.Reason
		}
	}
	if a.json {
		if err := printJSON(a.stdout, report); err != nil {
			return err
		}
	} else {
		for _, r := range report {
			switch r.Outcome {
			case "no such job":
				fmt.Fprintf(a.stderr, "%s: no such job in stack %s; nothing sent\n", r.ID, c.stack.Name)
			case "ended already":
				fmt.Fprintf(a.stdout, "%s: ended already (%s: %s); nothing sent\n", r.ID, r.State, r.Reason)
			case "sent":
				if wait {
					fmt.Fprintf(a.stdout, "%s: %s (%s)\n", r.ID, r.State, r.Reason)
				} else {
					fmt.Fprintf(a.stdout, "%s: cancel sent (it was %s)\n", r.ID, r.State)
				}
			}
		}
	}
	if failed > 0 {
		return &exitError{code: exitFailed}
	}
	return nil
}

func (a *app) retryCmd() *cobra.Command {
	var wait, follow bool
	c := &cobra.Command{
		Use:   "retry ID",
		Short: "Run a finished job again, as a new job",
		Long: `Send a finished job's message again as a new job, with a derived id
(ID-r1, then ID-r2, …): the original record stays as it was. The message
is the job's own as recorded, validated again as submit does.`,
		Example:           `  nightshift retry resnet-cifar10 --follow`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := a.use(ctx)
			if err != nil {
				return err
			}
			raw, err := retryMessage(ctx, c, args[0])
			if err != nil {
				return err
			}
			return a.submit(ctx, c, raw, wait, follow)
		},
	}
	c.Flags().BoolVar(&wait, "wait", false, "wait for the new job to end; exit 1 unless it succeeded")
	c.Flags().BoolVar(&follow, "follow", false, "print the new job's output until it ends; exit with its exit code")
	return c
}

// maxRetryIDs bounds the derived ids retry tries: ID-r1 … ID-r99.
const maxRetryIDs = 99

// retryMessage is the message of a new job re-running job id: the
// original spec with the next free derived id.
func retryMessage(ctx context.Context, c *cloud, id string) ([]byte, error) {
	j, err := c.job(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case j.State == job.Rejected:
		return nil, fmt.Errorf("job %s was rejected (%s): its message was not valid; fix it and submit it", id, j.Reason)
	case !j.State.Terminal():
		return nil, fmt.Errorf("job %s is %s: cancel it first, or wait for its end", id, j.State)
	}
	base := id
	if i := strings.LastIndex(id, "-r"); i > 0 && isDigits(id[i+2:]) {
		base = id[:i] // a retry of a retry counts on from the original
	}
	next := ""
	for n := 1; n <= maxRetryIDs && next == ""; n++ {
		cand := fmt.Sprintf("%s-r%d", base, n)
		if !job.ValidID(cand) {
			return nil, fmt.Errorf("job id %s is too long to derive a retry's id from: submit its message with an id of your own", id)
		}
		switch _, err := c.jobs.Job(ctx, cand); {
		case errors.Is(err, store.ErrNotFound):
			next = cand
		case err != nil:
			return nil, err
		}
	}
	if next == "" {
		return nil, fmt.Errorf("job %s has been retried %d times: submit its message with an id of your own", base, maxRetryIDs)
	}
	spec := j.Spec
	spec.ID, spec.ScheduledAt = next, ""
	return json.Marshal(spec)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
