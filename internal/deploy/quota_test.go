package deploy

import (
	"fmt"
	"strings"
	"testing"
)

// The quotas nightshift reads and asks for (internal/catalog), as the
// sample deployment's ARNs.
var (
	gpuQuotaARNs = []string{
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":ec2/L-DB2E81BA",
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":ec2/L-417A185B",
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":ec2/L-3819A6DF",
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":ec2/L-7212CCBC",
	}
	// otherQuotas are quotas nightshift has no business with: EC2's
	// standard instances, and another service's.
	otherQuotas = []string{
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":ec2/L-1216C47A",
		"arn:aws:servicequotas:" + sampleRegion + ":" + sampleAccount + ":lambda/L-B99A9384",
	}
)

// TestFunctionsQuotaAccess: the functions' role reads EC2's four GPU vCPU
// quotas and no other, reads increase requests ("*": no resource type),
// and may ask for an increase only when QuotaRequestMaxVcpus is above 0,
// and then only of the four; the parameter reaches every function.
func TestFunctionsQuotaAccess(t *testing.T) {
	tpl := loadTemplate(t)
	if p := mapping(get(tpl, "Parameters", "QuotaRequestMaxVcpus")); str(p["Type"]) != "Number" || pattern(p["Default"]) != "0" {
		t.Errorf("QuotaRequestMaxVcpus = %v; want a Number defaulting to 0 (never ask)", p)
	}
	for _, id := range sortedKeys(tpl.functions()) {
		v := get(tpl.functions()[id], "Environment", "Variables", "NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS")
		if refTarget(v) != "QuotaRequestMaxVcpus" {
			t.Errorf("%s NIGHTSHIFT_QUOTA_REQUEST_MAX_VCPUS = %v; want !Ref QuotaRequestMaxVcpus", id, v)
		}
		stmts := principalStatements(t, tpl, id)
		for _, arn := range gpuQuotaARNs {
			if !allowed(tpl, stmts, "servicequotas:GetServiceQuota", arn) {
				t.Errorf("%s may not GetServiceQuota on %s", id, arn)
			}
		}
		for _, arn := range otherQuotas {
			if allowed(tpl, stmts, "servicequotas:GetServiceQuota", arn) || allowed(tpl, stmts, "servicequotas:RequestServiceQuotaIncrease", arn) {
				t.Errorf("%s may read or ask for %s, which is not a GPU vCPU quota", id, arn)
			}
		}
		for _, a := range []string{"servicequotas:GetRequestedServiceQuotaChange", "servicequotas:ListRequestedServiceQuotaChangeHistoryByQuota"} {
			if !allowed(tpl, stmts, a, "*") {
				t.Errorf("%s may not %s", id, a)
			}
		}
	}
	// RequestServiceQuotaIncrease, with the stack's parameters resolved.
	raw := get(tpl.resource("FunctionPolicy"), "Properties", "PolicyDocument", "Statement")
	for _, tt := range []struct {
		max  string
		want bool
	}{{"0", false}, {"64", true}} {
		v, err := tpl.evaluate(raw, map[string]string{"QuotaRequestMaxVcpus": tt.max})
		if err != nil {
			t.Fatal(err)
		}
		var stmts []statement
		for i, s := range items(v) {
			st, err := parseStatement("FunctionPolicy", s)
			if err != nil {
				t.Fatalf("statement %d: %v", i, err)
			}
			for j, r := range st.resources {
				st.resources[j] = pinResources(tpl, r)
			}
			stmts = append(stmts, st)
		}
		for _, arn := range gpuQuotaARNs {
			if got := allowed(tpl, stmts, "servicequotas:RequestServiceQuotaIncrease", arn); got != tt.want {
				t.Errorf("QuotaRequestMaxVcpus=%s: RequestServiceQuotaIncrease on %s allowed = %v; want %v", tt.max, arn, got, tt.want)
			}
		}
		for _, arn := range otherQuotas {
			if allowed(tpl, stmts, "servicequotas:RequestServiceQuotaIncrease", arn) {
				t.Errorf("QuotaRequestMaxVcpus=%s: RequestServiceQuotaIncrease allowed on %s", tt.max, arn)
			}
		}
		// The service-linked role an account's first request creates, and
		// no other: beside EC2 Spot's, the one statement naming
		// iam:CreateServiceLinkedRole is there only when nightshift may
		// ask, on Service Quotas' role, for servicequotas.amazonaws.com.
		var slr []map[string]any
		for _, st := range items(v) {
			if m, ok := st.(map[string]any); ok && fmt.Sprint(m["Action"]) == "iam:CreateServiceLinkedRole" && !strings.Contains(fmt.Sprint(m["Resource"]), "spot.amazonaws.com") {
				slr = append(slr, m)
			}
		}
		if got := len(slr) == 1; got != tt.want {
			t.Fatalf("QuotaRequestMaxVcpus=%s: %d statements allow iam:CreateServiceLinkedRole; want one only when nightshift may ask", tt.max, len(slr))
		}
		if len(slr) == 1 {
			st, err := parseStatement("FunctionPolicy", slr[0])
			if err != nil || len(st.resources) != 1 {
				t.Fatalf("the service-linked role's statement: %v, resources %q", err, st.resources)
			}
			res := render(tpl, st.resources[0])
			want := "arn:aws:iam::" + sampleAccount + ":role/aws-service-role/servicequotas.amazonaws.com/AWSServiceRoleForServiceQuotas"
			if !globMatch(res, want) || strings.Contains(res, "*") {
				t.Errorf("iam:CreateServiceLinkedRole on %q; want only %s", res, want)
			}
			if name := get(slr[0], "Condition", "StringEquals", "iam:AWSServiceName"); fmt.Sprint(name) != "servicequotas.amazonaws.com" {
				t.Errorf("iam:CreateServiceLinkedRole's iam:AWSServiceName condition = %v; want servicequotas.amazonaws.com", name)
			}
		}
	}
}

// TestUserPolicyQuotas: nightshift quota, with the people's UserPolicy,
// reads and asks for the four GPU vCPU quotas and no other.
func TestUserPolicyQuotas(t *testing.T) {
	tpl := loadTemplate(t)
	all, problems := statements(tpl)
	if len(problems) > 0 {
		t.Fatalf("statements: %q", problems)
	}
	var stmts []statement
	for _, s := range all {
		if strings.HasPrefix(s.where, "UserPolicy[") {
			stmts = append(stmts, s)
		}
	}
	for _, arn := range gpuQuotaARNs {
		for _, a := range []string{"servicequotas:GetServiceQuota", "servicequotas:RequestServiceQuotaIncrease"} {
			if !allowed(tpl, stmts, a, arn) {
				t.Errorf("UserPolicy does not allow %s on %s", a, arn)
			}
		}
	}
	for _, arn := range otherQuotas {
		for _, a := range []string{"servicequotas:GetServiceQuota", "servicequotas:RequestServiceQuotaIncrease"} {
			if allowed(tpl, stmts, a, arn) {
				t.Errorf("UserPolicy allows %s on %s, which is not a GPU vCPU quota", a, arn)
			}
		}
	}
}
