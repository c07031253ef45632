package runner_test

import (
	"bufio"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

// fakeIMDS is the instance metadata service as IMDSv2 answers it: PUT
// /latest/api/token with a TTL header gives a token; a GET without that
// token is refused (401); a GET of an item present in the JSON file the
// test rewrites, {"spot/instance-action": {...}, ...}, answers it, and 404
// otherwise. Every request is logged to the file beside it, imds.log.
const fakeIMDS = `import http.server, json, os, sys
port, state = int(sys.argv[1]), sys.argv[2]
log = open(state + ".log", "a", buffering=1)
TOKEN = "tok-fake-imds"
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, code, body=b""):
        self.send_response(code); self.end_headers(); self.wfile.write(body)
    def do_PUT(self):
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        log.write("PUT %s ttl=%s\n" % (self.path, ttl))
        if self.path != "/latest/api/token" or not ttl:
            return self.answer(400)
        self.answer(200, TOKEN.encode())
    def do_GET(self):
        tok = self.headers.get("X-aws-ec2-metadata-token")
        log.write("GET %s token=%s\n" % (self.path, tok))
        if tok != TOKEN:
            return self.answer(401)
        with open(state) as f:
            items = json.load(f)
        item = self.path.removeprefix("/latest/meta-data/")
        if item not in items:
            return self.answer(404)
        self.answer(200, json.dumps(items[item]).encode())
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
`

// fakeAWS is an aws CLI that logs its arguments to aws.log and does what
// "aws s3 sync [--only-show-errors] SRC DST" does between the instance's
// directories and a local bucket directory (s3://B/P is bucket/B/P): copies
// every file of SRC into DST. An upward sync fails while the file
// aws.fail-up exists, a downward one while aws.fail-down does.
func fakeAWS(dir string) string {
	q := runner.Quote
	return `#!/bin/sh
printf '%s\n' "$*" >>` + q(filepath.Join(dir, "aws.log")) + `
[ "$1 $2" = "s3 sync" ] || exit 0
shift 2
[ "$1" = --only-show-errors ] && shift
local_of() { case "$1" in s3://*) echo ` + q(filepath.Join(dir, "bucket")) + `/"${1#s3://}" ;; *) echo "$1" ;; esac; }
case "$1" in s3://*) [ -e ` + q(filepath.Join(dir, "aws.fail-down")) + ` ] && { echo "fatal error: An error occurred (AccessDenied)" >&2; exit 1; } ;; esac
case "$2" in s3://*) [ -e ` + q(filepath.Join(dir, "aws.fail-up")) + ` ] && { echo "upload failed: An error occurred (AccessDenied)" >&2; exit 1; } ;; esac
src=$(local_of "$1") dst=$(local_of "$2")
mkdir -p "$dst"
[ -d "$src" ] || exit 0
cp -R "$src/." "$dst/"
`
}

// ckptInstance is a scratch instance with a fake IMDS and a fake aws.
type ckptInstance struct {
	*instance
	imdsState, bucket string
}

func newCkptInstance(t *testing.T) *ckptInstance {
	t.Helper()
	in := &ckptInstance{instance: newInstance(t)}
	in.imdsState, in.bucket = filepath.Join(in.dir, "imds.json"), filepath.Join(in.dir, "bucket")
	if err := os.WriteFile(filepath.Join(in.bin, "aws"), []byte(fakeAWS(in.dir)), 0o755); err != nil {
		t.Fatal(err)
	}
	in.setIMDS(t, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	python := os.Getenv("NIGHTSHIFT_PYTHON")
	if python == "" {
		python = "python3"
	}
	srv := exec.Command(python, "-c", fakeIMDS, strconv.Itoa(port), in.imdsState)
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Skipf("no python for the fake IMDS: %v", err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	for deadline := time.Now().Add(waitBound); ; {
		c, err := net.Dial("tcp", l.Addr().String())
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fake IMDS does not listen on %d: %v", port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.extraEnv = []string{"NIGHTSHIFT_IMDS_ENDPOINT=http://127.0.0.1:" + strconv.Itoa(port)}
	return in
}

// setIMDS says what the metadata service shows, by item.
func (in *ckptInstance) setIMDS(t *testing.T, items map[string]any) {
	t.Helper()
	if items == nil {
		items = map[string]any{}
	}
	b, _ := json.Marshal(items)
	tmp := in.imdsState + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, in.imdsState); err != nil {
		t.Fatal(err)
	}
}

// bucketFile reads a file of the fake bucket (s3://ckpt/run/NAME).
func (in *ckptInstance) bucketFile(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(readFile(t, filepath.Join(in.bucket, "ckpt", "run", name)))
}

func (in *ckptInstance) putBucketFile(t *testing.T, name, data string) {
	t.Helper()
	p := filepath.Join(in.bucket, "ckpt", "run", name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// opts are the wrapper's options for the tests: a look every second, a
// one-second margin before the interruption.
func (in *ckptInstance) opts() runner.ScriptOptions {
	return runner.ScriptOptions{StateDir: in.stateDir, Region: "us-east-1", CheckpointLook: time.Second, InterruptionMargin: time.Second}
}

func ckptJob(id, command string, attempt int, every time.Duration) *job.Job {
	j := newJob(id, command, time.Hour, nil)
	j.Attempt = attempt
	j.Spec.Checkpoint = &job.Checkpoint{S3: "s3://ckpt/run", Every: job.Duration(every)}
	return j
}

// stderrText is the wrapper's stderr so far.
func (x *running) stderrText() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.stderr.String()
}

// waitStderr waits for a line of the wrapper's stderr that matches re.
func (x *running) waitStderr(t *testing.T, re string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	for deadline := time.Now().Add(waitBound); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(x.stderrText()))
		for sc.Scan() {
			if r.MatchString(sc.Text()) {
				return sc.Text()
			}
		}
	}
	t.Fatalf("no stderr line like %q within %v; stderr:\n%s", re, waitBound, x.killedStderr())
	return ""
}

// TestCheckpointRestoreAndSync: before the command, the checkpoint is
// restored from S3 into the job's checkpoint directory, whose absolute path
// the command has in NIGHTSHIFT_CHECKPOINT_DIR with its attempt in
// NIGHTSHIFT_ATTEMPT; while it runs the directory is synced up every
// `every`; once it has ended, once more. The metadata service is read with
// an IMDSv2 token.
func TestCheckpointRestoreAndSync(t *testing.T) {
	in := newCkptInstance(t)
	in.putBucketFile(t, "step", "41\n")
	j := ckptJob("ckpt-sync", `echo "attempt=$NIGHTSHIFT_ATTEMPT dir=$NIGHTSHIFT_CHECKPOINT_DIR restored=$(cat "$NIGHTSHIFT_CHECKPOINT_DIR/step")"
echo 42 >"$NIGHTSHIFT_CHECKPOINT_DIR/step"
sleep 3
echo 43 >"$NIGHTSHIFT_CHECKPOINT_DIR/step"`, 3, time.Second)
	x := in.start(t, j, in.opts(), nil)
	if code := x.wait(t); code != 0 {
		t.Fatalf("exit code %d; want 0\nstderr:\n%s", code, x.stderrText())
	}
	dir := filepath.Join(in.state, "work", j.ID, job.DefaultCheckpointPath)
	if want := "attempt=3 dir=" + dir + " restored=41\n"; !strings.Contains(x.out(), want) {
		t.Errorf("stdout %q; want %q: the restored checkpoint, its absolute directory and the attempt", x.out(), want)
	}
	if got := in.bucketFile(t, "step"); got != "43" {
		t.Errorf("bucket's step = %q; want 43, synced after the job ended", got)
	}
	calls := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(in.dir, "aws.log"))), "\n")
	if want := "s3 sync --only-show-errors s3://ckpt/run " + dir; len(calls) == 0 || calls[0] != want {
		t.Errorf("first aws call %q; want the restore %q", calls, want)
	}
	up := 0
	for _, c := range calls {
		if c == "s3 sync --only-show-errors "+dir+" s3://ckpt/run" {
			up++
		}
		if strings.Contains(c, "--delete") {
			t.Errorf("aws call %q: a checkpoint sync never deletes", c)
		}
	}
	errs := x.stderrText()
	if up < 2 || !strings.Contains(errs, "(every 1 s)") || !strings.Contains(errs, "(the job ended with exit code 0)") {
		t.Errorf("%d syncs up; want the periodic ones and one at the end\nstderr:\n%s", up, errs)
	}
	imds := readFile(t, in.imdsState+".log")
	if !strings.HasPrefix(imds, "PUT /latest/api/token ttl=21600\n") || !strings.Contains(imds, "GET /latest/meta-data/spot/instance-action token=tok-fake-imds\n") ||
		!strings.Contains(imds, "GET /latest/meta-data/events/recommendations/rebalance token=tok-fake-imds\n") || strings.Contains(imds, "token=None") {
		t.Errorf("IMDS requests:\n%s\nwant a token first, then both items read with it", imds)
	}
}

// TestCheckpointSpotInterruption: on an interruption notice the seconds
// left are in NIGHTSHIFT_INTERRUPTION_FILE, the job gets TERM, the
// checkpoint it saves on TERM is synced up once it has ended, and the
// wrapper reports nothing until the instance goes; one that outlives the
// notice ends the attempt with InterruptedExitCode.
func TestCheckpointSpotInterruption(t *testing.T) {
	in := newCkptInstance(t)
	j := ckptJob("ckpt-spot", `trap 'echo "TERM with $(cat "$NIGHTSHIFT_INTERRUPTION_FILE") s left"; echo saved >"$NIGHTSHIFT_CHECKPOINT_DIR/on-term"; exit 143' TERM
echo ready
sleep 1000 &
wait`, 1, time.Hour)
	x := in.start(t, j, in.opts(), nil)
	x.waitFor(t, "ready")
	at := time.Now().Add(4 * time.Second).UTC()
	in.setIMDS(t, map[string]any{"spot/instance-action": map[string]string{"action": "terminate", "time": at.Format(time.RFC3339)}})
	line := x.waitStderr(t, `^nightshift: spot interruption notice: terminate at `+regexp.QuoteMeta(at.Format(time.RFC3339))+`, \d+ s left: TERM sent to the job`)
	x.waitFor(t, "TERM with "+regexp.MustCompile(`\d+ s left`).FindString(line))
	x.waitStderr(t, `checkpoint: syncing .* \(spot interruption notice\)$`)
	code := x.wait(t)
	if got := in.bucketFile(t, "on-term"); got != "saved" {
		t.Errorf("bucket's on-term = %q; want the checkpoint the job saved on TERM", got)
	}
	if code != runner.InterruptedExitCode {
		t.Errorf("exit code %d; want %d: the instance outlived the notice", code, runner.InterruptedExitCode)
	}
	// It waited for the interruption's time (whole seconds, as the notice
	// gives it) and three margins past it.
	if early := at.Truncate(time.Second).Add(3 * time.Second).Sub(time.Now()); early > 0 {
		t.Errorf("exited %v before the interruption's time and three margins", early)
	}
	if got := readFile(t, filepath.Join(in.attemptDir(j), "exit_code")); strings.TrimSpace(got) != "95" {
		t.Errorf("exit_code file %q; want 95", got)
	}
	if errs := x.stderrText(); !strings.Contains(errs, "the instance outlived its spot interruption notice") || strings.Count(errs, "checkpoint: syncing") != 1 {
		t.Errorf("stderr:\n%s\nwant one sync (after the job's end) and the instance outliving the notice", errs)
	}
}

// TestCheckpointInterruptionKillsALateJob: a job that has not ended on the
// notice's TERM is KILLed a margin before the interruption, then the
// checkpoint is synced.
func TestCheckpointInterruptionKillsALateJob(t *testing.T) {
	in := newCkptInstance(t)
	j := ckptJob("ckpt-late", `trap 'echo "ignoring TERM"' TERM
echo ready
while :; do echo tick >"$NIGHTSHIFT_CHECKPOINT_DIR/last"; sleep 0.2; done`, 2, time.Hour)
	x := in.start(t, j, in.opts(), nil)
	x.waitFor(t, "ready")
	at := time.Now().Add(3 * time.Second).UTC()
	in.setIMDS(t, map[string]any{"spot/instance-action": map[string]string{"action": "stop", "time": at.Format(time.RFC3339)}})
	x.waitStderr(t, `^nightshift: spot interruption notice: stop at `)
	x.waitStderr(t, `^nightshift: the job has not ended 1 s before the interruption: KILL sent, then the checkpoint synced$`)
	if code := x.wait(t); code != runner.InterruptedExitCode {
		t.Errorf("exit code %d; want %d", code, runner.InterruptedExitCode)
	}
	if got := in.bucketFile(t, "last"); got != "tick" {
		t.Errorf("bucket's last = %q; want the checkpoint synced after the KILL", got)
	}
}

// TestCheckpointRebalance: a rebalance recommendation in the metadata
// service syncs the checkpoint at once (once), and so does the sync
// command the dispatch function sends on the EventBridge event.
func TestCheckpointRebalance(t *testing.T) {
	in := newCkptInstance(t)
	j := ckptJob("ckpt-rebalance", `echo 1 >"$NIGHTSHIFT_CHECKPOINT_DIR/step"
echo ready
while [ ! -e "$NIGHTSHIFT_CHECKPOINT_DIR/../done" ]; do sleep 0.1; done`, 1, time.Hour)
	x := in.start(t, j, in.opts(), nil)
	x.waitFor(t, "ready")
	in.setIMDS(t, map[string]any{"events/recommendations/rebalance": map[string]string{"noticeTime": "2026-12-02T08:00:00Z"}})
	x.waitStderr(t, `^nightshift: rebalance recommendation \(noticed 2026-12-02T08:00:00Z\): the instance is at elevated risk of interruption$`)
	x.waitStderr(t, `checkpoint: syncing .* \(rebalance recommendation\)$`)
	// The line comes as the sync starts.
	for deadline := time.Now().Add(waitBound); in.bucketFile(t, "step") != "1"; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bucket's step = %q; want 1, synced on the recommendation", in.bucketFile(t, "step"))
		}
	}
	// The event's path: a command of its own leaves the file the watch answers.
	cmd, err := runner.SyncCommand(j, in.opts())
	if err != nil {
		t.Fatal(err)
	}
	if h, err := runner.ParseSyncHeader(cmd); err != nil || h.Job != j.ID || h.Attempt != 1 {
		t.Errorf("ParseSyncHeader = %+v, %v; want the attempt", h, err)
	}
	if _, err := runner.ParseStopHeader(cmd); err == nil {
		t.Error("ParseStopHeader(sync command) = nil error; a sync is no stop")
	}
	sh := exec.Command("/bin/sh", "-c", cmd)
	sh.Dir, sh.Env = in.dir, in.env()
	out, err := sh.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "checkpoint sync asked") {
		t.Fatalf("sync command: %v\n%s", err, out)
	}
	x.waitStderr(t, `checkpoint: syncing .* \(asked: a rebalance recommendation for the instance\)$`)
	if err := os.WriteFile(filepath.Join(in.state, "work", j.ID, "done"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := x.wait(t); code != 0 {
		t.Errorf("exit code %d; want 0", code)
	}
	if n := strings.Count(x.stderrText(), "(rebalance recommendation)"); n != 1 {
		t.Errorf("%d syncs for the recommendation in the metadata; want 1: it stays there, and is answered once", n)
	}
	// Once the attempt has ended, a sync command finds nothing to sync.
	sh = exec.Command("/bin/sh", "-c", cmd)
	sh.Dir, sh.Env = in.dir, in.env()
	if out, err := sh.CombinedOutput(); err != nil || !strings.Contains(string(out), "not running on this instance") {
		t.Errorf("sync command after the end: %v\n%s", err, out)
	}
}

// TestCheckpointSyncFailureKeepsExitCode: a sync up that fails is logged
// loudly and does not change the job's exit code, 0 or not.
func TestCheckpointSyncFailureKeepsExitCode(t *testing.T) {
	in := newCkptInstance(t)
	if err := os.WriteFile(filepath.Join(in.dir, "aws.fail-up"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, want := range []int{0, 3} {
		j := ckptJob("ckpt-fail-"+strconv.Itoa(want), "sleep 2; exit "+strconv.Itoa(want), 1, time.Second)
		x := in.start(t, j, in.opts(), nil)
		if code := x.wait(t); code != want {
			t.Errorf("exit code %d with failing syncs; want the job's own %d", code, want)
		}
		if errs := x.stderrText(); !strings.Contains(errs, "nightshift: CHECKPOINT SYNC FAILED (the job ended with exit code "+strconv.Itoa(want)+")") ||
			!strings.Contains(errs, "CHECKPOINT SYNC FAILED (every 1 s)") {
			t.Errorf("stderr:\n%s\nwant the failed syncs said loudly", errs)
		}
	}
}

// TestCheckpointRestoreFailure: a restore that fails ends the attempt
// before its command (exit code 98, as a failed input sync): started over,
// the job would bury the checkpoint it could not read.
func TestCheckpointRestoreFailure(t *testing.T) {
	in := newCkptInstance(t)
	if err := os.WriteFile(filepath.Join(in.dir, "aws.fail-down"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	j := ckptJob("ckpt-restore", "echo the command ran", 1, time.Minute)
	x := in.start(t, j, in.opts(), nil)
	if code := x.wait(t); code != 98 {
		t.Errorf("exit code %d; want 98", code)
	}
	if strings.Contains(x.out(), "the command ran") || !strings.Contains(x.stderrText(), "checkpoint restore failed: s3://ckpt/run") {
		t.Errorf("stdout %q, stderr:\n%s\nwant the restore's failure and no command", x.out(), x.stderrText())
	}
}

// TestNoCheckpoint: a job without a checkpoint has its attempt in
// NIGHTSHIFT_ATTEMPT, no checkpoint variables, and its wrapper never asks
// the metadata service.
func TestNoCheckpoint(t *testing.T) {
	in := newCkptInstance(t)
	j := newJob("plain", `echo "attempt=$NIGHTSHIFT_ATTEMPT dir=${NIGHTSHIFT_CHECKPOINT_DIR-unset} file=${NIGHTSHIFT_INTERRUPTION_FILE-unset}"; sleep 1.5`, time.Hour, nil)
	j.Attempt = 2
	x := in.start(t, j, in.opts(), nil)
	if code := x.wait(t); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if want := "attempt=2 dir=unset file=unset\n"; !strings.Contains(x.out(), want) {
		t.Errorf("stdout %q; want %q", x.out(), want)
	}
	if got := readFile(t, in.imdsState+".log"); got != "" {
		t.Errorf("IMDS requests without a checkpoint:\n%s", got)
	}
}

// TestCheckpointHeader: the header says where the checkpoint is kept and
// how often it is synced, as the wrapper does; a job without one has none.
func TestCheckpointHeader(t *testing.T) {
	j := ckptJob("h", "true", 1, 90*time.Second)
	j.Spec.Checkpoint.Path = "runs/ckpt"
	l, err := runner.Launcher(j, "i-0123456789abcdef0", 0, runner.ScriptOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := runner.ParseHeader(l)
	if err != nil {
		t.Fatal(err)
	}
	want := runner.HeaderCheckpoint{Dir: "/var/lib/nightshift/work/h/runs/ckpt", S3: "s3://ckpt/run", EverySeconds: 90, LookSeconds: 5, MarginSeconds: 20}
	if h.Checkpoint == nil || *h.Checkpoint != want {
		t.Errorf("header checkpoint %+v; want %+v", h.Checkpoint, want)
	}
	j.Spec.Checkpoint.Path = "/opt/dlami/nvme/ckpt"
	if l, err = runner.Launcher(j, "i-0123456789abcdef0", 0, runner.ScriptOptions{}); err != nil {
		t.Fatal(err)
	}
	if h, err := runner.ParseHeader(l); err != nil || h.Checkpoint.Dir != "/opt/dlami/nvme/ckpt" {
		t.Errorf("header checkpoint %+v, %v; want the absolute path as it is", h.Checkpoint, err)
	}
	plain := newJob("p", "true", time.Hour, nil)
	if l, err = runner.Launcher(plain, "i-0123456789abcdef0", 0, runner.ScriptOptions{}); err != nil {
		t.Fatal(err)
	}
	if h, err := runner.ParseHeader(l); err != nil || h.Checkpoint != nil {
		t.Errorf("a job without a checkpoint: header %+v, %v; want none", h.Checkpoint, err)
	}
}

// TestCheckpointStop: a stop (a cancel) ends a checkpointed job as any
// other, with its TERM; the checkpoint its handler saved is synced up
// before exit code 143 is recorded.
func TestCheckpointStop(t *testing.T) {
	in := newCkptInstance(t)
	j := ckptJob("ckpt-stop", `trap 'echo saved >"$NIGHTSHIFT_CHECKPOINT_DIR/on-stop"; exit 143' TERM
echo ready
sleep 1000 &
wait`, 1, time.Hour)
	x := in.start(t, j, in.opts(), nil)
	x.waitFor(t, "ready")
	if got := in.stop(t, j, in.opts()); !strings.Contains(got, "TERM sent to its wrapper") {
		t.Fatalf("stop said %q", got)
	}
	if code := x.wait(t); code != runner.StopExitCode {
		t.Errorf("exit code %d; want %d", code, runner.StopExitCode)
	}
	if got := in.bucketFile(t, "on-stop"); got != "saved" {
		t.Errorf("bucket's on-stop = %q; want the checkpoint saved on the stop's TERM\nstderr:\n%s", got, x.stderrText())
	}
	if errs := x.stderrText(); !strings.Contains(errs, "(the job ended with exit code 143)") {
		t.Errorf("stderr:\n%s\nwant the sync after the stopped job's end", errs)
	}
}
