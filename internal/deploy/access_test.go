package deploy

import (
	"slices"
	"strings"
	"testing"
)

// The sample deployment a policy's ARNs are rendered in, to ask whether a
// request would be allowed there.
const (
	samplePartition = "aws"
	sampleStack     = "nightshift"
)

// managedGrants are the statements of AWS managed policies that the access
// checks must know about, as the AWS Managed Policy Reference lists them.
// Only the statements these checks ask about are written out.
var managedGrants = map[string][]statement{
	// AmazonSSMManagedInstanceCore v2 allows, among the agent's own calls,
	// ssm:GetParameter and ssm:GetParameters on "*".
	"AmazonSSMManagedInstanceCore": {{
		where: "AmazonSSMManagedInstanceCore", effect: "Allow",
		actions: []string{"ssm:getparameter", "ssm:getparameters"}, resources: []string{"*"},
	}},
}

// principalStatements returns the statements that apply to a role of the
// template or a SAM function: its inline policies, the template's policies
// attached to it, and the managedGrants of the AWS managed policies it
// carries.
func principalStatements(t *testing.T, tpl template, id string) []statement {
	t.Helper()
	all, problems := statements(tpl)
	if len(problems) > 0 {
		t.Fatalf("statements: %q", problems)
	}
	from := func(source string) []statement {
		var out []statement
		for _, s := range all {
			if strings.HasPrefix(s.where, source+"[") || strings.HasPrefix(s.where, source+"/Policies[") {
				out = append(out, s)
			}
		}
		return out
	}
	out := from(id)
	var attached []any
	r := tpl.resource(id)
	switch str(r["Type"]) {
	case "AWS::IAM::Role":
		attached = items(get(r, "Properties", "ManagedPolicyArns"))
	case "AWS::Serverless::Function":
		attached = items(tpl.functions()[id]["Policies"])
	default:
		t.Fatalf("%s is a %q, not a role or a function", id, str(r["Type"]))
	}
	for _, p := range attached {
		if ref := refTarget(p); ref != "" && tpl.resource(ref) != nil {
			out = append(out, from(ref)...)
			continue
		}
		name := pattern(p)
		if i := strings.LastIndex(name, "/"); i >= 0 {
			name = name[i+1:]
		}
		out = append(out, managedGrants[name]...)
	}
	// Policies that name the role themselves (AWS::IAM::RolePolicy,
	// AWS::IAM::Policy).
	for _, typ := range []string{"AWS::IAM::RolePolicy", "AWS::IAM::Policy"} {
		for pid, p := range tpl.resources(typ) {
			roles := append(items(get(p, "Properties", "Roles")), get(p, "Properties", "RoleName"))
			if slices.ContainsFunc(roles, func(v any) bool { return refTarget(v) == id }) {
				out = append(out, from(pid)...)
			}
		}
	}
	return out
}

// render turns a statement's resource pattern into a glob for the sample
// deployment: pseudo parameters and template parameters with a default
// take the sample's values, an SSM parameter of the template ("<X>") its
// name, and everything else unknown until deploy time stays a wildcard.
func render(tpl template, p string) string {
	for id, r := range tpl.resources("AWS::SSM::Parameter") {
		p = strings.ReplaceAll(p, "<"+id+">", pattern(get(r, "Properties", "Name")))
	}
	// The ARNs of the resources a policy names by !GetAtt X.Arn or !Ref
	// (a log group's name), from the names the template gives them.
	arns := []struct{ typ, name, arn string }{
		{"AWS::DynamoDB::Table", "TableName", "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/"},
		{"AWS::SQS::Queue", "QueueName", "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"},
		{"AWS::Serverless::Function", "FunctionName", "arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"},
		{"AWS::Logs::LogGroup", "LogGroupName", ""},
	}
	for _, a := range arns {
		for id, r := range tpl.resources(a.typ) {
			// A resource without a name gets one CloudFormation makes up.
			name := "*"
			if n := get(r, "Properties", a.name); n != nil {
				name = pattern(n)
			}
			p = strings.ReplaceAll(p, "<"+id+">", a.arn+name)
		}
	}
	p = placeholder.ReplaceAllStringFunc(p, func(ph string) string {
		name := strings.Trim(ph, "${}")
		switch name {
		case "AWS::Partition":
			return samplePartition
		case "AWS::Region":
			return sampleRegion
		case "AWS::AccountId":
			return sampleAccount
		case "AWS::StackName":
			return sampleStack
		}
		if def := get(tpl, "Parameters", name, "Default"); def != nil {
			return pattern(def)
		}
		return ph
	})
	return glob(p)
}

// applies reports whether s covers action on arn. A statement with a
// condition is left out: these checks are about what is granted or denied
// whatever the request's context.
func (s statement) applies(tpl template, action, arn string) bool {
	if len(s.conditions) > 0 {
		return false
	}
	action = strings.ToLower(action)
	named := slices.ContainsFunc(s.actions, func(a string) bool { return globMatch(a, action) })
	if named == s.notAction {
		return false
	}
	matched := slices.ContainsFunc(s.resources, func(r string) bool { return globMatch(render(tpl, r), arn) })
	return matched != s.notResource
}

// allowed reports whether stmts allow action on arn: some statement allows
// it and none denies it (IAM's evaluation within one account, without
// permissions boundaries or SCPs).
func allowed(tpl template, stmts []statement, action, arn string) bool {
	allow := false
	for _, s := range stmts {
		if !s.applies(tpl, action, arn) {
			continue
		}
		if strings.EqualFold(s.effect, "Deny") {
			return false
		}
		allow = allow || strings.EqualFold(s.effect, "Allow")
	}
	return allow
}

// TestAllowed shows the evaluator on hand-written statements.
func TestAllowed(t *testing.T) {
	tpl := template{"Parameters": map[string]any{"Name": map[string]any{"Default": "/x"}}}
	const own = "arn:aws:ssm:us-east-1:123456789012:parameter/x"
	tests := []struct {
		name   string
		give   []string
		action string
		arn    string
		want   bool
	}{
		{"nothing granted", nil, "ssm:GetParameter", own, false},
		{"granted on every resource", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*"}`}, "ssm:GetParameter", own, true},
		{"action names are case-insensitive", []string{`{Effect: Allow, Action: SSM:getparameter, Resource: "*"}`}, "ssm:GetParameter", own, true},
		{"another action", []string{`{Effect: Allow, Action: ssm:GetParameters, Resource: "*"}`}, "ssm:GetParameter", own, false},
		{"wildcard action", []string{`{Effect: Allow, Action: "ssm:GetParameter*", Resource: "*"}`}, "ssm:GetParametersByPath", own, true},
		{"pseudo parameters and defaults rendered", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: !Sub "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Name}"}`}, "ssm:GetParameter", own, true},
		{"another account", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: !Sub "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter/*"}`}, "ssm:GetParameter", "arn:aws:ssm:us-east-1:210987654321:parameter/x", false},
		{"account-less ARN is not the account's", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: !Sub "arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/*"}`}, "ssm:GetParameter", own, false},
		{"unknown parameter is a wildcard", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: !Sub "arn:aws:ssm:${AWS::Region}:${AWS::AccountId}:parameter${Other}"}`}, "ssm:GetParameter", own, true},
		{"deny wins", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*"}`, `{Effect: Deny, Action: "ssm:*", Resource: "*"}`}, "ssm:GetParameter", own, false},
		{"deny with NotResource spares its resource", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*"}`, `{Effect: Deny, Action: "ssm:GetParameter*", NotResource: "arn:aws:ssm:*:*:parameter/x"}`}, "ssm:GetParameter", own, true},
		{"deny with NotResource", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*"}`, `{Effect: Deny, Action: "ssm:GetParameter*", NotResource: "arn:aws:ssm:*:*:parameter/y"}`}, "ssm:GetParameter", own, false},
		{"deny with NotAction", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*"}`, `{Effect: Deny, NotAction: "ssm:GetParameter", Resource: "*"}`}, "ssm:GetParameter", own, true},
		{"conditional statements left out", []string{`{Effect: Allow, Action: ssm:GetParameter, Resource: "*", Condition: {Bool: {aws:SecureTransport: "true"}}}`}, "ssm:GetParameter", own, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stmts []statement
			for i, g := range tt.give {
				v, err := parseYAML([]byte(g))
				if err != nil {
					t.Fatalf("parseYAML(%s): %v", g, err)
				}
				s, err := parseStatement("test", v)
				if err != nil {
					t.Fatalf("statement %d: %v", i, err)
				}
				stmts = append(stmts, s)
			}
			if got := allowed(tpl, stmts, tt.action, tt.arn); got != tt.want {
				t.Errorf("allowed(%s, %s, %s) = %v; want %v", tt.give, tt.action, tt.arn, got, tt.want)
			}
		})
	}
}
