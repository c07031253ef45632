package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/job"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var tickAt = time.Date(2026, 11, 25, 9, 41, 0, 0, time.UTC)

// lambdaLog returns a logger that writes as a function's logger does in
// Lambda's JSON log format (lambdacontext's handler: JSON, "timestamp" and
// "message" keys), with the stack, at a fixed time.
func lambdaLog(buf *bytes.Buffer, stack string) *slog.Logger {
	h := slog.NewJSONHandler(buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			a.Value = slog.TimeValue(tickAt.Add(250 * time.Millisecond))
		}
		return lambdacontext.ReplaceAttr(groups, a)
	}})
	return WithStack(slog.New(h), stack)
}

func lines(buf *bytes.Buffer) [][]byte {
	return bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
}

func ptr(v float64) *float64 { return &v }

// sampleTick is a tick of a two-pool deployment: one multi-GPU instance
// running, a default one stopped, a daily budget and no monthly one.
func sampleTick() Tick {
	return Tick{
		Jobs:       map[job.State]int{job.Queued: 3, job.Placed: 1, job.Running: 2},
		Pools:      []string{"multi", "default"},
		Instances:  map[string]map[string]int{"multi": {"running": 1}, "default": {"running": 1, "stopped": 1}, "other-stack": {"running": 9}},
		SpendToday: ptr(12.5), SpendMonth: ptr(310.25),
		DailyBudget: 50,
		Actions:     map[string]int{"stop": 2, "notify": 1},
	}
}

// TestTickGolden holds one tick's line to the golden file, the line Lambda
// writes and CloudWatch Logs reads: testdata/tick.json.
func TestTickGolden(t *testing.T) {
	var buf bytes.Buffer
	docs := sampleTick().Documents(tickAt)
	if len(docs) != 1 {
		t.Fatalf("Documents() = %d documents; want 1", len(docs))
	}
	if err := Emit(context.Background(), lambdaLog(&buf, "ml-prod"), docs...); err != nil {
		t.Fatalf("Emit() = %v", err)
	}
	golden := filepath.Join("testdata", "tick.json")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), buf.String()); diff != "" {
		t.Errorf("tick line mismatch (-want +got):\n%s", diff)
	}

	p, err := Parse(lines(&buf)[0])
	if err != nil {
		t.Fatalf("Parse(tick line) = %v", err)
	}
	wantValues := map[string]float64{
		JobsQueued: 3, JobsPlaced: 1, JobsRunning: 2,
		SpendTodayUSD: 12.5, SpendMonthUSD: 310.25, DailyBudgetUSD: 50,
		ActionsStop: 2, ActionsCancel: 0, ActionsNotify: 1,
		"InstancesPending.default": 0, "InstancesRunning.default": 1, "InstancesStopping.default": 0, "InstancesStopped.default": 1,
		"InstancesPending.multi": 0, "InstancesRunning.multi": 1, "InstancesStopping.multi": 0, "InstancesStopped.multi": 0,
	}
	if diff := cmp.Diff(wantValues, p.Values); diff != "" {
		t.Errorf("Parse(tick line) values (-want +got):\n%s", diff)
	}
	if p.Namespace != "nightshift" || !cmp.Equal(p.Dimensions, [][]string{{"Stack"}}) || p.DimensionValues["Stack"] != "ml-prod" || !p.Time.Equal(tickAt) {
		t.Errorf("Parse(tick line) = namespace %q, dimensions %v %v, time %v; want nightshift, [[Stack]] ml-prod, %v", p.Namespace, p.Dimensions, p.DimensionValues, p.Time, tickAt)
	}
	for name, u := range p.Units {
		want := Count
		if strings.HasSuffix(name, "USD") {
			want = None
		}
		if u != want {
			t.Errorf("unit of %s = %q; want %q", name, u, want)
		}
	}
}

func TestDocumentsLeaveOutWhatIsUnknown(t *testing.T) {
	tk := Tick{Jobs: map[job.State]int{job.Running: 4}, Pools: []string{"default"}, Actions: map[string]int{}}
	docs := tk.Documents(tickAt)
	if len(docs) != 1 {
		t.Fatalf("Documents() = %d documents; want 1", len(docs))
	}
	var names []string
	for _, m := range docs[0].Metrics {
		names = append(names, m.Name)
	}
	// No queue counts, no spend, no budgets, no instances (not listed):
	// the running count and the actions only.
	want := []string{JobsRunning, ActionsStop, ActionsCancel, ActionsNotify}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("Documents() names (-want +got):\n%s", diff)
	}
}

func TestDocumentsSplitPast100(t *testing.T) {
	tk := sampleTick()
	tk.Instances = map[string]map[string]int{}
	tk.Pools = nil
	for k := range 30 {
		tk.Pools = append(tk.Pools, fmt.Sprintf("pool-%02d", k))
	}
	docs := tk.Documents(tickAt)
	// 9 fixed figures (no monthly budget) and 4 × 30 pools: 129.
	if len(docs) != 2 || len(docs[0].Metrics) != MaxMetrics || len(docs[1].Metrics) != 29 {
		t.Fatalf("Documents(30 pools) = %d documents; want 2, of 100 and 29 metrics", len(docs))
	}
	var buf bytes.Buffer
	if err := Emit(context.Background(), lambdaLog(&buf, "s"), docs...); err != nil {
		t.Fatalf("Emit(30 pools) = %v", err)
	}
	total := 0
	for _, l := range lines(&buf) {
		p, err := Parse(l)
		if err != nil {
			t.Fatalf("Parse(%s) = %v", l, err)
		}
		total += len(p.Values)
	}
	if total != 129 {
		t.Errorf("the documents hold %d metrics; want 129", total)
	}
}

func TestJobEnded(t *testing.T) {
	var buf bytes.Buffer
	log := lambdaLog(&buf, "ml-prod")
	JobEnded(context.Background(), log, job.Failed, tickAt)
	JobEnded(context.Background(), log, job.Queued, tickAt) // re-queued: no end
	JobEnded(context.Background(), log, job.Rejected, tickAt)
	ls := lines(&buf)
	if len(ls) != 2 {
		t.Fatalf("JobEnded(FAILED, QUEUED, REJECTED) wrote %d lines; want 2:\n%s", len(ls), buf.String())
	}
	for k, want := range []job.State{job.Failed, job.Rejected} {
		p, err := Parse(ls[k])
		if err != nil {
			t.Fatalf("Parse(%s) = %v", ls[k], err)
		}
		if !cmp.Equal(p.Values, map[string]float64{JobsEnded: 1}) || p.Units[JobsEnded] != Count ||
			!cmp.Equal(p.Dimensions, [][]string{{Stack, State}}) || p.DimensionValues[State] != string(want) || p.DimensionValues[Stack] != "ml-prod" {
			t.Errorf("JobEnded(%s) = %+v; want JobsEnded 1 (Count) under Stack=ml-prod, State=%s", want, p, want)
		}
	}
}

func TestActions(t *testing.T) {
	CountAction(context.Background(), "stop", false) // no tally: nothing happens
	ctx, a := WithActions(context.Background())
	for _, v := range []string{"stop", "stop", "cancel", "notify", "job train-1 FAILED"} {
		CountAction(ctx, v, false)
	}
	CountAction(ctx, "stop", true) // a dry run's would-be stop
	if diff := cmp.Diff(map[string]int{"stop": 2, "cancel": 1, "notify": 2}, a.Counts()); diff != "" {
		t.Errorf("Counts() (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	ok := Document{Time: tickAt, Metrics: []Metric{{Name: "A", Unit: Count, Value: 1}}}
	many := func(n int) []Metric {
		var ms []Metric
		for k := range n {
			ms = append(ms, Metric{Name: fmt.Sprintf("M%d", k), Unit: Count})
		}
		return ms
	}
	dims := func(n int) []Dimension {
		var ds []Dimension
		for k := range n {
			ds = append(ds, Dimension{Name: fmt.Sprintf("D%d", k), Value: "v"})
		}
		return ds
	}
	tests := []struct {
		name string
		give Document
		want bool
	}{
		{"one metric", ok, true},
		{"100 metrics", Document{Time: tickAt, Metrics: many(100)}, true},
		{"29 dimensions and Stack", Document{Time: tickAt, Dimensions: dims(29), Metrics: many(1)}, true},
		{"no time", Document{Metrics: ok.Metrics}, false},
		{"no metric", Document{Time: tickAt}, false},
		{"101 metrics", Document{Time: tickAt, Metrics: many(101)}, false},
		{"30 dimensions and Stack", Document{Time: tickAt, Dimensions: dims(30), Metrics: many(1)}, false},
		{"NaN", Document{Time: tickAt, Metrics: []Metric{{Name: "A", Unit: Count, Value: math.NaN()}}}, false},
		{"infinite", Document{Time: tickAt, Metrics: []Metric{{Name: "A", Unit: None, Value: math.Inf(1)}}}, false},
		{"a unit of no CloudWatch", Document{Time: tickAt, Metrics: []Metric{{Name: "A", Unit: "USD"}}}, false},
		{"the stack's name", Document{Time: tickAt, Metrics: []Metric{{Name: Stack, Unit: Count}}}, false},
		{"the metadata's name", Document{Time: tickAt, Metrics: []Metric{{Name: "_aws", Unit: Count}}}, false},
		{"Lambda's message key", Document{Time: tickAt, Metrics: []Metric{{Name: "message", Unit: Count}}}, false},
		{"twice", Document{Time: tickAt, Metrics: []Metric{{Name: "A", Unit: Count}, {Name: "A", Unit: Count}}}, false},
		{"a dimension named like a metric", Document{Time: tickAt, Dimensions: []Dimension{{Name: "A", Value: "x"}}, Metrics: ok.Metrics}, false},
		{"a long name", Document{Time: tickAt, Metrics: []Metric{{Name: strings.Repeat("n", 256), Unit: Count}}}, false},
		{"an empty dimension value", Document{Time: tickAt, Dimensions: []Dimension{{Name: "D", Value: " "}}, Metrics: ok.Metrics}, false},
		{"a dimension value not ASCII", Document{Time: tickAt, Dimensions: []Dimension{{Name: "D", Value: "café"}}, Metrics: ok.Metrics}, false},
	}
	for _, tt := range tests {
		if err := tt.give.Check(); (err == nil) != tt.want {
			t.Errorf("Check(%s) = %v; want ok %v", tt.name, err, tt.want)
		}
	}
	var buf bytes.Buffer
	if err := Emit(context.Background(), lambdaLog(&buf, "s"), Document{Time: tickAt}); err == nil || buf.Len() > 0 {
		t.Errorf("Emit(an invalid document) = %v, wrote %q; want an error and nothing written", err, buf.String())
	}
}

// TestParse holds Parse to the specification on hand-written lines.
func TestParse(t *testing.T) {
	const aws = `"_aws":{"Timestamp":1795426860000,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[["Service"]],"Metrics":[{"Name":"Latency","Unit":"Milliseconds"}]}]}`
	tests := []struct {
		name string
		give string
		want bool
	}{
		{"valid", `{` + aws + `,"Service":"api","Latency":12,"requestId":"abc"}`, true},
		{"values as an array", `{` + aws + `,"Service":"api","Latency":[1,2,3]}`, true},
		{"no unit: None", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":1}`, true},
		{"not an object", `[1]`, false},
		{"no _aws", `{"Service":"api","Latency":12}`, false},
		{"text around the object", `START {` + aws + `,"Service":"api","Latency":12}`, false},
		{"data after the object", `{` + aws + `,"Service":"api","Latency":12} x`, false},
		{"a member twice", `{` + aws + `,"Service":"api","Latency":12,"Latency":13}`, false},
		{"no timestamp", `{"_aws":{"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":1}`, false},
		{"timestamp in seconds with a fraction", `{"_aws":{"Timestamp":1795426860.5,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":1}`, false},
		{"timestamp as text", `{"_aws":{"Timestamp":"2026-11-25T09:41:00Z","CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":1}`, false},
		{"no directive", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[]}}`, false},
		{"no namespace", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":1}`, false},
		{"no dimension set", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[],"Metrics":[{"Name":"X"}]}]},"X":1}`, false},
		{"a dimension missing", `{` + aws + `,"Latency":12}`, false},
		{"a dimension not a string", `{` + aws + `,"Service":7,"Latency":12}`, false},
		{"a metric missing", `{` + aws + `,"Service":"api"}`, false},
		{"a metric not a number", `{` + aws + `,"Service":"api","Latency":"12"}`, false},
		{"a metric nested", `{` + aws + `,"Service":"api","Latency":{"v":12}}`, false},
		{"a unit of no CloudWatch", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X","Unit":"USD"}]}]},"X":1}`, false},
		{"101 values", `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[{"Name":"X"}]}]},"X":[` + strings.TrimSuffix(strings.Repeat("1,", 101), ",") + `]}`, false},
	}
	for _, tt := range tests {
		if _, err := Parse([]byte(tt.give)); (err == nil) != tt.want {
			t.Errorf("Parse(%s) = %v; want ok %v", tt.name, err, tt.want)
		}
	}
	// Too many metrics, and too many dimension names, in one directive.
	many := func(n int, f func(int) string) string {
		var parts []string
		for k := range n {
			parts = append(parts, f(k))
		}
		return strings.Join(parts, ",")
	}
	metrics101 := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[]],"Metrics":[` +
		many(101, func(k int) string { return fmt.Sprintf(`{"Name":"M%d"}`, k) }) + `]}]},` + many(101, func(k int) string { return fmt.Sprintf(`"M%d":1`, k) }) + `}`
	dims31 := `{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"ns","Dimensions":[[` +
		many(31, func(k int) string { return fmt.Sprintf(`"D%d"`, k) }) + `]],"Metrics":[{"Name":"X"}]}]},"X":1,` + many(31, func(k int) string { return fmt.Sprintf(`"D%d":"v"`, k) }) + `}`
	for name, line := range map[string]string{"101 metrics": metrics101, "31 dimensions": dims31} {
		if !json.Valid([]byte(line)) {
			t.Fatalf("%s: test line is not JSON", name)
		}
		if _, err := Parse([]byte(line)); err == nil {
			t.Errorf("Parse(%s) = nil; want an error", name)
		}
	}
}
