package scheduler

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
)

// poolFields are the keys a pool's JSON may have.
var poolFields = []string{"types", "max_instances", "market", "keep_warm", "ami", "volume_gb"}

// FuzzParsePools holds ParsePools to its contract on any NIGHTSHIFT_POOLS:
// no panic; an error names the pools or the pool it is about; an accepted
// set is usable as it stands and reads back the same from its own JSON.
func FuzzParsePools(f *testing.F) {
	for _, s := range []string{
		// The template's value with its defaults, the README's and the tests'.
		`{"default":{"types":["g4dn.xlarge"],"max_instances":2,"market":"on-demand","keep_warm":"auto"}}`,
		`{"default":{"types":["g4dn.xlarge"],"max_instances":2,"keep_warm":"10m"}}`,
		`{"default":{"types":["g4dn.xlarge"],"max_instances":2},"big":{"types":["p4d.24xlarge"],"max_instances":0,"keep_warm":"30m"}}`,
		`{"default":{"types":["g5.xlarge","g4dn.xlarge"],"max_instances":3,"market":"spot-then-on-demand","keep_warm":"7m"}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"auto"},"b":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"7"},"c":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":3}}`,
		`{"gpu":{"types":["g6.xlarge"],"max_instances":4,"market":"spot","ami":"resolve:ssm:/aws/service/x","volume_gb":200}}`,
		`{}`,
		`not json`,
		`{"a":{"types":[],"max_instances":1}}`,
		`{"a":{"types":["m5.large"],"max_instances":1}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":-1}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"soon"}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"0"}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":null}}`,
		`{"a":null}`,
		`{"a":{"types":["g5.xlarge"],"max_instance":1}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"market":"cheap"}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"volume_gb":-1}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":153722868}}`,
		`{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"153722867"}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pools, err := ParsePools(s)
		if err != nil {
			checkPoolsError(t, s, err)
			return
		}
		if len(pools) == 0 {
			t.Fatalf("ParsePools(%q) = no pools, nil", s)
		}
		var given map[string]map[string]json.RawMessage
		if err := json.Unmarshal([]byte(s), &given); err != nil {
			t.Fatalf("ParsePools(%q) accepted what is not an object of objects: %v", s, err)
		}
		for name, p := range pools {
			checkPool(t, s, name, p, given[name])
		}
		checkPoolsRoundTrip(t, pools)
	})
}

func checkPoolsError(t *testing.T, s string, err error) {
	t.Helper()
	msg := err.Error()
	if strings.HasPrefix(msg, "pools: ") {
		return
	}
	// An error about one pool says which.
	var given map[string]json.RawMessage
	_ = json.Unmarshal([]byte(s), &given)
	for name := range given {
		if strings.HasPrefix(msg, "pool "+strconv.Quote(name)+": ") {
			return
		}
	}
	t.Errorf("ParsePools(%q) = %q; want an error that starts with \"pools: \" or names a pool", s, msg)
}

// checkPool checks what every accepted pool must be, from the rules and the
// pool's own JSON.
func checkPool(t *testing.T, s, name string, p Pool, given map[string]json.RawMessage) {
	t.Helper()
	if name == "" {
		t.Errorf("ParsePools(%q) accepted a pool named \"\"; want a name a job can give", s)
	}
	for k := range given {
		if !slices.ContainsFunc(poolFields, func(f string) bool { return strings.EqualFold(f, k) }) {
			t.Errorf("ParsePools(%q) pool %q accepted an unknown field %q; want an error (a typo must not pass unseen)", s, name, k)
		}
	}
	if len(p.Types) == 0 || p.MaxInstances < 0 {
		t.Errorf("ParsePools(%q) pool %q = %+v; want types and max_instances ≥ 0", s, name, p)
	}
	for _, it := range p.Types {
		if !catalog.Known(it) {
			t.Errorf("ParsePools(%q) pool %q has type %q; want known types", s, name, it)
		}
	}
	switch p.Market {
	case "", job.OnDemand, job.Spot, job.SpotThenOnDemand:
	default:
		t.Errorf("ParsePools(%q) pool %q market = %q; want on-demand, spot or spot-then-on-demand", s, name, p.Market)
	}
	if p.VolumeGB != 0 && (p.VolumeGB < 8 || p.VolumeGB > 16384) {
		t.Errorf("ParsePools(%q) pool %q volume_gb = %d; want %d to %d, as a job's", s, name, p.VolumeGB, 8, 16384)
	}
	if p.KeepWarmAuto == (p.KeepWarm > 0) {
		t.Errorf("ParsePools(%q) pool %q keep-warm = %v, auto %v; want one of them", s, name, p.KeepWarm.D(), p.KeepWarmAuto)
	}
	// Whole minutes, as a number or as digits, are exactly that many minutes.
	var kw string
	for k, v := range given {
		if strings.EqualFold(k, "keep_warm") {
			kw = string(v)
		}
	}
	if u, err := strconv.Unquote(kw); err == nil {
		kw = u
	}
	if n, err := strconv.Atoi(kw); err == nil && n > 0 {
		if d := p.KeepWarm.D(); d%time.Minute != 0 || int(d/time.Minute) != n {
			t.Errorf("ParsePools(%q) pool %q keep-warm = %v; want %d minutes", s, name, d, n)
		}
	}
}

// checkPoolsRoundTrip writes the pools back as NIGHTSHIFT_POOLS JSON
// ("auto" for an auto keep-warm, which Pool's JSON does not carry) and
// parses them again.
func checkPoolsRoundTrip(t *testing.T, pools map[string]Pool) {
	t.Helper()
	out := map[string]map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(pools)) {
		p := pools[name]
		m := map[string]any{"types": p.Types, "max_instances": p.MaxInstances, "keep_warm": p.KeepWarm}
		if p.KeepWarmAuto {
			m["keep_warm"] = "auto"
		}
		if p.Market != "" {
			m["market"] = p.Market
		}
		if p.AMI != "" {
			m["ami"] = p.AMI
		}
		if p.VolumeGB != 0 {
			m["volume_gb"] = p.VolumeGB
		}
		out[name] = m
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatalf("json.Marshal(%v) = %v", out, err)
	}
	got, err := ParsePools(string(b))
	if err != nil {
		t.Fatalf("ParsePools(%s) = %v; want the pools it was written from", b, err)
	}
	if diff := cmp.Diff(pools, got); diff != "" {
		t.Errorf("ParsePools(%s) round trip mismatch (-want +got):\n%s", b, diff)
	}
}

// TestParsePoolsRefuses holds the defects fuzzing and its properties found:
// each of these was accepted, and each would have been deployed unseen.
func TestParsePoolsRefuses(t *testing.T) {
	tests := []struct {
		name string
		give string
		want string
	}{
		{"typo in a field", `{"a":{"types":["g5.xlarge"],"max_instance":1}}`, `pool "a": json: unknown field "max_instance"`},
		{"found by fuzzing: an empty field name", `{"":{"tYpes":["g4dn.xlarge"],"":""}}`, `unknown field ""`},
		{"a pool no job can name", `{"":{"types":["g4dn.xlarge"],"max_instances":1}}`, `pool "": want a name`},
		{"unknown market", `{"a":{"types":["g5.xlarge"],"max_instances":1,"market":"Spot"}}`, `pool "a": market "Spot"`},
		{"negative volume", `{"a":{"types":["g5.xlarge"],"max_instances":1,"volume_gb":-1}}`, "volume_gb -1: want 8 to 16384"},
		{"volume past int32", `{"a":{"types":["g5.xlarge"],"max_instances":1,"volume_gb":4294967304}}`, "volume_gb 4294967304"},
		{"keep-warm minutes past a duration", `{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":153722868}}`, "153722868 minutes is longer"},
		{"keep-warm minutes past a duration, as text", `{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"153722868"}}`, "153722868 minutes is longer"},
		{"the bad pool is named", `{"a":{"types":["g5.xlarge"],"max_instances":1},"b":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":"soon"}}`, `pool "b": keep_warm`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePools(tt.give)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParsePools(%s) = %+v, %v; want an error saying %q", tt.give, got, err, tt.want)
			}
		})
	}
	// The longest keep-warm in whole minutes still reads as itself.
	max := `{"a":{"types":["g5.xlarge"],"max_instances":1,"keep_warm":153722867}}`
	if got, err := ParsePools(max); err != nil || got["a"].KeepWarm.D() != 153722867*time.Minute {
		t.Errorf("ParsePools(%s) = %+v, %v; want 153722867 minutes", max, got, err)
	}
}
