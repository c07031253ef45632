package awssim

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// DefaultSpotScore is the spot placement score of a zone with spot capacity
// for a type when SpotScores does not say otherwise: the middle of EC2's
// 1–10 scale.
const DefaultSpotScore = 5

// lowScore is the highest score a request naming fewer than three instance
// types gets. EC2 documents that such a request's score "will always be
// low" (GetSpotPlacementScores, InstanceTypes); how low is not documented,
// so the simulation caps it here and keeps a zone out of capacity at 1.
const lowScore = 3

// defaultZoneIDs maps the simulated region's zone names to zone ids. Like
// a real account's (the mapping differs from account to account), the
// letters and the numbers do not line up: a caller that takes a zone name
// for its id, or the other way round, finds nothing.
var defaultZoneIDs = map[string]string{
	"us-east-1a": "use1-az4", "us-east-1b": "use1-az6", "us-east-1c": "use1-az1",
	"us-east-1d": "use1-az2", "us-east-1e": "use1-az3", "us-east-1f": "use1-az5",
}

// ZoneID returns the Availability Zone id of a zone name: the cloud's
// ZoneIDs, else the default mapping, else "" (an unknown zone).
func (c *Cloud) ZoneID(zone string) string {
	if id, ok := c.ZoneIDs[zone]; ok {
		return id
	}
	return defaultZoneIDs[zone]
}

// DescribeSubnets describes the cloud's subnets: their ids, zones and zone
// ids. It honours SubnetIds (an unknown one is InvalidSubnetID.NotFound);
// filters and paging are not modelled. The caller's policy is asked.
func (c *Cloud) DescribeSubnets(_ context.Context, in *ec2.DescribeSubnetsInput, _ ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	return serve(c, "DescribeSubnets", in, c.describeSubnets)
}

func (c *Cloud) describeSubnets(in *ec2.DescribeSubnetsInput) (*ec2.DescribeSubnetsOutput, error) {
	switch {
	case len(in.Filters) > 0:
		return nil, notModelled("DescribeSubnets filters")
	case in.NextToken != nil || in.MaxResults != nil:
		return nil, notModelled("DescribeSubnets paging")
	case aws.ToBool(in.DryRun):
		return nil, notModelled("DescribeSubnets DryRun")
	}
	if err := c.authorize(Request{Op: "DescribeSubnets"}, "UnauthorizedOperation"); err != nil {
		return nil, err
	}
	ids := in.SubnetIds
	if len(ids) == 0 {
		ids = slices.Sorted(maps.Keys(c.Subnets))
	}
	out := &ec2.DescribeSubnetsOutput{}
	for _, id := range ids {
		zone, ok := c.Subnets[id]
		if !ok {
			return nil, apiError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		out.Subnets = append(out.Subnets, types.Subnet{
			SubnetId: aws.String(id), AvailabilityZone: aws.String(zone), AvailabilityZoneId: aws.String(c.ZoneID(zone)),
			State: types.SubnetStateAvailable, OwnerId: aws.String(Account),
		})
	}
	return out, nil
}

// GetSpotPlacementScores scores, from 1 to 10, each zone of the cloud's
// subnets for a spot request of the instance types asked, per zone id
// (SingleAvailabilityZone), best first, at most 10 as EC2 answers. A
// zone's score for the set is its best type's: 1 where the type has no
// spot capacity there (ZoneCapacity of 0, or Capacity of 0), else
// SpotScores' value for the spot offering, else DefaultSpotScore; a set of
// fewer than three types scores at most lowScore. Only what nightshift
// asks is modelled: instance types (not requirements), a target capacity
// of 1 instance, single-zone scores, this region; anything else is
// refused. The caller's policy is asked.
func (c *Cloud) GetSpotPlacementScores(_ context.Context, in *ec2.GetSpotPlacementScoresInput, _ ...func(*ec2.Options)) (*ec2.GetSpotPlacementScoresOutput, error) {
	return serve(c, "GetSpotPlacementScores", in, c.getSpotPlacementScores)
}

func (c *Cloud) getSpotPlacementScores(in *ec2.GetSpotPlacementScoresInput) (*ec2.GetSpotPlacementScoresOutput, error) {
	switch {
	case in.InstanceRequirementsWithMetadata != nil:
		return nil, notModelled("spot placement scores by instance requirements (only InstanceTypes)")
	case len(in.InstanceTypes) == 0:
		return nil, notModelled("spot placement scores without instance types")
	case aws.ToInt32(in.TargetCapacity) != 1:
		return nil, notModelled("spot placement scores for a target capacity of %d (only 1)", aws.ToInt32(in.TargetCapacity))
	case in.TargetCapacityUnitType != "" && in.TargetCapacityUnitType != types.TargetCapacityUnitType("units"):
		return nil, notModelled("spot placement scores in %s (only instances)", in.TargetCapacityUnitType)
	case !aws.ToBool(in.SingleAvailabilityZone):
		return nil, notModelled("spot placement scores per Region (only SingleAvailabilityZone)")
	case len(in.RegionNames) > 1 || len(in.RegionNames) == 1 && in.RegionNames[0] != Region:
		return nil, notModelled("spot placement scores in %s (only %s)", strings.Join(in.RegionNames, ", "), Region)
	case in.NextToken != nil:
		return nil, notModelled("spot placement scores paging")
	case aws.ToBool(in.DryRun):
		return nil, notModelled("GetSpotPlacementScores DryRun")
	}
	for _, t := range in.InstanceTypes {
		if _, ok := LookupType(t); !ok {
			return nil, notModelled("spot placement scores for instance type %q", t)
		}
	}
	if err := c.authorize(Request{Op: "GetSpotPlacementScores"}, "UnauthorizedOperation"); err != nil {
		return nil, err
	}
	distinct := slices.Compact(slices.Sorted(slices.Values(in.InstanceTypes)))
	var scores []types.SpotPlacementScore
	for _, zone := range c.zones() {
		best := 1
		for _, t := range distinct {
			best = max(best, c.spotScore(Offering{Type: t, Zone: zone, Spot: true}))
		}
		if len(distinct) < 3 {
			best = min(best, lowScore)
		}
		scores = append(scores, types.SpotPlacementScore{
			AvailabilityZoneId: aws.String(c.ZoneID(zone)), Region: aws.String(Region), Score: aws.Int32(int32(best)),
		})
	}
	slices.SortStableFunc(scores, func(a, b types.SpotPlacementScore) int { return int(aws.ToInt32(b.Score) - aws.ToInt32(a.Score)) })
	if len(scores) > 10 {
		scores = scores[:10]
	}
	return &ec2.GetSpotPlacementScoresOutput{SpotPlacementScores: scores}, nil
}

// spotScore is one spot offering's score: 1 without capacity, else the
// SpotScores knob, else DefaultSpotScore.
func (c *Cloud) spotScore(o Offering) int {
	if c.capacity(o) != nil {
		return 1
	}
	if s, ok := c.SpotScores[o]; ok {
		return min(max(s, 1), 10)
	}
	return DefaultSpotScore
}
