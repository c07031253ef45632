package deploy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/config"
)

// readmePath is the README, relative to this package.
const readmePath = "../../README.md"

// twoPools is a Pools value with a small-GPU default pool and a multi-GPU one.
const twoPools = `{"default": {"types": ["g5.xlarge", "g6.xlarge"], "max_instances": 4}, "multi": {"types": ["g5.12xlarge"], "max_instances": 1, "volume_gb": 500}}`

// functionsPools returns each function's NIGHTSHIFT_POOLS in a stack
// deployed with params, as CloudFormation resolves it.
func functionsPools(t *testing.T, tpl template, params map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		v, err := tpl.evaluate(get(funcs[id], "Environment", "Variables", "NIGHTSHIFT_POOLS"), params)
		if err != nil {
			t.Fatalf("%s NIGHTSHIFT_POOLS: %v", id, err)
		}
		s, ok := v.(string)
		if !ok {
			t.Fatalf("%s NIGHTSHIFT_POOLS with %v = %v; want a string once the parameters are in", id, params, v)
		}
		out[id] = s
	}
	if len(out) != 3 {
		t.Fatalf("NIGHTSHIFT_POOLS found in %d functions; want 3", len(out))
	}
	return out
}

// settings reads pools as the functions do at start.
func settings(pools string) (config.Settings, error) {
	return config.FromEnv(func(k string) string {
		return map[string]string{"NIGHTSHIFT_TABLE": "jobs", "NIGHTSHIFT_POOLS": pools}[k]
	})
}

// TestPoolsParameter checks the functions' NIGHTSHIFT_POOLS: the Pools
// parameter as given when it is set, and when it is empty the one pool
// "default" built from the single-pool parameters, as before Pools existed.
func TestPoolsParameter(t *testing.T) {
	tpl := loadTemplate(t)
	p := mapping(get(tpl, "Parameters", "Pools"))
	if str(p["Type"]) != "String" || p["Default"] != "" {
		t.Fatalf("parameter Pools = %v; want a String, default empty", p)
	}
	tests := []struct {
		name   string
		params map[string]string
		want   string
		pools  []string
	}{
		{
			name: "empty: the parameters' defaults", params: map[string]string{},
			want:  `{"default":{"types":["g4dn.xlarge"],"max_instances":2,"market":"on-demand","keep_warm":"auto"}}`,
			pools: []string{"default"},
		},
		{
			name:   "empty: single-pool parameters set",
			params: map[string]string{"Pools": "", "InstanceType": "g6.xlarge", "MaxInstances": "5", "Market": "spot", "KeepWarmMinutes": "15"},
			want:   `{"default":{"types":["g6.xlarge"],"max_instances":5,"market":"spot","keep_warm":"15"}}`,
			pools:  []string{"default"},
		},
		{
			name:   "set: Pools as given, the single-pool parameters unread",
			params: map[string]string{"Pools": twoPools, "InstanceType": "g6.xlarge", "MaxInstances": "5"},
			want:   twoPools,
			pools:  []string{"default", "multi"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for id, got := range functionsPools(t, tpl, tt.params) {
				if got != tt.want {
					t.Errorf("%s NIGHTSHIFT_POOLS with %v = %s; want %s", id, tt.params, got, tt.want)
					continue
				}
				s, err := settings(got)
				if err != nil {
					t.Errorf("%s NIGHTSHIFT_POOLS = %s; the functions refuse it: %v", id, got, err)
					continue
				}
				if names := slices.Sorted(maps.Keys(s.Pools)); !slices.Equal(names, tt.pools) {
					t.Errorf("%s pools = %v; want %v", id, names, tt.pools)
				}
			}
		})
	}
	// The multi-GPU pool keeps its own settings through the template.
	s, err := settings(functionsPools(t, tpl, map[string]string{"Pools": twoPools})["WatchdogFunction"])
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Pools["multi"]; len(m.Types) != 1 || m.Types[0] != "g5.12xlarge" || m.MaxInstances != 1 || m.VolumeGB != 500 {
		t.Errorf("pool multi = %+v; want g5.12xlarge, cap 1, 500 GB", m)
	}
}

// TestPoolsParameterConstraints checks what CloudFormation itself lets
// through: a JSON object on one line, short enough that the functions'
// environment stays within Lambda's 4 KB.
func TestPoolsParameterConstraints(t *testing.T) {
	tpl := loadTemplate(t)
	p := mapping(get(tpl, "Parameters", "Pools"))
	allowed, err := regexp.Compile(str(p["AllowedPattern"]))
	if err != nil {
		t.Fatalf("Pools AllowedPattern %q: %v", str(p["AllowedPattern"]), err)
	}
	maxLen, _ := num(p["MaxLength"])
	tests := []struct {
		give string
		want bool
	}{
		{"", true},
		{twoPools, true},
		{readmePools(t), true},
		{`default`, false},
		{`["default"]`, false},
		{"{\"default\":\n{}}", false},
	}
	for _, tt := range tests {
		if got := allowed.MatchString(tt.give) && float64(len(tt.give)) <= maxLen; got != tt.want {
			t.Errorf("Pools %q allowed = %v; want %v", tt.give, got, tt.want)
		}
	}
	// Lambda's limit is on all of a function's variables, names and
	// values together. With Pools at its longest, and the other values as
	// long as a 40-character stack name, six subnets and an output bucket
	// make them, the environment must fit.
	long := "{" + strings.Repeat("x", int(maxLen)-2) + "}"
	for id, fn := range tpl.functions() {
		size := 0
		for name, v := range mapping(get(fn, "Environment", "Variables")) {
			val, err := tpl.evaluate(v, map[string]string{"Pools": long, "OutputBucket": strings.Repeat("b", 63)})
			if err != nil {
				t.Fatal(err)
			}
			size += len(name) + len(sampleValue(pattern(val)))
		}
		if size > 4096 {
			t.Errorf("%s environment with Pools of %v characters = %d bytes; Lambda allows 4096", id, maxLen, size)
		}
	}
}

// sampleValue fills what is unknown until deploy time with long sample values.
func sampleValue(p string) string {
	const stack = "nightshift-research-team-production-01ab" // 40 characters
	return placeholder.ReplaceAllStringFunc(p, func(ph string) string {
		switch name := strings.Trim(ph, "${}"); name {
		case "AWS::StackName":
			return stack
		case "AWS::Region":
			return "ap-southeast-2"
		case "AWS::AccountId":
			return sampleAccount
		case "AWS::Partition":
			return "aws"
		case "SubnetIds":
			return strings.TrimSuffix(strings.Repeat("subnet-0123456789abcdef0,", 6), ",")
		case "JobsTable":
			return stack + "-JobsTable-1A2B3C4D5E6F7"
		case "NotificationTopic":
			return "arn:aws:sns:ap-southeast-2:" + sampleAccount + ":" + stack + "-NotificationTopic-1A2B3C4D5E6F7"
		case "JobLogGroup":
			return "/nightshift/" + stack + "/jobs"
		case "LaunchTemplate":
			return "lt-0123456789abcdef0"
		case "JobsQueue.QueueName":
			return stack + "-jobs"
		case "JobsDeadLetterQueue.QueueName":
			return stack + "-jobs-dlq"
		}
		return strings.Repeat("v", 64)
	})
}

// readmeDeploy returns the commands of the README's two-pool deployment:
// the first code block of its "Several pools" section.
func readmeDeploy(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n### Several pools\n")
	if !ok {
		t.Fatal("README has no Several pools section")
	}
	_, block, ok := strings.Cut(sec, "\n```\n")
	block, _, ok2 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 || !strings.Contains(block, "sam deploy") {
		t.Fatalf("README Several pools: first code block = %q; want the sam deploy line", block)
	}
	return block
}

// samArgs runs the README's commands with bash, with sam standing in for
// the SAM CLI, and returns the arguments sam was given.
func samArgs(t *testing.T, script string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euc", `sam() { printf '%s\0' "$@"; }`+"\n"+script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bash %q: %v\n%s", script, err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// samValue is the SAM CLI's pattern for a parameter value in
// --parameter-overrides (samcli/cli/types.py, _generate_match_regex with
// delim " "): double-quoted, single-quoted, or unquoted without spaces and
// double quotes, backslash escapes allowed in each.
const samValue = `("(?:\\.|[^"\\]+)*"|'(?:\\.|[^'\\]+)*'|(?:\\.|[^ "\\]+)+)`

// samOverride is its Key=Value form (pattern 2 of CfnParameterOverridesType).
var samOverride = regexp.MustCompile(`(?: )([A-Za-z0-9"']+)=` + samValue)

// samOverrides reads one --parameter-overrides argument as the SAM CLI does:
// a space in front, each Key=Value found in turn, wrapping quotes removed
// and \ , \" and \' unescaped (_unquote_wrapped_quotes).
func samOverrides(arg string) map[string]string {
	unquote := func(v string) string {
		if len(v) >= 2 && (v[0] == '"' && v[len(v)-1] == '"' || v[0] == '\'' && v[len(v)-1] == '\'') {
			v = v[1 : len(v)-1]
		}
		return strings.NewReplacer(`\ `, " ", `\"`, `"`, `\'`, "'").Replace(v)
	}
	out := map[string]string{}
	for _, m := range samOverride.FindAllStringSubmatch(" "+strings.TrimSpace(arg), -1) {
		out[unquote(m[1])] = unquote(m[2])
	}
	return out
}

func TestSAMOverrides(t *testing.T) {
	tests := []struct {
		give string
		want map[string]string
	}{
		{"InstanceType=g5.xlarge MaxInstances=3", map[string]string{"InstanceType": "g5.xlarge", "MaxInstances": "3"}},
		{"SubnetIds=subnet-a,subnet-b", map[string]string{"SubnetIds": "subnet-a,subnet-b"}},
		{`Pools='{"a": [1, 2]}' Market=spot`, map[string]string{"Pools": `{"a": [1, 2]}`, "Market": "spot"}},
		{`Pools="{\"a\": 1}"`, map[string]string{"Pools": `{"a": 1}`}},
		// The JSON unquoted: SAM stops the value at the first double quote.
		{`Pools={"a":1}`, map[string]string{"Pools": "{"}},
	}
	for _, tt := range tests {
		if got := samOverrides(tt.give); !mapsEqual(got, tt.want) {
			t.Errorf("samOverrides(%s) = %v; want %v", tt.give, got, tt.want)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// readmePools returns the Pools value the README's sam deploy line sets.
func readmePools(t *testing.T) string {
	t.Helper()
	args := samArgs(t, readmeDeploy(t))
	i := slices.Index(args, "--parameter-overrides")
	if len(args) < 2 || args[0] != "deploy" || i < 0 || i+1 >= len(args) {
		t.Fatalf("README sam arguments = %q; want deploy --parameter-overrides …", args)
	}
	pools, ok := samOverrides(args[i+1])["Pools"]
	if !ok {
		t.Fatalf("README --parameter-overrides %q sets no Pools", args[i+1])
	}
	return pools
}

// TestReadmeTwoPools runs the README's two-pool deployment line through
// bash and the SAM CLI's parsing of --parameter-overrides, deploys the
// template with the Pools it sets, and checks that the functions read a
// small-GPU pool default and a multi-GPU pool multi from it.
func TestReadmeTwoPools(t *testing.T) {
	tpl := loadTemplate(t)
	pools := readmePools(t)
	for id, got := range functionsPools(t, tpl, map[string]string{"Pools": pools}) {
		if got != pools {
			t.Errorf("%s NIGHTSHIFT_POOLS = %s; want the README's Pools %s", id, got, pools)
		}
	}
	s, err := settings(pools)
	if err != nil {
		t.Fatalf("README Pools %s: the functions refuse it: %v", pools, err)
	}
	gpus := func(pool string) (most int) {
		for _, typ := range s.Pools[pool].Types {
			c, _ := catalog.Lookup(typ)
			most = max(most, c.GPUs)
		}
		return most
	}
	if len(s.Pools) != 2 || gpus("default") != 1 || gpus("multi") < 4 {
		t.Errorf("README Pools = %+v; want two pools: default of one-GPU types, multi of multi-GPU ones", s.Pools)
	}
}

// TestLaunchTypesAreTheCatalogs checks the RunInstances permission's
// instance types: the GPU families of internal/catalog, so every type of
// every pool and of every job — all catalog types, or the functions refuse
// them — may be launched, and nothing else.
func TestLaunchTypesAreTheCatalogs(t *testing.T) {
	tpl := loadTemplate(t)
	var patterns []string
	for _, s := range principalStatements(t, tpl, "WatchdogFunction") {
		if strings.EqualFold(s.effect, "Allow") && slices.Contains(s.actions, runInstances) && s.reaches(instanceARN) {
			patterns = append(patterns, s.conditions["stringlike"]["ec2:instancetype"]...)
			if len(s.conditions["stringlike"]["ec2:instancetype"]) == 0 {
				t.Errorf("%s: RunInstances on instances without condition StringLike ec2:InstanceType", s.where)
			}
		}
	}
	var want []string
	for _, c := range catalog.All() {
		if f := catalog.Family(c.Name) + ".*"; !slices.Contains(want, f) {
			want = append(want, f)
		}
	}
	slices.Sort(want)
	slices.Sort(patterns)
	if !slices.Equal(patterns, want) {
		t.Errorf("RunInstances ec2:InstanceType = %q; want the catalog's families %q", patterns, want)
	}
	allowed := func(typ string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return globMatch(p, typ) })
	}
	for _, c := range catalog.All() {
		if !allowed(c.Name) {
			t.Errorf("catalog type %s may not be launched", c.Name)
		}
	}
	for _, typ := range []string{"m5.large", "x2iedn.32xlarge", "g5g.xlarge", "g4ad.xlarge", "p4de.24xlarge", "trn1.32xlarge"} {
		if allowed(typ) {
			t.Errorf("%s, not a catalog type, may be launched", typ)
		}
	}
}

// deployedEnv returns the environment a function of a stack deployed with
// params starts with: each variable of the template resolved as
// CloudFormation resolves it, and what only the stack knows (its name,
// the table's, the topic's ARN) filled with sample values.
func deployedEnv(t *testing.T, tpl template, id string, params map[string]string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for name, v := range mapping(get(tpl.functions()[id], "Environment", "Variables")) {
		val, err := tpl.evaluate(v, params)
		if err != nil {
			t.Fatalf("%s %s: %v", id, name, err)
		}
		env[name] = sampleValue(pattern(val))
	}
	return env
}

// TestDeployedEnvironmentReadsAsConfig starts each function's
// configuration, config.FromEnv, on the whole environment the template
// gives it — not NIGHTSHIFT_POOLS alone — in a stack deployed with the
// README's two pools and in one deployed with the defaults: every variable
// must read, and the pools must be the ones the Pools parameter declares.
func TestDeployedEnvironmentReadsAsConfig(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		name   string
		params map[string]string
		want   map[string][]string // pool: its types in order
	}{
		{"defaults", map[string]string{}, map[string][]string{"default": {"g4dn.xlarge"}}},
		{"README's two pools", map[string]string{"Pools": readmePools(t)}, map[string][]string{"default": {"g5.xlarge", "g6.xlarge"}, "multi": {"g5.12xlarge"}}},
		{"two pools and a budget", map[string]string{"Pools": twoPools, "DailyBudgetUSD": "75", "MonthlyBudgetUSD": "900"}, map[string][]string{"default": {"g5.xlarge", "g6.xlarge"}, "multi": {"g5.12xlarge"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, id := range sortedKeys(tpl.functions()) {
				env := deployedEnv(t, tpl, id, tt.params)
				s, err := config.FromEnv(func(k string) string { return env[k] })
				if err != nil {
					t.Errorf("%s: config.FromEnv(the template's environment with %v) = %v", id, tt.params, err)
					continue
				}
				got := map[string][]string{}
				for name, p := range s.Pools {
					got[name] = p.Types
				}
				if !maps.EqualFunc(got, tt.want, slices.Equal[[]string]) {
					t.Errorf("%s pools with %v = %v; want %v", id, tt.params, got, tt.want)
				}
				if want := sampleValue("${AWS::StackName}"); s.Stack != want {
					t.Errorf("%s Stack = %q; want the stack's name %q", id, s.Stack, want)
				}
				if b, ok := tt.params["DailyBudgetUSD"]; ok && fmt.Sprint(s.Watchdog.DailyBudget) != b {
					t.Errorf("%s daily budget = %v; want %s", id, s.Watchdog.DailyBudget, b)
				}
			}
		})
	}
}
