package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// PlacementScoresTTL is how long a set of types' spot placement scores, or
// the error that fetching them met, is reused before EC2 is asked again.
// EC2 documents two limits on the call (User Guide, "Spot placement
// score", Limitations): a target capacity limit from recent spot usage,
// and a limit on new request configurations within 24 hours, after which
// only configurations already used may be asked until the next 24-hour
// period. A stack asks for a handful of configurations (its pools' type
// lists, 1 instance, its region), so an hour per configuration per warm
// container keeps it to a few calls an hour, and an account refused (no
// permission, a limit reached) tries again hourly, not on every launch.
// A score is a recommendation at the time asked, so it is an ordering
// hint only: the unavailable-offerings memory (UnavailableTTL) still
// skips what EC2 just refused.
const PlacementScoresTTL = time.Hour

// Scorer is the part of the EC2 API that orders a spot launch's subnets
// by spot placement score. The fleet uses it when its EC2 client has it
// (the SDK's client does) and Config.PlacementScores is set.
type Scorer interface {
	GetSpotPlacementScores(ctx context.Context, in *ec2.GetSpotPlacementScoresInput, optFns ...func(*ec2.Options)) (*ec2.GetSpotPlacementScoresOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
}

var _ Scorer = (*ec2.Client)(nil)

// errNoScorer says PlacementScores is on but the fleet's EC2 client has no
// Scorer methods (a wrapper that declares only EC2's): nothing is ordered.
var errNoScorer = errors.New("spot placement scores: the EC2 client has no GetSpotPlacementScores and DescribeSubnets")

// placement is the fleet's memory of spot placement scores, in this
// process, as offerings are: per set of instance types, the score of each
// Availability Zone id; and, fetched once, each subnet's zone id.
type placement struct {
	sets map[string]scored
	// zoneIDs maps each configured subnet to its zone id once DescribeSubnets
	// answered (a subnet never moves); zoneErr and zoneAt remember a failed
	// DescribeSubnets for PlacementScoresTTL.
	zoneIDs map[string]string
	zoneErr error
	zoneAt  time.Time
}

// scored is one set of types' scores by zone id, or the error that
// fetching them met, and when.
type scored struct {
	byZone map[string]int
	err    error
	at     time.Time
}

// spotOrder returns the order to try the configured subnets in for a spot
// launch of instanceTypes: indexes into subnets, by descending spot
// placement score of the subnet's zone for the set; a tie, or a subnet
// without a score, keeps its configured place (unscored after scored).
// Without scores (switched off, not offered by the client, no region, an error now
// or within PlacementScoresTTL) it is the configured order.
func (f *Fleet) spotOrder(ctx context.Context, instanceTypes, subnets []string) []int {
	order := make([]int, len(subnets))
	for i := range order {
		order[i] = i
	}
	s, ok := f.ec2.(Scorer)
	if !f.cfg.PlacementScores || !ok || f.cfg.Region == "" || len(subnets) < 2 || len(instanceTypes) == 0 {
		return order
	}
	zones, err := f.subnetZones(ctx, s, subnets)
	if err != nil {
		return order
	}
	byZone, err := f.placementScores(ctx, s, instanceTypes)
	if err != nil {
		return order
	}
	score := func(i int) int { return byZone[zones[subnets[i]]] } // 0: unscored
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(score(b), score(a)) })
	return order
}

// subnetZones returns each configured subnet's zone id: one DescribeSubnets
// for the container's life, or its error for PlacementScoresTTL.
func (f *Fleet) subnetZones(ctx context.Context, s Scorer, subnets []string) (map[string]string, error) {
	f.mu.Lock()
	zones, zerr, at := f.scores.zoneIDs, f.scores.zoneErr, f.scores.zoneAt
	f.mu.Unlock()
	switch {
	case zones != nil:
		return zones, nil
	case zerr != nil && f.now().Sub(at) < PlacementScoresTTL:
		return nil, zerr
	}
	zones = map[string]string{}
	out, err := s.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: subnets})
	if err == nil {
		for _, sn := range out.Subnets {
			zones[aws.ToString(sn.SubnetId)] = aws.ToString(sn.AvailabilityZoneId)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.scores.zoneErr, f.scores.zoneAt = fmt.Errorf("describe subnets: %w", err), f.now()
		return nil, f.scores.zoneErr
	}
	f.scores.zoneIDs, f.scores.zoneErr = zones, nil
	return zones, nil
}

// placementScores returns the set's spot placement scores by zone id: one
// GetSpotPlacementScores (single zone, one instance, the fleet's region)
// per set per PlacementScoresTTL, its error remembered as long.
func (f *Fleet) placementScores(ctx context.Context, s Scorer, instanceTypes []string) (map[string]int, error) {
	set := slices.Compact(slices.Sorted(slices.Values(instanceTypes)))
	key := strings.Join(set, ",")
	f.mu.Lock()
	c, ok := f.scores.sets[key]
	f.mu.Unlock()
	if ok && f.now().Sub(c.at) < PlacementScoresTTL {
		return c.byZone, c.err
	}
	in := &ec2.GetSpotPlacementScoresInput{
		InstanceTypes: set, TargetCapacity: aws.Int32(1), SingleAvailabilityZone: aws.Bool(true),
		// Without a region EC2 scores the zones of every region, the top 10
		// of which need not include this one's.
		RegionNames: []string{f.cfg.Region},
	}
	// One page: a region has fewer zones than EC2's first page of 10.
	out, err := s.GetSpotPlacementScores(ctx, in)
	c = scored{at: f.now()}
	if err != nil {
		c.err = fmt.Errorf("spot placement scores for %s: %w", key, err)
	} else {
		c.byZone = map[string]int{}
		for _, sc := range out.SpotPlacementScores {
			if id := aws.ToString(sc.AvailabilityZoneId); id != "" {
				c.byZone[id] = int(aws.ToInt32(sc.Score))
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scores.sets == nil {
		f.scores.sets = map[string]scored{}
	}
	f.scores.sets[key] = c
	return c.byZone, c.err
}

// PlacementScoresErr returns the error the last spot placement scores or
// subnet look-up met while it is remembered, nil otherwise: the
// configured subnet order stands meanwhile (for a log or a status line).
func (f *Fleet) PlacementScoresErr() error {
	if _, ok := f.ec2.(Scorer); f.cfg.PlacementScores && !ok {
		return errNoScorer
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.scores.zoneErr != nil && f.now().Sub(f.scores.zoneAt) < PlacementScoresTTL {
		return f.scores.zoneErr
	}
	var last scored
	for _, c := range f.scores.sets {
		if c.err != nil && f.now().Sub(c.at) < PlacementScoresTTL && c.at.After(last.at) {
			last = c
		}
	}
	return last.err
}
