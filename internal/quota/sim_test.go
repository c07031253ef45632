package quota_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func run(t *testing.T, c *awssim.Cloud, typ string, spot bool) string {
	t.Helper()
	in := &ec2.RunInstancesInput{
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: ec2types.InstanceType(typ),
		TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeInstance, Tags: []ec2types.Tag{{Key: aws.String("nightshift:managed"), Value: aws.String("true")}}}},
	}
	if spot {
		in.InstanceMarketOptions = &ec2types.InstanceMarketOptionsRequest{MarketType: ec2types.MarketTypeSpot}
	}
	out, err := c.RunInstances(context.Background(), in)
	if err != nil {
		t.Fatalf("RunInstances(%s) = %v", typ, err)
	}
	return aws.ToString(out.Instances[0].InstanceId)
}

// TestOnTheSimulatedCloud: the adapter against awssim — usage counts
// every GPU instance up (another person's too, not stopped ones), a
// request lives to approval and raises the applied value once forgotten.
func TestOnTheSimulatedCloud(t *testing.T) {
	clk := vclock.New()
	c := awssim.New(clk)
	c.Quota[catalog.QuotaG.Code] = 64
	ctx := context.Background()
	run(t, c, "g5.xlarge", false)
	run(t, c, "g4dn.xlarge", true)
	stopped := run(t, c, "g5.2xlarge", false)
	run(t, c, "p3.2xlarge", false)
	c.Launch("g6.12xlarge", map[string]string{"Name": "alice-box"}, false) // not nightshift's
	clk.Advance(time.Minute)
	if err := c.ByHand(stopped, "stop"); err != nil {
		t.Fatal(err)
	}
	q := quota.New(c, c, quota.Config{TTL: time.Hour}, clk.Now)
	used, err := q.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{catalog.QuotaG.Code: 4 + 48, catalog.QuotaGSpot.Code: 4, catalog.QuotaP.Code: 8}
	if d := cmp.Diff(want, used); d != "" {
		t.Errorf("Usage (-want +got):\n%s", d)
	}
	if v, err := q.Applied(ctx, catalog.QuotaG.Code); err != nil || v != 64 {
		t.Fatalf("Applied = %v, %v; want 64", v, err)
	}
	if _, err := q.Request(ctx, catalog.QuotaG.Code, 64); !errors.Is(err, quota.ErrInvalid) {
		t.Errorf("Request(the applied value) = %v; want ErrInvalid", err)
	}
	r, err := q.Request(ctx, catalog.QuotaG.Code, 256)
	if err != nil || r.Status != quota.StatusPending || r.Desired != 256 || !r.Created.Equal(clk.Now()) {
		t.Fatalf("Request = %+v, %v", r, err)
	}
	if _, err := q.Request(ctx, catalog.QuotaG.Code, 512); !errors.Is(err, quota.ErrOpen) {
		t.Errorf("a second Request = %v; want ErrOpen", err)
	}
	clk.Advance(awssim.DefaultQuotaCaseOpened + awssim.DefaultQuotaApproved)
	got, err := q.Get(ctx, r.ID)
	if err != nil || !got.Granted() || got.CaseID == "" {
		t.Errorf("Get after approval = %+v, %v; want APPROVED with a case", got, err)
	}
	if v, _ := q.Applied(ctx, catalog.QuotaG.Code); v != 64 {
		t.Errorf("Applied before Forget = %v; want the cached 64", v)
	}
	q.Forget(catalog.QuotaG.Code)
	if v, _ := q.Applied(ctx, catalog.QuotaG.Code); v != 256 {
		t.Errorf("Applied after Forget = %v; want 256", v)
	}
	hist, err := q.History(ctx, catalog.QuotaG.Code)
	if err != nil || len(hist) != 1 || hist[0].ID != r.ID {
		t.Errorf("History = %+v, %v; want the one request", hist, err)
	}
	if c.Calls["DescribeInstances"] != 1 {
		t.Errorf("DescribeInstances calls %d; want 1", c.Calls["DescribeInstances"])
	}
}
