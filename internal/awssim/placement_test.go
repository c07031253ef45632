package awssim_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func scoresIn(instanceTypes ...string) *ec2.GetSpotPlacementScoresInput {
	return &ec2.GetSpotPlacementScoresInput{
		InstanceTypes: instanceTypes, TargetCapacity: aws.Int32(1), SingleAvailabilityZone: aws.Bool(true),
		RegionNames: []string{awssim.Region},
	}
}

// scoreMap reads an answer as zone id → score, and checks it is best first.
func scoreMap(t *testing.T, out *ec2.GetSpotPlacementScoresOutput) map[string]int32 {
	t.Helper()
	m := map[string]int32{}
	for i, s := range out.SpotPlacementScores {
		if aws.ToString(s.Region) != awssim.Region {
			t.Errorf("score %d: region %q; want %s", i, aws.ToString(s.Region), awssim.Region)
		}
		if i > 0 && aws.ToInt32(s.Score) > aws.ToInt32(out.SpotPlacementScores[i-1].Score) {
			t.Errorf("scores not best first: %d after %d", aws.ToInt32(s.Score), aws.ToInt32(out.SpotPlacementScores[i-1].Score))
		}
		m[aws.ToString(s.AvailabilityZoneId)] = aws.ToInt32(s.Score)
	}
	return m
}

// TestSpotPlacementScores: per zone id, a zone out of spot capacity for
// every type asked scores 1, SpotScores sets the others (DefaultSpotScore
// without it), a set scores as its best type, fewer than three types score
// low, and on-demand capacity does not count.
func TestSpotPlacementScores(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Subnets = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b", "subnet-c": "us-east-1c"}
	a, b, cz := c.ZoneID("us-east-1a"), c.ZoneID("us-east-1b"), c.ZoneID("us-east-1c")
	if a == "" || a == "us-east-1a" || a == b {
		t.Fatalf("zone ids %q, %q; want distinct ids, not names", a, b)
	}
	spot := func(typ, zone string) awssim.Offering { return awssim.Offering{Type: typ, Zone: zone, Spot: true} }
	c.ZoneCapacity[spot("g5.xlarge", "us-east-1a")] = 0
	c.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1b"}] = 0 // on-demand: no bearing
	c.SpotScores = map[awssim.Offering]int{spot("g5.xlarge", "us-east-1a"): 9, spot("g5.xlarge", "us-east-1c"): 8}

	tests := []struct {
		name  string
		types []string
		want  map[string]int32
	}{
		{"one type, low", []string{"g5.xlarge"}, map[string]int32{a: 1, b: 3, cz: 3}},
		{"three types, best of the set", []string{"g5.xlarge", "g4dn.xlarge", "g6.xlarge"}, map[string]int32{a: 5, b: 5, cz: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.GetSpotPlacementScores(ctx, scoresIn(tt.types...))
			if err != nil {
				t.Fatalf("GetSpotPlacementScores(%v) = %v", tt.types, err)
			}
			if diff := cmp.Diff(tt.want, scoreMap(t, out)); diff != "" {
				t.Errorf("scores by zone id (-want +got):\n%s", diff)
			}
		})
	}

	// Out of spot capacity for every type of the set: 1, whatever SpotScores says.
	for _, typ := range []string{"g4dn.xlarge", "g6.xlarge"} {
		c.ZoneCapacity[spot(typ, "us-east-1a")] = 0
	}
	out, err := c.GetSpotPlacementScores(ctx, scoresIn("g5.xlarge", "g4dn.xlarge", "g6.xlarge"))
	if err != nil {
		t.Fatal(err)
	}
	if got := scoreMap(t, out)[a]; got != 1 {
		t.Errorf("us-east-1a out of spot for the whole set scores %d; want 1", got)
	}
	if n := c.Calls["GetSpotPlacementScores"]; n != 3 {
		t.Errorf("calls counted = %d; want 3", n)
	}
}

// TestSpotPlacementScoresRefused: what the simulation does not model is
// refused, not answered; the policy is asked.
func TestSpotPlacementScoresRefused(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Subnets = map[string]string{"subnet-a": "us-east-1a"}
	for name, mutate := range map[string]func(*ec2.GetSpotPlacementScoresInput){
		"regional scores": func(in *ec2.GetSpotPlacementScoresInput) { in.SingleAvailabilityZone = nil },
		"two instances":   func(in *ec2.GetSpotPlacementScoresInput) { in.TargetCapacity = aws.Int32(2) },
		"vCPUs": func(in *ec2.GetSpotPlacementScoresInput) {
			in.TargetCapacityUnitType = types.TargetCapacityUnitTypeVcpu
		},
		"another region":  func(in *ec2.GetSpotPlacementScoresInput) { in.RegionNames = []string{"eu-west-1"} },
		"no types":        func(in *ec2.GetSpotPlacementScoresInput) { in.InstanceTypes = nil },
		"an unknown type": func(in *ec2.GetSpotPlacementScoresInput) { in.InstanceTypes = []string{"x9.huge"} },
		"instance requirements": func(in *ec2.GetSpotPlacementScoresInput) {
			in.InstanceRequirementsWithMetadata = &types.InstanceRequirementsWithMetadataRequest{}
		},
	} {
		in := scoresIn("g5.xlarge")
		mutate(in)
		if _, err := c.GetSpotPlacementScores(ctx, in); code(err) != "NotModelledBySimulation" {
			t.Errorf("%s: %v; want NotModelledBySimulation", name, err)
		}
	}
	c.Policy = func(r awssim.Request) bool { return r.Op != "GetSpotPlacementScores" }
	if _, err := c.GetSpotPlacementScores(ctx, scoresIn("g5.xlarge")); code(err) != "UnauthorizedOperation" {
		t.Errorf("denied by policy: %v; want UnauthorizedOperation", err)
	}
	if len(c.Denied) != 1 {
		t.Errorf("Denied = %v; want the one call", c.Denied)
	}
}

// TestDescribeSubnets: each subnet with its zone and zone id; an unknown
// subnet is InvalidSubnetID.NotFound; filters are not modelled.
func TestDescribeSubnets(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Subnets = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	c.ZoneIDs = map[string]string{"us-east-1b": "use1-az9"}
	out, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-b", "subnet-a"}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range out.Subnets {
		got = append(got, aws.ToString(s.SubnetId)+" "+aws.ToString(s.AvailabilityZone)+" "+aws.ToString(s.AvailabilityZoneId))
	}
	want := []string{"subnet-b us-east-1b use1-az9", "subnet-a us-east-1a " + c.ZoneID("us-east-1a")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subnets (-want +got):\n%s", diff)
	}
	if _, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-x"}}); code(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("unknown subnet: %v; want InvalidSubnetID.NotFound", err)
	}
	if _, err := c.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("vpc-id")}}}); code(err) != "NotModelledBySimulation" {
		t.Errorf("filters: %v; want NotModelledBySimulation", err)
	}
}
