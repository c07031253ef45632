package awssim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func applied(t *testing.T, c *awssim.Cloud, code string) float64 {
	t.Helper()
	out, err := c.GetServiceQuota(context.Background(), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code)})
	if err != nil {
		t.Fatalf("GetServiceQuota(%s) = %v", code, err)
	}
	return aws.ToFloat64(out.Quota.Value)
}

func ask(c *awssim.Cloud, code string, desired float64) (*servicequotas.RequestServiceQuotaIncreaseOutput, error) {
	return c.RequestServiceQuotaIncrease(context.Background(), &servicequotas.RequestServiceQuotaIncreaseInput{
		ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code), DesiredValue: aws.Float64(desired),
	})
}

func TestGetServiceQuota(t *testing.T) {
	c := awssim.New(vclock.New())
	c.Quota[awssim.QuotaOnDemandG] = 8
	if v := applied(t, c, awssim.QuotaOnDemandG); v != 8 {
		t.Errorf("applied G = %v; want the Quota map's 8", v)
	}
	if v := applied(t, c, awssim.QuotaSpotP); v != awssim.UncappedQuota {
		t.Errorf("applied spot P (not in the map) = %v; want UncappedQuota", v)
	}
	ctx := context.Background()
	if _, err := c.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String("L-1216C47A")}); code(err) != "NoSuchResourceException" {
		t.Errorf("GetServiceQuota(a quota not modelled) = %v; want NoSuchResourceException", err)
	}
	if _, err := c.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("lambda"), QuotaCode: aws.String("L-B99A9384")}); code(err) != "NotModelledBySimulation" {
		t.Errorf("GetServiceQuota(lambda) = %v; want NotModelledBySimulation", err)
	}
	if c.Calls["GetServiceQuota"] != 4 {
		t.Errorf("GetServiceQuota counted %d; want 4", c.Calls["GetServiceQuota"])
	}
}

// TestQuotaRequestLife: a request is PENDING, then CASE_OPENED with a case
// id, then APPROVED on the virtual clock; approval raises the applied
// value, and RunInstances' vCPU check uses it.
func TestQuotaRequestLife(t *testing.T) {
	clk := vclock.New()
	c := awssim.New(clk)
	c.Quota[awssim.QuotaOnDemandG] = 4
	c.Quota[awssim.QuotaOnDemandP] = 0
	launch(t, c, "g5.xlarge", map[string]string{"nightshift:managed": "true"})
	if _, err := c.RunInstances(context.Background(), runInput("g5.xlarge")); code(err) != "VcpuLimitExceeded" {
		t.Fatalf("second g5.xlarge under a 4-vCPU quota: %v; want VcpuLimitExceeded", err)
	}
	start := clk.Now()
	out, err := ask(c, awssim.QuotaOnDemandG, 16)
	if err != nil {
		t.Fatal(err)
	}
	r := out.RequestedQuota
	id := aws.ToString(r.Id)
	if string(r.Status) != "PENDING" || r.CaseId != nil || aws.ToFloat64(r.DesiredValue) != 16 || !aws.ToTime(r.Created).Equal(start) || id == "" {
		t.Errorf("new request %+v; want PENDING, no case, 16, created now, an id", r)
	}
	if _, err := ask(c, awssim.QuotaOnDemandG, 32); code(err) != "ResourceAlreadyExistsException" {
		t.Errorf("a second open request = %v; want ResourceAlreadyExistsException", err)
	}
	if _, err := ask(c, awssim.QuotaOnDemandP, 8); err != nil {
		t.Errorf("a request for another quota = %v; want it taken", err)
	}
	get := func() *servicequotas.GetRequestedServiceQuotaChangeOutput {
		t.Helper()
		g, err := c.GetRequestedServiceQuotaChange(context.Background(), &servicequotas.GetRequestedServiceQuotaChangeInput{RequestId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	clk.Advance(awssim.DefaultQuotaCaseOpened)
	g := get()
	if string(g.RequestedQuota.Status) != "CASE_OPENED" || aws.ToString(g.RequestedQuota.CaseId) == "" || !aws.ToTime(g.RequestedQuota.LastUpdated).Equal(clk.Now()) {
		t.Errorf("after %v: %+v; want CASE_OPENED with a case id, updated now", awssim.DefaultQuotaCaseOpened, g.RequestedQuota)
	}
	if v := applied(t, c, awssim.QuotaOnDemandG); v != 4 {
		t.Errorf("applied before approval = %v; want 4", v)
	}
	clk.Advance(awssim.DefaultQuotaApproved)
	if g := get(); string(g.RequestedQuota.Status) != "APPROVED" {
		t.Errorf("after approval: %s; want APPROVED", g.RequestedQuota.Status)
	}
	if v := applied(t, c, awssim.QuotaOnDemandG); v != 16 {
		t.Errorf("applied after approval = %v; want 16", v)
	}
	if _, err := c.RunInstances(context.Background(), runInput("g5.xlarge")); err != nil {
		t.Errorf("g5.xlarge under the raised quota: %v", err)
	}
	if _, err := ask(c, awssim.QuotaOnDemandG, 16); code(err) != "IllegalArgumentException" {
		t.Errorf("asking for the applied value = %v; want IllegalArgumentException", err)
	}
	if _, err := ask(c, awssim.QuotaOnDemandG, 32); err != nil {
		t.Errorf("a new request after the last was decided = %v", err)
	}
	if _, err := c.GetRequestedServiceQuotaChange(context.Background(), &servicequotas.GetRequestedServiceQuotaChangeInput{RequestId: aws.String("nope")}); code(err) != "NoSuchResourceException" {
		t.Errorf("GetRequestedServiceQuotaChange(nope) = %v; want NoSuchResourceException", err)
	}
}

func TestQuotaDecisionDenied(t *testing.T) {
	clk := vclock.New()
	c := awssim.New(clk)
	c.Quota[awssim.QuotaSpotG] = 0
	c.QuotaDecision = func(code string, desired float64) []awssim.QuotaStep {
		return []awssim.QuotaStep{{After: time.Hour, Status: "CASE_OPENED"}, {After: 48 * time.Hour, Status: "DENIED"}}
	}
	if _, err := ask(c, awssim.QuotaSpotG, 8); err != nil {
		t.Fatal(err)
	}
	clk.Advance(49 * time.Hour)
	rs := c.QuotaRequests()
	if len(rs) != 1 || string(rs[0].Status) != "DENIED" || aws.ToString(rs[0].CaseId) == "" {
		t.Errorf("requests %+v; want one DENIED with its case", rs)
	}
	if v := applied(t, c, awssim.QuotaSpotG); v != 0 {
		t.Errorf("applied after a denial = %v; want 0", v)
	}
}

func TestQuotaHistoryPages(t *testing.T) {
	clk := vclock.New()
	c := awssim.New(clk)
	c.Quota[awssim.QuotaOnDemandP] = 0
	c.QuotaDecision = func(string, float64) []awssim.QuotaStep {
		return []awssim.QuotaStep{{After: time.Minute, Status: "DENIED"}}
	}
	for k := range 5 {
		if _, err := ask(c, awssim.QuotaOnDemandP, float64(8*(k+1))); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
	}
	var desired []float64
	var token *string
	pages := 0
	for {
		out, err := c.ListRequestedServiceQuotaChangeHistoryByQuota(context.Background(), &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput{
			ServiceCode: aws.String("ec2"), QuotaCode: aws.String(awssim.QuotaOnDemandP), MaxResults: aws.Int32(2), NextToken: token,
		})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, r := range out.RequestedQuotas {
			desired = append(desired, aws.ToFloat64(r.DesiredValue))
		}
		if token = out.NextToken; token == nil {
			break
		}
	}
	if want := []float64{40, 32, 24, 16, 8}; pages != 3 || !equal(desired, want) {
		t.Errorf("history %v in %d pages; want %v (newest first) in 3", desired, pages, want)
	}
	if _, err := c.ListRequestedServiceQuotaChangeHistoryByQuota(context.Background(), &servicequotas.ListRequestedServiceQuotaChangeHistoryByQuotaInput{
		ServiceCode: aws.String("ec2"), QuotaCode: aws.String(awssim.QuotaOnDemandP), MaxResults: aws.Int32(101),
	}); code(err) != "IllegalArgumentException" {
		t.Errorf("MaxResults 101 = %v; want IllegalArgumentException", err)
	}
}

func runInput(typ string) *ec2.RunInstancesInput {
	return &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: types.InstanceType(typ),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{{Key: aws.String("nightshift:managed"), Value: aws.String("true")}}}},
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if a[k] != b[k] {
			return false
		}
	}
	return true
}

// TestQuotaPolicyAndFaults: Service Quotas calls go through the policy
// (AccessDeniedException, recorded in Denied) and the fault hook.
func TestQuotaPolicyAndFaults(t *testing.T) {
	c := awssim.New(vclock.New())
	c.Policy = func(r awssim.Request) bool {
		return r.Op != "RequestServiceQuotaIncrease" || r.Quota != awssim.QuotaOnDemandP
	}
	if _, err := ask(c, awssim.QuotaOnDemandP, 8); code(err) != "AccessDeniedException" {
		t.Errorf("a refused request = %v; want AccessDeniedException", err)
	}
	if len(c.Denied) != 1 {
		t.Errorf("Denied %q; want the one refusal", c.Denied)
	}
	if _, err := ask(c, awssim.QuotaOnDemandG, 2_000_000); err != nil {
		t.Errorf("an allowed request = %v", err)
	}
	c.Fault = func(op string, _ any) error {
		if op == "GetServiceQuota" {
			return &smithy.GenericAPIError{Code: "TooManyRequestsException", Message: "Rate exceeded"}
		}
		return nil
	}
	if _, err := c.GetServiceQuota(context.Background(), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(awssim.QuotaOnDemandG)}); code(err) != "TooManyRequestsException" {
		t.Errorf("faulted GetServiceQuota = %v; want the fault", err)
	}
}
