package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/spf13/cobra"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// notebookFlags are notebook's flags.
type notebookFlags struct {
	pool, maxRuntime, idle, idleConnected string
	types                                 []string
	port                                  int
	noConnect, stop                       bool
}

// readyWait bounds how long notebook waits for a session to answer: a
// first session launches an instance and may install JupyterLab; past
// this something is wrong, and the session's output says what.
const readyWait = 30 * time.Minute

// stopReason is the reason of the cancel message notebook --stop sends.
const stopReason = "stopped with nightshift notebook --stop"

func (a *app) notebookCmd() *cobra.Command {
	var f notebookFlags
	c := &cobra.Command{
		Use:   "notebook [NAME]",
		Short: "Open a JupyterLab notebook on a GPU instance of its own",
		Long: `Open the notebook NAME (default: your user name, $USER): JupyterLab on
the notebook's own instance, the same one every session, stopped between
sessions with its disk (your files, your environment) kept. A live
session of the notebook is reused; otherwise notebook sends a notebook
message, {"notebook": NAME}, to the stack's queue, follows it until
JupyterLab answers, and forwards a port of this machine to it through
Session Manager (session-manager-plugin, as aws ssm start-session does):
no inbound port, no key pair. JupyterLab listens on the instance's
loopback only, and its URL carries a token made for the session.

The session ends by itself once you have left: nobody connected and
nothing running for the deployment's NotebookIdleMinutes (5 by default,
--idle), a browser connected but nothing running for
NotebookIdleConnectedMinutes (60, --idle-connected); never while a
kernel or the GPU is busy. --stop ends it now.`,
		Example: `  nightshift notebook
  nightshift notebook alice --type g5.2xlarge --idle 15m
  nightshift notebook alice --no-connect
  nightshift notebook alice --stop`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := a.notebookName(args)
			if err != nil {
				return err
			}
			if f.port < 1 || f.port > 65535 {
				return usagef("--port %d: want a port number, 1-65535", f.port)
			}
			if a.json && !f.noConnect && !f.stop {
				return usagef("--json prints the session as one document: give --no-connect (or --stop) with it")
			}
			c, err := a.use(cmd.Context())
			if err != nil {
				return err
			}
			if f.stop {
				return a.stopNotebook(cmd.Context(), c, name)
			}
			return a.notebook(cmd, c, name, f)
		},
	}
	fl := c.Flags()
	fl.StringVar(&f.pool, "pool", "", "the pool whose instance type, AMI and disk the notebook's instance is launched like (its first session only; default: the deployment's default pool)")
	fl.StringSliceVar(&f.types, "type", nil, "instance types to try for the notebook's instance, in order (its first session only)")
	fl.StringVar(&f.maxRuntime, "max-runtime", "", "the longest the session may run, e.g. 8h (default: the deployment's, else 12h)")
	fl.StringVar(&f.idle, "idle", "", "end the session after this long with nobody connected and nothing running (default: the deployment's NotebookIdleMinutes, 5m)")
	fl.StringVar(&f.idleConnected, "idle-connected", "", "end it after this long with a browser connected but nothing running (default: NotebookIdleConnectedMinutes, 1h)")
	fl.IntVar(&f.port, "port", job.NotebookPort, "the port on this machine to forward to the notebook; if it is taken, the next free one")
	fl.BoolVar(&f.noConnect, "no-connect", false, "start the session (or find it) and print how to connect; do not forward a port")
	fl.BoolVar(&f.stop, "stop", false, "end the notebook's live session now: its instance stops, its disk is kept")
	c.MarkFlagsMutuallyExclusive("stop", "no-connect")
	return c
}

// notebookName is the notebook's name: the argument, or the user's name
// from the environment, either checked as the intake checks it.
func (a *app) notebookName(args []string) (string, error) {
	if len(args) == 1 {
		if !job.ValidNotebookName(args[0]) {
			return "", usagef("notebook name %q: want 1-32 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", args[0])
		}
		return args[0], nil
	}
	for _, k := range []string{"USER", "LOGNAME", "USERNAME"} {
		if u := a.getenv(k); u != "" {
			if !job.ValidNotebookName(u) {
				return "", usagef("your user name ($%s) %q is not a notebook name (1-32 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit): give one, nightshift notebook NAME", k, u)
			}
			return u, nil
		}
	}
	return "", usagef("no user name in $USER: give the notebook's name, nightshift notebook NAME")
}

// liveNotebook returns the notebook's live session, the most advanced if
// there are several (running first), or nil: one Query per live state.
func liveNotebook(ctx context.Context, c *cloud, name string) (*job.Job, error) {
	js, err := liveJobs(ctx, c)
	if err != nil {
		return nil, err
	}
	for _, j := range js {
		// One being stopped (--stop, the watchdog) is not reused: a new
		// session waits for its instance, and gets it once it is free.
		if nb, ok := notebookOf(j); ok && nb == name && !j.CancelRequested() {
			return j, nil
		}
	}
	return nil, nil
}

// notebookOf returns the notebook a job is a session of: its spec's, or
// its pool's (a notebook's own pool names it, and every record has one).
func notebookOf(j *job.Job) (string, bool) {
	if j.Spec.Notebook != nil {
		return j.Spec.Notebook.Name, true
	}
	return job.NotebookOf(j.Pool)
}

// notebookMessage is the message of a new session of notebook name.
func notebookMessage(name, id string, f notebookFlags) ([]byte, error) {
	m := map[string]any{"id": id}
	nb := map[string]any{"name": name}
	if f.idle != "" {
		nb["idle"] = f.idle
	}
	if f.idleConnected != "" {
		nb["idle_connected"] = f.idleConnected
	}
	if len(nb) == 1 {
		m["notebook"] = name
	} else {
		m["notebook"] = nb
	}
	in := map[string]any{}
	if f.pool != "" {
		in["pool"] = f.pool
	}
	if len(f.types) > 0 {
		in["types"] = f.types
	}
	if len(in) > 0 {
		m["instance"] = in
	}
	if f.maxRuntime != "" {
		m["max_runtime"] = f.maxRuntime
	}
	return json.Marshal(m)
}

// notebookID is the id of a new session: nb-NAME-<UTC time>, so that a
// person can tell the sessions of a notebook apart in ls --all.
func notebookID(name string, now time.Time) string {
	return "nb-" + name + "-" + now.UTC().Format("20060102T150405Z")
}

// notebook finds or starts the notebook's session, waits until it answers,
// and connects to it (or says how).
func (a *app) notebook(cmd *cobra.Command, c *cloud, name string, f notebookFlags) error {
	ctx := cmd.Context()
	j, err := liveNotebook(ctx, c, name)
	if err != nil {
		return err
	}
	var id string
	if j != nil {
		id = j.ID
		fmt.Fprintf(a.stderr, "nightshift: notebook %s has a live session, %s (%s): using it\n", name, j.ID, j.State)
		var ignored []string
		for _, fl := range []string{"pool", "type", "max-runtime", "idle", "idle-connected"} {
			if cmd.Flags().Changed(fl) {
				ignored = append(ignored, "--"+fl)
			}
		}
		if len(ignored) > 0 {
			fmt.Fprintf(a.stderr, "nightshift: only a new session takes %s: nightshift notebook %s --stop ends this one\n", strings.Join(ignored, ", "), name)
		}
	} else {
		id = notebookID(name, a.now())
		raw, err := notebookMessage(name, id, f)
		if err != nil {
			return err
		}
		if _, err := a.validate(ctx, c, raw); err != nil {
			return err
		}
		if _, err := c.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.stack.QueueURL), MessageBody: aws.String(string(raw))}); err != nil {
			return fmt.Errorf("send to %s: %w", c.stack.QueueURL, err)
		}
		fmt.Fprintf(a.stderr, "nightshift: started notebook %s: session %s\n", name, id)
	}
	j, ready, err := a.awaitNotebook(ctx, c, id)
	if err != nil {
		return err
	}
	s, err := newNotebookSession(name, j, ready)
	if err != nil {
		return err
	}
	port, err := a.localPort(f.port, cmd.Flags().Changed("port"))
	if err != nil {
		return err
	}
	s.LocalPort = port
	s.LocalURL = s.localURL()
	if f.noConnect {
		return a.printNotebook(c, s)
	}
	return a.connectNotebook(ctx, c, s)
}

// notebookSession is a session that answers, as notebook prints it.
type notebookSession struct {
	Notebook   string    `json:"notebook"`
	ID         string    `json:"id"`
	State      job.State `json:"state"`
	InstanceID string    `json:"instance_id"`
	// URL is the one the instance printed, on its loopback.
	URL          string `json:"url"`
	InstancePort int    `json:"instance_port"`
	LocalPort    int    `json:"local_port"`
	// LocalURL is URL through the forwarded port.
	LocalURL string   `json:"local_url"`
	Command  []string `json:"start_session_command"`
	u        *url.URL
}

func newNotebookSession(name string, j *job.Job, ready string) (*notebookSession, error) {
	u, err := url.Parse(ready)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("session %s printed %q as its URL: not a URL (%v)", j.ID, ready, err)
	}
	port := job.NotebookPort
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return nil, fmt.Errorf("session %s printed %q as its URL: bad port", j.ID, ready)
		}
	}
	if j.InstanceID == "" {
		return nil, fmt.Errorf("session %s answers but its record names no instance", j.ID)
	}
	return &notebookSession{Notebook: name, ID: j.ID, State: j.State, InstanceID: j.InstanceID, URL: ready, InstancePort: port, u: u}, nil
}

func (s *notebookSession) localURL() string {
	u := *s.u
	u.Scheme, u.Host = "http", "localhost:"+strconv.Itoa(s.LocalPort)
	return u.String()
}

// startSessionInput is the port-forwarding session to the notebook.
func (s *notebookSession) startSessionInput() *ssm.StartSessionInput {
	return &ssm.StartSessionInput{
		Target:       aws.String(s.InstanceID),
		DocumentName: aws.String(portForwardingDocument),
		Parameters: map[string][]string{
			"portNumber":      {strconv.Itoa(s.InstancePort)},
			"localPortNumber": {strconv.Itoa(s.LocalPort)},
		},
	}
}

// awsCommand is the aws ssm start-session command a person can run
// themselves to forward the same port.
func (a *app) awsCommand(c *cloud, s *notebookSession) []string {
	cmd := []string{"aws", "ssm", "start-session", "--region", c.stack.Region}
	if a.profile != "" {
		cmd = append(cmd, "--profile", a.profile)
	}
	return append(cmd, "--target", s.InstanceID, "--document-name", portForwardingDocument,
		"--parameters", fmt.Sprintf("portNumber=%d,localPortNumber=%d", s.InstancePort, s.LocalPort))
}

// awaitNotebook follows session id until its output has the ready line,
// saying each change of its state and the output it prints before; a
// session that ends first is an error with its reason.
func (a *app) awaitNotebook(ctx context.Context, c *cloud, id string) (*job.Job, string, error) {
	var (
		j       *job.Job
		version int64 = -1
		first         = a.now()
		stream  string
		readers []*streamReader
	)
	for {
		cur, err := c.jobs.Job(ctx, id)
		switch {
		case errors.Is(err, store.ErrNotFound) && a.now().Sub(first) < recordWait:
			// Just sent: the intake has not recorded it yet.
		case errors.Is(err, store.ErrNotFound):
			return nil, "", fmt.Errorf("no session %s in stack %s %v after it was sent: the intake function's log says why (%s)", id, c.stack.Name, recordWait, c.stack.IntakeFunction)
		case err != nil:
			return nil, "", err
		default:
			j = cur
		}
		if j != nil && j.Version != version {
			version = j.Version
			fmt.Fprintf(a.stderr, "%s %s  %s\n", a.now().UTC().Format("15:04:05"), a.stateText(j.State), j.Reason)
		}
		if j != nil && j.LogStream != "" && j.LogStream != stream {
			stream = j.LogStream
			readers = []*streamReader{
				{group: c.stack.LogGroup, stream: stream},
				{group: c.stack.LogGroup, stream: stderrStream(stream), toStderr: true},
			}
		}
		for _, r := range readers {
			lines, err := r.read(ctx, c.logs)
			if err != nil {
				return j, "", err
			}
			for _, l := range lines {
				text := strings.TrimSpace(l.text)
				if u, ok := strings.CutPrefix(text, job.NotebookReady); ok {
					return j, strings.TrimSpace(u), nil
				}
				fmt.Fprintln(a.stderr, "  "+text)
			}
		}
		if j != nil && j.State.Terminal() {
			switch j.State {
			case job.Rejected:
				return j, "", &exitError{code: exitFailed, msg: fmt.Sprintf("notebook session %s was rejected: %s", j.ID, j.Reason)}
			default:
				return j, "", &exitError{code: exitFailed, msg: fmt.Sprintf("notebook session %s ended %s before JupyterLab answered: %s (nightshift logs %s)", j.ID, j.State, j.Reason, j.ID)}
			}
		}
		if a.now().Sub(first) > readyWait {
			return j, "", &exitError{code: exitFailed, msg: fmt.Sprintf("notebook session %s does not answer after %v; it goes on: nightshift logs -f %s, or nightshift notebook --stop", id, readyWait, id)}
		}
		if err := a.sleep(ctx, pollEvery); err != nil {
			return j, "", err
		}
	}
}

// localPort is the port on this machine to forward: want if it is free;
// else, unless it was asked for by name, the next free one.
func (a *app) localPort(want int, asked bool) (int, error) {
	if a.portFree(want) {
		return want, nil
	}
	if asked {
		return 0, &exitError{code: exitFailed, msg: fmt.Sprintf("port %d is in use on this machine: give another --port", want)}
	}
	for p := want + 1; p <= want+20 && p <= 65535; p++ {
		if a.portFree(p) {
			fmt.Fprintf(a.stderr, "nightshift: port %d is in use on this machine: forwarding from port %d instead\n", want, p)
			return p, nil
		}
	}
	return 0, &exitError{code: exitFailed, msg: fmt.Sprintf("ports %d to %d are in use on this machine: give a free one, --port", want, want+20)}
}

// printNotebook says how to reach a session without connecting.
func (a *app) printNotebook(c *cloud, s *notebookSession) error {
	s.Command = a.awsCommand(c, s)
	if a.json {
		return printJSON(a.stdout, s)
	}
	fmt.Fprintf(a.stdout, "notebook %s is ready on %s (session %s)\n", s.Notebook, s.InstanceID, s.ID)
	fmt.Fprintf(a.stdout, "  connect  nightshift notebook %s\n", s.Notebook)
	fmt.Fprintf(a.stdout, "       or  %s\n", shellJoin(s.Command))
	fmt.Fprintf(a.stdout, "  then     %s\n", s.LocalURL)
	fmt.Fprintf(a.stdout, "  stop     nightshift notebook %s --stop (or leave it: it stops once idle)\n", s.Notebook)
	return nil
}

// connectNotebook opens the port-forwarding session and hands it to
// session-manager-plugin, with the terminal, until it ends.
func (a *app) connectNotebook(ctx context.Context, c *cloud, s *notebookSession) error {
	path, err := a.lookPath(pluginName)
	if err != nil {
		fmt.Fprintf(a.stdout, "notebook %s is ready on %s (session %s)\n", s.Notebook, s.InstanceID, s.ID)
		fmt.Fprint(a.stderr, pluginMissing)
		fmt.Fprintf(a.stderr, "then connect with nightshift notebook %s, or with the AWS CLI:\n  %s\nand open %s\n", s.Notebook, shellJoin(a.awsCommand(c, s)), s.LocalURL)
		return &exitError{code: exitFailed, msg: "session-manager-plugin is not installed: nothing forwarded"}
	}
	in := s.startSessionInput()
	out, err := c.ssm.StartSession(ctx, in)
	if err != nil {
		return fmt.Errorf("start a Session Manager session to %s: %w", s.InstanceID, err)
	}
	version, _ := a.pluginVersion(ctx, path)
	pc, err := pluginCommandLine(path, version, out, c.stack.Region, a.profile, in, c.ssmEndpoint)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "notebook %s is ready on %s (session %s)\n", s.Notebook, s.InstanceID, s.ID)
	fmt.Fprintf(a.stdout, "forwarding localhost:%d to port %d on %s through Session Manager; Ctrl-C ends the forwarding, not the notebook\n", s.LocalPort, s.InstancePort, s.InstanceID)
	fmt.Fprintf(a.stdout, "open %s\n", s.LocalURL)
	if err := a.runPlugin(ctx, pc); err != nil {
		var ee *pluginStartError
		if errors.As(err, &ee) {
			// As the AWS CLI does: a session the plugin never took is
			// ended, rather than left open on the agent until it times out.
			_, _ = c.ssm.TerminateSession(ctx, &ssm.TerminateSessionInput{SessionId: out.SessionId})
		}
		return fmt.Errorf("session-manager-plugin: %w", err)
	}
	fmt.Fprintf(a.stderr, "nightshift: forwarding ended; notebook %s goes on until it is idle (nightshift notebook %s --stop ends it now)\n", s.Notebook, s.Notebook)
	return nil
}

// stopNotebook sends the cancel message of the notebook's live session.
func (a *app) stopNotebook(ctx context.Context, c *cloud, name string) error {
	j, err := liveNotebook(ctx, c, name)
	if err != nil {
		return err
	}
	type stopped struct {
		Notebook string    `json:"notebook"`
		ID       string    `json:"id,omitempty"`
		Outcome  string    `json:"outcome"` // "sent" or "no live session"
		State    job.State `json:"state,omitempty"`
		Instance string    `json:"instance_id,omitempty"`
	}
	if j == nil {
		if a.json {
			return printJSON(a.stdout, stopped{Notebook: name, Outcome: "no live session"})
		}
		fmt.Fprintf(a.stdout, "notebook %s has no live session in stack %s; nothing sent\n", name, c.stack.Name)
		return nil
	}
	body, err := json.Marshal(job.Cancel{ID: j.ID, Reason: stopReason})
	if err != nil {
		return err
	}
	if _, err := job.ParseCancel(body); err != nil {
		return err
	}
	if _, err := c.sqs.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(c.stack.QueueURL), MessageBody: aws.String(string(body))}); err != nil {
		return fmt.Errorf("send the cancel of %s: %w", j.ID, err)
	}
	if a.json {
		return printJSON(a.stdout, stopped{Notebook: name, ID: j.ID, Outcome: "sent", State: j.State, Instance: j.InstanceID})
	}
	where := ""
	if j.InstanceID != "" {
		where = " on " + j.InstanceID
	}
	fmt.Fprintf(a.stdout, "notebook %s: stop sent to session %s (it was %s%s)\n", name, j.ID, j.State, where)
	fmt.Fprintf(a.stdout, "  JupyterLab ends and the instance stops; its disk, with your files, is kept for the next session (nightshift notebook %s)\n", name)
	return nil
}
