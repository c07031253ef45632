package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the commands print")

// t0 is the fixed now of the golden tests.
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fakeSQS records what is sent.
type fakeSQS struct{ sent []string }

func (f *fakeSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if aws.ToString(in.QueueUrl) != testStack.QueueURL {
		return nil, fmt.Errorf("SendMessage to %q; the stack's queue is %q", aws.ToString(in.QueueUrl), testStack.QueueURL)
	}
	f.sent = append(f.sent, aws.ToString(in.MessageBody))
	return &sqs.SendMessageOutput{MessageId: aws.String(fmt.Sprintf("00000000-0000-4000-8000-%012d", len(f.sent)))}, nil
}

// fakeLogs serves log streams of the stack's group, a page of pageSize
// events at a time, with forward tokens as CloudWatch Logs has them (the
// same token back at the end).
type fakeLogs struct {
	streams  map[string][]logtypes.OutputLogEvent
	pageSize int
	calls    int
}

func (f *fakeLogs) GetLogEvents(_ context.Context, in *cloudwatchlogs.GetLogEventsInput, _ ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error) {
	f.calls++
	if aws.ToString(in.LogGroupName) != testStack.LogGroup {
		return nil, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "The specified log group does not exist."}
	}
	evs, ok := f.streams[aws.ToString(in.LogStreamName)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "The specified log stream does not exist."}
	}
	if !aws.ToBool(in.StartFromHead) {
		return nil, fmt.Errorf("GetLogEvents without StartFromHead reads from the tail")
	}
	at := 0
	if tok := aws.ToString(in.NextToken); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "f/"))
		if err != nil {
			return nil, fmt.Errorf("bad token %q", tok)
		}
		at = n
	}
	end := min(at+f.pageSize, len(evs))
	return &cloudwatchlogs.GetLogEventsOutput{Events: evs[at:end], NextForwardToken: aws.String(fmt.Sprintf("f/%d", end))}, nil
}

// fakeEC2 answers DescribeInstances with its instances, for the one kind
// of filter the command line uses, and refuses any other.
type fakeEC2 struct{ instances []ec2types.Instance }

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	var out []ec2types.Instance
	for _, i := range f.instances {
		ok := true
		for _, fl := range in.Filters {
			key, isTag := strings.CutPrefix(aws.ToString(fl.Name), "tag:")
			if !isTag {
				return nil, fmt.Errorf("fake DescribeInstances: filter %q not modelled", aws.ToString(fl.Name))
			}
			found := false
			for _, t := range i.Tags {
				if aws.ToString(t.Key) == key && slices.Contains(fl.Values, aws.ToString(t.Value)) {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			out = append(out, i)
		}
	}
	return &ec2.DescribeInstancesOutput{Reservations: []ec2types.Reservation{{Instances: out}}}, nil
}

var testStack = Stack{
	Name: "nightshift", Region: "eu-west-1",
	QueueURL:       "https://sqs.eu-west-1.amazonaws.com/123456789012/nightshift-jobs",
	Table:          "nightshift-jobs",
	LogGroup:       "/nightshift/jobs",
	IntakeFunction: "nightshift-intake",
	DashboardURL:   "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards/dashboard/nightshift",
}

// testEnv is a deployment's function environment, as the template sets it.
var testEnv = map[string]string{
	"AWS_REGION":                    "eu-west-1",
	"NIGHTSHIFT_TABLE":              "nightshift-jobs",
	"NIGHTSHIFT_LOG_GROUP":          "/nightshift/jobs",
	"NIGHTSHIFT_LAUNCH_TEMPLATE_ID": "lt-0123456789abcdef0",
	"NIGHTSHIFT_AMI_PARAMETER":      "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id",
	"NIGHTSHIFT_SUBNET_IDS":         "subnet-0a,subnet-0b",
	"NIGHTSHIFT_POOLS":              `{"default":{"types":["g5.xlarge","g4dn.xlarge"],"max_instances":2,"keep_warm":"10m"},"multi":{"types":["g5.12xlarge"],"market":"on-demand","max_instances":1,"keep_warm":"5m"}}`,
	"NIGHTSHIFT_DAILY_BUDGET_USD":   "20",
	"NIGHTSHIFT_SECRETS_PREFIX":     "/nightshift/secrets/",
	"NIGHTSHIFT_MONTHLY_BUDGET_USD": "300",
}

// world is the cloud the golden tests run the command line against: a
// table in memory holding jobs in every state, log streams, instances.
type world struct {
	jobs *store.Memory
	sqs  *fakeSQS
	logs *fakeLogs
	ec2  *fakeEC2
	now  time.Time
	// onSleep runs at each of the command's polls, after the clock moved.
	onSleep func(n int)
	sleeps  int
	// Port forwarding: Session Manager, the plugin, this machine's ports.
	ssm    *fakeSSM
	plugin *fakePlugin
	taken  map[int]bool
}

func spec(t *testing.T, msg string) job.Spec {
	t.Helper()
	s, err := job.Parse([]byte(msg), testSettings(t).Scheduler().Defaults())
	if err != nil {
		t.Fatalf("fixture %s: %v", msg, err)
	}
	return s
}

func testSettings(t *testing.T) config.Settings {
	t.Helper()
	s, err := config.FromEnv(func(k string) string { return testEnv[k] })
	if err != nil {
		t.Fatalf("test settings: %v", err)
	}
	return s
}

func move(t *testing.T, j *job.Job, to job.State, reason string, at time.Time) {
	t.Helper()
	if err := j.Move(to, reason, at); err != nil {
		t.Fatal(err)
	}
}

const (
	instRunning = "i-0a1b2c3d4e5f60001"
	instPlaced  = "i-0a1b2c3d4e5f60002"
	instFree    = "i-0a1b2c3d4e5f60003"
	instWatched = "i-0fedcba987654321f"
	cmdRunning  = "6f1d2c3b-0000-4000-8000-00000000a001"
	cmdNotebook = "6f1d2c3b-0000-4000-8000-00000000d001"
	// The notebooks' own instances: alice's in a session, bob's stopped.
	instNotebook    = "i-0a1b2c3d4e5f6000a"
	instNotebookBob = "i-0a1b2c3d4e5f6000b"
	cmdFailed1      = "6f1d2c3b-0000-4000-8000-00000000b001"
	cmdFailed2      = "6f1d2c3b-0000-4000-8000-00000000b002"
)

func stream(cmd, inst string) string { return cmd + "/" + inst + "/aws-runShellScript/stdout" }

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{now: t0, sqs: &fakeSQS{}, ec2: &fakeEC2{}, logs: &fakeLogs{streams: map[string][]logtypes.OutputLogEvent{}, pageSize: 2},
		ssm: &fakeSSM{}, plugin: &fakePlugin{path: "/usr/local/bin/session-manager-plugin", version: "1.2.707.0"}, taken: map[int]bool{}}
	w.jobs = store.NewMemory(store.Clock(func() time.Time { return w.now }))
	ctx := context.Background()
	put := func(j *job.Job) {
		t.Helper()
		if err := w.jobs.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	ago := func(d time.Duration) time.Time { return t0.Add(-d) }

	// A job running for 40 minutes on a g5.xlarge.
	r := job.New(spec(t, `{"id": "resnet-cifar10", "name": "ResNet-50 on CIFAR-10", "command": "python train.py --epochs 90", "max_runtime": "4h", "env": {"WANDB_PROJECT": "cifar", "WANDB_API_KEY": {"ssm": "/nightshift/secrets/wandb"}}}`), "default", ago(45*time.Minute))
	move(t, r, job.Placed, "launching g5.xlarge (on-demand)", ago(44*time.Minute))
	r.InstanceID, r.InstanceType, r.Market, r.PlacedAt = instRunning, "g5.xlarge", "on-demand", ago(44*time.Minute)
	r.CommandID, r.LogStream, r.DispatchedAt = cmdRunning, stream(cmdRunning, instRunning), ago(40*time.Minute)
	move(t, r, job.Running, "running on "+instRunning, ago(40*time.Minute))
	r.StartedAt, r.Cost = ago(40*time.Minute), 0.6707
	put(r)
	w.logs.streams[r.LogStream] = events(ago(39*time.Minute), "epoch 1/90 loss 2.31", "epoch 2/90 loss 1.87", "epoch 3/90 loss 1.52")
	w.logs.streams[stderrStream(r.LogStream)] = events(ago(39*time.Minute).Add(500*time.Millisecond), "warning: cudnn benchmark off")

	// Placed on a stopped instance that is starting.
	p := job.New(spec(t, `{"id": "llama-lora", "command": "torchrun --nproc_per_node 4 lora.py", "instance": "multi", "max_runtime": "8h", "priority": 5}`), "multi", ago(3*time.Minute))
	p.InstanceID, p.InstanceType, p.Market, p.PlacedAt = instPlaced, "g5.12xlarge", "on-demand", ago(2*time.Minute)
	move(t, p, job.Placed, "starting "+instPlaced, ago(2*time.Minute))
	put(p)

	// Queued behind the pool's cap.
	q := job.New(spec(t, `{"id": "bert-finetune", "name": "BERT fine-tune", "command": "python finetune.py", "max_runtime": "2h"}`), "default", ago(90*time.Second))
	q.Reason = "waiting: pool default at its cap of 2 instances"
	put(q)

	// Succeeded yesterday.
	s := job.New(spec(t, `{"id": "sweep-lr-3", "command": "python sweep.py --lr 3e-4", "max_runtime": "1h"}`), "default", ago(26*time.Hour))
	s.InstanceID, s.InstanceType, s.Market = instFree, "g4dn.xlarge", "spot"
	move(t, s, job.Placed, "starting "+instFree, ago(26*time.Hour-time.Minute))
	s.CommandID, s.LogStream = "6f1d2c3b-0000-4000-8000-00000000c001", stream("6f1d2c3b-0000-4000-8000-00000000c001", instFree)
	move(t, s, job.Running, "running on "+instFree, ago(26*time.Hour-3*time.Minute))
	s.StartedAt = ago(26*time.Hour - 3*time.Minute)
	exit0 := 0
	s.ExitCode, s.EndedAt, s.Cost = &exit0, ago(25*time.Hour), 0.1578
	move(t, s, job.Succeeded, "exit code 0", ago(25*time.Hour))
	put(s)

	// Failed on its second attempt, after a spot interruption.
	f := job.New(spec(t, `{"id": "gan-faces", "name": "StyleGAN faces", "command": "python gan.py", "max_runtime": "3h", "retries": 1, "instance": {"market": "spot"}}`), "default", ago(5*time.Hour))
	f.InstanceID, f.InstanceType, f.Market = "i-0aaaaaaaaaaaa0001", "g5.xlarge", "spot"
	move(t, f, job.Placed, "launching g5.xlarge (spot)", ago(5*time.Hour-time.Minute))
	f.CommandID, f.LogStream = cmdFailed1, stream(cmdFailed1, "i-0aaaaaaaaaaaa0001")
	move(t, f, job.Running, "running on i-0aaaaaaaaaaaa0001", ago(5*time.Hour-4*time.Minute))
	move(t, f, job.Queued, "attempt 1 lost: instance i-0aaaaaaaaaaaa0001 interrupted (spot)", ago(4*time.Hour))
	f.Attempt, f.InstanceID, f.CommandID, f.LogStream = 2, "i-0aaaaaaaaaaaa0002", cmdFailed2, stream(cmdFailed2, "i-0aaaaaaaaaaaa0002")
	move(t, f, job.Placed, "launching g5.xlarge (spot)", ago(4*time.Hour-time.Minute))
	move(t, f, job.Running, "running on i-0aaaaaaaaaaaa0002", ago(4*time.Hour-5*time.Minute))
	exit1 := 1
	f.StartedAt, f.ExitCode, f.EndedAt, f.Cost = ago(5*time.Hour-4*time.Minute), &exit1, ago(3*time.Hour), 0.5212
	move(t, f, job.Failed, "exit code 1", ago(3*time.Hour))
	put(f)
	w.logs.streams[stream(cmdFailed1, "i-0aaaaaaaaaaaa0001")] = events(ago(5*time.Hour-3*time.Minute), "loading 70000 images", "step 100")
	w.logs.streams[f.LogStream] = events(ago(4*time.Hour-4*time.Minute), "loading 70000 images")
	w.logs.streams[stderrStream(f.LogStream)] = events(ago(3*time.Hour+time.Second), "Traceback (most recent call last):", "RuntimeError: CUDA out of memory")

	// A notebook session, JupyterLab answering for 20 minutes.
	nb := job.New(spec(t, `{"id": "nb-alice-20261201T113500Z", "notebook": "alice", "instance": {"types": ["g5.xlarge"]}, "max_runtime": "8h"}`), job.NotebookPool("alice"), ago(25*time.Minute))
	nb.InstanceID, nb.InstanceType, nb.Market, nb.PlacedAt = instNotebook, "g5.xlarge", "on-demand", ago(25*time.Minute)
	move(t, nb, job.Placed, "starting instance "+instNotebook, ago(25*time.Minute))
	nb.CommandID, nb.LogStream, nb.DispatchedAt = cmdNotebook, stream(cmdNotebook, instNotebook), ago(23*time.Minute)
	move(t, nb, job.Running, "running on "+instNotebook, ago(23*time.Minute))
	nb.StartedAt, nb.Cost = ago(23*time.Minute), 0.3857
	put(nb)
	w.logs.streams[nb.LogStream] = events(ago(22*time.Minute), "nightshift: JupyterLab 4.2.5 found in the environment", job.NotebookReady+"http://127.0.0.1:8888/lab?token=3f9c2a7e5b1d4c8a")

	// Refused at the door.
	_, bad := job.Parse([]byte(`{"id": "typo", "comand": "python train.py"}`), testSettings(t).Scheduler().Defaults())
	put(job.NewRejected("typo", bad, ago(2*time.Hour)))

	// The spend the watchdog keeps.
	for _, sp := range []store.Spend{
		{Period: "D2026-11-30", USD: 3.1415, AccountedUntil: t0.Truncate(24 * time.Hour)},
		{Period: "D2026-12-01", USD: 1.3497, AccountedUntil: ago(time.Minute)},
		{Period: "M2026-12", USD: 1.3497, AccountedUntil: ago(time.Minute)},
	} {
		if err := w.jobs.PutSpend(ctx, &sp); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.jobs.Update(ctx, r, job.Running, store.LeaseOp{InstanceID: instRunning, Pool: "default", Acquire: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.jobs.PutLease(ctx, store.Lease{InstanceID: instFree, Pool: "default", IdleSince: ago(25 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := w.jobs.Update(ctx, nb, job.Running, store.LeaseOp{InstanceID: instNotebook, Pool: job.NotebookPool("alice"), Acquire: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.jobs.PutLease(ctx, store.Lease{InstanceID: instNotebookBob, Pool: job.NotebookPool("bob"), IdleSince: ago(20 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	w.ec2.instances = []ec2types.Instance{
		instance(instRunning, "g5.xlarge", "running", false, ago(44*time.Minute), "default", "resnet-cifar10", ""),
		instance(instPlaced, "g5.12xlarge", "pending", false, ago(20*time.Hour), "multi", "llama-lora", ""),
		instance(instFree, "g4dn.xlarge", "stopped", true, ago(26*time.Hour), "default", "", "stopped: free for 10m, past the pool's keep-warm of 10m0s"),
		instance("i-0aaaaaaaaaaaa0002", "g5.xlarge", "terminated", true, ago(4*time.Hour), "default", "", ""),
		watched(instWatched, "p3.2xlarge", ago(3*time.Hour)),
		instance(instNotebook, "g5.xlarge", "running", false, ago(9*24*time.Hour), job.NotebookPool("alice"), "nb-alice-20261201T113500Z", ""),
		instance(instNotebookBob, "g4dn.xlarge", "stopped", false, ago(30*24*time.Hour), job.NotebookPool("bob"), "", "stopped: notebook bob's session ended (idle for 5m, nobody connected)"),
	}
	return w
}

func instance(id, typ, state string, spot bool, launched time.Time, pool, jobID, last string) ec2types.Instance {
	i := ec2types.Instance{
		InstanceId: aws.String(id), InstanceType: ec2types.InstanceType(typ), LaunchTime: aws.Time(launched),
		State:     &ec2types.InstanceState{Name: ec2types.InstanceStateName(state)},
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("eu-west-1a")},
		Tags:      []ec2types.Tag{{Key: aws.String(fleet.TagManaged), Value: aws.String("true")}, {Key: aws.String(fleet.TagPool), Value: aws.String(pool)}},
	}
	if jobID != "" {
		i.Tags = append(i.Tags, ec2types.Tag{Key: aws.String(fleet.TagJob), Value: aws.String(jobID)})
	}
	if last != "" {
		i.Tags = append(i.Tags, ec2types.Tag{Key: aws.String(notice.TagLastAction), Value: aws.String(last)})
	}
	if spot {
		i.InstanceLifecycle = ec2types.InstanceLifecycleTypeSpot
	}
	return i
}

func watched(id, typ string, launched time.Time) ec2types.Instance {
	return ec2types.Instance{
		InstanceId: aws.String(id), InstanceType: ec2types.InstanceType(typ), LaunchTime: aws.Time(launched),
		State:     &ec2types.InstanceState{Name: ec2types.InstanceStateNameRunning},
		Placement: &ec2types.Placement{AvailabilityZone: aws.String("eu-west-1b")},
		Tags:      []ec2types.Tag{{Key: aws.String("nightshift:watch"), Value: aws.String("true")}, {Key: aws.String("Name"), Value: aws.String("alice-notebook")}},
	}
}

func events(from time.Time, lines ...string) []logtypes.OutputLogEvent {
	var out []logtypes.OutputLogEvent
	for i, l := range lines {
		out = append(out, logtypes.OutputLogEvent{Timestamp: aws.Int64(from.Add(time.Duration(i) * time.Second).UnixMilli()), Message: aws.String(l)})
	}
	return out
}

// run runs the command line against the world; tty and env as given.
func (w *world) run(t *testing.T, args []string, stdin string, tty bool, env map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, tty: tty,
		getenv: func(k string) string { return env[k] },
		now:    func() time.Time { return w.now },
		sleep: func(ctx context.Context, d time.Duration) error {
			w.sleeps++
			if w.sleeps > 1000 {
				return fmt.Errorf("more than 1000 polls")
			}
			w.now = w.now.Add(d)
			if w.onSleep != nil {
				w.onSleep(w.sleeps)
			}
			return nil
		},
	}
	a.connect = func(context.Context) (*cloud, error) {
		return &cloud{stack: testStack, jobs: w.jobs, sqs: w.sqs, logs: w.logs, ec2: w.ec2, ssm: w.ssm, ssmEndpoint: "https://ssm.eu-west-1.amazonaws.com", settings: testSettings(t)}, nil
	}
	a.lookPath, a.pluginVersion, a.runPlugin = w.plugin.lookPath, w.plugin.versionOf, w.plugin.run
	a.portFree = func(p int) bool { return !w.taken[p] }
	code = a.main(context.Background(), args)
	return code, out.String(), errb.String()
}

// golden compares got with testdata/name.golden, or writes it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/nightshift -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-want +got):\n%s", path, diffLines(string(want), got))
	}
}

// diffLines is a plain line diff, enough to read a golden mismatch.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < max(len(w), len(g)); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
		}
	}
	return b.String()
}

// TestGolden runs each command against the same world and compares what
// it prints, its exit status and what it sent with testdata/NAME.golden.
func TestGolden(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		tty   bool
		env   map[string]string
	}{
		{name: "ls", args: []string{"ls"}},
		{name: "ls-tty", args: []string{"ls"}, tty: true},
		{name: "ls-tty-no-color", args: []string{"ls"}, tty: true, env: map[string]string{"NO_COLOR": "1"}},
		{name: "ls-all", args: []string{"ls", "--all"}},
		{name: "ls-failed", args: []string{"ls", "--state", "failed"}},
		{name: "ls-since", args: []string{"ls", "--since", "6h"}},
		{name: "ls-json", args: []string{"ls", "--json"}},
		{name: "ls-bad-state", args: []string{"ls", "--state", "DONE"}},
		{name: "show-running", args: []string{"show", "resnet-cifar10"}},
		{name: "show-failed", args: []string{"show", "gan-faces"}},
		{name: "show-rejected", args: []string{"show", "typo"}},
		{name: "show-missing", args: []string{"show", "nope"}},
		{name: "show-json", args: []string{"show", "--json", "llama-lora"}},
		{name: "logs", args: []string{"logs", "resnet-cifar10"}},
		{name: "logs-attempt-1", args: []string{"logs", "--attempt", "1", "gan-faces"}},
		{name: "logs-attempt-9", args: []string{"logs", "--attempt", "9", "gan-faces"}},
		{name: "logs-queued", args: []string{"logs", "bert-finetune"}},
		{name: "cancel", args: []string{"cancel", "--reason", "wrong learning rate", "resnet-cifar10", "bert-finetune"}},
		{name: "cancel-ended", args: []string{"cancel", "sweep-lr-3"}},
		{name: "cancel-unknown", args: []string{"cancel", "nope", "bert-finetune"}},
		{name: "retry", args: []string{"retry", "gan-faces"}},
		{name: "retry-live", args: []string{"retry", "resnet-cifar10"}},
		{name: "submit-flags", args: []string{"submit", "--command", "python train.py", "--id", "vit-b16", "--pool", "multi", "--max-runtime", "6h", "--env", "EPOCHS=300", "--priority", "3"}},
		{name: "submit-file", args: []string{"submit", "-"}, stdin: `{"id": "from-stdin", "command": "make train", "max_runtime": "1h"}`},
		{name: "submit-bad", args: []string{"submit", "-"}, stdin: `{"id": "oops", "comand": "python train.py"}`},
		{name: "submit-secret", args: []string{"submit", "--command", "python train.py", "--id", "with-key", "--max-runtime", "1h", "--secret", "WANDB_API_KEY=/nightshift/secrets/wandb"}},
		{name: "submit-secret-elsewhere", args: []string{"submit", "--command", "python train.py", "--max-runtime", "1h", "--secret", "HF_TOKEN=/prod/hf"}},
		{name: "submit-bad-pool", args: []string{"submit", "--command", "python train.py", "--pool", "huge"}},
		{name: "submit-no-command", args: []string{"submit"}},
		{name: "instances", args: []string{"instances"}},
		{name: "instances-all", args: []string{"instances", "--all"}},
		{name: "cost", args: []string{"cost", "--since", "2d"}},
		{name: "cost-json", args: []string{"cost", "--since", "2d", "--json"}},
		{name: "help", args: []string{"--help"}},
		{name: "submit-help", args: []string{"submit", "--help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			code, stdout, stderr := w.run(t, tt.args, tt.stdin, tt.tty, tt.env)
			var b strings.Builder
			cmdline := "$ nightshift " + shellJoin(tt.args)
			if tt.stdin != "" {
				cmdline = "$ echo '" + tt.stdin + "' | nightshift " + shellJoin(tt.args)
			}
			fmt.Fprintf(&b, "%s\n-- exit %d --\n-- stdout --\n%s-- stderr --\n%s", cmdline, code, stdout, stderr)
			if len(w.sqs.sent) > 0 {
				b.WriteString("-- sent --\n")
				for _, m := range w.sqs.sent {
					b.WriteString(m + "\n")
				}
			}
			golden(t, tt.name, b.String())
		})
	}
}

// TestJSONIsOneDocument: --json prints exactly one JSON document on
// stdout, whatever the command.
func TestJSONIsOneDocument(t *testing.T) {
	for _, args := range [][]string{{"ls"}, {"ls", "--all"}, {"show", "gan-faces"}, {"instances"}, {"cost"}, {"submit", "--command", "x", "--max-runtime", "1h"}, {"cancel", "bert-finetune"}} {
		w := newWorld(t)
		code, stdout, _ := w.run(t, append(args, "--json"), "", false, nil)
		dec := json.NewDecoder(strings.NewReader(stdout))
		var v any
		if err := dec.Decode(&v); err != nil || code != 0 {
			t.Errorf("%q --json = %d, stdout %q: %v", args, code, stdout, err)
			continue
		}
		if dec.More() {
			t.Errorf("%q --json printed more than one document: %q", args, stdout)
		}
	}
}

// TestSubmitFollow: submit --follow prints the job's output as it comes,
// across polls and pages, and exits with the job's own exit code.
func TestSubmitFollow(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	const id, inst, cmd = "follow-me", "i-0f0f0f0f0f0f0f0f0", "6f1d2c3b-0000-4000-8000-00000000f001"
	var j *job.Job
	w.onSleep = func(n int) {
		switch n {
		case 2: // the intake has recorded and placed it
			j = job.New(spec(t, `{"id": "follow-me", "command": "python train.py", "max_runtime": "1h"}`), "default", w.now)
			j.InstanceID, j.InstanceType = inst, "g5.xlarge"
			move(t, j, job.Placed, "launching g5.xlarge (on-demand)", w.now)
			if err := w.jobs.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
		case 4: // dispatched: the first lines
			j.CommandID, j.LogStream = cmd, stream(cmd, inst)
			move(t, j, job.Running, "running on "+inst, w.now)
			if err := w.jobs.Update(ctx, j, job.Placed); err != nil {
				t.Fatal(err)
			}
			w.logs.streams[j.LogStream] = events(w.now, "step 1", "step 2", "step 3")
		case 6: // more output, and the end
			w.logs.streams[j.LogStream] = append(w.logs.streams[j.LogStream], events(w.now, "step 4", "saving checkpoint")...)
			w.logs.streams[stderrStream(j.LogStream)] = events(w.now, "ValueError: bad shape")
			exit := 3
			j.ExitCode, j.EndedAt = &exit, w.now
			move(t, j, job.Failed, "exit code 3", w.now)
			if err := w.jobs.Update(ctx, j, job.Running); err != nil {
				t.Fatal(err)
			}
		case 7: // the last lines arrive after the end is recorded
			w.logs.streams[j.LogStream] = append(w.logs.streams[j.LogStream], events(w.now, "bye")...)
		}
	}
	code, stdout, stderr := w.run(t, []string{"submit", "--id", id, "--command", "python train.py", "--max-runtime", "1h", "--follow"}, "", false, nil)
	if code != 3 {
		t.Errorf("submit --follow = %d; want the job's exit code 3 (stderr %q)", code, stderr)
	}
	if want := "submitted follow-me\n"; !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout %q; want it to start %q", stdout, want)
	}
	if want := "step 1\nstep 2\nstep 3\nstep 4\nsaving checkpoint\nbye\n"; !strings.HasSuffix(stdout, want) {
		t.Errorf("stdout %q; want the output, in order, once: %q", stdout, want)
	}
	if !strings.Contains(stderr, "ValueError: bad shape") || !strings.Contains(stderr, "job follow-me ended FAILED: exit code 3") {
		t.Errorf("stderr %q; want the job's stderr and its end", stderr)
	}
}

// TestSubmitWaitNeverRecorded: a message the intake never records (its
// function broken, say) ends the wait after recordWait with a pointer to
// the intake's log, exit 1.
func TestSubmitWaitNeverRecorded(t *testing.T) {
	w := newWorld(t)
	code, _, stderr := w.run(t, []string{"submit", "--id", "lost", "--command", "x", "--max-runtime", "1h", "--wait"}, "", false, nil)
	if code != exitFailed || !strings.Contains(stderr, "no job lost in stack nightshift 2m0s after it was sent: the intake function's log says why (nightshift-intake)") {
		t.Errorf("submit --wait (never recorded) = %d, stderr %q; want 1 and the job named", code, stderr)
	}
	if waited := w.now.Sub(t0); waited < recordWait || waited > recordWait+2*pollEvery {
		t.Errorf("gave up after %v; want about recordWait, %v", waited, recordWait)
	}
}

// TestWaitLiveLine: on a terminal, --wait rewrites one status line in place;
// elsewhere it prints a line per change.
func TestWaitLiveLine(t *testing.T) {
	for _, tty := range []bool{false, true} {
		w := newWorld(t)
		w.onSleep = func(n int) {
			if n == 2 {
				j := job.New(spec(t, `{"id": "quick", "command": "true", "max_runtime": "1h"}`), "default", w.now)
				exit := 0
				j.ExitCode, j.EndedAt = &exit, w.now
				move(t, j, job.Placed, "launching", w.now)
				move(t, j, job.Running, "running", w.now)
				move(t, j, job.Succeeded, "exit code 0", w.now)
				if err := w.jobs.Create(context.Background(), j); err != nil {
					t.Fatal(err)
				}
			}
		}
		code, _, stderr := w.run(t, []string{"submit", "--id", "quick", "--command", "true", "--max-runtime", "1h", "--wait"}, "", tty, nil)
		if code != 0 {
			t.Errorf("tty=%v: submit --wait = %d, stderr %q", tty, code, stderr)
		}
		live := strings.Contains(stderr, "\r\x1b[K")
		if live != tty || !strings.Contains(stderr, "quick  ") || !strings.Contains(stderr, "SUCCEEDED") {
			t.Errorf("tty=%v: stderr %q; want a live line only on a terminal, and the end", tty, stderr)
		}
	}
}

// TestReadmeShowsRealOutput: every "$ … nightshift …" in the README's code
// blocks is followed by what that command prints in the golden tests,
// stdout then stderr, so the README cannot drift from the program.
func TestReadmeShowsRealOutput(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	printed := map[string]string{} // command line → its output
	files, _ := filepath.Glob("testdata/*.golden")
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(raw)
		cmdline, rest, _ := strings.Cut(s, "\n")
		_, rest, _ = strings.Cut(rest, "-- stdout --\n")
		out, rest, _ := strings.Cut(rest, "-- stderr --\n")
		errText, _, _ := strings.Cut(rest, "-- sent --\n")
		if _, seen := printed[cmdline]; !seen && !strings.Contains(out, "\x1b[") {
			printed[cmdline] = out + errText
		}
	}
	n := 0
	inBlock := false
	lines := strings.Split(string(readme), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock || !strings.HasPrefix(lines[i], "$ ") || !strings.Contains(lines[i], "nightshift ") {
			continue
		}
		want, ok := printed[lines[i]]
		if !ok {
			t.Errorf("README line %d: %q is not a golden test's command line", i+1, lines[i])
			continue
		}
		n++
		wantLines := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
		for k, w := range wantLines {
			if i+1+k >= len(lines) || lines[i+1+k] != w {
				got := ""
				if i+1+k < len(lines) {
					got = lines[i+1+k]
				}
				t.Errorf("README line %d, under %q:\n got %q\nwant %q (go test ./cmd/nightshift -update rewrites the golden files; copy them into the README)", i+2+k, lines[i], got, w)
				break
			}
		}
	}
	if n < 5 {
		t.Errorf("the README shows %d commands with their output; want the Use it section's", n)
	}
}

// TestCancelWait: cancel --wait waits until the job has ended and prints
// how it ended.
func TestCancelWait(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.onSleep = func(n int) {
		if n != 2 {
			return
		}
		j, err := w.jobs.Job(ctx, "bert-finetune")
		if err != nil {
			t.Fatal(err)
		}
		j.CancelRequestedAt, j.CancelReason = w.now, "no longer needed"
		move(t, j, job.Cancelled, "cancelled: no longer needed", w.now)
		if err := w.jobs.Update(ctx, j, job.Queued); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := w.run(t, []string{"cancel", "--wait", "--reason", "no longer needed", "bert-finetune"}, "", false, nil)
	if code != 0 || stdout != "bert-finetune: CANCELLED (cancelled: no longer needed)\n" {
		t.Errorf("cancel --wait = %d, stdout %q, stderr %q; want 0 and the job's end", code, stdout, stderr)
	}
	if w.sleeps < 2 || len(w.sqs.sent) != 1 {
		t.Errorf("polled %d times, sent %q; want polls until the end and one cancel", w.sleeps, w.sqs.sent)
	}
}
