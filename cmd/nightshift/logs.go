package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// pollEvery is how often a follow reads the job and its log streams: each
// poll is one GetItem and one GetLogEvents per stream, well within their
// quotas (GetLogEvents: 25 a second per account and Region).
const pollEvery = 3 * time.Second

// recordWait bounds how long a just-sent message may take to become a
// record: the intake reads its queue within seconds, and retries a failed
// batch; past this something is wrong, and its log says what.
const recordWait = 2 * time.Minute

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	var attempt int
	c := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's output from CloudWatch Logs",
		Long: `Print the output of a job's attempt — its command's stdout on stdout, its
stderr on stderr — from the CloudWatch Logs streams SSM Run Command writes.
The last attempt by default; -f follows the output until the job ends.`,
		Example: `  nightshift logs resnet-cifar10
  nightshift logs -f resnet-cifar10
  nightshift logs --attempt 1 resnet-cifar10`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: a.completeJobs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			if attempt < 0 {
				return usagef("--attempt %d: attempts count from 1", attempt)
			}
			_, err = a.follow(cmd.Context(), c, args[0], followOptions{logs: true, wait: follow, attempt: attempt})
			return err
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the output until the job ends")
	c.Flags().IntVar(&attempt, "attempt", 0, "the attempt to print (default: the last)")
	return c
}

// followOptions say what follow prints and how long it goes on.
type followOptions struct {
	logs bool // print the job's output
	wait bool // go on until the job ends
	// attempt is the attempt whose output to print; 0 for the job's current one.
	attempt int
	// status is called when the job changes (a new version), for --wait's line.
	status func(j *job.Job)
}

// streamReader reads one log stream from where it last stopped.
type streamReader struct {
	group, stream string
	token         *string
	toStderr      bool
}

// logLine is one event of either stream.
type logLine struct {
	at       int64
	text     string
	toStderr bool
}

// read returns the events added since the last read: GetLogEvents from the
// head, then on from its forward token until the token comes back the same
// (that is the stream's end, as the API reference says). A stream that
// does not exist yet (the command has not written to it) reads as empty.
func (r *streamReader) read(ctx context.Context, logs logsAPI) ([]logLine, error) {
	var out []logLine
	for {
		in := &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(r.group), LogStreamName: aws.String(r.stream), StartFromHead: aws.Bool(true), NextToken: r.token}
		res, err := logs.GetLogEvents(ctx, in)
		if err != nil {
			if awserr.LogsNotFound.Has(err) {
				return out, nil
			}
			return out, fmt.Errorf("read log stream %s: %w", r.stream, err)
		}
		for _, e := range res.Events {
			out = append(out, logLine{at: aws.ToInt64(e.Timestamp), text: aws.ToString(e.Message), toStderr: r.toStderr})
		}
		// The end of the stream is the token passed in coming back: a
		// page may be empty with more to come (the API reference says so).
		next := res.NextForwardToken
		if next == nil || r.token != nil && *next == *r.token {
			return out, nil
		}
		r.token = next
	}
}

// attemptStreams returns the stdout and stderr streams of an attempt of j:
// its current one, or one of its History.
func attemptStreams(j *job.Job, attempt int) (string, error) {
	if attempt == 0 || attempt == j.Attempt {
		return j.LogStream, nil
	}
	if attempt > j.Attempt {
		return "", fmt.Errorf("job %s has had %d attempts", j.ID, j.Attempt)
	}
	for _, t := range slices.Backward(j.History) {
		if t.Attempt == attempt && t.LogStream != "" {
			return t.LogStream, nil
		}
	}
	return "", fmt.Errorf("job %s attempt %d never ran a command", j.ID, attempt)
}

func stderrStream(stdout string) string {
	return strings.TrimSuffix(stdout, "stdout") + "stderr"
}

// follow reads job id, prints its output if asked, and with wait goes on
// until the job ends, printing what is new at every poll. It returns the
// job as last read.
func (a *app) follow(ctx context.Context, c *cloud, id string, o followOptions) (*job.Job, error) {
	var (
		j       *job.Job
		version int64 = -1
		first         = a.now()
		readers []*streamReader
		stream  string
	)
	for {
		cur, err := c.jobs.Job(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound) && o.wait && a.now().Sub(first) < recordWait:
			// Just sent: the intake has not recorded it yet.
		case errors.Is(err, store.ErrNotFound) && o.wait:
			return nil, fmt.Errorf("no job %s in stack %s %v after it was sent: the intake function's log says why (%s)", id, c.stack.Name, recordWait, c.stack.IntakeFunction)
		case errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("no job %s in stack %s", id, c.stack.Name)
		case err != nil:
			return nil, err
		default:
			j = cur
		}
		if j != nil && j.Version != version {
			version = j.Version
			if o.status != nil {
				o.status(j)
			}
		}
		if j != nil && o.logs {
			s, err := attemptStreams(j, o.attempt)
			if err != nil {
				return j, err
			}
			if s != stream && s != "" {
				// A new attempt (or the first): its streams from the head.
				if stream != "" {
					fmt.Fprintf(a.stderr, "nightshift: attempt %d on %s\n", j.Attempt, j.InstanceID)
				}
				stream = s
				readers = []*streamReader{
					{group: c.stack.LogGroup, stream: s},
					{group: c.stack.LogGroup, stream: stderrStream(s), toStderr: true},
				}
			}
			if err := a.printNew(ctx, c, readers); err != nil {
				return j, err
			}
			if stream == "" && !o.wait {
				fmt.Fprintf(a.stderr, "nightshift: job %s has no output yet: %s (%s)\n", j.ID, j.State, j.Reason)
			}
		}
		if !o.wait || j != nil && j.State.Terminal() {
			if j != nil && o.logs && o.wait && stream != "" {
				// The command's last lines may reach CloudWatch Logs after
				// its end is recorded: one more read after a pause.
				if err := a.sleep(ctx, pollEvery); err != nil {
					return j, err
				}
				if err := a.printNew(ctx, c, readers); err != nil {
					return j, err
				}
			}
			return j, nil
		}
		if err := a.sleep(ctx, pollEvery); err != nil {
			return j, err
		}
	}
}

// printNew prints the new lines of the streams, in time order.
func (a *app) printNew(ctx context.Context, c *cloud, readers []*streamReader) error {
	var lines []logLine
	for _, r := range readers {
		ls, err := r.read(ctx, c.logs)
		if err != nil {
			return err
		}
		lines = append(lines, ls...)
	}
	slices.SortStableFunc(lines, func(x, y logLine) int { return cmp.Compare(x.at, y.at) })
	for _, l := range lines {
		var w io.Writer = a.stdout
		if l.toStderr {
			w = a.stderr
		}
		fmt.Fprintln(w, strings.TrimSuffix(l.text, "\n"))
	}
	return nil
}
