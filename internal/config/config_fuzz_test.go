package config

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// fuzzedVars are the variables FuzzFromEnv sets, in the order of its arguments.
var fuzzedVars = []string{
	"NIGHTSHIFT_PRICES", "NIGHTSHIFT_DAILY_BUDGET_USD", "NIGHTSHIFT_MONTHLY_BUDGET_USD",
	"NIGHTSHIFT_BUDGET_POLICY", "NIGHTSHIFT_DRY_RUN", "NIGHTSHIFT_DEFAULT_MAX_RUNTIME",
	"NIGHTSHIFT_IDLE_TIMEOUT", "NIGHTSHIFT_WATCH_GRACE", "NIGHTSHIFT_STALL_TIMEOUT",
	"NIGHTSHIFT_DEFAULT_RETRIES", "NIGHTSHIFT_IDLE_GPU_PERCENT",
}

// FuzzFromEnv holds FromEnv to its contract on any values of the prices,
// budgets, budget policy, dry run, durations, retries and an idle
// threshold: no panic; an error names a variable that is set and that fails
// on its own; accepted settings are usable as they stand.
func FuzzFromEnv(f *testing.F) {
	// The template's values with its parameters' defaults, then the tests'
	// and the shapes the template allows.
	f.Add("", "50", "0", "finish", "false", "2h", "60m", "15m", "30m", "", "5")
	f.Add(`{"g5.xlarge": 0.9}`, "25.5", "1000", "cancel", "true", "90m", "45m", "1m", "5m", "0", "0")
	f.Add(`{"g5.xlarge": 1.212, "g6.xlarge": 0.978}`, "0.01", "", "", "1", "48h", "10080m", "1440m", "1440m", "10", "100")
	f.Add("cheap", "-1", "1e400", "panic", "maybe", "two hours", "-5m", "0", "soon", "-1", "NaN")
	f.Add(`{"g5.xlarge": -1}`, "NaN", "Inf", "FINISH", "T", "49h", "1h", "-1s", "-30m", "11", "-Inf")
	f.Add(`null`, "+Inf", "0x1p-2", "", "", "30s", "0s", "", "", "99999999999999999999", "1e308")
	// One bad value each among good ones: what FromEnv once accepted.
	f.Add("", "NaN", "0", "finish", "false", "2h", "60m", "15m", "30m", "2", "5")
	f.Add("", "50", "Inf", "finish", "false", "2h", "60m", "15m", "30m", "2", "5")
	f.Add(`{"g5.xlarge": -1}`, "50", "0", "finish", "false", "2h", "60m", "15m", "30m", "2", "5")
	f.Add("", "50", "0", "finish", "false", "2h", "-60m", "15m", "30m", "2", "5")
	f.Add("", "50", "0", "finish", "false", "30s", "60m", "15m", "30m", "11", "nan")
	f.Fuzz(func(t *testing.T, prices, daily, monthly, policy, dryRun, maxRuntime, idle, grace, stall, retries, gpu string) {
		vals := []string{prices, daily, monthly, policy, dryRun, maxRuntime, idle, grace, stall, retries, gpu}
		m := map[string]string{"NIGHTSHIFT_TABLE": "jobs"}
		for i, name := range fuzzedVars {
			m[name] = vals[i]
		}
		s, err := FromEnv(env(m))
		if err != nil {
			checkEnvError(t, m, err)
			return
		}
		checkSettings(t, m, s)
	})
}

// checkEnvError checks that err names a fuzzed variable that is set and
// that, set alone, fails too: the error is about what it names.
func checkEnvError(t *testing.T, m map[string]string, err error) {
	t.Helper()
	for _, name := range fuzzedVars {
		if !strings.HasPrefix(err.Error(), name+": ") {
			continue
		}
		if m[name] == "" {
			t.Fatalf("FromEnv(%q) = %v; want no error about an unset variable", m, err)
		}
		alone := map[string]string{"NIGHTSHIFT_TABLE": "jobs", name: m[name]}
		if _, err := FromEnv(env(alone)); err == nil || !strings.HasPrefix(err.Error(), name+": ") {
			t.Errorf("FromEnv(%q) = %v; want the error %s gave with the others set", alone, err, name)
		}
		return
	}
	t.Errorf("FromEnv(%q) = %q; want an error that starts with the variable it is about", m, err)
}

// checkSettings checks accepted settings: what the scheduler and the
// watchdog compare against must be a usable number or duration.
func checkSettings(t *testing.T, m map[string]string, s Settings) {
	t.Helper()
	w := s.Watchdog
	for name, x := range map[string]float64{
		"NIGHTSHIFT_DAILY_BUDGET_USD": w.DailyBudget, "NIGHTSHIFT_MONTHLY_BUDGET_USD": w.MonthlyBudget,
		"NIGHTSHIFT_IDLE_GPU_PERCENT": w.GPUPercent,
	} {
		// NaN compares false with any spend or metric: a NaN budget never
		// trips, a NaN threshold takes every instance for idle.
		if math.IsNaN(x) || math.IsInf(x, 0) || x < 0 {
			t.Errorf("FromEnv(%s=%q) = %v; want a finite number ≥ 0", name, m[name], x)
		}
	}
	for typ, p := range w.Prices {
		if math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
			t.Errorf("FromEnv(NIGHTSHIFT_PRICES=%q) price of %s = %v; want a finite price ≥ 0", m["NIGHTSHIFT_PRICES"], typ, p)
		}
	}
	switch w.Policy {
	case "", watchdog.PolicyFinish, watchdog.PolicyCancel:
	default:
		t.Errorf("FromEnv(NIGHTSHIFT_BUDGET_POLICY=%q) = %q; want finish or cancel", m["NIGHTSHIFT_BUDGET_POLICY"], w.Policy)
	}
	// 0 is "the default" to the watchdog; below 0 it would stop every
	// watched instance at once, or report every job as stalled.
	for name, d := range map[string]time.Duration{
		"NIGHTSHIFT_IDLE_TIMEOUT": w.IdleTimeout, "NIGHTSHIFT_WATCH_GRACE": w.Grace, "NIGHTSHIFT_STALL_TIMEOUT": w.StallTimeout,
	} {
		if d < 0 {
			t.Errorf("FromEnv(%s=%q) = %v; want a duration ≥ 0", name, m[name], d)
		}
	}
	// A job that names no max_runtime gets this one, unchecked: it must be
	// one that a job could have asked for (0 is the scheduler's default).
	if rt := s.MaxRuntime; rt != 0 && (rt < job.MinRuntime || rt > job.MaxRuntimeLimit) {
		t.Errorf("FromEnv(NIGHTSHIFT_DEFAULT_MAX_RUNTIME=%q) = %v; want %v to %v", m["NIGHTSHIFT_DEFAULT_MAX_RUNTIME"], rt, job.MinRuntime, job.MaxRuntimeLimit)
	}
	if s.Retries < 0 || s.Retries > job.MaxRetries {
		t.Errorf("FromEnv(NIGHTSHIFT_DEFAULT_RETRIES=%q) = %d; want 0 to %d", m["NIGHTSHIFT_DEFAULT_RETRIES"], s.Retries, job.MaxRetries)
	}
}

// TestFromEnvRefuses holds the defects fuzzing and its properties found:
// FromEnv accepted each of these, and each would misbehave at run time.
func TestFromEnvRefuses(t *testing.T) {
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"found by fuzzing: a default max runtime past SSM's 48h", map[string]string{"NIGHTSHIFT_DEFAULT_MAX_RUNTIME": "70h"}, "NIGHTSHIFT_DEFAULT_MAX_RUNTIME: 70h0m0s: want 1m0s to 48h0m0s"},
		{"a default max runtime no job may ask for", map[string]string{"NIGHTSHIFT_DEFAULT_MAX_RUNTIME": "30s"}, "NIGHTSHIFT_DEFAULT_MAX_RUNTIME: 30s"},
		{"a negative default max runtime", map[string]string{"NIGHTSHIFT_DEFAULT_MAX_RUNTIME": "-2h"}, "NIGHTSHIFT_DEFAULT_MAX_RUNTIME: -2h0m0s"},
		{"negative retries", map[string]string{"NIGHTSHIFT_DEFAULT_RETRIES": "-1"}, "NIGHTSHIFT_DEFAULT_RETRIES: -1: want 0 to 10"},
		{"retries past a job's", map[string]string{"NIGHTSHIFT_DEFAULT_RETRIES": "11"}, "NIGHTSHIFT_DEFAULT_RETRIES: 11"},
		{"a NaN budget", map[string]string{"NIGHTSHIFT_DAILY_BUDGET_USD": "NaN"}, "NIGHTSHIFT_DAILY_BUDGET_USD: want a finite number"},
		{"an infinite budget", map[string]string{"NIGHTSHIFT_MONTHLY_BUDGET_USD": "+Inf"}, "NIGHTSHIFT_MONTHLY_BUDGET_USD: want a finite number"},
		{"a NaN idle threshold", map[string]string{"NIGHTSHIFT_IDLE_GPU_PERCENT": "nan"}, "NIGHTSHIFT_IDLE_GPU_PERCENT"},
		{"a negative price", map[string]string{"NIGHTSHIFT_PRICES": `{"g5.xlarge": 1.006, "g6.xlarge": -0.5}`}, "NIGHTSHIFT_PRICES: g6.xlarge: -0.5: want a price ≥ 0"},
		{"a negative idle timeout", map[string]string{"NIGHTSHIFT_IDLE_TIMEOUT": "-60m"}, "NIGHTSHIFT_IDLE_TIMEOUT: -1h0m0s: want a duration ≥ 0"},
		{"a negative grace", map[string]string{"NIGHTSHIFT_WATCH_GRACE": "-1s"}, "NIGHTSHIFT_WATCH_GRACE"},
		{"a negative stall timeout", map[string]string{"NIGHTSHIFT_STALL_TIMEOUT": "-30m"}, "NIGHTSHIFT_STALL_TIMEOUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.give["NIGHTSHIFT_TABLE"] = "jobs"
			s, err := FromEnv(env(tt.give))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromEnv(%v) = %+v, %v; want an error saying %q", tt.give, s.Watchdog, err, tt.want)
			}
		})
	}
}
