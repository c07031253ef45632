package runner

import (
	"cmp"
	"context"
	"fmt"
	"path"
	"strconv"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// CheckpointLook is how often a checkpointed job's wrapper asks the
// instance metadata service for a spot interruption notice and a rebalance
// recommendation: every 5 s, as AWS recommends for the notice.
const CheckpointLook = 5 * time.Second

// InterruptionMargin is how long before a spot interruption's time the
// wrapper syncs the checkpoint if the job, sent TERM on the notice, has
// not ended by then (it is KILLed first, so that no file is half-written
// while it is uploaded). Of the notice's two minutes, the job gets the
// first hundred to save its state; an incremental sync of what the
// periodic syncs left takes seconds. The wrapper then waits up to three
// margins past the interruption's time for the instance to go.
const InterruptionMargin = 20 * time.Second

// InterruptedExitCode is the exit code the wrapper records for an attempt
// whose instance outlived a spot interruption notice: its checkpoint was
// synced and its job ended on the notice. The scheduler takes it as a lost
// instance (the job re-queued, to resume from its checkpoint), not as the
// job's failure. It joins 96 (a secret unreadable), 97 (outputs not
// saved), 98 (an input or the checkpoint's restore failed), 99 (no usable
// workdir).
const InterruptedExitCode = 95

// imdsEndpoint is the instance metadata service. The wrapper takes another
// from NIGHTSHIFT_IMDS_ENDPOINT in its own environment (tests' fake IMDS),
// read before the job's env is exported, so a job cannot point it
// elsewhere.
const imdsEndpoint = "http://169.254.169.254"

// HeaderCheckpoint is what a checkpointed job's wrapper header says of its
// checkpoint.
type HeaderCheckpoint struct {
	// Dir is the checkpoint directory: absolute, or relative to where the
	// command starts when the workdir is (the local run).
	Dir string `json:"dir"`
	// S3 is the checkpoint's S3 URL.
	S3 string `json:"s3"`
	// EverySeconds is how often the directory is synced up while the job runs.
	EverySeconds int `json:"every_seconds"`
	// LookSeconds is how often the wrapper reads the instance metadata.
	LookSeconds int `json:"look_seconds"`
	// MarginSeconds is InterruptionMargin as this wrapper has it.
	MarginSeconds int `json:"margin_seconds"`
}

// checkpointPlan is the checkpoint's part of a plan.
type checkpointPlan struct {
	// dir is as the wrapper has it: absolute, or relative to the workdir,
	// where the wrapper is when it resolves it.
	dir, s3                                  string
	everySeconds, lookSeconds, marginSeconds int
}

func newCheckpointPlan(c *job.Checkpoint, o ScriptOptions) *checkpointPlan {
	if c == nil {
		return nil
	}
	secs := func(d time.Duration) int { return max(1, int((d+time.Second-1)/time.Second)) }
	return &checkpointPlan{
		dir: cmp.Or(c.Path, job.DefaultCheckpointPath), s3: c.S3,
		everySeconds:  secs(cmp.Or(c.Every.D(), job.DefaultCheckpointEvery)),
		lookSeconds:   secs(cmp.Or(o.CheckpointLook, CheckpointLook)),
		marginSeconds: secs(cmp.Or(o.InterruptionMargin, InterruptionMargin)),
	}
}

// headerCheckpoint is the header's view of the plan's checkpoint.
func (p plan) headerCheckpoint() *HeaderCheckpoint {
	c := p.checkpoint
	if c == nil {
		return nil
	}
	dir := c.dir
	if !path.IsAbs(dir) {
		dir = path.Join(p.workdir, dir)
	}
	return &HeaderCheckpoint{Dir: dir, S3: c.s3, EverySeconds: c.everySeconds, LookSeconds: c.lookSeconds, MarginSeconds: c.marginSeconds}
}

// checkpointHoles are the wrapper's checkpoint holes: an empty S3 URL
// turns the checkpoint's parts off.
func (p plan) checkpointHoles(holes map[string]string) {
	c := p.checkpoint
	if c == nil {
		c = &checkpointPlan{everySeconds: 1, lookSeconds: 1, marginSeconds: 1}
	}
	holes["checkpoint_s3"], holes["checkpoint_dir"] = Quote(c.s3), Quote(c.dir)
	holes["checkpoint_every_seconds"] = strconv.Itoa(c.everySeconds)
	holes["checkpoint_look_seconds"] = strconv.Itoa(c.lookSeconds)
	holes["interruption_margin_seconds"] = strconv.Itoa(c.marginSeconds)
	holes["interrupted_exit"] = strconv.Itoa(InterruptedExitCode)
	holes["imds"] = Quote(imdsEndpoint)
}

// syncHeaderPrefix starts a sync command's first line, a shell comment.
const syncHeaderPrefix = "# nightshift-sync/"

// SyncHeaderVersion is the version of the sync header this package writes
// and reads.
const SyncHeaderVersion = "v1"

// ErrNoSyncHeader is what ParseSyncHeader returns for a command whose
// first line is not a nightshift-sync header.
var ErrNoSyncHeader = fmt.Errorf("no nightshift-sync header")

// ParseSyncHeader reads the header of a SyncCommand: the attempt whose
// checkpoint it asks to sync, and where its wrapper keeps its state (the
// fields of a StopHeader). Its errors are ErrNoSyncHeader,
// ErrHeaderVersion and ErrBadHeader.
func ParseSyncHeader(commands string) (StopHeader, error) {
	return parseAttemptHeader(commands, syncHeaderPrefix, SyncHeaderVersion, "sync header ", ErrNoSyncHeader)
}

// syncText is the sync command, run by /bin/sh: it leaves the file "sync"
// in the attempt's directory, which the wrapper's checkpoint watch looks
// for every second and answers with a sync up. A second one before the
// watch has seen the first asks nothing more; one for an attempt that has
// ended or is not on the instance does nothing.
const syncText = `{{header}}
d={{dir}}
what={{what}}
if [ ! -d "$d" ] || [ -s "$d/exit_code" ]; then
	echo "nightshift: $what is not running on this instance: no checkpoint to sync"
	exit 0
fi
: >"$d/sync"
echo "nightshift: $what: checkpoint sync asked (rebalance recommendation)"
`

// SyncComment is the SSM comment of the sync command for j's current
// attempt; Find never takes it for the attempt's own command.
func SyncComment(j *job.Job) string {
	return fmt.Sprintf("nightshift sync %s #%d", j.ID, j.Attempt)
}

// SyncCommand is the /bin/sh command that asks the wrapper of j's current
// attempt to sync its checkpoint up now. Its first line is its header.
func SyncCommand(j *job.Job, o ScriptOptions) (string, error) {
	h := StopHeader{Job: j.ID, Attempt: j.Attempt, StateDir: cmp.Or(o.StateDir, DefaultStateDir)}
	line, err := headerLine(syncHeaderPrefix, SyncHeaderVersion, h)
	if err != nil {
		return "", fmt.Errorf("sync header for %s: %w", j.ID, err)
	}
	return expand(syncText, map[string]string{
		"header": line, "dir": Quote(h.AttemptDir()), "what": Quote("attempt " + strconv.Itoa(j.Attempt) + " of job " + j.ID),
	}, nil)
}

// SyncNow asks the wrapper of j's current attempt on the instance to sync
// its checkpoint up at once (a rebalance recommendation: the instance is at
// elevated risk of interruption), with a command of its own, as Stop does.
// It is cheap and idempotent: the wrapper syncs what changed since its last
// sync, and a sync asked twice is one sync or two. It returns the
// command's id.
func (r *Runner) SyncNow(ctx context.Context, j *job.Job, instanceID string) (string, error) {
	commands, err := SyncCommand(j, r.cfg.Script)
	if err != nil {
		return "", err
	}
	id, err := r.sendAside(ctx, instanceID, SyncComment(j), commands)
	if err != nil {
		return "", fmt.Errorf("send checkpoint sync for %s to %s: %w", j.ID, instanceID, err)
	}
	return id, nil
}
