package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestParsePools(t *testing.T) {
	pools, err := ParsePools(`{"default":{"types":["g4dn.xlarge"],"max_instances":2},"big":{"types":["p4d.24xlarge"],"max_instances":0,"keep_warm":"30m"}}`)
	if err != nil {
		t.Fatalf("ParsePools() = %v", err)
	}
	if got := pools["default"].KeepWarm.D(); got != DefaultKeepWarm {
		t.Errorf("default keep-warm = %v; want %v", got, DefaultKeepWarm)
	}
	if got := pools["big"]; got.KeepWarm.D() != 30*time.Minute || got.MaxInstances != 0 {
		t.Errorf("big = %+v; want keep-warm 30m and a cap of 0 (paused)", got)
	}
	kw, err := ParsePools(`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"auto"},"b":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"7"},"c":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":3}}`)
	if err != nil {
		t.Fatalf("ParsePools(keep_warm forms) = %v", err)
	}
	if !kw["a"].KeepWarmAuto || kw["a"].KeepWarm != 0 || kw["b"].KeepWarm.D() != 7*time.Minute || kw["c"].KeepWarm.D() != 3*time.Minute {
		t.Errorf("keep_warm auto/\"7\"/3 = %+v", kw)
	}
	tests := []struct{ give, want string }{
		{`{}`, "none defined"},
		{`not json`, "pools"},
		{`{"a":{"types":[],"max_instances":1}}`, "at least one instance type"},
		{`{"a":{"types":["m5.large"],"max_instances":1}}`, `unknown instance type "m5.large"`},
		{`{"a":{"types":["g5.xlarge"],"max_instances":-1}}`, "max_instances"},
		{`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"soon"}}`, "keep_warm"},
		{`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"0"}}`, "keep_warm"},
	}
	for _, tt := range tests {
		if _, err := ParsePools(tt.give); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParsePools(%s) = %v; want an error saying %q", tt.give, err, tt.want)
		}
	}
}
