package deploy

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// eventsDir holds the sample events, relative to this package.
const eventsDir = "../../events"

// The ids every sample shares, so a test can chain them.
const (
	sampleAccount  = "123456789012"
	sampleRegion   = "us-east-1"
	sampleInstance = "i-0abcd1234efgh5678"
	sampleQueueARN = "arn:aws:sqs:us-east-1:123456789012:nightshift-jobs"
)

// sqsEvent is the SQS event Lambda delivers (aws-lambda-go events.SQSEvent).
type sqsEvent struct {
	Records []struct {
		MessageID         string            `json:"messageId"`
		ReceiptHandle     string            `json:"receiptHandle"`
		Body              string            `json:"body"`
		Attributes        map[string]string `json:"attributes"`
		MessageAttributes map[string]any    `json:"messageAttributes"`
		MD5OfBody         string            `json:"md5OfBody"`
		EventSource       string            `json:"eventSource"`
		EventSourceARN    string            `json:"eventSourceARN"`
		AWSRegion         string            `json:"awsRegion"`
	} `json:"Records"`
}

// eventBridgeEvent is an EventBridge event (aws-lambda-go events.CloudWatchEvent).
type eventBridgeEvent struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       time.Time       `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

func readSample(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(eventsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

func TestSQSSamples(t *testing.T) {
	defaults := job.Defaults{Pools: []string{"default"}}
	tests := []struct {
		file string
		// want is the validation outcome of each record's body, in order:
		// nil for a valid job, else the kind of error.
		want []error
		// wantIDs are the job ids of the valid bodies.
		wantIDs []string
		// wantCancels are the job ids the cancel messages name, in order.
		wantCancels []string
		// wantRechecks are the instances of its re-check messages.
		wantRechecks []string
	}{
		{file: "sqs-job.json", want: []error{nil}, wantIDs: []string{"resnet-cifar10"}},
		{
			file:    "sqs-bad-jobs.json",
			want:    []error{job.ErrMalformed, job.ErrUnknownField, job.ErrMissingCommand, job.ErrBadID, nil},
			wantIDs: []string{"bert-finetune"},
		},
		{file: "sqs-scheduled-job.json", want: []error{nil}, wantIDs: []string{"nightly-train-2026-11-25T020000Z"}},
		{file: "sqs-cancel.json", want: []error{nil, nil, nil}, wantCancels: []string{"resnet-cifar10", "resnet-cifar10", "resnet-cifar11"}},
		{file: "sqs-recheck.json", want: []error{nil}, wantRechecks: []string{sampleInstance}},
		{file: "sqs-notebook.json", want: []error{nil, nil}, wantIDs: []string{"nb-alice-20261125T093000Z", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var ev sqsEvent
			readSample(t, tt.file, &ev)
			if len(ev.Records) != len(tt.want) {
				t.Fatalf("%s has %d records; want %d", tt.file, len(ev.Records), len(tt.want))
			}
			var ids, cancels, rechecks, seen []string
			for i, r := range ev.Records {
				if slices.Contains(seen, r.MessageID) || r.MessageID == "" {
					t.Errorf("record %d messageId %q is empty or repeated", i, r.MessageID)
				}
				seen = append(seen, r.MessageID)
				sum := md5.Sum([]byte(r.Body))
				if got := hex.EncodeToString(sum[:]); got != r.MD5OfBody {
					t.Errorf("record %d md5OfBody = %s; the body's MD5 is %s", i, r.MD5OfBody, got)
				}
				if r.EventSource != "aws:sqs" || r.EventSourceARN != sampleQueueARN || r.AWSRegion != sampleRegion || r.ReceiptHandle == "" {
					t.Errorf("record %d source = %s %s %s; want aws:sqs %s %s", i, r.EventSource, r.EventSourceARN, r.AWSRegion, sampleQueueARN, sampleRegion)
				}
				for _, a := range []string{"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} {
					if r.Attributes[a] == "" {
						t.Errorf("record %d lacks attribute %s", i, a)
					}
				}
				if job.IsRecheck([]byte(r.Body)) {
					rc, err := job.ParseRecheck([]byte(r.Body))
					if !errors.Is(err, tt.want[i]) {
						t.Errorf("job.ParseRecheck(record %d %s) = %v; want %v", i, r.Body, err, tt.want[i])
					}
					rechecks = append(rechecks, rc.InstanceID)
					continue
				}
				if job.IsCancel([]byte(r.Body)) {
					c, err := job.ParseCancel([]byte(r.Body))
					if !errors.Is(err, tt.want[i]) {
						t.Errorf("job.ParseCancel(record %d %s) = %v; want %v", i, r.Body, err, tt.want[i])
					}
					cancels = append(cancels, c.ID)
					continue
				}
				spec, err := job.Parse([]byte(r.Body), defaults)
				switch {
				case tt.want[i] == nil && err != nil:
					t.Errorf("job.Parse(record %d %s) = %v; want a valid job", i, r.Body, err)
				case tt.want[i] != nil && !errors.Is(err, tt.want[i]):
					t.Errorf("job.Parse(record %d %s) = %v; want %v", i, r.Body, err, tt.want[i])
				case err == nil:
					ids = append(ids, spec.ID)
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("valid job ids = %v; want %v", ids, tt.wantIDs)
			}
			if !slices.Equal(cancels, tt.wantCancels) {
				t.Errorf("cancelled job ids = %v; want %v", cancels, tt.wantCancels)
			}
			if !slices.Equal(rechecks, tt.wantRechecks) {
				t.Errorf("re-checked instances = %v; want %v", rechecks, tt.wantRechecks)
			}
		})
	}
}

func TestEventBridgeSamples(t *testing.T) {
	tpl := loadTemplate(t)
	dispatch := tpl.functions()["DispatchFunction"]
	tests := []struct {
		file       string
		detailType string
		// want is the detail, exactly.
		want map[string]string
	}{
		{"ec2-state-change.json", "EC2 Instance State-change Notification", map[string]string{"instance-id": sampleInstance, "state": "running"}},
		{"ec2-state-stopped.json", "EC2 Instance State-change Notification", map[string]string{"instance-id": sampleInstance, "state": "stopped"}},
		{"ec2-state-terminated.json", "EC2 Instance State-change Notification", map[string]string{"instance-id": sampleInstance, "state": "terminated"}},
		{"spot-interruption.json", "EC2 Spot Instance Interruption Warning", map[string]string{"instance-id": sampleInstance, "instance-action": "terminate"}},
		{"spot-rebalance.json", "EC2 Instance Rebalance Recommendation", map[string]string{"instance-id": sampleInstance}},
		{"ssm-command-success.json", "EC2 Command Invocation Status-change Notification", map[string]string{
			"command-id": "3f2a0d5c-6b1e-4c8a-9d7f-2e5b8c1a4f60", "document-name": "AWS-RunShellScript",
			"instance-id": sampleInstance, "requested-date-time": "2026-11-25T21:03:10.512Z", "status": "Success",
		}},
		{"ssm-command-failed.json", "EC2 Command Invocation Status-change Notification", map[string]string{
			"command-id": "3f2a0d5c-6b1e-4c8a-9d7f-2e5b8c1a4f60", "document-name": "AWS-RunShellScript",
			"instance-id": sampleInstance, "requested-date-time": "2026-11-25T21:03:10.512Z", "status": "Failed",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var ev eventBridgeEvent
			readSample(t, tt.file, &ev)
			checkEnvelope(t, ev)
			if ev.DetailType != tt.detailType {
				t.Errorf("detail-type = %q; want %q", ev.DetailType, tt.detailType)
			}
			// The dispatch function's rules must let the sample through.
			if !dispatchMatches(dispatch, ev.Source, ev.DetailType) {
				t.Errorf("no DispatchFunction rule matches source %s, detail-type %q", ev.Source, ev.DetailType)
			}
			want := "arn:aws:ec2:" + sampleRegion + ":" + sampleAccount + ":instance/" + sampleInstance
			if !slices.Equal(ev.Resources, []string{want}) {
				t.Errorf("resources = %v; want [%s]", ev.Resources, want)
			}
			var detail map[string]string
			if err := json.Unmarshal(ev.Detail, &detail); err != nil {
				t.Fatalf("detail: %v", err)
			}
			if len(detail) != len(tt.want) {
				t.Errorf("detail = %v; want %v", detail, tt.want)
			}
			for k, v := range tt.want {
				if detail[k] != v {
					t.Errorf("detail[%q] = %q; want %q", k, detail[k], v)
				}
			}
		})
	}
}

func checkEnvelope(t *testing.T, ev eventBridgeEvent) {
	t.Helper()
	if ev.Version != "0" || ev.ID == "" || ev.Account != sampleAccount || ev.Region != sampleRegion || ev.Time.IsZero() {
		t.Errorf("envelope version=%q id=%q account=%q region=%q time=%v; want version 0, an id, %s, %s, a time",
			ev.Version, ev.ID, ev.Account, ev.Region, ev.Time, sampleAccount, sampleRegion)
	}
}

// TestWatchdogTickSample checks events/watchdog-tick.json against the Input
// the template gives the watchdog schedule: same fields, same constants.
func TestWatchdogTickSample(t *testing.T) {
	tpl := loadTemplate(t)
	var input string
	for _, ev := range mapping(tpl.functions()["WatchdogFunction"]["Events"]) {
		if str(get(ev, "Type")) == "ScheduleV2" {
			input = pattern(get(ev, "Properties", "Input"))
		}
	}
	if input == "" {
		t.Fatal("the watchdog schedule has no Input; the sample would not match what Scheduler sends")
	}
	filled := strings.NewReplacer(
		"${AWS::AccountId}", sampleAccount,
		"${AWS::Region}", sampleRegion,
	).Replace(input)
	var want eventBridgeEvent
	dec := json.NewDecoder(strings.NewReader(placeholderFree(filled)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatalf("template watchdog Input %s: %v", filled, err)
	}

	var got eventBridgeEvent
	readSample(t, "watchdog-tick.json", &got)
	checkEnvelope(t, got)
	if got.DetailType != want.DetailType || got.Source != want.Source || got.Account != want.Account || got.Region != want.Region {
		t.Errorf("watchdog-tick.json = %s from %s in %s/%s; the template sends %s from %s in %s/%s",
			got.DetailType, got.Source, got.Account, got.Region, want.DetailType, want.Source, want.Account, want.Region)
	}
	if len(got.Resources) != 1 || !strings.HasPrefix(got.Resources[0], "arn:aws:scheduler:"+sampleRegion+":"+sampleAccount+":schedule/") {
		t.Errorf("watchdog-tick.json resources = %v; want the schedule's ARN", got.Resources)
	}
	var gotDetail, wantDetail map[string]string
	if err := json.Unmarshal(got.Detail, &gotDetail); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want.Detail, &wantDetail); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sortedKeys(gotDetail), sortedKeys(wantDetail)) {
		t.Errorf("watchdog-tick.json detail keys = %v; the template sends %v", sortedKeys(gotDetail), sortedKeys(wantDetail))
	}
}

// placeholderFree replaces Scheduler's context attributes with sample values
// of the right shape, so the template's Input decodes as it will at run time.
func placeholderFree(s string) string {
	return strings.NewReplacer(
		"<aws.scheduler.scheduled-time>", "2026-11-25T21:47:00Z",
		"<aws.scheduler.execution-id>", "6f3b2a1c-9d8e-4f7a-b6c5-0e1d2c3b4a59",
		"<aws.scheduler.schedule-arn>", "arn:aws:scheduler:us-east-1:123456789012:schedule/default/nightshift-watchdog",
		"<aws.scheduler.attempt-number>", "1",
	).Replace(s)
}
