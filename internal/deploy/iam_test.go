package deploy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// managedTag is the tag that marks an instance as nightshift's own. Design
// invariant S4: nightshift never stops, terminates or sends commands to an
// instance without it, and IAM enforces the same.
const managedTag = "nightshift:managed"

// watchTag marks an instance its owner asks nightshift to watch (a notebook
// started by hand). IAM lets nightshift stop such an instance and tag it with
// why (watchActions), nothing more.
const watchTag = "nightshift:watch"

// lastActionTag is the one tag nightshift writes on a watched instance.
const lastActionTag = "nightshift:last-action"

// Sample ARNs a resource pattern is matched against to learn whether a
// statement reaches EC2 instances (or SSM hybrid-managed nodes).
const (
	instanceARN        = "arn:aws:ec2:us-east-1:123456789012:instance/i-0abcd1234efgh5678"
	managedInstanceARN = "arn:aws:ssm:us-east-1:123456789012:managed-instance/mi-0123456789abcdef0"
)

// statement is one IAM policy statement, normalized: action names and
// condition operators/keys lower-cased (IAM treats them case-insensitively),
// resources rendered as patterns (see pattern).
type statement struct {
	where       string
	effect      string
	actions     []string
	notAction   bool
	resources   []string
	notResource bool
	// conditions maps operator -> key -> values; a value that is not a
	// literal string is kept as its pattern.
	conditions map[string]map[string][]string
}

// parseStatement normalizes one statement mapping.
func parseStatement(where string, v any) (statement, error) {
	m := mapping(v)
	if m == nil {
		return statement{}, fmt.Errorf("%s: statement is a %T, want a mapping", where, v)
	}
	s := statement{where: where, effect: str(m["Effect"]), conditions: map[string]map[string][]string{}}
	if sid := str(m["Sid"]); sid != "" {
		s.where += "/" + sid
	}
	actionKey, resourceKey := "Action", "Resource"
	if m["NotAction"] != nil {
		actionKey, s.notAction = "NotAction", true
	}
	if m["NotResource"] != nil {
		resourceKey, s.notResource = "NotResource", true
	}
	for _, a := range items(m[actionKey]) {
		s.actions = append(s.actions, strings.ToLower(pattern(a)))
	}
	for _, r := range items(m[resourceKey]) {
		s.resources = append(s.resources, pattern(r))
	}
	for op, keys := range mapping(m["Condition"]) {
		lop := strings.ToLower(op)
		if s.conditions[lop] == nil {
			s.conditions[lop] = map[string][]string{}
		}
		for key, vals := range mapping(keys) {
			lkey := strings.ToLower(key)
			for _, val := range items(vals) {
				s.conditions[lop][lkey] = append(s.conditions[lop][lkey], pattern(val))
			}
		}
	}
	return s, nil
}

// policySource is where a permission policy is attached.
type policySource struct {
	where string
	doc   any
}

// policyDocuments finds every permission policy document in the template:
// each "PolicyDocument" property (IAM ManagedPolicy, Policy, RolePolicy,
// Role.Policies, ...) and each inline document in a SAM function's Policies.
// Trust policies (AssumeRolePolicyDocument) are not permission policies and
// are left out. It also returns the problems with references to policies it
// cannot read.
func policyDocuments(tpl template) ([]policySource, []string) {
	var docs []policySource
	var problems []string
	var walk func(where string, v any)
	walk = func(where string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if k == "PolicyDocument" {
					docs = append(docs, policySource{where, x[k]})
					continue
				}
				if k == "ManagedPolicyArns" {
					problems = append(problems, checkManagedPolicyRefs(tpl, where, x[k])...)
					continue
				}
				walk(where, x[k])
			}
		case []any:
			for _, e := range x {
				walk(where, e)
			}
		}
	}
	resources := mapping(tpl["Resources"])
	for _, id := range sortedKeys(resources) {
		r := mapping(resources[id])
		walk(id, r["Properties"])
	}
	funcs := tpl.functions()
	for _, id := range sortedKeys(funcs) {
		for _, p := range items(funcs[id]["Policies"]) {
			switch {
			case get(p, "Statement") != nil:
				docs = append(docs, policySource{id + "/Policies", p})
			case get(p, "Ref") != nil || get(p, "Fn::Sub") != nil || str(p) != "":
				problems = append(problems, checkManagedPolicyRefs(tpl, id+"/Policies", p)...)
			default:
				problems = append(problems, fmt.Sprintf("%s: SAM policy template %v cannot be checked; write the statements out in FunctionPolicy", id, sortedKeys(mapping(p))))
			}
		}
	}
	return docs, problems
}

// allowedManagedPolicies are the AWS managed policies roles in this
// template may carry; none lets its holder touch an instance.
var allowedManagedPolicies = []string{
	"AmazonSSMManagedInstanceCore",   // the SSM agent on the GPU instances
	"AWSLambdaBasicExecutionRole",    // function logs
	"AWSLambdaSQSQueueExecutionRole", // added by SAM for the SQS event source
}

// checkManagedPolicyRefs accepts references to policies defined in this
// template (whose statements are checked) and to allowedManagedPolicies.
func checkManagedPolicyRefs(tpl template, where string, v any) []string {
	var problems []string
	for _, p := range items(v) {
		if id := refTarget(p); id != "" && tpl.resource(id) != nil {
			continue
		}
		name := pattern(p)
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		if !slices.Contains(allowedManagedPolicies, name) {
			problems = append(problems, fmt.Sprintf("%s: managed policy %q is not one the checks know to be safe; list its statements in the template instead", where, pattern(p)))
		}
	}
	return problems
}

// statements returns every statement of every permission policy.
func statements(tpl template) ([]statement, []string) {
	docs, problems := policyDocuments(tpl)
	var out []statement
	for _, d := range docs {
		for i, raw := range items(get(d.doc, "Statement")) {
			s, err := parseStatement(fmt.Sprintf("%s[%d]", d.where, i), raw)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			for j, r := range s.resources {
				s.resources[j] = pinResources(tpl, r)
			}
			out = append(out, s)
		}
	}
	return out, problems
}

// pinResources replaces each "${X}" or "${X.Attr}" in p that names a
// resource of the template with "<X>": a Ref or GetAtt of a resource is that
// one resource, never a wildcard. Parameters and pseudo parameters stay
// "${...}", which glob reads as "anything".
func pinResources(tpl template, p string) string {
	return placeholder.ReplaceAllStringFunc(p, func(ph string) string {
		name, _, _ := strings.Cut(strings.TrimSuffix(strings.TrimPrefix(ph, "${"), "}"), ".")
		if tpl.resource(name) != nil {
			return "<" + name + ">"
		}
		return ph
	})
}

// The mutating EC2 and SSM actions S4 is about, and what each must carry.
var (
	// resourceTagged act on an existing instance: aws:ResourceTag (or the
	// older ec2:ResourceTag) nightshift:managed = "true", or for those in
	// watchActions nightshift:watch = "true".
	resourceTagged = []string{
		"ec2:startinstances", "ec2:stopinstances", "ec2:terminateinstances",
		"ec2:rebootinstances", "ec2:modifyinstanceattribute",
		"ec2:modifyinstancemetadataoptions", "ec2:deletetags",
		"ec2:associateiaminstanceprofile", "ec2:replaceiaminstanceprofileassociation",
	}
	// ssmTagged reach an instance through Systems Manager: ssm:resourceTag
	// (or aws:ResourceTag) nightshift:managed = "true" on instance resources.
	ssmTagged = []string{"ssm:sendcommand", "ssm:startsession"}
	// ec2:RunInstances needs aws:RequestTag on instance resources;
	// ec2:CreateTags needs ec2:CreateAction = RunInstances, the managed
	// resource tag, or the watch resource tag with limited tag keys.
	runInstances = "ec2:runinstances"
	createTags   = "ec2:createtags"
	// ssm:CancelCommand is mutating but has no resource type in the Service
	// Authorization Reference, so no tag condition can apply to it. It is
	// exempt here and allowed "*" in nonScopable.
	cancelCommand = "ssm:cancelcommand"
	// watchActions may be conditioned on the watch tag instead of the
	// managed one. CreateTags then also needs its tag keys limited, so that
	// it cannot add the managed tag (see limitsTagKeys).
	watchActions = []string{"ec2:stopinstances", createTags}
)

// The condition keys that carry an existing instance's tags.
var (
	managedKeys = []string{"aws:resourcetag/" + managedTag, "ec2:resourcetag/" + managedTag}
	watchKeys   = []string{"aws:resourcetag/" + watchTag, "ec2:resourcetag/" + watchTag}
)

// guarded lists every action checkTagConditions has a rule for.
func guarded() []string {
	return slices.Concat(resourceTagged, ssmTagged, []string{runInstances, createTags, cancelCommand})
}

// checkTagConditions returns what is wrong with s under invariant S4.
func checkTagConditions(s statement) []string {
	if !strings.EqualFold(s.effect, "Allow") {
		return nil
	}
	var problems []string
	fail := func(format string, args ...any) {
		problems = append(problems, s.where+": "+fmt.Sprintf(format, args...))
	}
	if s.notAction {
		fail("Allow with NotAction grants every action it does not name, %s included", strings.Join(guarded(), ", "))
		return problems
	}
	for _, a := range s.actions {
		if strings.ContainsAny(a, "*?") {
			var covered []string
			for _, g := range guarded() {
				if globMatch(a, g) {
					covered = append(covered, g)
				}
			}
			if len(covered) > 0 {
				fail("wildcard action %q grants %s; list the actions it needs one by one", a, strings.Join(covered, ", "))
			}
			continue
		}
		switch {
		case slices.Contains(resourceTagged, a):
			switch {
			case s.requiresTag(managedKeys...):
			case slices.Contains(watchActions, a) && s.requiresTag(watchKeys...):
			case slices.Contains(watchActions, a):
				fail("%s without condition StringEquals aws:ResourceTag/%s (or %s) = \"true\"", a, managedTag, watchTag)
			default:
				fail("%s without condition StringEquals aws:ResourceTag/%s = \"true\"", a, managedTag)
			}
		case slices.Contains(ssmTagged, a):
			if s.reaches(instanceARN, managedInstanceARN) && !s.requiresTag("ssm:resourcetag/"+managedTag, "aws:resourcetag/"+managedTag) {
				fail("%s on instances without condition StringEquals ssm:resourceTag/%s = \"true\"", a, managedTag)
			}
		case a == runInstances:
			if s.reaches(instanceARN) && !s.requiresTag("aws:requesttag/"+managedTag) {
				fail("%s on instances without condition StringEquals aws:RequestTag/%s = \"true\"", a, managedTag)
			}
		case a == createTags:
			switch {
			case s.requiresTag(managedKeys...), s.requiresValue("ec2:createaction", "RunInstances"):
			case s.requiresTag(watchKeys...):
				if !s.limitsTagKeys(managedTag) {
					fail("%s on watched instances without condition ForAllValues:StringEquals aws:TagKeys excluding %s: it could adopt the instance", a, managedTag)
				}
			default:
				fail("%s needs condition ec2:CreateAction = RunInstances (tags at launch), aws:ResourceTag/%s = \"true\", or aws:ResourceTag/%s = \"true\" with limited aws:TagKeys", a, managedTag, watchTag)
			}
		}
	}
	return problems
}

// reaches reports whether any of s's resources may match one of arns.
func (s statement) reaches(arns ...string) bool {
	if s.notResource {
		return true
	}
	for _, r := range s.resources {
		for _, arn := range arns {
			if globMatch(glob(r), arn) {
				return true
			}
		}
	}
	return false
}

// requiresTag reports whether s allows only when one of keys is "true".
func (s statement) requiresTag(keys ...string) bool {
	return s.requiresValue(keys[0], "true") || (len(keys) > 1 && s.requiresTag(keys[1:]...))
}

// requiresValue reports whether s allows only when key equals want: the
// condition is StringEquals (or StringLike without wildcards) and every
// value is want. IfExists and ForAllValues forms are rejected: they allow
// when the key is absent, i.e. on an untagged resource.
func (s statement) requiresValue(key, want string) bool {
	for op, keys := range s.conditions {
		if op != "stringequals" && op != "stringlike" {
			continue
		}
		vals, ok := keys[strings.ToLower(key)]
		if !ok || len(vals) == 0 {
			continue
		}
		if !slices.ContainsFunc(vals, func(v string) bool { return v != want }) {
			return true
		}
	}
	return false
}

// limitsTagKeys reports whether s allows a request only when every tag key
// it sets is one of a listed few, none of which may be forbidden: the
// condition is ForAllValues:StringEquals (or StringLike) on aws:TagKeys and
// no listed value matches forbidden. EC2 tag keys are case-sensitive, and so
// are these operators.
func (s statement) limitsTagKeys(forbidden string) bool {
	for op, keys := range s.conditions {
		if op != "forallvalues:stringequals" && op != "forallvalues:stringlike" {
			continue
		}
		vals := keys["aws:tagkeys"]
		if len(vals) == 0 {
			continue
		}
		if !slices.ContainsFunc(vals, func(v string) bool { return globMatch(glob(v), forbidden) }) {
			return true
		}
	}
	return false
}

// nonScopable lists mutating actions that IAM only accepts with Resource
// "*", each with the condition key that must narrow it instead ("" if the
// service offers none).
var nonScopable = map[string]string{
	// Service Authorization Reference: CancelCommand lists no resource type.
	cancelCommand: "",
	// PutMetricData lists no resource type; cloudwatch:namespace scopes it.
	"cloudwatch:putmetricdata": "cloudwatch:namespace",
}

// checkWildcardResource returns what is wrong with a mutating action in s
// allowed on every resource.
func checkWildcardResource(s statement) []string {
	if !strings.EqualFold(s.effect, "Allow") || !s.anyResource() {
		return nil
	}
	var problems []string
	for _, a := range s.actions {
		if readOnly(a) {
			continue
		}
		key, ok := nonScopable[a]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: mutating action %s on Resource \"*\"; name the resources", s.where, a))
		case key != "" && !s.hasKey(key):
			problems = append(problems, fmt.Sprintf("%s: %s on Resource \"*\" without a %s condition", s.where, a, key))
		}
	}
	return problems
}

// anyResource reports whether s applies to every resource of its actions.
func (s statement) anyResource() bool {
	if s.notResource {
		return true
	}
	for _, r := range s.resources {
		g := glob(r)
		if g == "*" {
			return true
		}
		// arn:aws:*:*:*:* and the like.
		if parts := strings.SplitN(g, ":", 6); len(parts) == 6 && parts[2] == "*" && strings.Trim(parts[5], "*") == "" {
			return true
		}
	}
	return false
}

func (s statement) hasKey(key string) bool {
	for op, keys := range s.conditions {
		if strings.Contains(op, "ifexists") {
			continue
		}
		if _, ok := keys[key]; ok {
			return true
		}
	}
	return false
}

// readOnly reports whether an action only reads, by the verbs AWS uses for
// read and list access.
func readOnly(action string) bool {
	_, verb, _ := strings.Cut(action, ":")
	for _, p := range []string{"describe", "get", "list", "batchget", "query", "scan", "search"} {
		if strings.HasPrefix(verb, p) {
			return true
		}
	}
	return false
}

func TestMutatingActionsRequireManagedTag(t *testing.T) {
	tpl := loadTemplate(t)
	stmts, problems := statements(tpl)
	if len(stmts) < 10 {
		t.Fatalf("found %d policy statements in the template; the walk is missing policies", len(stmts))
	}
	for _, s := range stmts {
		problems = append(problems, checkTagConditions(s)...)
	}
	for _, p := range problems {
		t.Error(p)
	}

	// The rules only mean something if the grants they guard are there:
	// each mutating permission the control plane needs must be found, and
	// found conditioned.
	for _, want := range []string{"ec2:runinstances", "ec2:createtags", "ec2:startinstances", "ec2:stopinstances", "ec2:terminateinstances", "ssm:sendcommand"} {
		found := false
		for _, s := range stmts {
			if slices.Contains(s.actions, want) && s.reaches(instanceARN) {
				found = true
			}
		}
		if !found {
			t.Errorf("no statement grants %s on instances; the checks above saw nothing to check", want)
		}
	}
}

// TestWatchedInstancesMayOnlyBeStopped checks what the template grants on
// instances through the watch tag alone: stopping, and tagging
// nightshift:last-action (what the watchdog writes to say why), no more.
func TestWatchedInstancesMayOnlyBeStopped(t *testing.T) {
	tpl := loadTemplate(t)
	stmts, _ := statements(tpl)
	granted := map[string]bool{}
	for _, s := range stmts {
		if !strings.EqualFold(s.effect, "Allow") || !s.reaches(instanceARN) || !s.requiresTag(watchKeys...) || s.requiresTag(managedKeys...) {
			continue
		}
		for _, a := range s.actions {
			granted[a] = true
			if !slices.Contains(watchActions, a) {
				t.Errorf("%s: %s on watched instances; want only %v", s.where, a, watchActions)
			}
			if a == createTags && !s.allowsTagKeys(lastActionTag) {
				t.Errorf("%s: %s on watched instances does not allow the key %s the watchdog writes", s.where, a, lastActionTag)
			}
		}
	}
	for _, want := range watchActions {
		if !granted[want] {
			t.Errorf("no statement grants %s on instances tagged %s=true", want, watchTag)
		}
	}
}

// allowsTagKeys reports whether s's limits on aws:TagKeys, if any, let a
// request set every one of keys.
func (s statement) allowsTagKeys(keys ...string) bool {
	for op, conds := range s.conditions {
		if op != "forallvalues:stringequals" && op != "forallvalues:stringlike" {
			continue
		}
		for _, k := range keys {
			if !slices.ContainsFunc(conds["aws:tagkeys"], func(v string) bool { return globMatch(glob(v), k) }) {
				return false
			}
		}
	}
	return true
}

func TestNoWildcardResourceOnMutations(t *testing.T) {
	tpl := loadTemplate(t)
	stmts, _ := statements(tpl)
	for _, s := range stmts {
		for _, p := range checkWildcardResource(s) {
			t.Error(p)
		}
	}
}

// TestPolicyCheckers shows that the checkers reject what they must, on
// hand-written statements.
func TestPolicyCheckers(t *testing.T) {
	tests := []struct {
		name string
		give string
		// wantTag and wantWildcard: whether checkTagConditions and
		// checkWildcardResource report a problem.
		wantTag, wantWildcard bool
	}{
		{
			name:    "stop on any instance, no condition",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "*"}`,
			wantTag: true, wantWildcard: true,
		},
		{
			name:    "stop conditioned on another tag",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/team: ml}}}`,
			wantTag: true,
		},
		{
			name:    "stop conditioned on the tag with another value",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:managed: ["true", "false"]}}}`,
			wantTag: true,
		},
		{
			name:    "IfExists allows untagged instances",
			give:    `{Effect: Allow, Action: ec2:TerminateInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEqualsIfExists: {aws:ResourceTag/nightshift:managed: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "StringLike with a wildcard value",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringLike: {aws:ResourceTag/nightshift:managed: "*"}}}`,
			wantTag: true,
		},
		{
			name: "stop on tagged instances",
			give: `{Effect: Allow, Action: [ec2:StartInstances, ec2:StopInstances], Resource: !Sub "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:managed: "true"}}}`,
		},
		{
			name: "action names are case-insensitive",
			give: `{Effect: Allow, Action: EC2:stopinstances, Resource: "arn:aws:ec2:*:*:instance/*"}`, wantTag: true,
		},
		{
			name:    "ec2 wildcard action",
			give:    `{Effect: Allow, Action: "ec2:*", Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:managed: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "ssm wildcard action",
			give:    `{Effect: Allow, Action: "ssm:*", Resource: "*"}`,
			wantTag: true, wantWildcard: true,
		},
		{
			name:    "partial wildcard covering a guarded action",
			give:    `{Effect: Allow, Action: "ec2:Stop*", Resource: "arn:aws:ec2:*:*:instance/*"}`,
			wantTag: true,
		},
		{
			name: "describe wildcard is fine",
			give: `{Effect: Allow, Action: "ec2:Describe*", Resource: "*"}`,
		},
		{
			name:    "NotAction",
			give:    `{Effect: Allow, NotAction: iam:*, Resource: "*"}`,
			wantTag: true, wantWildcard: true,
		},
		{
			name:    "run instances without request tag",
			give:    `{Effect: Allow, Action: ec2:RunInstances, Resource: "arn:aws:ec2:*:*:instance/*"}`,
			wantTag: true,
		},
		{
			name:    "run instances on every resource without request tag",
			give:    `{Effect: Allow, Action: ec2:RunInstances, Resource: "*"}`,
			wantTag: true, wantWildcard: true,
		},
		{
			name:    "run instances with the request tag on the wrong key",
			give:    `{Effect: Allow, Action: ec2:RunInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:managed: "true"}}}`,
			wantTag: true,
		},
		{
			name: "run instances with the request tag",
			give: `{Effect: Allow, Action: ec2:RunInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:RequestTag/nightshift:managed: "true"}}}`,
		},
		{
			name: "run instances on images and subnets needs no tag",
			give: `{Effect: Allow, Action: ec2:RunInstances, Resource: ["arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:subnet/*"]}`,
		},
		{
			name:    "run instances behind an Fn::If",
			give:    `{Effect: Allow, Action: ec2:RunInstances, Resource: !If [Cond, "arn:aws:ec2:*::image/*", "arn:aws:ec2:*:*:instance/*"]}`,
			wantTag: true,
		},
		{
			name:    "create tags anywhere",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*"}`,
			wantTag: true,
		},
		{
			name:    "create tags with another create action",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:*", Condition: {StringEquals: {ec2:CreateAction: [RunInstances, CreateVolume]}}}`,
			wantTag: true,
		},
		{
			name: "create tags at launch",
			give: `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {ec2:CreateAction: RunInstances}}}`,
		},
		{
			name: "delete tags on managed instances",
			give: `{Effect: Allow, Action: ec2:DeleteTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {ec2:ResourceTag/nightshift:managed: "true"}}}`,
		},
		{
			name:    "send command to any instance",
			give:    `{Effect: Allow, Action: ssm:SendCommand, Resource: ["arn:aws:ec2:*:*:instance/*", "arn:aws:ssm:*::document/AWS-RunShellScript"]}`,
			wantTag: true,
		},
		{
			name:    "send command to hybrid nodes",
			give:    `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ssm:*:*:managed-instance/*"}`,
			wantTag: true,
		},
		{
			name: "send command on the document only",
			give: `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ssm:*::document/AWS-RunShellScript"}`,
		},
		{
			name: "send command to managed instances",
			give: `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {ssm:resourceTag/nightshift:managed: "true"}}}`,
		},
		{
			name:    "send command conditioned on the request tag",
			give:    `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:RequestTag/nightshift:managed: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "terminate conditioned on the watch tag",
			give:    `{Effect: Allow, Action: ec2:TerminateInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "start conditioned on the watch tag",
			give:    `{Effect: Allow, Action: ec2:StartInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "stop and terminate conditioned on the watch tag",
			give:    `{Effect: Allow, Action: [ec2:StopInstances, ec2:TerminateInstances], Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "send command conditioned on the watch tag",
			give:    `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {ssm:resourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "send command conditioned on the global watch tag",
			give:    `{Effect: Allow, Action: ssm:SendCommand, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name: "stop conditioned on the watch tag",
			give: `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
		},
		{
			name:    "stop conditioned on the watch tag if it exists",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEqualsIfExists: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "stop conditioned on the watch tag with another value",
			give:    `{Effect: Allow, Action: ec2:StopInstances, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringLike: {aws:ResourceTag/nightshift:watch: "*"}}}`,
			wantTag: true,
		},
		{
			name: "stop and terminate with both tags in one condition block",
			give: `{Effect: Allow, Action: [ec2:StopInstances, ec2:TerminateInstances, ec2:CreateTags], Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:managed: "true", aws:ResourceTag/nightshift:watch: "true"}}}`,
		},
		{
			name: "tag watched instances with the last action only",
			give: `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}, ForAllValues:StringEquals: {aws:TagKeys: [nightshift:last-action]}}}`,
		},
		{
			name:    "tag watched instances with any key",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}}}`,
			wantTag: true,
		},
		{
			name:    "tag watched instances nightshift:managed",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}, ForAllValues:StringEquals: {aws:TagKeys: [nightshift:last-action, nightshift:managed]}}}`,
			wantTag: true,
		},
		{
			name:    "tag watched instances with a key pattern covering nightshift:managed",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true"}, ForAllValues:StringLike: {aws:TagKeys: "nightshift:*"}}}`,
			wantTag: true,
		},
		{
			name:    "tag keys limited without ForAllValues",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {StringEquals: {aws:ResourceTag/nightshift:watch: "true", aws:TagKeys: [nightshift:last-action]}}}`,
			wantTag: true,
		},
		{
			name:    "tag keys limited but the watch tag not required",
			give:    `{Effect: Allow, Action: ec2:CreateTags, Resource: "arn:aws:ec2:*:*:instance/*", Condition: {ForAllValues:StringEquals: {aws:TagKeys: [nightshift:last-action]}}}`,
			wantTag: true,
		},
		{
			name: "cancel command cannot be scoped",
			give: `{Effect: Allow, Action: ssm:CancelCommand, Resource: "*"}`,
		},
		{
			name:         "pass role to anything",
			give:         `{Effect: Allow, Action: iam:PassRole, Resource: "*"}`,
			wantWildcard: true,
		},
		{
			name:         "metrics in any namespace",
			give:         `{Effect: Allow, Action: cloudwatch:PutMetricData, Resource: "*"}`,
			wantWildcard: true,
		},
		{
			name:         "a service-wide ARN is a wildcard too",
			give:         `{Effect: Allow, Action: dynamodb:DeleteItem, Resource: "arn:aws:*:*:*:*"}`,
			wantWildcard: true,
		},
		{
			name: "deny statements are not grants",
			give: `{Effect: Deny, Action: "ec2:*", Resource: "*"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := parseYAML([]byte(tt.give))
			if err != nil {
				t.Fatalf("parseYAML: %v", err)
			}
			s, err := parseStatement("test", v)
			if err != nil {
				t.Fatal(err)
			}
			tag := checkTagConditions(s)
			if got := len(tag) > 0; got != tt.wantTag {
				t.Errorf("checkTagConditions(%s) = %q; want problems: %v", tt.give, tag, tt.wantTag)
			}
			wild := checkWildcardResource(s)
			if got := len(wild) > 0; got != tt.wantWildcard {
				t.Errorf("checkWildcardResource(%s) = %q; want problems: %v", tt.give, wild, tt.wantWildcard)
			}
		})
	}
}

func TestManagedPolicyReferences(t *testing.T) {
	tpl, err := parseTemplate([]byte(`
Resources:
  Own:
    Type: AWS::IAM::ManagedPolicy
    Properties:
      PolicyDocument: {Statement: []}
  Role:
    Type: AWS::IAM::Role
    Properties:
      ManagedPolicyArns:
        - !Ref Own
        - !Sub arn:${AWS::Partition}:iam::aws:policy/AmazonSSMManagedInstanceCore
        - arn:aws:iam::aws:policy/AmazonEC2FullAccess
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Policies: [AmazonSSMFullAccess, {EC2DescribePolicy: {}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	_, problems := policyDocuments(tpl)
	want := []string{"AmazonEC2FullAccess", "AmazonSSMFullAccess", "EC2DescribePolicy"}
	if len(problems) != len(want) {
		t.Fatalf("policyDocuments problems = %q; want one each for %v", problems, want)
	}
	for _, w := range want {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
			t.Errorf("policyDocuments problems = %q; want one about %s", problems, w)
		}
	}
}
