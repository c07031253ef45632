package deploy

import (
	"regexp"
	"strconv"
	"testing"
)

// asyncEventTypes are the SAM event sources that invoke a function
// asynchronously. Lambda retries a failed asynchronous invocation twice,
// about one and two minutes later, unless the function's EventInvokeConfig
// says otherwise.
var asyncEventTypes = map[string]bool{
	"EventBridgeRule": true, "CloudWatchEvent": true, "Schedule": true, "ScheduleV2": true, "SNS": true, "S3": true,
}

// The limits AWS::Lambda::EventInvokeConfig accepts (CloudFormation resource
// schema): MaximumRetryAttempts 0-2, MaximumEventAgeInSeconds 60-21600.
const (
	minEventAge = 60
	maxEventAge = 21600
	maxRetries  = 2
)

var rateExpr = regexp.MustCompile(`^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$`)

// rateSeconds returns the period of a rate() schedule expression in seconds.
func rateSeconds(expr string) (float64, bool) {
	m := rateExpr.FindStringSubmatch(expr)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, false
	}
	unit := map[string]int{"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}[m[2]]
	return float64(n * unit), true
}

func TestRateSeconds(t *testing.T) {
	tests := []struct {
		give   string
		want   float64
		wantOK bool
	}{
		{"rate(1 minute)", 60, true},
		{"rate(5 minutes)", 300, true},
		{"rate(2 hours)", 7200, true},
		{"cron(0 2 * * ? *)", 0, false},
		{"rate(minute)", 0, false},
	}
	for _, tt := range tests {
		got, ok := rateSeconds(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("rateSeconds(%q) = %v, %v; want %v, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
}

// watchdogPeriod returns the period of the watchdog's schedule in seconds.
func watchdogPeriod(t *testing.T, tpl template) float64 {
	t.Helper()
	for _, ev := range mapping(tpl.functions()["WatchdogFunction"]["Events"]) {
		if str(get(ev, "Type")) != "ScheduleV2" {
			continue
		}
		expr := str(get(ev, "Properties", "ScheduleExpression"))
		p, ok := rateSeconds(expr)
		if !ok {
			t.Fatalf("watchdog ScheduleExpression = %q; want a rate() expression", expr)
		}
		return p
	}
	t.Fatal("WatchdogFunction has no ScheduleV2 event")
	return 0
}

// TestAsyncInvokeConfig checks that no asynchronously invoked function has
// its failed invocations run again. The handlers are level-triggered: a
// retry of a tick or an event comes a minute or more later, after the
// watchdog's next tick has reconciled the same world, so it can only add
// load (on EC2's and DynamoDB's throttles, when they are the reason it
// failed). Events waiting in Lambda's queue longer than one watchdog
// period are stale for the same reason.
func TestAsyncInvokeConfig(t *testing.T) {
	tpl := loadTemplate(t)
	period := watchdogPeriod(t, tpl)
	funcs := tpl.functions()
	tests := []struct {
		give string
		// wantRetries is MaximumRetryAttempts; wantMaxAge the largest
		// MaximumEventAgeInSeconds allowed.
		wantRetries, wantMaxAge float64
	}{
		{"WatchdogFunction", 0, period},
		{"DispatchFunction", 0, period},
	}
	for _, tt := range tests {
		fn := funcs[tt.give]
		if fn == nil {
			t.Errorf("no AWS::Serverless::Function %s", tt.give)
			continue
		}
		cfg := mapping(fn["EventInvokeConfig"])
		if cfg == nil {
			t.Errorf("%s has no EventInvokeConfig; Lambda retries its failed invocations twice", tt.give)
			continue
		}
		if got, ok := num(cfg["MaximumRetryAttempts"]); !ok || got != tt.wantRetries {
			t.Errorf("%s EventInvokeConfig.MaximumRetryAttempts = %v; want %v", tt.give, cfg["MaximumRetryAttempts"], tt.wantRetries)
		}
		if got, ok := num(cfg["MaximumEventAgeInSeconds"]); !ok || got < minEventAge || got > tt.wantMaxAge {
			t.Errorf("%s EventInvokeConfig.MaximumEventAgeInSeconds = %v; want %v to %v (one watchdog period)", tt.give, cfg["MaximumEventAgeInSeconds"], minEventAge, tt.wantMaxAge)
		}
	}

	// Every function an asynchronous source invokes says what happens to
	// its failures, within the limits AWS accepts.
	for _, id := range sortedKeys(funcs) {
		fn := funcs[id]
		async := false
		for _, ev := range mapping(fn["Events"]) {
			async = async || asyncEventTypes[str(get(ev, "Type"))]
		}
		cfg := mapping(fn["EventInvokeConfig"])
		if async && cfg == nil {
			t.Errorf("%s is invoked asynchronously and has no EventInvokeConfig", id)
		}
		if cfg == nil {
			continue
		}
		if got, ok := num(cfg["MaximumRetryAttempts"]); ok && (got < 0 || got > maxRetries) {
			t.Errorf("%s EventInvokeConfig.MaximumRetryAttempts = %v; AWS accepts 0 to %d", id, got, maxRetries)
		}
		if got, ok := num(cfg["MaximumEventAgeInSeconds"]); ok && (got < minEventAge || got > maxEventAge) {
			t.Errorf("%s EventInvokeConfig.MaximumEventAgeInSeconds = %v; AWS accepts %d to %d", id, got, minEventAge, maxEventAge)
		}
	}
}
