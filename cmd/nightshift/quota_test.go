package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/config"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// quotaPools are the golden quota world's pools: the fixture's two, and a
// spot-then-on-demand P pool, so that three quotas show.
const quotaPools = `{"default":{"types":["g5.xlarge","g4dn.xlarge"],"max_instances":2,"keep_warm":"10m"},"multi":{"types":["g5.12xlarge"],"market":"on-demand","max_instances":1,"keep_warm":"5m"},"big":{"types":["p4d.24xlarge"],"market":"spot-then-on-demand","max_instances":1}}`

func quotaSettings(t *testing.T) config.Settings {
	t.Helper()
	s, err := config.FromEnv(func(k string) string {
		if k == "NIGHTSHIFT_POOLS" {
			return quotaPools
		}
		return testEnv[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// quotaWorld is the simulated account nightshift quota reads, at t0: G
// on demand at 64 vCPUs with nightshift's g5.xlarge and someone's
// g5.12xlarge running and a request open (its case opened); P on demand at
// 96, full with a p4d.24xlarge; spot P at 0, its last request denied.
func quotaWorld(t *testing.T) *awssim.Cloud {
	t.Helper()
	c := awssim.New(vclock.NewAt(t0.Add(-50 * time.Hour)))
	c.Quota[catalog.QuotaG.Code] = 64
	c.Quota[catalog.QuotaP.Code] = 96
	c.Quota[catalog.QuotaPSpot.Code] = 0
	c.QuotaDecision = func(code string, _ float64) []awssim.QuotaStep {
		if code == catalog.QuotaPSpot.Code {
			return []awssim.QuotaStep{{After: time.Hour, Status: quota.StatusCaseOpened}, {After: 24 * time.Hour, Status: quota.StatusDenied}}
		}
		return []awssim.QuotaStep{{After: 30 * time.Minute, Status: quota.StatusCaseOpened}, {After: 72 * time.Hour, Status: quota.StatusApproved}}
	}
	ctx := context.Background()
	ask := func(code string, n float64) {
		t.Helper()
		if _, err := c.RequestServiceQuotaIncrease(ctx, &servicequotas.RequestServiceQuotaIncreaseInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(code), DesiredValue: aws.Float64(n)}); err != nil {
			t.Fatal(err)
		}
	}
	ask(catalog.QuotaPSpot.Code, 96) // 50h ago; denied 25h later
	c.Clock().AdvanceTo(t0.Add(-2 * time.Hour))
	ask(catalog.QuotaG.Code, 192) // open, its case opened
	for _, typ := range []string{"g5.xlarge", "p4d.24xlarge"} {
		if _, err := c.RunInstances(ctx, &ec2.RunInstancesInput{
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: ec2types.InstanceType(typ),
			TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String(fleet.TagManaged), Value: aws.String("true")}}}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	c.Launch("g5.12xlarge", map[string]string{"Name": "bob-experiments"}, false)
	c.Clock().AdvanceTo(t0)
	return c
}

// runQuota runs the command line with the stack's clients on c.
func runQuota(t *testing.T, c *cloud, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }, now: func() time.Time { return t0 }}
	a.connect = func(context.Context) (*cloud, error) { return c, nil }
	code := a.main(context.Background(), args)
	return code, out.String(), errb.String()
}

func simCloud(t *testing.T, sim *awssim.Cloud) *cloud {
	return &cloud{stack: testStack, ec2: sim, quotas: sim, settings: quotaSettings(t)}
}

// TestQuotaGolden: nightshift quota on the simulated account, and its
// --request refusals and request.
func TestQuotaGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"quota", []string{"quota"}},
		{"quota-json", []string{"quota", "--family", "p", "--json"}},
		{"quota-request", []string{"quota", "--family", "p", "--spot", "--request", "192"}},
		{"quota-request-open", []string{"quota", "--request", "128"}},
		{"quota-request-not-above", []string{"quota", "--family", "p", "--request", "96"}},
		{"quota-bad-family", []string{"quota", "--family", "vt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := quotaWorld(t)
			before := len(sim.QuotaRequests())
			code, stdout, stderr := runQuota(t, simCloud(t, sim), tt.args...)
			golden(t, tt.name, fmt.Sprintf("$ nightshift %s\n-- exit %d --\n-- stdout --\n%s-- stderr --\n%s", shellJoin(tt.args), code, stdout, stderr))
			sent := len(sim.QuotaRequests()) - before
			if want := map[bool]int{true: 1, false: 0}[tt.name == "quota-request"]; sent != want {
				t.Errorf("%d requests filed; want %d", sent, want)
			}
		})
	}
}

// TestQuotaRequestDefault: --request with no family asks for the default
// pool's first type's on-demand quota (g5.xlarge: G and VT), and the
// simulated Service Quotas grants it on its clock.
func TestQuotaRequestDefault(t *testing.T) {
	sim := awssim.New(vclock.NewAt(t0))
	sim.Quota[catalog.QuotaG.Code] = 8
	c := simCloud(t, sim)
	code, stdout, stderr := runQuota(t, c, "quota", "--request", "32")
	if code != 0 || !strings.Contains(stdout, "requested 32 vCPUs of L-DB2E81BA (Running On-Demand G and VT instances), now 8: PENDING") {
		t.Fatalf("quota --request 32 = %d, %q, %q", code, stdout, stderr)
	}
	sim.Clock().Advance(awssim.DefaultQuotaCaseOpened + awssim.DefaultQuotaApproved)
	code, stdout, _ = runQuota(t, c, "quota", "--family", "g", "--spot=false")
	if code != 0 || !strings.Contains(stdout, "applied   32 vCPUs") || !strings.Contains(stdout, "request   APPROVED for 32 vCPUs") {
		t.Errorf("quota after approval = %d, %q", code, stdout)
	}
}

// TestQuotaDenied: a refusal of the user's calls points at the stack's
// UserPolicy.
func TestQuotaDenied(t *testing.T) {
	sim := quotaWorld(t)
	sim.Policy = func(r awssim.Request) bool { return r.Quota == "" }
	code, _, stderr := runQuota(t, simCloud(t, sim), "quota")
	if code != exitFailed || !strings.Contains(stderr, "AccessDeniedException") || !strings.Contains(stderr, "UserPolicyArn") {
		t.Errorf("quota, denied = %d, %q; want 1, AWS's refusal and the UserPolicy named", code, stderr)
	}
}

// TestQuotaTagIsFleets: quota tells nightshift's instances by the fleet's
// own tag.
func TestQuotaTagIsFleets(t *testing.T) {
	if quota.TagManaged != fleet.TagManaged {
		t.Errorf("quota.TagManaged %q, fleet.TagManaged %q", quota.TagManaged, fleet.TagManaged)
	}
}

// TestQuotaMoto: nightshift quota with the real clients on moto. moto
// 5.2.1 knows no EC2 quota (GetServiceQuota for L-DB2E81BA is
// NoSuchResourceException there; AWS answers it): the command says so and
// fails, after moto's DescribeInstances answered.
func TestQuotaMoto(t *testing.T) {
	cfg := awstest.Moto(t).Config()
	c := &cloud{stack: Stack{Name: "nightshift", Region: awstest.Region}, ec2: ec2.NewFromConfig(cfg), quotas: servicequotas.NewFromConfig(cfg), settings: testSettings(t)}
	code, stdout, stderr := runQuota(t, c, "quota")
	if code != exitFailed || stdout != "" || !strings.Contains(stderr, "NoSuchResourceException") || !strings.Contains(stderr, "is the region right?") {
		t.Errorf("quota on moto = %d, %q, %q; want 1 and moto's NoSuchResourceException explained (if moto now knows EC2's quotas, assert its answer)", code, stdout, stderr)
	}
}
