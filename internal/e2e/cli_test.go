package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	logtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/nightshift-dev/nightshift/internal/awstest"
)

// cliBinary is the command line, built once per test binary.
var cliBinary struct {
	once sync.Once
	path string
	err  error
}

func buildCLI(t testing.TB) string {
	t.Helper()
	cliBinary.once.Do(func() {
		root, err := repoRoot()
		if err != nil {
			cliBinary.err = err
			return
		}
		cliBinary.path = filepath.Join(binaries.dir, "nightshift")
		cmd := exec.Command("go", "build", "-o", cliBinary.path, "./cmd/nightshift")
		cmd.Dir = root
		if b, err := cmd.CombinedOutput(); err != nil {
			cliBinary.err = fmt.Errorf("go build ./cmd/nightshift: %v\n%s", err, b)
		}
	})
	if cliBinary.err != nil {
		t.Fatal(cliBinary.err)
	}
	return cliBinary.path
}

// stackName is the deployed stack the command line looks for by default.
const stackName = "nightshift"

// deployment is what a deployed stack gives the command line: the queue,
// the log group, the intake function with its settings, and the stack's
// outputs that name them. moto cannot deploy template.yaml itself (SAM
// transforms, Lambda images), so the stack here is a placeholder resource
// with the outputs the real template declares, pointing at resources made
// beside it; internal/deploy checks that the template declares them.
type deployment struct {
	*cloud
	queueURL string
	sqs      *sqs.Client
	logs     *cloudwatchlogs.Client
	intake   *lambdaFunc
	env      []string
	// calls records the AWS operations the command line makes.
	calls *recorder
}

func deploy(t *testing.T) *deployment {
	t.Helper()
	ctx := context.Background()
	c := newCloud(t)
	cfg := c.srv.Config()
	d := &deployment{cloud: c, sqs: sqs.NewFromConfig(cfg), logs: cloudwatchlogs.NewFromConfig(cfg)}
	q, err := d.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("nightshift-jobs")})
	if err != nil {
		t.Fatalf("create queue: %v", err)
	}
	d.queueURL = aws.ToString(q.QueueUrl)
	if _, err := d.logs.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String(logGroup)}); err != nil {
		t.Fatalf("create log group: %v", err)
	}

	fnEnv := map[string]string{}
	for _, kv := range c.env(t) {
		k, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NIGHTSHIFT_") {
			fnEnv[k] = v
		}
	}
	role, err := iam.NewFromConfig(cfg).CreateRole(ctx, &iam.CreateRoleInput{
		RoleName:                 aws.String("nightshift-intake"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}`),
	})
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := lambda.NewFromConfig(cfg).CreateFunction(ctx, &lambda.CreateFunctionInput{
		FunctionName: aws.String("nightshift-intake"), Role: role.Role.Arn, Runtime: lambdatypes.RuntimeProvidedal2023,
		Handler: aws.String("bootstrap"), Code: &lambdatypes.FunctionCode{ZipFile: emptyZip},
		Environment: &lambdatypes.Environment{Variables: fnEnv},
	}); err != nil {
		t.Fatalf("create intake function: %v", err)
	}
	tmpl := fmt.Sprintf(`{"Resources": {"Placeholder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
		"Outputs": {"QueueUrl": {"Value": %q}, "TableName": {"Value": %q}, "JobLogGroup": {"Value": %q}, "IntakeFunctionName": {"Value": "nightshift-intake"}}}`,
		d.queueURL, table, logGroup)
	if _, err := cloudformation.NewFromConfig(cfg).CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(stackName), TemplateBody: aws.String(tmpl)}); err != nil {
		t.Fatalf("create stack: %v", err)
	}
	d.intake = startFunction(t, "intake", c.env(t))
	// The command line's environment: the user's credentials and region,
	// nothing of the functions' settings; its endpoint a proxy to moto that
	// records each operation.
	d.calls = newRecorder(t, c.srv.URL)
	for _, kv := range c.env(t) {
		switch {
		case strings.HasPrefix(kv, "NIGHTSHIFT_"):
		case strings.HasPrefix(kv, "AWS_ENDPOINT_URL="):
			d.env = append(d.env, "AWS_ENDPOINT_URL="+d.calls.url)
		default:
			d.env = append(d.env, kv)
		}
	}
	return d
}

// emptyZip is a zip archive with no files: moto keeps the code, never runs it.
var emptyZip = []byte{0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

// nightshift runs the command line and returns its exit status and output.
func (d *deployment) nightshift(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(buildCLI(t), args...)
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("nightshift %s: %v", strings.Join(args, " "), err)
	}
	return code, out.String(), errb.String()
}

// deliver hands the queue's messages to the intake function as Lambda's
// event source mapping would, one batch, and deletes them when the batch
// succeeds. It returns how many it delivered.
func (d *deployment) deliver(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	out, err := d.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(d.queueURL), MaxNumberOfMessages: 10,
		MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameAll},
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(out.Messages) == 0 {
		return 0
	}
	var ev events.SQSEvent
	for _, m := range out.Messages {
		ev.Records = append(ev.Records, events.SQSMessage{
			MessageId: aws.ToString(m.MessageId), ReceiptHandle: aws.ToString(m.ReceiptHandle), Body: aws.ToString(m.Body),
			Md5OfBody: aws.ToString(m.MD5OfBody), Attributes: m.Attributes, EventSource: "aws:sqs",
			EventSourceARN: "arn:aws:sqs:" + awstest.Region + ":123456789012:nightshift-jobs", AWSRegion: awstest.Region,
		})
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	body, ferr := d.intake.invoke(t, raw)
	if ferr != nil {
		t.Fatalf("intake = error %s: %s", ferr.Type, ferr.Message)
	}
	if f := batchItemFailures(t, body); len(f) != 0 {
		t.Fatalf("intake: batchItemFailures = %v", f)
	}
	for _, m := range out.Messages {
		if _, err := d.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(d.queueURL), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatal(err)
		}
	}
	return len(out.Messages)
}

func (d *deployment) queued(t *testing.T) string {
	t.Helper()
	a, err := d.sqs.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(d.queueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a.Attributes[string(sqstypes.QueueAttributeNameApproximateNumberOfMessages)]
}

func mustContain(t *testing.T, what, text string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, text)
		}
	}
}

// TestCommandLine: the command line against a stack on moto, with only
// the user's credentials and the stack's name: a bad message is refused
// before anything is sent; submit sends one, which the intake records and
// places; ls, show and logs read it back; cancel ends it, through the
// same queue, and the instance is freed.
func TestCommandLine(t *testing.T) {
	d := deploy(t)

	const bad = `{"id": "e2e-bad", "comand": "python train.py"}`
	code, stdout, stderr := d.nightshift(t, bad, "submit", "-")
	if n := d.queued(t); n != "0" {
		t.Fatalf("after a refused submit the queue holds %s messages; want nothing sent", n)
	}
	// The same message sent around the command line: the intake's reason
	// is the one the command line gave.
	if _, err := d.sqs.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(d.queueURL), MessageBody: aws.String(bad)}); err != nil {
		t.Fatal(err)
	}
	d.deliver(t)
	rejected := d.jobItems(t, "e2e-bad")
	if len(rejected) != 1 || str(rejected[0]["state"]) != "REJECTED" {
		t.Fatalf("the bad message sent directly made %v; want one REJECTED record", rejected)
	}
	if why := str(rejected[0]["reason"]); code != 1 || stdout != "" || why == "" || !strings.Contains(stderr, "nothing sent: "+why) {
		t.Errorf("submit(bad message) = %d, stdout %q, stderr %q; want 1 and the intake's own reason %q", code, stdout, stderr, why)
	}

	code, stdout, stderr = d.nightshift(t, "", "submit", "--id", "e2e-1", "--name", "end to end", "--command", "python train.py", "--max-runtime", "1h")
	if code != 0 {
		t.Fatalf("submit = %d, stderr %q", code, stderr)
	}
	mustContain(t, "submit's output", stdout, "e2e-1", "console")
	if n := d.deliver(t); n != 1 {
		t.Fatalf("the queue held %d messages after submit; want 1", n)
	}

	code, stdout, stderr = d.nightshift(t, "", "ls")
	if code != 0 {
		t.Fatalf("ls = %d, stderr %q", code, stderr)
	}
	mustContain(t, "ls", stdout, "e2e-1", "end to end", "PLACED", "default/g4dn.xlarge")

	code, stdout, _ = d.nightshift(t, "", "ls", "--json")
	var listed []struct{ ID, State string }
	if err := json.Unmarshal([]byte(stdout), &listed); code != 0 || err != nil || len(listed) != 1 || listed[0].ID != "e2e-1" {
		t.Errorf("ls --json = %d, %q (%v); want the one job", code, stdout, err)
	}

	// The dispatch would record the command and its log stream; moto's SSM
	// cannot run it (DescribeInstanceInformation fails there), so the test
	// writes what the dispatch writes, and what SSM writes to the stream.
	var insts []string
	for _, i := range d.instances(t) {
		insts = append(insts, aws.ToString(i.InstanceId))
	}
	if len(insts) != 1 {
		t.Fatalf("instances = %v; want the one launched for e2e-1", insts)
	}
	stream := "0b5e1c5e-0000-4000-8000-000000000001/" + insts[0] + "/aws-runShellScript/stdout"
	d.putLogs(t, stream, "epoch 1/3", "epoch 2/3")
	d.recordStream(t, "e2e-1", stream)

	code, stdout, stderr = d.nightshift(t, "", "logs", "e2e-1")
	if code != 0 || stdout != "epoch 1/3\nepoch 2/3\n" {
		t.Errorf("logs = %d, stdout %q, stderr %q; want the two lines", code, stdout, stderr)
	}

	code, stdout, stderr = d.nightshift(t, "", "show", "e2e-1")
	if code != 0 {
		t.Fatalf("show = %d, stderr %q", code, stderr)
	}
	mustContain(t, "show", stdout, "job e2e-1 (end to end)", "PLACED", "python train.py", "timeline", "QUEUED → PLACED", insts[0], stream)

	code, _, stderr = d.nightshift(t, "", "cancel", "--reason", "wrong learning rate", "e2e-1", "no-such-job")
	if code != 1 || !strings.Contains(stderr, "no-such-job: no such job in stack nightshift; nothing sent") {
		t.Errorf("cancel(e2e-1, no-such-job) = %d, stderr %q; want 1 and the unknown id said", code, stderr)
	}
	if n := d.deliver(t); n != 1 {
		t.Fatalf("the queue held %d messages after cancel; want 1, for e2e-1", n)
	}
	code, stdout, _ = d.nightshift(t, "", "show", "--json", "e2e-1")
	var shown struct{ State, Reason string }
	if err := json.Unmarshal([]byte(stdout), &shown); code != 0 || err != nil || shown.State != "CANCELLED" || shown.Reason != "cancelled: wrong learning rate" {
		t.Errorf("show --json after cancel = %d, %q (%v); want CANCELLED, cancelled: wrong learning rate", code, stdout, err)
	}
	if l := d.lease(t, insts[0]); str(l["job_id"]) != "" {
		t.Errorf("lease of %s after cancel = %v; want it free", insts[0], l)
	}

	code, stdout, _ = d.nightshift(t, "", "ls")
	if code != 0 || strings.Contains(stdout, "e2e-1") {
		t.Errorf("ls after cancel = %d, %q; want no live job", code, stdout)
	}
	code, stdout, _ = d.nightshift(t, "", "ls", "--all")
	mustContain(t, "ls --all", stdout, "e2e-1", "CANCELLED", "e2e-bad", "REJECTED")
	if code != 0 {
		t.Errorf("ls --all = %d", code)
	}
	code, stdout, _ = d.nightshift(t, "", "cancel", "e2e-1")
	if code != 0 || !strings.Contains(stdout, "e2e-1: ended already (CANCELLED") {
		t.Errorf("cancel(cancelled job) = %d, stdout %q; want 0 and said ended", code, stdout)
	}
	if n := d.queued(t); n != "0" {
		t.Errorf("a cancel of an ended job sent %s messages; want none", n)
	}
	code, _, _ = d.nightshift(t, "", "instances")
	if code != 0 {
		t.Errorf("instances = %d", code)
	}
	code, _, _ = d.nightshift(t, "", "cost")
	if code != 0 {
		t.Errorf("cost = %d", code)
	}
	checkCallsListed(t, d)
	code, _, stderr = d.nightshift(t, "", "--stack", "other", "ls")
	if code != 1 || !strings.Contains(stderr, `no stack "other" in us-east-1`) {
		t.Errorf("ls --stack other = %d, stderr %q; want 1 and the missing stack named", code, stderr)
	}
}

// TestNotebookCommandLine: nightshift notebook --no-connect sends a notebook message,
// which the intake records and places on the notebook's own pool, and
// follows it until the ready line is in its output; a second run reuses
// the session and sends nothing; --stop sends its cancel, which ends it;
// --stop again finds none. moto has no Session Manager (StartSession is
// not implemented there), so the port forwarding itself is checked by
// cmd/nightshift's tests of the request and the plugin's command line.
func TestNotebookCommandLine(t *testing.T) {
	d := deploy(t)
	cmd := exec.Command(buildCLI(t), "notebook", "e2e-nb", "--no-connect")
	cmd.Env = d.env
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for d.queued(t) == "0" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := d.deliver(t); n != 1 {
		t.Fatalf("the queue held %d messages after notebook; want its notebook message (stderr %q)", n, errb.String())
	}
	m := regexp.MustCompile(`started notebook e2e-nb: session (nb-e2e-nb-\S+)`).FindStringSubmatch(errb.String())
	if m == nil {
		t.Fatalf("notebook did not say its session's id; stderr %q", errb.String())
	}
	id := m[1]
	if items := d.jobItems(t, id); len(items) != 1 || str(items[0]["pool"]) != "notebook:e2e-nb" {
		t.Fatalf("the intake made %v of %s; want one job in pool notebook:e2e-nb", items, id)
	}
	// The intake places the session on an instance of its own, launched
	// on moto and tagged with the notebook's pool; moto's SSM runs no
	// command, so the test writes the stream and the ready line in it, as
	// the dispatch and the wrapper would.
	items := d.jobItems(t, id)
	inst := str(items[0]["instance_id"])
	if st := str(items[0]["state"]); st != "PLACED" || inst == "" {
		t.Fatalf("%s after the intake: %s on %q (%s); want PLACED on its own instance", id, st, inst, str(items[0]["reason"]))
	}
	own := false
	for _, i := range d.instances(t) {
		own = own || aws.ToString(i.InstanceId) == inst && tags(i)["nightshift:pool"] == "notebook:e2e-nb" && tags(i)["nightshift:managed"] == "true"
	}
	if !own {
		t.Errorf("instance %s is not tagged nightshift:pool=notebook:e2e-nb, nightshift:managed=true", inst)
	}
	stream := "0b5e1c5e-0000-4000-8000-00000000nb01/" + inst + "/aws-runShellScript/stdout"
	d.putLogs(t, stream, "nightshift: installing JupyterLab", "nightshift: notebook ready: http://127.0.0.1:8888/lab?token=e2etoken")
	d.recordStream(t, id, stream)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("notebook --no-connect: %v, stderr %q", err, errb.String())
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("notebook --no-connect did not see the ready line; stderr %q", errb.String())
	}
	mustContain(t, "notebook --no-connect", out.String(), "notebook e2e-nb is ready on "+inst+" (session "+id+")",
		"aws ssm start-session --region us-east-1 --target "+inst+" --document-name AWS-StartPortForwardingSession --parameters portNumber=8888,localPortNumber=", "/lab?token=e2etoken")

	code, stdout, stderr := d.nightshift(t, "", "notebook", "e2e-nb", "--no-connect")
	if code != 0 || !strings.Contains(stderr, "notebook e2e-nb has a live session, "+id) || !strings.Contains(stdout, "ready on "+inst) {
		t.Errorf("notebook again = %d, stdout %q, stderr %q; want the session reused", code, stdout, stderr)
	}
	if n := d.queued(t); n != "0" {
		t.Errorf("notebook with a live session sent %s messages; want none", n)
	}
	code, stdout, _ = d.nightshift(t, "", "ls")
	mustContain(t, "ls with a notebook", stdout, id, "notebook e2e-nb", "notebook:e2e-nb")
	if code != 0 {
		t.Errorf("ls = %d", code)
	}

	code, stdout, stderr = d.nightshift(t, "", "notebook", "e2e-nb", "--stop")
	if code != 0 || !strings.Contains(stdout, "notebook e2e-nb: stop sent to session "+id) {
		t.Errorf("notebook --stop = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if n := d.deliver(t); n != 1 {
		t.Fatalf("the queue held %d messages after notebook --stop; want its cancel", n)
	}
	code, stdout, _ = d.nightshift(t, "", "show", "--json", id)
	var shown struct{ State, Reason string }
	if err := json.Unmarshal([]byte(stdout), &shown); code != 0 || err != nil || shown.State != "CANCELLED" || !strings.Contains(shown.Reason, "stopped with nightshift notebook --stop") {
		t.Errorf("show --json after notebook --stop = %d, %q (%v); want CANCELLED, stopped with nightshift notebook --stop", code, stdout, err)
	}
	code, stdout, _ = d.nightshift(t, "", "notebook", "e2e-nb", "--stop")
	if code != 0 || !strings.Contains(stdout, "notebook e2e-nb has no live session in stack nightshift; nothing sent") {
		t.Errorf("notebook --stop (none) = %d, stdout %q", code, stdout)
	}
	if n := d.queued(t); n != "0" {
		t.Errorf("notebook --stop with no session sent %s messages; want none", n)
	}
	checkCallsListed(t, d)
}

// lockedBuffer is a buffer a running command writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// putLogs writes lines to a stream of the job log group, as SSM does.
func (d *deployment) putLogs(t *testing.T, stream string, lines ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := d.logs.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String(logGroup), LogStreamName: aws.String(stream)}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var evs []logtypes.InputLogEvent
	for i, l := range lines {
		evs = append(evs, logtypes.InputLogEvent{Message: aws.String(l), Timestamp: aws.Int64(now.Add(time.Duration(i) * time.Millisecond).UnixMilli())})
	}
	if _, err := d.logs.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String(logGroup), LogStreamName: aws.String(stream), LogEvents: evs}); err != nil {
		t.Fatal(err)
	}
}

// recordStream sets the job's command and log stream in its record, as
// the dispatch does.
func (d *deployment) recordStream(t *testing.T, id, stream string) {
	t.Helper()
	if _, err := d.ddb.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: "JOB#" + id}, "sk": &ddbtypes.AttributeValueMemberS{Value: "JOB"}},
		UpdateExpression: aws.String("SET log_stream = :s, command_id = :c"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":s": &ddbtypes.AttributeValueMemberS{Value: stream}, ":c": &ddbtypes.AttributeValueMemberS{Value: strings.Split(stream, "/")[0]},
		},
	}); err != nil {
		t.Fatal(err)
	}
}

// recorder is a reverse proxy to moto that notes each request's operation,
// as IAM names it (service:Operation).
type recorder struct {
	url string
	mu  sync.Mutex
	ops map[string]bool
}

func newRecorder(t *testing.T, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ops: map[string]bool{}}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		op, err := operation(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.ops[op] = true
		r.mu.Unlock()
		proxy.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// credentialScope finds the signing service in a SigV4 Authorization header.
var credentialScope = regexp.MustCompile(`Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request`)

// operation names a request's operation: its signing service and, by the
// service's protocol, the X-Amz-Target header (JSON), the Action form field
// (query), or the REST path (Lambda's).
func operation(req *http.Request) (string, error) {
	m := credentialScope.FindStringSubmatch(req.Header.Get("Authorization"))
	if m == nil {
		return "", fmt.Errorf("unsigned request %s %s", req.Method, req.URL.Path)
	}
	service := m[1]
	if target := req.Header.Get("X-Amz-Target"); target != "" {
		_, op, _ := strings.Cut(target, ".")
		return service + ":" + op, nil
	}
	if service == "lambda" {
		if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/configuration") {
			return "lambda:GetFunctionConfiguration", nil
		}
		return "", fmt.Errorf("lambda request %s %s not known here", req.Method, req.URL.Path)
	}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return "", err
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("Action") == "" {
		return "", fmt.Errorf("%s request without an Action: %q", service, body)
	}
	return service + ":" + form.Get("Action"), nil
}

// TestCommandLinePolicy: every operation the command line made in
// TestCommandLine is one internal/deploy's TestUserPolicy checks the
// template's UserPolicy allows (testdata/cli-calls.txt there lists them).
func checkCallsListed(t *testing.T, d *deployment) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "internal", "deploy", "testdata", "cli-calls.txt"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			listed[strings.ToLower(f[0])] = true
		}
	}
	d.calls.mu.Lock()
	defer d.calls.mu.Unlock()
	if len(d.calls.ops) == 0 {
		t.Fatal("the command line made no AWS calls through the recorder")
	}
	t.Logf("operations the command line made: %v", slices.Sorted(maps.Keys(d.calls.ops)))
	for op := range d.calls.ops {
		if !listed[strings.ToLower(op)] {
			t.Errorf("the command line called %s, which internal/deploy/testdata/cli-calls.txt does not list: the UserPolicy may not allow it", op)
		}
	}
}
