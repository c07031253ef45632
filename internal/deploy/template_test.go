package deploy

import (
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

func TestQueueVisibilityAtLeastSixTimesTimeout(t *testing.T) {
	tpl := loadTemplate(t)
	found := 0
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		fn := funcs[id]
		timeout, ok := num(fn["Timeout"])
		if !ok {
			timeout = 3 // Lambda's default
		}
		for name, ev := range mapping(fn["Events"]) {
			if str(get(ev, "Type")) != "SQS" {
				continue
			}
			found++
			queueID := refTarget(get(ev, "Properties", "Queue"))
			queue := tpl.resource(queueID)
			if str(queue["Type"]) != "AWS::SQS::Queue" {
				t.Errorf("%s.%s: Queue %q is not an AWS::SQS::Queue of the template", id, name, queueID)
				continue
			}
			vis, ok := num(get(queue, "Properties", "VisibilityTimeout"))
			if !ok {
				vis = 30 // SQS's default
			}
			if vis < 6*timeout {
				t.Errorf("%s VisibilityTimeout = %v s; want at least 6 x %s's Timeout %v s = %v s", queueID, vis, id, timeout, 6*timeout)
			}
			if n, _ := num(get(queue, "Properties", "RedrivePolicy", "maxReceiveCount")); n < 5 {
				t.Errorf("%s RedrivePolicy.maxReceiveCount = %v; want at least 5 (Lambda throttling counts as receives)", queueID, n)
			}
			if refTarget(get(queue, "Properties", "RedrivePolicy", "deadLetterTargetArn")) == "" {
				t.Errorf("%s has no dead-letter queue", queueID)
			}
			if get(queue, "Properties", "SqsManagedSseEnabled") != true && get(queue, "Properties", "KmsMasterKeyId") == nil {
				t.Errorf("%s is not encrypted at rest", queueID)
			}
			if n, _ := num(get(ev, "Properties", "BatchSize")); n < 1 || n > 10 {
				t.Errorf("%s.%s BatchSize = %v; want 1 to 10", id, name, n)
			}
			if !slices.Contains(items(get(ev, "Properties", "FunctionResponseTypes")), any("ReportBatchItemFailures")) {
				t.Errorf("%s.%s: FunctionResponseTypes lacks ReportBatchItemFailures; one bad message would fail its whole batch", id, name)
			}
		}
	}
	if found == 0 {
		t.Fatal("no function has an SQS event")
	}
	dlq := tpl.resource("JobsDeadLetterQueue")
	if n, _ := num(get(dlq, "Properties", "MessageRetentionPeriod")); n != 14*24*3600 {
		t.Errorf("JobsDeadLetterQueue MessageRetentionPeriod = %v; want 14 days (1209600)", n)
	}
}

func TestFunctionsRuntimeArm64(t *testing.T) {
	tpl := loadTemplate(t)
	funcs := tpl.functions()
	for _, want := range []string{"IntakeFunction", "DispatchFunction", "WatchdogFunction"} {
		if funcs[want] == nil {
			t.Errorf("no AWS::Serverless::Function %s", want)
		}
	}
	for _, id := range sortedKeys(funcs) {
		fn := funcs[id]
		if got := str(fn["Runtime"]); got != "provided.al2023" {
			t.Errorf("%s Runtime = %q; want provided.al2023", id, got)
		}
		if got := items(fn["Architectures"]); len(got) != 1 || got[0] != "arm64" {
			t.Errorf("%s Architectures = %v; want [arm64]", id, got)
		}
		if got := str(fn["Handler"]); got != "bootstrap" {
			t.Errorf("%s Handler = %q; want bootstrap", id, got)
		}
		if got := str(fn["CodeUri"]); got != "." {
			t.Errorf("%s CodeUri = %q; want . (the Makefile builds build-%s)", id, got, id)
		}
		if got := str(get(tpl.resource(id), "Metadata", "BuildMethod")); got != "makefile" {
			t.Errorf("%s Metadata.BuildMethod = %q; want makefile", id, got)
		}
		if mem, _ := num(fn["MemorySize"]); mem < 128 || mem > 256 {
			t.Errorf("%s MemorySize = %v; want 128 to 256", id, mem)
		}
		if got := str(get(fn, "LoggingConfig", "LogFormat")); got != "JSON" {
			t.Errorf("%s LoggingConfig.LogFormat = %q; want JSON", id, got)
		}
		lg := refTarget(get(fn, "LoggingConfig", "LogGroup"))
		if r := tpl.resource(lg); str(r["Type"]) != "AWS::Logs::LogGroup" || get(r, "Properties", "RetentionInDays") == nil {
			t.Errorf("%s LoggingConfig.LogGroup = %q; want a log group of the template with RetentionInDays", id, lg)
		}
	}
}

func TestFunctionEnvironment(t *testing.T) {
	tpl := loadTemplate(t)
	want := []string{
		"NIGHTSHIFT_TABLE", "NIGHTSHIFT_POOLS", "NIGHTSHIFT_LAUNCH_TEMPLATE_ID",
		"NIGHTSHIFT_SUBNET_IDS", "NIGHTSHIFT_AMI_PARAMETER", "NIGHTSHIFT_LOG_GROUP",
		"NIGHTSHIFT_OUTPUT_BUCKET", "NIGHTSHIFT_DEFAULT_MAX_RUNTIME", "NIGHTSHIFT_DEFAULT_SETUP",
		"NIGHTSHIFT_TOPIC_ARN", "NIGHTSHIFT_DAILY_BUDGET_USD", "NIGHTSHIFT_STACK",
	}
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		vars := mapping(get(funcs[id], "Environment", "Variables"))
		for _, name := range want {
			if vars[name] == nil {
				t.Errorf("%s lacks environment variable %s", id, name)
			}
		}
		// NIGHTSHIFT_POOLS, in a stack deployed with the parameters'
		// defaults, must be the JSON the functions parse.
		v, err := tpl.evaluate(vars["NIGHTSHIFT_POOLS"], nil)
		filled, ok := v.(string)
		if err != nil || !ok {
			t.Errorf("%s NIGHTSHIFT_POOLS with defaults = %v, %v; want a string", id, v, err)
			continue
		}
		var got map[string]struct {
			Types        []string `json:"types"`
			MaxInstances int      `json:"max_instances"`
			Market       string   `json:"market"`
			KeepWarm     string   `json:"keep_warm"`
		}
		if err := json.Unmarshal([]byte(filled), &got); err != nil {
			t.Errorf("%s NIGHTSHIFT_POOLS with defaults = %s: %v", id, filled, err)
			continue
		}
		if _, err := scheduler.ParsePools(filled); err != nil {
			t.Errorf("%s NIGHTSHIFT_POOLS with defaults = %s; the functions reject it: %v", id, filled, err)
		}
		def := got["default"]
		if len(def.Types) != 1 || def.Types[0] != "g4dn.xlarge" || def.MaxInstances != 2 || def.Market != "on-demand" || def.KeepWarm != "auto" {
			t.Errorf("%s NIGHTSHIFT_POOLS with defaults = %s; want the default pool of g4dn.xlarge, 2 instances, on-demand, keep-warm auto", id, filled)
		}
	}
}

// TestWatchdogEnvironment checks the watchdog's settings: each variable
// comes from its parameter, and with the parameters' defaults it reads as
// the watchdog expects (durations as Go durations, numbers, flags).
func TestWatchdogEnvironment(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		env string
		// give is the variable's value in the template; want, with the
		// parameters' defaults put in.
		give, want string
	}{
		{"NIGHTSHIFT_IDLE_TIMEOUT", "${IdleTimeoutMinutes}m", "60m"},
		{"NIGHTSHIFT_IDLE_GPU_PERCENT", "${IdleGpuPercent}", "5"},
		{"NIGHTSHIFT_IDLE_CPU_PERCENT", "${IdleCpuPercent}", "10"},
		{"NIGHTSHIFT_IDLE_NETWORK_BYTES", "${IdleNetworkBytes}", "5000000"},
		{"NIGHTSHIFT_WATCH_GRACE", "${WatchGraceMinutes}m", "15m"},
		{"NIGHTSHIFT_STALL_TIMEOUT", "${StallTimeoutMinutes}m", "30m"},
		{"NIGHTSHIFT_DAILY_BUDGET_USD", "${DailyBudgetUSD}", "50"},
		{"NIGHTSHIFT_MONTHLY_BUDGET_USD", "${MonthlyBudgetUSD}", "0"},
		{"NIGHTSHIFT_BUDGET_POLICY", "${BudgetPolicy}", "finish"},
		{"NIGHTSHIFT_DRY_RUN", "${DryRun}", "false"},
		{"NIGHTSHIFT_TOPIC_ARN", "${NotificationTopic}", ""},
	}
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		vars := mapping(get(funcs[id], "Environment", "Variables"))
		for _, tt := range tests {
			v, ok := vars[tt.env]
			if !ok {
				t.Errorf("%s lacks environment variable %s", id, tt.env)
				continue
			}
			if got := pattern(v); got != tt.give {
				t.Errorf("%s %s = %q; want %q", id, tt.env, got, tt.give)
				continue
			}
			if tt.want == "" {
				continue
			}
			if got := fillDefaults(t, tpl, tt.give); got != tt.want {
				t.Errorf("%s %s with the parameters' defaults = %q; want %q", id, tt.env, got, tt.want)
			}
		}
	}
	for _, env := range []string{"NIGHTSHIFT_IDLE_TIMEOUT", "NIGHTSHIFT_WATCH_GRACE", "NIGHTSHIFT_STALL_TIMEOUT"} {
		if d, err := time.ParseDuration(fillDefaults(t, tpl, pattern(get(tpl, "Globals", "Function", "Environment", "Variables", env)))); err != nil || d <= 0 {
			t.Errorf("%s with defaults: time.ParseDuration = %v, %v; want a positive duration", env, d, err)
		}
	}
	if got := allowedValues(tpl, "BudgetPolicy"); !slices.Equal(got, []string{"finish", "cancel"}) {
		t.Errorf("BudgetPolicy AllowedValues = %q; want [finish cancel]", got)
	}
	if got := allowedValues(tpl, "DryRun"); !slices.Equal(got, []string{"true", "false"}) {
		t.Errorf("DryRun AllowedValues = %q; want [true false] (strconv.ParseBool reads both)", got)
	}
}

// fillDefaults replaces each "${Param}" in p with the parameter's default,
// failing the test for a name that is not a parameter with one.
func fillDefaults(t *testing.T, tpl template, p string) string {
	t.Helper()
	return placeholder.ReplaceAllStringFunc(p, func(ph string) string {
		name := strings.Trim(ph, "${}")
		def := get(tpl, "Parameters", name, "Default")
		if def == nil {
			t.Errorf("%s: %s is not a parameter with a default", p, name)
		}
		return pattern(def)
	})
}

func allowedValues(tpl template, param string) []string {
	var out []string
	for _, v := range items(get(tpl, "Parameters", param, "AllowedValues")) {
		out = append(out, pattern(v))
	}
	return out
}

// TestParametersDescribedAndGrouped checks that each parameter tells a user
// what to do with it, shows up in one console group, and that the budgets
// and thresholds cannot be set to a value the functions would misread.
func TestParametersDescribedAndGrouped(t *testing.T) {
	tpl := loadTemplate(t)
	params := mapping(tpl["Parameters"])
	grouped := map[string]int{}
	for _, g := range items(get(tpl, "Metadata", "AWS::CloudFormation::Interface", "ParameterGroups")) {
		for _, p := range items(get(g, "Parameters")) {
			grouped[pattern(p)]++
		}
	}
	for _, name := range sortedKeys(params) {
		if d := str(get(params[name], "Description")); len(d) < 20 {
			t.Errorf("parameter %s Description = %q; want a sentence a user can act on", name, d)
		}
		if grouped[name] != 1 {
			t.Errorf("parameter %s is in %d ParameterGroups; want 1", name, grouped[name])
		}
	}
	for name := range grouped {
		if params[name] == nil {
			t.Errorf("ParameterGroups name %s, which is not a parameter", name)
		}
	}
	// The watchdog reads 0 as "use the built-in default" for the thresholds
	// and the grace period, and as "no cap" for the budgets.
	tests := []struct {
		param   string
		wantMin float64
		wantDef float64
	}{
		{"IdleTimeoutMinutes", 10, 60},
		{"IdleGpuPercent", 1, 5},
		{"IdleCpuPercent", 1, 10},
		{"IdleNetworkBytes", 1, 5000000},
		{"WatchGraceMinutes", 1, 15},
		{"StallTimeoutMinutes", 5, 30},
		{"DailyBudgetUSD", 0, 50},
		{"MonthlyBudgetUSD", 0, 0},
	}
	for _, tt := range tests {
		p := mapping(params[tt.param])
		if str(p["Type"]) != "Number" {
			t.Errorf("parameter %s Type = %q; want Number", tt.param, str(p["Type"]))
		}
		if got, ok := num(p["MinValue"]); !ok || got != tt.wantMin {
			t.Errorf("parameter %s MinValue = %v; want %v", tt.param, p["MinValue"], tt.wantMin)
		}
		if got, ok := num(p["Default"]); !ok || got != tt.wantDef {
			t.Errorf("parameter %s Default = %v; want %v", tt.param, p["Default"], tt.wantDef)
		}
	}
	for _, budget := range []string{"DailyBudgetUSD", "MonthlyBudgetUSD"} {
		if d := str(get(params[budget], "Description")); !strings.Contains(d, "0 means no") {
			t.Errorf("parameter %s Description = %q; want it to say that 0 means no cap", budget, d)
		}
	}
}

func TestTableSettings(t *testing.T) {
	tpl := loadTemplate(t)
	tables := tpl.resources("AWS::DynamoDB::Table")
	if len(tables) != 1 {
		t.Fatalf("template has %d DynamoDB tables; want 1", len(tables))
	}
	for id, tbl := range tables {
		p := mapping(tbl["Properties"])
		if got := str(p["BillingMode"]); got != "PAY_PER_REQUEST" {
			t.Errorf("%s BillingMode = %q; want PAY_PER_REQUEST", id, got)
		}
		if get(p, "SSESpecification", "SSEEnabled") != true {
			t.Errorf("%s SSESpecification.SSEEnabled is not true", id)
		}
		if get(p, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled") != true {
			t.Errorf("%s point-in-time recovery is not enabled", id)
		}
		for _, policy := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
			if got := str(tbl[policy]); got != "Retain" {
				t.Errorf("%s %s = %q; want Retain (job history outlives the stack)", id, policy, got)
			}
		}
		if got := keySchema(p["KeySchema"]); got != "pk:HASH sk:RANGE" {
			t.Errorf("%s KeySchema = %q; want pk:HASH sk:RANGE", id, got)
		}
		attrs := map[string]string{}
		for _, a := range items(p["AttributeDefinitions"]) {
			attrs[str(get(a, "AttributeName"))] = str(get(a, "AttributeType"))
		}
		for _, name := range []string{"pk", "sk", "live_pk", "live_sk"} {
			if attrs[name] != "S" {
				t.Errorf("%s attribute %s has type %q; want S", id, name, attrs[name])
			}
		}
		var live map[string]any
		for _, gsi := range items(p["GlobalSecondaryIndexes"]) {
			if str(get(gsi, "IndexName")) == "live" {
				live = mapping(gsi)
			}
		}
		switch {
		case live == nil:
			t.Errorf("%s has no GSI named live", id)
		case keySchema(live["KeySchema"]) != "live_pk:HASH live_sk:RANGE":
			t.Errorf("%s GSI live KeySchema = %q; want live_pk:HASH live_sk:RANGE", id, keySchema(live["KeySchema"]))
		case str(get(live, "Projection", "ProjectionType")) != "ALL":
			t.Errorf("%s GSI live projection = %q; want ALL", id, str(get(live, "Projection", "ProjectionType")))
		}
	}
}

func keySchema(v any) string {
	var parts []string
	for _, k := range items(v) {
		parts = append(parts, str(get(k, "AttributeName"))+":"+str(get(k, "KeyType")))
	}
	return strings.Join(parts, " ")
}

func TestLaunchTemplate(t *testing.T) {
	tpl := loadTemplate(t)
	lts := tpl.resources("AWS::EC2::LaunchTemplate")
	if len(lts) != 1 {
		t.Fatalf("template has %d launch templates; want 1", len(lts))
	}
	for id, lt := range lts {
		d := mapping(get(lt, "Properties", "LaunchTemplateData"))
		if got := str(get(d, "MetadataOptions", "HttpTokens")); got != "required" {
			t.Errorf("%s MetadataOptions.HttpTokens = %q; want required (IMDSv2 only)", id, got)
		}
		if hops, _ := num(get(d, "MetadataOptions", "HttpPutResponseHopLimit")); hops < 1 || hops > 2 {
			t.Errorf("%s HttpPutResponseHopLimit = %v; want 1 or 2", id, hops)
		}
		if d["KeyName"] != nil {
			t.Errorf("%s has KeyName %v; want no key pair (use SSM Session Manager)", id, d["KeyName"])
		}
		if got := str(d["InstanceInitiatedShutdownBehavior"]); got != "stop" {
			t.Errorf("%s InstanceInitiatedShutdownBehavior = %q; want stop (the dead-man timer shuts down)", id, got)
		}
		if d["ImageId"] != nil {
			t.Errorf("%s names an ImageId; the AMI comes from the SSM parameter with each launch", id)
		}
		if refTarget(get(d, "IamInstanceProfile", "Arn")) == "" && refTarget(get(d, "IamInstanceProfile", "Name")) == "" {
			t.Errorf("%s has no instance profile of the template", id)
		}
		bdms := items(d["BlockDeviceMappings"])
		if len(bdms) == 0 {
			t.Errorf("%s has no block device mapping for the root volume", id)
		}
		for _, b := range bdms {
			ebs := mapping(get(b, "Ebs"))
			if ebs["Encrypted"] != true || str(ebs["VolumeType"]) != "gp3" || ebs["DeleteOnTermination"] != true {
				t.Errorf("%s volume %s = %v; want encrypted gp3, deleted on termination", id, str(get(b, "DeviceName")), ebs)
			}
		}
		if !tagsManagedVolumes(d) {
			t.Errorf("%s TagSpecifications do not tag volumes %s=true", id, managedTag)
		}
		sgs := items(d["SecurityGroupIds"])
		if len(sgs) == 0 {
			t.Errorf("%s has no security group; the VPC default group may allow inbound traffic", id)
		}
		for _, sg := range sgs {
			checkNoIngress(t, tpl, refTarget(sg))
		}
	}
}

func tagsManagedVolumes(d map[string]any) bool {
	for _, spec := range items(d["TagSpecifications"]) {
		if str(get(spec, "ResourceType")) != "volume" {
			continue
		}
		for _, tag := range items(get(spec, "Tags")) {
			if str(get(tag, "Key")) == managedTag && str(get(tag, "Value")) == "true" {
				return true
			}
		}
	}
	return false
}

// checkNoIngress fails unless sgID is a security group of the template that
// admits nothing: no inline ingress rule and no separate ingress resource.
func checkNoIngress(t *testing.T, tpl template, sgID string) {
	t.Helper()
	sg := tpl.resource(sgID)
	if str(sg["Type"]) != "AWS::EC2::SecurityGroup" {
		t.Errorf("security group %q is not an AWS::EC2::SecurityGroup of the template", sgID)
		return
	}
	if rules := items(get(sg, "Properties", "SecurityGroupIngress")); len(rules) > 0 {
		t.Errorf("%s has ingress rules %v; want none", sgID, rules)
	}
	for id, in := range tpl.resources("AWS::EC2::SecurityGroupIngress") {
		if refTarget(get(in, "Properties", "GroupId")) == sgID {
			t.Errorf("%s adds an ingress rule to %s", id, sgID)
		}
	}
}

func TestInstanceRole(t *testing.T) {
	tpl := loadTemplate(t)
	profiles := tpl.resources("AWS::IAM::InstanceProfile")
	if len(profiles) != 1 {
		t.Fatalf("template has %d instance profiles; want 1", len(profiles))
	}
	var roleID string
	for _, p := range profiles {
		roles := items(get(p, "Properties", "Roles"))
		if len(roles) != 1 {
			t.Fatalf("instance profile roles = %v; want one", roles)
		}
		roleID = refTarget(roles[0])
	}
	role := tpl.resource(roleID)
	var arns []string
	for _, a := range items(get(role, "Properties", "ManagedPolicyArns")) {
		arns = append(arns, pattern(a))
	}
	if !slices.ContainsFunc(arns, func(a string) bool { return strings.HasSuffix(a, "/AmazonSSMManagedInstanceCore") }) {
		t.Errorf("%s ManagedPolicyArns = %v; want AmazonSSMManagedInstanceCore", roleID, arns)
	}
	stmts, _ := statements(tpl)
	var canWriteLogs bool
	for _, s := range stmts {
		if strings.HasPrefix(s.where, roleID) && slices.Contains(s.actions, "logs:putlogevents") {
			canWriteLogs = true
			for _, r := range s.resources {
				if !strings.Contains(r, "<JobLogGroup>") {
					t.Errorf("%s: logs:PutLogEvents on %q; want only the job log group", s.where, r)
				}
			}
		}
	}
	if !canWriteLogs {
		t.Errorf("%s cannot write job output to CloudWatch Logs", roleID)
	}

	// GPU metrics from the CloudWatch agent (CWAgent) and the wrapper's
	// progress heartbeat (nightshift), in those namespaces only; and the
	// agent's configuration, from its parameter only.
	var namespaces []string
	var readsAgentConfig bool
	for _, s := range stmts {
		if !strings.HasPrefix(s.where, roleID) || !strings.EqualFold(s.effect, "Allow") {
			continue
		}
		if slices.Contains(s.actions, "cloudwatch:putmetricdata") {
			namespaces = append(namespaces, s.conditions["stringequals"]["cloudwatch:namespace"]...)
		}
		if slices.Contains(s.actions, "ssm:getparameter") {
			readsAgentConfig = readsAgentConfig || slices.ContainsFunc(s.resources, func(r string) bool {
				return strings.HasSuffix(r, ":parameter<CloudWatchAgentConfig>")
			})
		}
	}
	slices.Sort(namespaces)
	if !slices.Equal(namespaces, []string{"CWAgent", "nightshift"}) {
		t.Errorf("%s may put metric data in namespaces %q; want [CWAgent nightshift]", roleID, namespaces)
	}
	if !readsAgentConfig {
		t.Errorf("%s has no ssm:GetParameter on the CloudWatchAgentConfig parameter; the agent cannot read its configuration", roleID)
	}
}

func TestDispatchAndWatchdogTriggers(t *testing.T) {
	tpl := loadTemplate(t)
	funcs := tpl.functions()
	wantRules := [][2]string{
		{"aws.ec2", "EC2 Instance State-change Notification"},
		{"aws.ssm", "EC2 Command Invocation Status-change Notification"},
		{"aws.ec2", "EC2 Spot Instance Interruption Warning"},
	}
	for _, want := range wantRules {
		if !dispatchMatches(funcs["DispatchFunction"], want[0], want[1]) {
			t.Errorf("DispatchFunction has no EventBridgeRule for source %s, detail-type %q", want[0], want[1])
		}
	}
	var tick map[string]any
	for _, ev := range mapping(funcs["WatchdogFunction"]["Events"]) {
		if str(get(ev, "Type")) == "ScheduleV2" {
			tick = mapping(get(ev, "Properties"))
		}
	}
	if tick == nil {
		t.Fatal("WatchdogFunction has no ScheduleV2 event")
	}
	if got := str(tick["ScheduleExpression"]); got != "rate(1 minute)" {
		t.Errorf("watchdog ScheduleExpression = %q; want rate(1 minute)", got)
	}
}

// dispatchMatches reports whether fn has an EventBridge rule for source and
// detail-type.
func dispatchMatches(fn map[string]any, source, detailType string) bool {
	for _, ev := range mapping(fn["Events"]) {
		if str(get(ev, "Type")) != "EventBridgeRule" {
			continue
		}
		p := get(ev, "Properties", "Pattern")
		if slices.Contains(items(get(p, "source")), any(source)) && slices.Contains(items(get(p, "detail-type")), any(detailType)) {
			return true
		}
	}
	return false
}

func TestCronSchedule(t *testing.T) {
	tpl := loadTemplate(t)
	groups := tpl.resources("AWS::Scheduler::ScheduleGroup")
	if len(groups) != 1 {
		t.Fatalf("template has %d schedule groups; want 1", len(groups))
	}
	var groupID string
	for id, g := range groups {
		groupID = id
		if got := pattern(get(g, "Properties", "Name")); got != "nightshift-${AWS::StackName}" {
			t.Errorf("%s Name = %q; want nightshift-${AWS::StackName}", id, got)
		}
	}

	var example map[string]any
	for id, s := range tpl.resources("AWS::Scheduler::Schedule") {
		if refTarget(get(s, "Properties", "GroupName")) == groupID {
			if example != nil {
				t.Errorf("more than one example schedule in %s (%s)", groupID, id)
			}
			example = mapping(get(s, "Properties"))
		}
	}
	if example == nil {
		t.Fatalf("no example schedule in %s", groupID)
	}
	if got := str(example["State"]); got != "DISABLED" {
		t.Errorf("example schedule State = %q; want DISABLED (it launches GPUs)", got)
	}
	if got := str(example["ScheduleExpression"]); !strings.HasPrefix(got, "cron(") {
		t.Errorf("example ScheduleExpression = %q; want a cron expression", got)
	}
	if got := str(example["ScheduleExpressionTimezone"]); got != "UTC" {
		t.Errorf("example ScheduleExpressionTimezone = %q; want UTC", got)
	}
	if got := str(get(example, "FlexibleTimeWindow", "Mode")); got != "OFF" {
		t.Errorf("example FlexibleTimeWindow.Mode = %q; want OFF", got)
	}
	target := mapping(example["Target"])
	if got := refTarget(target["Arn"]); got != "JobsQueue" {
		t.Errorf("example schedule targets %q; want JobsQueue", got)
	}
	roleID := refTarget(target["RoleArn"])
	checkSchedulerRole(t, tpl, roleID)

	// The scheduled message, as Scheduler fills it in, must be a valid job
	// whose id is the same on every delivery of one run.
	input := str(target["Input"])
	if !strings.Contains(input, "<aws.scheduler.scheduled-time>") {
		t.Fatalf("example Input = %s; want scheduled_at from <aws.scheduler.scheduled-time>", input)
	}
	msg := strings.ReplaceAll(input, "<aws.scheduler.scheduled-time>", "2026-11-25T02:00:00Z")
	spec, err := job.Parse([]byte(msg), job.Defaults{Pools: []string{"default"}})
	if err != nil {
		t.Fatalf("job.Parse(example Input %s): %v", msg, err)
	}
	if spec.ID != "nightly-train-2026-11-25T020000Z" {
		t.Errorf("example job id = %q; want nightly-train-2026-11-25T020000Z", spec.ID)
	}
}

// checkSchedulerRole fails unless roleID is assumable by EventBridge
// Scheduler only and may only send messages to the jobs queue.
func checkSchedulerRole(t *testing.T, tpl template, roleID string) {
	t.Helper()
	role := tpl.resource(roleID)
	if str(role["Type"]) != "AWS::IAM::Role" {
		t.Fatalf("schedule RoleArn %q is not a role of the template", roleID)
	}
	for _, s := range items(get(role, "Properties", "AssumeRolePolicyDocument", "Statement")) {
		if got := items(get(s, "Principal", "Service")); len(got) != 1 || got[0] != "scheduler.amazonaws.com" {
			t.Errorf("%s trusts %v; want scheduler.amazonaws.com only", roleID, got)
		}
	}
	stmts, _ := statements(tpl)
	n := 0
	for _, s := range stmts {
		if !strings.HasPrefix(s.where, roleID+"[") {
			continue
		}
		n++
		if !slices.Equal(s.actions, []string{"sqs:sendmessage"}) || !slices.Equal(s.resources, []string{"<JobsQueue>"}) {
			t.Errorf("%s: %v on %v; want sqs:SendMessage on the jobs queue only", s.where, s.actions, s.resources)
		}
	}
	if n == 0 {
		t.Errorf("%s may not send to the jobs queue", roleID)
	}
}

func TestCfnLint(t *testing.T) {
	path, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not on PATH; install it with `pip install cfn-lint` (the template must lint clean)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, templatePath).CombinedOutput()
	if err != nil {
		t.Errorf("cfn-lint %s: %v\n%s", templatePath, err, out)
	}
}
