package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/metrics"
)

// CloudWatch's quotas on a dashboard (CloudWatch service quotas,
// "Dashboards"): up to 500 widgets, up to 500 metrics a widget and 2500 a
// dashboard. The documentation gives no byte limit for a DashboardBody;
// maxDashboardBytes is this project's own bound, that of a
// GetMetricWidgetImage payload (100 KB), so the body stays small beside a
// CloudFormation template's 1 MB.
const (
	maxWidgets          = 500
	maxWidgetMetrics    = 500
	maxDashboardMetrics = 2500
	maxDashboardBytes   = 100 * 1024
)

// dashboardBody renders the Dashboard's DashboardBody in a stack deployed
// with params: the parameters and conditions resolved as CloudFormation
// resolves them, what only the stack knows filled with sample values.
func dashboardBody(t *testing.T, tpl template, params map[string]string) string {
	t.Helper()
	r := tpl.resource("Dashboard")
	if str(r["Type"]) != "AWS::CloudWatch::Dashboard" {
		t.Fatalf("resource Dashboard = %v; want an AWS::CloudWatch::Dashboard", r["Type"])
	}
	v, err := tpl.evaluate(get(r, "Properties", "DashboardBody"), params)
	if err != nil {
		t.Fatalf("DashboardBody: %v", err)
	}
	return sampleValue(pattern(v))
}

// emitted is what the code writes: every metric name with its dimension
// names, read back with metrics.Parse from the lines a watchdog tick of a
// two-pool deployment with both budgets and every job end write.
func emitted(t *testing.T) map[string][]string {
	t.Helper()
	var buf bytes.Buffer
	log := metrics.WithStack(slog.New(slog.NewJSONHandler(&buf, nil)), "nightshift")
	at := time.Date(2026, 11, 25, 9, 41, 0, 0, time.UTC)
	today, month := 12.5, 310.0
	tick := metrics.Tick{
		Jobs:  map[job.State]int{job.Queued: 1, job.Placed: 1, job.Running: 1},
		Pools: []string{"default", "multi"}, Instances: map[string]map[string]int{},
		SpendToday: &today, SpendMonth: &month, DailyBudget: 50, MonthlyBudget: 900,
		Actions: map[string]int{"stop": 1},
	}
	if err := metrics.Emit(context.Background(), log, tick.Documents(at)...); err != nil {
		t.Fatal(err)
	}
	for _, s := range []job.State{job.Succeeded, job.Failed, job.TimedOut, job.Cancelled, job.Rejected} {
		metrics.JobEnded(context.Background(), log, s, at)
	}
	out := map[string][]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
		p, err := metrics.Parse(line)
		if err != nil {
			t.Fatalf("Parse(%s) = %v", line, err)
		}
		if p.Namespace != metrics.Namespace {
			t.Fatalf("namespace %q; want %q", p.Namespace, metrics.Namespace)
		}
		for _, name := range p.Names {
			out[name] = p.Dimensions[0]
		}
	}
	return out
}

// graphed is one metric a dashboard widget graphs.
type graphed struct {
	widget, namespace, name string
	dims                    map[string]string
}

// search is a dashboard's SEARCH expression over nightshift's metrics.
var search = regexp.MustCompile(`^SEARCH\('\{([^,}]+),([^}]+)\} Stack="([^"]+)" MetricName=([A-Za-z]+)', '[A-Za-z]+', [0-9]+\)$`)

// widgetMetrics reads a metric widget's metrics array: each entry a
// [namespace, name, dimension, value, …, {options}] list, or [{expression}].
// A search over nightshift's metrics is returned with the name it searches
// for and "*" as its name's rest. The "." shorthand is refused: a check
// should not have to guess what it repeats.
func widgetMetrics(title string, list []any) ([]graphed, error) {
	var out []graphed
	for _, m := range list {
		fields := items(m)
		var strs []string
		for _, f := range fields {
			switch x := f.(type) {
			case string:
				if x == "." {
					return nil, fmt.Errorf("%s: metric %v uses the \".\" shorthand", title, m)
				}
				strs = append(strs, x)
			case map[string]any:
				expr := str(x["expression"])
				if expr == "" {
					continue
				}
				sm := search.FindStringSubmatch(expr)
				if sm == nil {
					return nil, fmt.Errorf("%s: expression %q is not a SEARCH('{namespace,Stack} Stack=\"…\" MetricName=…', stat, period)", title, expr)
				}
				out = append(out, graphed{widget: title, namespace: sm[1], name: sm[4] + ".*", dims: map[string]string{sm[2]: sm[3]}})
			}
		}
		if len(strs) == 0 {
			continue
		}
		if len(strs) < 2 || len(strs)%2 != 0 {
			return nil, fmt.Errorf("%s: metric %v: want namespace, name, then dimension name and value pairs", title, m)
		}
		g := graphed{widget: title, namespace: strs[0], name: strs[1], dims: map[string]string{}}
		for k := 2; k < len(strs); k += 2 {
			g.dims[strs[k]] = strs[k+1]
		}
		out = append(out, g)
	}
	return out, nil
}

// dashboard is a rendered body's widgets and metrics.
type dashboard struct {
	widgets []map[string]any
	metrics []graphed
}

func parseDashboard(t *testing.T, body string) dashboard {
	t.Helper()
	var d struct {
		Widgets []map[string]any `json:"widgets"`
	}
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("DashboardBody is not JSON: %v\n%s", err, body)
	}
	out := dashboard{widgets: d.Widgets}
	for _, w := range d.Widgets {
		if str(w["type"]) != "metric" {
			continue
		}
		props := mapping(w["properties"])
		title := str(props["title"])
		if str(props["region"]) != sampleValue("${AWS::Region}") {
			t.Errorf("widget %q region = %q; want the stack's Region", title, props["region"])
		}
		gs, err := widgetMetrics(title, items(props["metrics"]))
		if err != nil {
			t.Error(err)
		}
		if len(gs) == 0 || len(gs) > maxWidgetMetrics {
			t.Errorf("widget %q graphs %d metrics; want 1 to %d", title, len(gs), maxWidgetMetrics)
		}
		out.metrics = append(out.metrics, gs...)
	}
	return out
}

// TestDashboardMetricsAreEmitted renders the dashboard and holds every
// metric it graphs to what exists: nightshift's to a metric the code emits
// (name and dimension names as metrics.Parse reads them back), in the
// stack's own Stack; SQS's to the two queues of the stack. And the
// dashboard must show each figure the watchdog publishes.
func TestDashboardMetricsAreEmitted(t *testing.T) {
	tpl := loadTemplate(t)
	body := dashboardBody(t, tpl, nil)
	d := parseDashboard(t, body)
	if n := len(d.widgets); n == 0 || n > maxWidgets {
		t.Errorf("dashboard has %d widgets; want 1 to %d", n, maxWidgets)
	}
	if len(d.metrics) > maxDashboardMetrics {
		t.Errorf("dashboard graphs %d metrics; CloudWatch allows %d", len(d.metrics), maxDashboardMetrics)
	}
	if len(body) > maxDashboardBytes {
		t.Errorf("DashboardBody is %d bytes; want at most %d", len(body), maxDashboardBytes)
	}
	codes := emitted(t)
	stack := sampleValue("${AWS::StackName}")
	queues := []string{sampleValue("${JobsQueue.QueueName}"), sampleValue("${JobsDeadLetterQueue.QueueName}")}
	sqs := []string{"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}
	shown := map[string]bool{}
	for _, g := range d.metrics {
		switch g.namespace {
		case metrics.Namespace:
			dims := slices.Sorted(maps.Keys(g.dims))
			var want []string
			found := false
			for name, set := range codes {
				if name == g.name || strings.HasSuffix(g.name, ".*") && strings.HasPrefix(name, strings.TrimSuffix(g.name, "*")) {
					found, want = true, slices.Sorted(slices.Values(set))
					shown[name] = true
				}
			}
			if !found {
				t.Errorf("widget %q graphs %s/%s; the code emits no such metric", g.widget, g.namespace, g.name)
				continue
			}
			if !slices.Equal(dims, want) {
				t.Errorf("widget %q graphs %s with dimensions %v; the code emits it with %v", g.widget, g.name, dims, want)
			}
			if g.dims[metrics.Stack] != stack {
				t.Errorf("widget %q graphs %s of Stack %q; want the stack's own, %q", g.widget, g.name, g.dims[metrics.Stack], stack)
			}
			if s, ok := g.dims[metrics.State]; ok && !job.State(s).Terminal() {
				t.Errorf("widget %q graphs %s of State %q; jobs end only in a terminal state", g.widget, g.name, s)
			}
		case "AWS/SQS":
			if !slices.Contains(sqs, g.name) || len(g.dims) != 1 || !slices.Contains(queues, g.dims["QueueName"]) {
				t.Errorf("widget %q graphs AWS/SQS %s %v; want one of %v of the queues %v", g.widget, g.name, g.dims, sqs, queues)
			}
			shown[g.name+" "+g.dims["QueueName"]] = true
		default:
			t.Errorf("widget %q graphs namespace %q; want %s or AWS/SQS", g.widget, g.namespace, metrics.Namespace)
		}
	}
	want := []string{metrics.SpendTodayUSD, metrics.SpendMonthUSD, metrics.JobsEnded, metrics.InstanceMetric("running", "default"), metrics.InstanceMetric("running", "multi")}
	for _, f := range metrics.JobFigures {
		want = append(want, f.Name)
	}
	for _, k := range metrics.ActionKinds {
		want = append(want, k.Name)
	}
	for _, q := range queues {
		for _, m := range sqs {
			want = append(want, m+" "+q)
		}
	}
	for _, name := range want {
		if !shown[name] {
			t.Errorf("the dashboard does not graph %s", name)
		}
	}
}

// TestDashboardBudgetLines checks the spend graphs' budget lines: a
// horizontal annotation at each budget parameter's value, and none for a
// budget of 0 (no cap).
func TestDashboardBudgetLines(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		name          string
		params        map[string]string
		daily, montly []float64
	}{
		{"defaults: daily 50, no monthly", nil, []float64{50}, nil},
		{"both", map[string]string{"DailyBudgetUSD": "75", "MonthlyBudgetUSD": "900"}, []float64{75}, []float64{900}},
		{"none", map[string]string{"DailyBudgetUSD": "0", "MonthlyBudgetUSD": "0"}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := parseDashboard(t, dashboardBody(t, tpl, tt.params))
			lines := map[string][]float64{}
			for _, w := range d.widgets {
				props := mapping(w["properties"])
				for _, m := range items(props["metrics"]) {
					if name := str(items(m)[min(1, len(items(m))-1)]); name == metrics.SpendTodayUSD || name == metrics.SpendMonthUSD {
						lines[name] = []float64{}
						for _, a := range items(get(props, "annotations", "horizontal")) {
							v, _ := num(mapping(a)["value"])
							lines[name] = append(lines[name], v)
						}
					}
				}
			}
			for name, want := range map[string][]float64{metrics.SpendTodayUSD: tt.daily, metrics.SpendMonthUSD: tt.montly} {
				got, ok := lines[name]
				if !ok {
					t.Errorf("no widget graphs %s", name)
					continue
				}
				if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
					t.Errorf("%s widget with %v: budget lines at %v; want %v", name, tt.params, got, want)
				}
			}
		})
	}
}

// TestDashboardURL checks the DashboardUrl output: the console's address
// of the template's dashboard, in the stack's Region.
func TestDashboardURL(t *testing.T) {
	tpl := loadTemplate(t)
	got := pattern(get(tpl, "Outputs", "DashboardUrl", "Value"))
	want := "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards/dashboard/${Dashboard}"
	if got != want {
		t.Errorf("output DashboardUrl = %s; want %s", got, want)
	}
	name := pattern(get(tpl.resource("Dashboard"), "Properties", "DashboardName"))
	if !strings.Contains(name, "${AWS::StackName}") || !strings.Contains(name, "${AWS::Region}") {
		t.Errorf("DashboardName = %s; want the stack's name and Region in it (dashboards are global to the account)", name)
	}
}

// TestWatchdogMayCountLiveJobs: the tick's figures count the live jobs
// with Query (Select COUNT) on the table's live index; the watchdog's role
// must allow it there (the table's ARN as render writes it, in the sample
// deployment).
func TestWatchdogMayCountLiveJobs(t *testing.T) {
	tpl := loadTemplate(t)
	stmts := principalStatements(t, tpl, "WatchdogFunction")
	index := "arn:aws:dynamodb:" + sampleRegion + ":" + sampleAccount + ":table/nightshift-JobsTable-1A2B3C4D5E6F/index/live"
	if !allowed(tpl, stmts, "dynamodb:Query", index) {
		t.Errorf("WatchdogFunction may not dynamodb:Query %s: the tick's COUNT queries would fail", index)
	}
}
