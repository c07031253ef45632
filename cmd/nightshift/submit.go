package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// submitFlags are the fields submit builds a message from.
type submitFlags struct {
	id, name, command, pool, market, maxRuntime, notify, workdir string
	types, env, secrets                                          []string
	priority, retries                                            int
	wait, follow                                                 bool
}

func (a *app) submitCmd() *cobra.Command {
	var f submitFlags
	c := &cobra.Command{
		Use:   "submit [FILE.json | -] [flags]",
		Short: "Send a job to the stack's queue",
		Long: `Send a job message to the stack's jobs queue: a JSON file (- for stdin),
or one built from the flags. The message is validated here first, by the
same parser and against the same settings as the intake function (read
from it): a bad message is refused with the intake's own error, and
nothing is sent.

Without an id the job's id is the SQS message id. --wait waits for the
job to end, showing its state; --follow prints its output as it comes and
exits with the job's exit code.`,
		Example: `  nightshift submit job.json
  nightshift submit --command "python train.py --epochs 10" --max-runtime 2h --env WANDB_MODE=offline
  nightshift submit --id bert-large --pool multi --type g5.12xlarge --follow
  echo '{"command": "nvidia-smi"}' | nightshift submit -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw, err := a.message(cmd, args, f)
			if err != nil {
				return err
			}
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			return a.submit(cmd.Context(), c, raw, f.wait, f.follow)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.command, "command", "", "the command to run, in bash, in the job's directory")
	fl.StringVar(&f.id, "id", "", "the job's id (default: the SQS message id); a message with a used id creates nothing")
	fl.StringVar(&f.name, "name", "", "a name for people")
	fl.StringVar(&f.pool, "pool", "", "the pool to run in (default: the deployment's default pool)")
	fl.StringSliceVar(&f.types, "type", nil, "instance types to try, in order (repeat, or comma-separate)")
	fl.StringVar(&f.market, "market", "", "on-demand, spot or spot-then-on-demand (default: the pool's)")
	fl.StringVar(&f.maxRuntime, "max-runtime", "", "the longest the job may run, e.g. 90m or 12h (default: the deployment's)")
	fl.StringArrayVar(&f.env, "env", nil, "an environment variable, NAME=VALUE (repeat)")
	fl.StringArrayVar(&f.secrets, "secret", nil, "an environment variable read on the instance from Parameter Store, NAME=/parameter/name under the deployment's secrets prefix (repeat); the value never leaves AWS")
	fl.IntVar(&f.priority, "priority", 0, "higher runs first, 0-999")
	fl.IntVar(&f.retries, "retries", -1, "retries after a lost instance (default: the deployment's)")
	fl.StringVar(&f.notify, "notify", "", "when to notify the stack's topic: end or failure")
	fl.StringVar(&f.workdir, "workdir", "", "the job's directory on the instance")
	fl.BoolVar(&f.wait, "wait", false, "wait for the job to end; exit 1 unless it succeeded")
	fl.BoolVar(&f.follow, "follow", false, "print the job's output until it ends; exit with its exit code")
	return c
}

// message returns the job message of a submit: a file's, stdin's, or one
// made from the flags. Both, or neither, is a usage error.
func (a *app) message(cmd *cobra.Command, args []string, f submitFlags) ([]byte, error) {
	built := false
	for _, name := range []string{"command", "id", "name", "pool", "type", "market", "max-runtime", "env", "secret", "priority", "retries", "notify", "workdir"} {
		built = built || cmd.Flags().Changed(name)
	}
	switch {
	case len(args) == 1 && built:
		return nil, usagef("give a message file or the message's flags (--command …), not both")
	case len(args) == 1 && args[0] == "-":
		return io.ReadAll(io.LimitReader(a.stdin, job.MaxMessageBytes+1))
	case len(args) == 1:
		b, err := os.ReadFile(args[0])
		if err != nil {
			return nil, usagef("%v", err)
		}
		return b, nil
	case !built:
		return nil, usagef("give a message file (FILE.json, or - for stdin) or --command")
	case f.command == "":
		return nil, usagef("--command is required when the message is built from flags")
	}
	m := map[string]any{"command": f.command}
	put := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	put("id", f.id)
	put("name", f.name)
	put("max_runtime", f.maxRuntime)
	put("notify", f.notify)
	put("workdir", f.workdir)
	in := map[string]any{}
	if f.pool != "" {
		in["pool"] = f.pool
	}
	if f.market != "" {
		in["market"] = f.market
	}
	if len(f.types) > 0 {
		in["types"] = f.types
	}
	if len(in) > 0 {
		m["instance"] = in
	}
	env := map[string]any{}
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want NAME=VALUE", kv)
		}
		env[k] = v
	}
	for _, kv := range f.secrets {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || v == "" {
			return nil, usagef("--secret %q: want NAME=/parameter/name", kv)
		}
		if _, dup := env[k]; dup {
			return nil, usagef("--secret %s: %s is given twice", kv, k)
		}
		env[k] = map[string]string{"ssm": v}
	}
	if len(env) > 0 {
		m["env"] = env
	}
	if cmd.Flags().Changed("priority") {
		m["priority"] = f.priority
	}
	if cmd.Flags().Changed("retries") {
		m["retries"] = f.retries
	}
	return json.Marshal(m)
}

// submitted is what submit --json prints.
type submitted struct {
	ID        string    `json:"id"`
	MessageID string    `json:"message_id"`
	Queue     string    `json:"queue_url"`
	Job       *job.Job  `json:"job,omitempty"`
	SentAt    time.Time `json:"sent_at"`
}

// submit validates raw, sends it, and waits or follows if asked.
func (a *app) submit(ctx context.Context, c *cloud, raw []byte, wait, follow bool) error {
	id, err := a.validate(ctx, c, raw)
	if err != nil {
		return err
	}
	out, err := c.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.stack.QueueURL), MessageBody: aws.String(string(raw))})
	if err != nil {
		return fmt.Errorf("send to %s: %w", c.stack.QueueURL, err)
	}
	msgID := aws.ToString(out.MessageId)
	if id == "" {
		id = msgID // as the intake does
	}
	res := submitted{ID: id, MessageID: msgID, Queue: c.stack.QueueURL, SentAt: a.now().UTC()}
	if !a.json {
		fmt.Fprintf(a.stdout, "submitted %s\n", id)
		fmt.Fprintf(a.stdout, "  status   nightshift show %s\n", id)
		fmt.Fprintf(a.stdout, "  output   nightshift logs -f %s\n", id)
		fmt.Fprintf(a.stdout, "  console  %s\n", tableURL(c.stack.Region, c.stack.Table))
	}
	if !wait && !follow {
		if a.json {
			return printJSON(a.stdout, res)
		}
		return nil
	}
	j, err := a.await(ctx, c, id, follow)
	if err != nil {
		return err
	}
	res.Job = j
	if a.json {
		if err := printJSON(a.stdout, res); err != nil {
			return err
		}
	}
	return endStatus(j, follow)
}

// validate parses raw as the intake would and returns the job id it
// names (empty: the message id will be); a refusal says the intake's
// error and that nothing was sent.
func (a *app) validate(ctx context.Context, c *cloud, raw []byte) (string, error) {
	c.loadSettings(ctx)
	if job.IsCancel(raw) {
		return "", &exitError{code: exitFailed, msg: "this is a cancel message: use nightshift cancel ID"}
	}
	var probe struct {
		Instance struct {
			Pool string `json:"pool"`
		} `json:"instance"`
	}
	_ = json.Unmarshal(raw, &probe) // for the fallback's pool name only
	if c.settingsErr != nil {
		fmt.Fprintf(a.stderr, "nightshift: warning: %v; the message is checked here without the deployment's pools and defaults (the intake checks them)\n", c.settingsErr)
	}
	spec, err := job.Parse(raw, c.defaults(probe.Instance.Pool))
	if err != nil {
		return "", &exitError{code: exitFailed, msg: fmt.Sprintf("message refused, nothing sent: %v", err)}
	}
	return spec.ID, nil
}

// await follows a just-sent job to its end, with a status line (--wait)
// or its output (--follow).
func (a *app) await(ctx context.Context, c *cloud, id string, logs bool) (*job.Job, error) {
	line := ""
	status := func(j *job.Job) {
		s := fmt.Sprintf("%s  %s  %s", j.ID, a.stateText(j.State), j.Reason)
		if r := runTime(j, a.now()); r > 0 {
			s = fmt.Sprintf("%s  %s  ran %s  %s", j.ID, a.stateText(j.State), short(r), j.Reason)
		}
		if s == line {
			return
		}
		line = s
		if a.tty && !logs {
			// One live line, rewritten in place.
			fmt.Fprintf(a.stderr, "\r\x1b[K%s", clip(s, 200))
			if j.State.Terminal() {
				fmt.Fprintln(a.stderr)
			}
			return
		}
		fmt.Fprintf(a.stderr, "%s %s\n", a.now().UTC().Format("15:04:05"), s)
	}
	j, err := a.follow(ctx, c, id, followOptions{logs: logs, wait: true, status: status})
	if err == nil && j == nil {
		err = fmt.Errorf("job %s was not recorded within %v: see the intake function's log (nightshift show %s later)", id, recordWait, id)
	}
	return j, err
}

// endStatus is the exit of a command that waited for a job: nil when it
// succeeded; with follow, the job's own exit code.
func endStatus(j *job.Job, follow bool) error {
	if j.State == job.Succeeded {
		return nil
	}
	code := exitFailed
	if follow && j.ExitCode != nil && *j.ExitCode > 0 && *j.ExitCode < 256 {
		code = *j.ExitCode
	}
	return &exitError{code: code, msg: fmt.Sprintf("job %s ended %s: %s", j.ID, j.State, j.Reason)}
}
