package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// stopHeaderPrefix starts a stop command's first line, a shell comment; the
// version and the JSON follow.
const stopHeaderPrefix = "# nightshift-stop/"

// StopHeaderVersion is the version of the stop header this package writes
// and reads, changed as HeaderVersion is.
const StopHeaderVersion = "v1"

// stopTimeout is the stop command's execution timeout: it reads two files
// and sends one signal.
const stopTimeout = time.Minute

// ErrNoStopHeader is what ParseStopHeader returns for a command whose first
// line is not a nightshift-stop header: a wrapper, or anything else.
var ErrNoStopHeader = errors.New("no nightshift-stop header")

// StopHeader is what the first line of a stop command says, as JSON: the
// attempt it stops, and where that attempt's wrapper keeps its state. For
// example:
//
//	# nightshift-stop/v1 {"job":"resnet","attempt":1,"state_dir":"/var/lib/nightshift"}
type StopHeader struct {
	Job      string `json:"job"`
	Attempt  int    `json:"attempt"`
	StateDir string `json:"state_dir"`
}

// AttemptDir is the directory of the attempt the command stops, as the
// wrapper's Header.AttemptDir names it.
func (h StopHeader) AttemptDir() string {
	return Header{Job: h.Job, Attempt: h.Attempt, StateDir: h.StateDir}.AttemptDir()
}

// ParseStopHeader reads the header on the first line of commands, the text
// of SSM's "commands" parameter that StopCommand wrote. Its errors are
// ErrNoStopHeader, ErrHeaderVersion and ErrBadHeader.
func ParseStopHeader(commands string) (StopHeader, error) {
	return parseAttemptHeader(commands, stopHeaderPrefix, StopHeaderVersion, "stop header ", ErrNoStopHeader)
}

// parseAttemptHeader reads a header whose JSON names an attempt and its
// state directory (a stop's, a checkpoint sync's).
func parseAttemptHeader(commands, prefix, version, what string, errNone error) (StopHeader, error) {
	body, err := headerBody(commands, prefix, version, what, errNone)
	if err != nil {
		return StopHeader{}, err
	}
	var raw struct {
		Job      *string `json:"job"`
		Attempt  *int    `json:"attempt"`
		StateDir *string `json:"state_dir"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		return StopHeader{}, fmt.Errorf("%w: %s: %w", ErrBadHeader, strings.TrimSpace(what), err)
	}
	switch {
	case raw.Job == nil || raw.Attempt == nil || raw.StateDir == nil:
		return StopHeader{}, fmt.Errorf("%w: %swithout job, attempt or state_dir", ErrBadHeader, what)
	case *raw.Job == "" || *raw.Attempt < 1 || *raw.StateDir == "":
		return StopHeader{}, fmt.Errorf("%w: %sfor job %q attempt %d in %q", ErrBadHeader, what, *raw.Job, *raw.Attempt, *raw.StateDir)
	}
	return StopHeader{Job: *raw.Job, Attempt: *raw.Attempt, StateDir: *raw.StateDir}, nil
}

func (h StopHeader) line() (string, error) {
	return headerLine(stopHeaderPrefix, StopHeaderVersion, h)
}

// stopText is the stop command, run by /bin/sh (dash on Ubuntu): it sends
// TERM to the attempt's wrapper, by the pid the wrapper recorded, only if
// that pid is still the wrapper (its start time is the recorded one), and
// does nothing if the attempt has ended or is not on the instance. A
// wrapper that has not recorded its pid yet finds the file "stop" before
// it runs the command.
const stopText = `{{header}}
d={{dir}}
what={{what}}
if [ ! -d "$d" ]; then
	echo "nightshift: $what is not on this instance: nothing to stop"
	exit 0
fi
if [ -s "$d/exit_code" ]; then
	echo "nightshift: $what has ended already (exit code $(cat "$d/exit_code")): nothing to stop"
	exit 0
fi
: >"$d/stop"
pid='' started='' now=''
read -r pid started 2>/dev/null <"$d/pid"
if [ -n "$pid" ] && s=$(cat "/proc/$pid/stat" 2>/dev/null); then
	s=${s##*) }
	set -- $s
	now=${20}
fi
if [ -n "$started" ] && [ "$now" = "$started" ] && kill -TERM "$pid" 2>/dev/null; then
	echo "nightshift: $what: TERM sent to its wrapper (pid $pid); the job has {{grace}} s to end, then its outputs are synced and exit code {{code}} recorded"
else
	echo "nightshift: $what has no running wrapper on this instance: nothing to stop"
fi
`

// StopComment is the SSM comment of the stop command for j's current
// attempt; Find never takes it for the attempt's own command.
func StopComment(j *job.Job) string {
	return fmt.Sprintf("nightshift stop %s #%d", j.ID, j.Attempt)
}

// StopCommand is the /bin/sh command that stops j's current attempt on an
// instance whose wrapper was rendered with o. Its first line is its
// StopHeader, a shell comment.
func StopCommand(j *job.Job, o ScriptOptions) (string, error) {
	h := StopHeader{Job: j.ID, Attempt: j.Attempt, StateDir: o.StateDir}
	if h.StateDir == "" {
		h.StateDir = DefaultStateDir
	}
	line, err := h.line()
	if err != nil {
		return "", fmt.Errorf("stop header for %s: %w", j.ID, err)
	}
	return expand(stopText, map[string]string{
		"header": line, "dir": Quote(h.AttemptDir()), "what": Quote("attempt " + strconv.Itoa(j.Attempt) + " of job " + j.ID),
		"grace": strconv.Itoa(o.stopGraceSeconds()), "code": strconv.Itoa(StopExitCode),
	}, nil)
}

// Stop asks the wrapper of j's current attempt on the instance to stop it
// gracefully, with a command of its own beside the attempt's (SSM's
// CancelCommand kills the attempt's whole process group with SIGKILL, so
// its wrapper could neither sync outputs nor record an exit code). The
// wrapper sends the job TERM, KILL after StopGrace, syncs the outputs,
// records StopExitCode and arms the idle timer; the attempt's own command
// then ends with StopExitCode. Stop returns the stop command's id. A stop
// sent twice, or for an attempt that has ended or is not on the instance,
// does nothing there.
func (r *Runner) Stop(ctx context.Context, j *job.Job, instanceID string) (string, error) {
	commands, err := StopCommand(j, r.cfg.Script)
	if err != nil {
		return "", err
	}
	id, err := r.sendAside(ctx, instanceID, StopComment(j), commands)
	if err != nil {
		return "", fmt.Errorf("send stop for %s to %s: %w", j.ID, instanceID, err)
	}
	return id, nil
}

// sendAside sends one of the short commands that go to an attempt's
// wrapper beside the attempt's own (a stop, a checkpoint sync), and
// returns its id.
func (r *Runner) sendAside(ctx context.Context, instanceID, comment, commands string) (string, error) {
	in := &ssm.SendCommandInput{
		DocumentName:   aws.String(Document),
		InstanceIds:    []string{instanceID},
		Comment:        aws.String(comment),
		TimeoutSeconds: aws.Int32(int32(DeliveryTimeout / time.Second)),
		Parameters: map[string][]string{
			"commands":         {commands},
			"executionTimeout": {strconv.Itoa(int(stopTimeout / time.Second))},
		},
	}
	// As Send: a relative state directory is taken from where the command
	// starts (the local run).
	if dir := r.cfg.Script.StateDir; dir == "" || path.IsAbs(dir) {
		in.Parameters["workingDirectory"] = []string{agentDir}
	}
	// Its few lines of output go beside the job's in CloudWatch Logs; S3
	// keeps the attempts' own output.
	if r.cfg.LogGroup != "" {
		in.CloudWatchOutputConfig = &types.CloudWatchOutputConfig{
			CloudWatchOutputEnabled: true,
			CloudWatchLogGroupName:  aws.String(r.cfg.LogGroup),
		}
	}
	out, err := r.ssm.SendCommand(ctx, in)
	if err != nil {
		return "", classify(err)
	}
	return aws.ToString(out.Command.CommandId), nil
}
