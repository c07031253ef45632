package config

import (
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestFromEnv(t *testing.T) {
	s, err := FromEnv(env(map[string]string{
		"NIGHTSHIFT_TABLE":               "jobs",
		"NIGHTSHIFT_POOLS":               `{"default":{"types":["g5.xlarge","g4dn.xlarge"],"max_instances":3,"market":"spot-then-on-demand","keep_warm":"7m"}}`,
		"NIGHTSHIFT_SUBNET_IDS":          "subnet-a, subnet-b,",
		"NIGHTSHIFT_DEFAULT_MAX_RUNTIME": "90m",
		"NIGHTSHIFT_IDLE_TIMEOUT":        "45m",
		"NIGHTSHIFT_DAILY_BUDGET_USD":    "25.5",
		"NIGHTSHIFT_BUDGET_POLICY":       "cancel",
		"NIGHTSHIFT_DRY_RUN":             "true",
		"NIGHTSHIFT_PRICES":              `{"g5.xlarge": 0.9}`,
	}))
	if err != nil {
		t.Fatalf("FromEnv() = %v", err)
	}
	p := s.Pools["default"]
	if len(p.Types) != 2 || p.MaxInstances != 3 || p.KeepWarm.D() != 7*time.Minute || len(s.Subnets) != 2 || s.MaxRuntime != 90*time.Minute {
		t.Errorf("FromEnv() = %+v; want the pool, two subnets, 90m", s)
	}
	w := s.Watchdog
	if w.IdleTimeout != 45*time.Minute || w.DailyBudget != 25.5 || w.Policy != watchdog.PolicyCancel || !w.DryRun || w.Prices["g5.xlarge"] != 0.9 {
		t.Errorf("FromEnv().Watchdog = %+v", w)
	}
}

func TestFromEnvErrors(t *testing.T) {
	tests := []struct {
		name string
		give map[string]string
		want string
	}{
		{"no table", map[string]string{}, "NIGHTSHIFT_TABLE"},
		{"bad pools", map[string]string{"NIGHTSHIFT_POOLS": `{"default":{"types":["t2.micro"],"max_instances":1}}`}, "t2.micro"},
		{"bad runtime", map[string]string{"NIGHTSHIFT_DEFAULT_MAX_RUNTIME": "two hours"}, "NIGHTSHIFT_DEFAULT_MAX_RUNTIME"},
		{"bad budget", map[string]string{"NIGHTSHIFT_DAILY_BUDGET_USD": "-1"}, "NIGHTSHIFT_DAILY_BUDGET_USD"},
		{"bad policy", map[string]string{"NIGHTSHIFT_BUDGET_POLICY": "panic"}, "finish or cancel"},
		{"bad dry run", map[string]string{"NIGHTSHIFT_DRY_RUN": "maybe"}, "NIGHTSHIFT_DRY_RUN"},
		{"bad prices", map[string]string{"NIGHTSHIFT_PRICES": "cheap"}, "NIGHTSHIFT_PRICES"},
		{"retention not a number", map[string]string{"NIGHTSHIFT_RETENTION_DAYS": "ninety"}, "NIGHTSHIFT_RETENTION_DAYS"},
		{"retention in hours", map[string]string{"NIGHTSHIFT_RETENTION_DAYS": "2160h"}, "NIGHTSHIFT_RETENTION_DAYS"},
		{"negative retention", map[string]string{"NIGHTSHIFT_RETENTION_DAYS": "-1"}, "NIGHTSHIFT_RETENTION_DAYS: -1: want 0 (for ever) to 3650"},
		{"retention past the bound", map[string]string{"NIGHTSHIFT_RETENTION_DAYS": "3651"}, "NIGHTSHIFT_RETENTION_DAYS: 3651"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name != "no table" {
				tt.give["NIGHTSHIFT_TABLE"] = "jobs"
			}
			_, err := FromEnv(env(tt.give))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("FromEnv(%v) = %v; want an error naming %q", tt.give, err, tt.want)
			}
		})
	}
}

func TestFromEnvRetention(t *testing.T) {
	tests := []struct {
		give string // NIGHTSHIFT_RETENTION_DAYS; "" unset
		want time.Duration
	}{
		{give: "", want: 0},
		{give: "0", want: 0},
		{give: "1", want: 24 * time.Hour},
		{give: "90", want: 90 * 24 * time.Hour},
		{give: "3650", want: 3650 * 24 * time.Hour},
	}
	for _, tt := range tests {
		s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_RETENTION_DAYS": tt.give}))
		if err != nil || s.Retention != tt.want {
			t.Errorf("FromEnv(NIGHTSHIFT_RETENTION_DAYS=%q).Retention = %v, %v; want %v, nil", tt.give, s.Retention, err, tt.want)
		}
	}
}
