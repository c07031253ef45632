package config

import (
	"slices"
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

// TestFromEnvPools reads several pools, and checks that a bad Pools value
// (the template's parameter, as NIGHTSHIFT_POOLS) stops the functions at
// init with an error that names the pool and what is wrong with it.
func TestFromEnvPools(t *testing.T) {
	const two = `{"default": {"types": ["g5.xlarge", "g6.xlarge"], "max_instances": 4, "market": "spot-then-on-demand", "keep_warm": "auto"},
		"multi": {"types": ["g5.12xlarge"], "max_instances": 1, "keep_warm": "10m", "volume_gb": 500}}`
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_POOLS": two, "NIGHTSHIFT_STACK": "ml-prod"}))
	if err != nil {
		t.Fatalf("FromEnv(two pools) = %v", err)
	}
	if d, m := s.Pools["default"], s.Pools["multi"]; len(s.Pools) != 2 || !d.KeepWarmAuto || d.MaxInstances != 4 || m.Types[0] != "g5.12xlarge" || m.VolumeGB != 500 || m.KeepWarm.D() != 10*time.Minute {
		t.Errorf("FromEnv(two pools).Pools = %+v; want default (auto keep-warm, 4) and multi (g5.12xlarge, 500 GB, 10m)", s.Pools)
	}
	if s.Stack != "ml-prod" {
		t.Errorf("FromEnv().Stack = %q; want ml-prod, from NIGHTSHIFT_STACK", s.Stack)
	}

	tests := []struct {
		name  string
		give  string
		wants []string // every one must be in the error
	}{
		{"no default pool", `{"small": {"types": ["g5.xlarge"], "max_instances": 2}, "multi": {"types": ["g5.12xlarge"], "max_instances": 1}}`,
			[]string{"NIGHTSHIFT_POOLS", `no pool "default"`, "multi, small"}},
		{"cap as a string", `{"default": {"types": ["g5.xlarge"], "max_instances": 2}, "multi": {"types": ["g5.12xlarge"], "max_instances": "one"}}`,
			[]string{`pool "multi"`, "max_instances"}},
		{"misspelt field", `{"default": {"types": ["g5.xlarge"], "max_instance": 2}}`,
			[]string{`pool "default"`, "max_instance"}},
		{"unknown type", `{"default": {"types": ["g5.xlarge"], "max_instances": 2}, "multi": {"types": ["g5.12xlarge", "m5.large"], "max_instances": 1}}`,
			[]string{`pool "multi"`, "m5.large"}},
		{"bad market", `{"default": {"types": ["g5.xlarge"], "max_instances": 2, "market": "spots"}}`,
			[]string{`pool "default"`, "market", "spots"}},
		{"bad keep-warm", `{"default": {"types": ["g5.xlarge"], "max_instances": 2, "keep_warm": "soon"}}`,
			[]string{`pool "default"`, "keep_warm"}},
		{"bad volume", `{"default": {"types": ["g5.xlarge"], "max_instances": 2, "volume_gb": 1}}`,
			[]string{`pool "default"`, "volume_gb"}},
		{"name with a space", `{"default": {"types": ["g5.xlarge"], "max_instances": 2}, "big gpus": {"types": ["g5.12xlarge"], "max_instances": 1}}`,
			[]string{`pool "big gpus"`, "A-Z a-z 0-9"}},
		{"shell quoting lost", `{default: {types: [g5.xlarge]}}`, []string{"NIGHTSHIFT_POOLS", "invalid character"}},
		{"none", `{}`, []string{"NIGHTSHIFT_POOLS", "none defined"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_POOLS": tt.give}))
			if err == nil {
				t.Fatalf("FromEnv(NIGHTSHIFT_POOLS=%s) = nil; want an error", tt.give)
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("FromEnv(NIGHTSHIFT_POOLS=%s) = %v; want it to name %q", tt.give, err, w)
				}
			}
		})
	}
}

func TestFromEnvStackDefault(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.Stack != DefaultStack {
		t.Errorf("FromEnv() without NIGHTSHIFT_STACK: Stack = %q; want %q", s.Stack, DefaultStack)
	}
}

func TestFromEnvSecretsPrefix(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_SECRETS_PREFIX": "/team/secrets/"}))
	if err != nil || s.SecretsPrefix != "/team/secrets/" || s.Scheduler().Defaults().SecretsPrefix != "/team/secrets/" {
		t.Errorf("FromEnv(prefix) = %q, %v; want it in the settings and the message defaults", s.SecretsPrefix, err)
	}
	for _, bad := range []string{"team/secrets/", "/team secrets/", "/team/*"} {
		if _, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_SECRETS_PREFIX": bad})); err == nil || !strings.Contains(err.Error(), "NIGHTSHIFT_SECRETS_PREFIX") {
			t.Errorf("FromEnv(prefix %q) = %v; want an error naming NIGHTSHIFT_SECRETS_PREFIX", bad, err)
		}
	}
}

func TestFromEnvNotebookIdle(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_NOTEBOOK_IDLE": "7m", "NIGHTSHIFT_NOTEBOOK_IDLE_CONNECTED": "45m"}))
	if err != nil || s.NotebookIdle != 7*time.Minute || s.NotebookIdleConnected != 45*time.Minute {
		t.Fatalf("FromEnv(notebook idle 7m, 45m) = %v, %v, %v", s.NotebookIdle, s.NotebookIdleConnected, err)
	}
	if d := s.Scheduler().Defaults(); d.NotebookIdle != 7*time.Minute || d.NotebookIdleConnected != 45*time.Minute {
		t.Errorf("Scheduler().Defaults() notebook idle = %v, %v; want the settings' 7m, 45m", d.NotebookIdle, d.NotebookIdleConnected)
	}
	for _, bad := range []map[string]string{
		{"NIGHTSHIFT_NOTEBOOK_IDLE": "5x"},
		{"NIGHTSHIFT_NOTEBOOK_IDLE": "30s"},
		{"NIGHTSHIFT_NOTEBOOK_IDLE_CONNECTED": "48h"},
	} {
		bad["NIGHTSHIFT_TABLE"] = "t"
		if _, err := FromEnv(env(bad)); err == nil {
			t.Errorf("FromEnv(%v) = nil error; want one naming the variable", bad)
		}
	}
}

func TestFromEnvMaxWait(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_DEFAULT_MAX_WAIT": "24h"}))
	if err != nil || s.MaxWait != 24*time.Hour || s.Scheduler().Defaults().MaxWait != 24*time.Hour {
		t.Fatalf("FromEnv(max wait 24h) = %v, %v", s.MaxWait, err)
	}
	if s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_DEFAULT_MAX_WAIT": "0"})); err != nil || s.MaxWait != 0 {
		t.Errorf("FromEnv(max wait 0) = %v, %v; want 0, for ever", s.MaxWait, err)
	}
	for _, bad := range []string{"1m", "1000h", "x"} {
		if _, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_DEFAULT_MAX_WAIT": bad})); err == nil {
			t.Errorf("FromEnv(max wait %q) = nil error; want one", bad)
		}
	}
}

func TestFromEnvQuotaRequestMax(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS": "64", "AWS_REGION": "eu-west-1"}))
	if err != nil || s.Scheduler().QuotaRequestMax != 64 || s.Scheduler().Region != "eu-west-1" {
		t.Fatalf("FromEnv(quota max 64) = %+v, %v", s.Scheduler(), err)
	}
	if s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t"})); err != nil || s.QuotaRequestMax != 0 {
		t.Errorf("FromEnv(no quota max) = %d, %v; want 0, never ask", s.QuotaRequestMax, err)
	}
	for _, bad := range []string{"-1", "x", "8.5", "100001"} {
		_, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS": bad}))
		if err == nil || !strings.Contains(err.Error(), "NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS") {
			t.Errorf("FromEnv(quota max %q) = %v; want an error naming the variable", bad, err)
		}
	}
}

func TestFromEnvCheckpointBuckets(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_CHECKPOINT_BUCKETS": "ckpt, other,"}))
	if err != nil || !slices.Equal(s.Scheduler().Defaults().CheckpointBuckets, []string{"ckpt", "other"}) {
		t.Fatalf("FromEnv(two buckets) = %q, %v", s.CheckpointBuckets, err)
	}
	s, err = FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t"}))
	if err != nil || s.Scheduler().Defaults().CheckpointBuckets == nil || len(s.CheckpointBuckets) != 0 {
		t.Errorf("FromEnv(no buckets) = %#v, %v; want an empty list (checked: none allowed), not nil", s.CheckpointBuckets, err)
	}
}

func TestFromEnvSpotPlacementScores(t *testing.T) {
	if s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_SPOT_PLACEMENT_SCORES": "true"})); err != nil || !s.SpotPlacementScores {
		t.Errorf("FromEnv(scores true) = %v, %v", s.SpotPlacementScores, err)
	}
	if s, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t"})); err != nil || s.SpotPlacementScores {
		t.Errorf("FromEnv(no scores) = %v, %v; want off", s.SpotPlacementScores, err)
	}
	if _, err := FromEnv(env(map[string]string{"NIGHTSHIFT_TABLE": "t", "NIGHTSHIFT_SPOT_PLACEMENT_SCORES": "yes please"})); err == nil || !strings.Contains(err.Error(), "NIGHTSHIFT_SPOT_PLACEMENT_SCORES") {
		t.Errorf("FromEnv(scores %q) = %v; want an error naming the variable", "yes please", err)
	}
}
