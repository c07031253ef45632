package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/fleet"
)

var _ fleet.Scorer = (*awssim.Cloud)(nil)

// scoresEC2 is the cloud with GetSpotPlacementScores answered by the
// test: scores by zone name (sent by zone id, as EC2 does; a zone left
// out is unscored), or err. DescribeSubnets is the cloud's, or subnetErr.
type scoresEC2 struct {
	*awssim.Cloud
	scores    map[string]int
	err       error
	subnetErr error

	asked       []*ec2.GetSpotPlacementScoresInput
	subnetCalls int
}

func (s *scoresEC2) GetSpotPlacementScores(_ context.Context, in *ec2.GetSpotPlacementScoresInput, _ ...func(*ec2.Options)) (*ec2.GetSpotPlacementScoresOutput, error) {
	s.asked = append(s.asked, in)
	if s.err != nil {
		return nil, s.err
	}
	out := &ec2.GetSpotPlacementScoresOutput{}
	for zone, score := range s.scores {
		out.SpotPlacementScores = append(out.SpotPlacementScores, types.SpotPlacementScore{AvailabilityZoneId: aws.String(s.ZoneID(zone)), Score: aws.Int32(int32(score))})
	}
	return out, nil
}

func (s *scoresEC2) DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	s.subnetCalls++
	if s.subnetErr != nil {
		return nil, s.subnetErr
	}
	return s.Cloud.DescribeSubnets(ctx, in, optFns...)
}

// scoredFleet is a test fleet on subnets a, b and c whose fleet asks s
// for scores, with PlacementScores as on says.
func scoredFleet(on bool, scores map[string]int) (*testFleet, *scoresEC2) {
	tf := newTestFleet("subnet-a", "subnet-b", "subnet-c")
	s := &scoresEC2{Cloud: tf.cloud, scores: scores}
	tf.cfg.PlacementScores = on
	tf.Fleet = fleet.New(s, tf.cloud, tf.cfg, tf.clock.Now)
	return tf, s
}

// noSpot takes g5.xlarge's spot capacity away in every zone, so a launch
// tries every spot rung, in its order, before on-demand.
func noSpot(tf *testFleet) {
	for _, z := range testSubnets {
		tf.cloud.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: z, Spot: true}] = 0
	}
}

// rungTokens maps each try ("type/market/subnet") to its client token.
func rungTokens(tf *testFleet) map[string]string {
	m := map[string]string{}
	for _, in := range tf.runs {
		m[tryKey(in)] = aws.ToString(in.ClientToken)
	}
	return m
}

// TestSpotOrderByScore: spot rungs try the subnets best score first, ties
// and unscored subnets in their configured order (unscored last);
// on-demand keeps the configured order; and every rung's client token is
// the one it has without scores.
func TestSpotOrderByScore(t *testing.T) {
	// Today's tokens: the same launch, scores off.
	base, _ := scoredFleet(false, nil)
	noSpot(base)
	if _, err := base.Launch(context.Background(), request("spot-then-on-demand", "g5.xlarge")); err != nil {
		t.Fatalf("Launch without scores: %v", err)
	}
	today := rungTokens(base)

	tests := []struct {
		name   string
		scores map[string]int
		want   []string
	}{
		{"by score", map[string]int{"us-east-1a": 2, "us-east-1b": 7, "us-east-1c": 9},
			[]string{"g5.xlarge/spot/subnet-c", "g5.xlarge/spot/subnet-b", "g5.xlarge/spot/subnet-a", "g5.xlarge/on-demand/subnet-a"}},
		{"ties keep the configured order", map[string]int{"us-east-1a": 4, "us-east-1b": 8, "us-east-1c": 4},
			[]string{"g5.xlarge/spot/subnet-b", "g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-c", "g5.xlarge/on-demand/subnet-a"}},
		{"unscored after scored", map[string]int{"us-east-1c": 1},
			[]string{"g5.xlarge/spot/subnet-c", "g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-b", "g5.xlarge/on-demand/subnet-a"}},
		{"all equal", map[string]int{"us-east-1a": 3, "us-east-1b": 3, "us-east-1c": 3},
			[]string{"g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-b", "g5.xlarge/spot/subnet-c", "g5.xlarge/on-demand/subnet-a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf, _ := scoredFleet(true, tt.scores)
			noSpot(tf)
			if _, err := tf.Launch(context.Background(), request("spot-then-on-demand", "g5.xlarge")); err != nil {
				t.Fatalf("Launch: %v", err)
			}
			if diff := cmp.Diff(tt.want, tf.tries()); diff != "" {
				t.Errorf("tries (-want +got):\n%s", diff)
			}
			for rung, tok := range rungTokens(tf) {
				if tok != today[rung] {
					t.Errorf("rung %s: token %s; want today's %s", rung, tok, today[rung])
				}
			}
		})
	}
}

// TestSpotOrderTokensManyTypes: over 2 types × 2 markets × 3 subnets, each
// rung's token with scores is its token without, and a launch repeated
// after a crash gets its instance back.
func TestSpotOrderTokensManyTypes(t *testing.T) {
	req := request("spot-then-on-demand", "g5.xlarge", "g4dn.xlarge")
	var tokens []map[string]string
	for _, on := range []bool{false, true} {
		tf, _ := scoredFleet(on, map[string]int{"us-east-1a": 1, "us-east-1b": 6, "us-east-1c": 3})
		for _, typ := range req.Types {
			tf.cloud.Capacity[typ] = 0
		}
		if _, err := tf.Launch(context.Background(), req); !errors.Is(err, fleet.ErrCapacity) {
			t.Fatalf("Launch = %v; want ErrCapacity", err)
		}
		if len(tf.runs) != 12 {
			t.Fatalf("tries = %d; want 12", len(tf.runs))
		}
		tokens = append(tokens, rungTokens(tf))
	}
	if diff := cmp.Diff(tokens[0], tokens[1]); diff != "" {
		t.Errorf("rung → token, without scores (-) and with (+):\n%s", diff)
	}

	tf, _ := scoredFleet(true, map[string]int{"us-east-1a": 1, "us-east-1b": 6, "us-east-1c": 3})
	first, err := tf.Launch(context.Background(), request("spot", "g5.xlarge"))
	if err != nil || first.Zone != "us-east-1b" {
		t.Fatalf("Launch = %s in %s, %v; want an instance in us-east-1b (the best score)", first.ID, first.Zone, err)
	}
	again, err := tf.Launch(context.Background(), request("spot", "g5.xlarge"))
	if err != nil || again.ID != first.ID {
		t.Errorf("Launch repeated = %s, %v; want the first launch's %s", again.ID, err, first.ID)
	}
}

// TestPlacementScoresCalls: one GetSpotPlacementScores per set of types
// (the set, not its order), single zone, 1 instance, the fleet's region;
// one DescribeSubnets for the container; none for on-demand or with the
// switch off; asked again after PlacementScoresTTL.
func TestPlacementScoresCalls(t *testing.T) {
	ctx := context.Background()
	tf, s := scoredFleet(true, map[string]int{"us-east-1b": 9})
	n := 0
	launch := func(market string, instanceTypes ...string) {
		t.Helper()
		req := request(market, instanceTypes...)
		n++
		req.Token += fmt.Sprint(n) // a new launch each time
		if _, err := tf.Launch(ctx, req); err != nil {
			t.Fatalf("Launch(%s %v): %v", market, instanceTypes, err)
		}
	}
	launch("on-demand", "g5.xlarge")
	if len(s.asked) != 0 || s.subnetCalls != 0 {
		t.Errorf("on-demand launch: %d score calls, %d subnet calls; want none", len(s.asked), s.subnetCalls)
	}
	launch("spot", "g5.xlarge", "g4dn.xlarge")
	launch("spot", "g4dn.xlarge", "g5.xlarge")
	launch("spot-then-on-demand", "g5.xlarge", "g4dn.xlarge", "g5.xlarge")
	if len(s.asked) != 1 {
		t.Fatalf("score calls for one set = %d; want 1", len(s.asked))
	}
	want := &ec2.GetSpotPlacementScoresInput{
		InstanceTypes: []string{"g4dn.xlarge", "g5.xlarge"}, TargetCapacity: aws.Int32(1),
		SingleAvailabilityZone: aws.Bool(true), RegionNames: []string{testRegion},
	}
	if diff := cmp.Diff(want, s.asked[0], ignoreNoSerde); diff != "" {
		t.Errorf("GetSpotPlacementScores input (-want +got):\n%s", diff)
	}
	launch("spot", "g6.xlarge")
	if len(s.asked) != 2 || s.subnetCalls != 1 {
		t.Errorf("after another set: %d score calls, %d subnet calls; want 2 and 1", len(s.asked), s.subnetCalls)
	}
	for _, in := range tf.runs {
		if in.InstanceMarketOptions != nil && aws.ToString(in.SubnetId) != "subnet-b" {
			t.Errorf("spot try in %s; want subnet-b (the best score) first and launched", aws.ToString(in.SubnetId))
		}
	}

	// The cache expires: the scores change, and the next launch follows.
	s.scores = map[string]int{"us-east-1c": 9}
	tf.clock.AdvanceTo(tf.clock.Now().Add(fleet.PlacementScoresTTL - time.Second))
	tf.forget()
	launch("spot", "g5.xlarge", "g4dn.xlarge")
	if len(s.asked) != 2 || tf.tries()[0] != "g5.xlarge/spot/subnet-b" {
		t.Errorf("within the TTL: %d score calls, tries %v; want 2 and the cached order", len(s.asked), tf.tries())
	}
	tf.clock.AdvanceTo(tf.clock.Now().Add(time.Second))
	tf.forget()
	launch("spot", "g5.xlarge", "g4dn.xlarge")
	if len(s.asked) != 3 || tf.tries()[0] != "g5.xlarge/spot/subnet-c" {
		t.Errorf("after the TTL: %d score calls, tries %v; want 3 and subnet-c first", len(s.asked), tf.tries())
	}
	if s.subnetCalls != 1 {
		t.Errorf("DescribeSubnets calls = %d; want 1 for the container", s.subnetCalls)
	}

	// Switched off: no call, the configured order.
	off, so := scoredFleet(false, map[string]int{"us-east-1c": 9})
	if _, err := off.Launch(ctx, request("spot", "g5.xlarge")); err != nil {
		t.Fatal(err)
	}
	if len(so.asked) != 0 || so.subnetCalls != 0 || off.tries()[0] != "g5.xlarge/spot/subnet-a" {
		t.Errorf("switched off: %d score calls, %d subnet calls, tries %v; want none and subnet-a", len(so.asked), so.subnetCalls, off.tries())
	}
}

// TestPlacementScoresErrors: a refused score or subnet call launches in the
// configured order, is remembered for PlacementScoresTTL (no call on the
// next launches) and asked again after it.
func TestPlacementScoresErrors(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "not authorized"}
	for _, tc := range []struct {
		name  string
		setup func(*scoresEC2)
		calls func(*scoresEC2) int
	}{
		{"scores refused", func(s *scoresEC2) { s.err = denied }, func(s *scoresEC2) int { return len(s.asked) }},
		{"scores not modelled", func(s *scoresEC2) { s.err = &smithy.GenericAPIError{Code: "NotModelledBySimulation"} }, func(s *scoresEC2) int { return len(s.asked) }},
		{"subnets refused", func(s *scoresEC2) { s.subnetErr = denied }, func(s *scoresEC2) int { return s.subnetCalls }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tf, s := scoredFleet(true, map[string]int{"us-east-1c": 9})
			tc.setup(s)
			for k := range 3 {
				req := request("spot", "g5.xlarge")
				req.Token += string(rune('a' + k))
				tf.forget()
				if _, err := tf.Launch(context.Background(), req); err != nil {
					t.Fatalf("Launch %d: %v; want a launch in the configured order", k, err)
				}
				if got := tf.tries(); got[0] != "g5.xlarge/spot/subnet-a" {
					t.Errorf("launch %d tries %v; want subnet-a first", k, got)
				}
				tf.clock.AdvanceTo(tf.clock.Now().Add(10 * time.Minute))
			}
			if n := tc.calls(s); n != 1 {
				t.Errorf("calls over three launches in 30 minutes = %d; want 1 (the error remembered)", n)
			}
			if err := tf.PlacementScoresErr(); err == nil {
				t.Error("PlacementScoresErr = nil; want the remembered error")
			}
			s.err, s.subnetErr = nil, nil
			tf.clock.AdvanceTo(tf.clock.Now().Add(fleet.PlacementScoresTTL))
			tf.forget()
			if _, err := tf.Launch(context.Background(), request("spot", "g5.xlarge")); err != nil {
				t.Fatal(err)
			}
			if n := tc.calls(s); n != 2 || tf.tries()[0] != "g5.xlarge/spot/subnet-c" {
				t.Errorf("after the TTL: %d calls, tries %v; want 2 and subnet-c first", n, tf.tries())
			}
			if err := tf.PlacementScoresErr(); err != nil {
				t.Errorf("PlacementScoresErr after a good answer = %v; want nil", err)
			}
		})
	}
}

// TestPlacementScoresNoScorer: an EC2 client without the Scorer methods
// launches in the configured order, and PlacementScoresErr says why.
func TestPlacementScoresNoScorer(t *testing.T) {
	tf := newTestFleet("subnet-a", "subnet-b")
	tf.cfg.PlacementScores = true
	tf.cloud.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1a", Spot: true}] = 0
	f := fleet.New(struct{ fleet.EC2 }{tf.cloud}, tf.cloud, tf.cfg, tf.clock.Now)
	if _, err := f.Launch(context.Background(), request("spot", "g5.xlarge")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"g5.xlarge/spot/subnet-a", "g5.xlarge/spot/subnet-b"}, tf.tries()); diff != "" {
		t.Errorf("tries (-want +got):\n%s", diff)
	}
	if f.PlacementScoresErr() == nil {
		t.Error("PlacementScoresErr = nil; want the client's missing methods named")
	}
}

// BenchmarkSpotPlacementScores: spot launches of g5.xlarge over subnets a
// and b, a's zone out of spot capacity, on the simulated cloud's own
// scores; a container makes 1 launch (a cold Lambda) or 20 a second apart
// (a warm one, whose unavailable-offerings memory also learns). It reports
// RunInstances per launch and the score and subnet calls that bought them.
func BenchmarkSpotPlacementScores(b *testing.B) {
	for _, c := range []struct {
		name     string
		on       bool
		launches int
	}{{"scores/cold", true, 1}, {"configured order/cold", false, 1}, {"scores/warm", true, 20}, {"configured order/warm", false, 20}} {
		b.Run(c.name, func(b *testing.B) {
			runs, asks, placed := 0, 0, 0
			for range b.N {
				tf := newTestFleet("subnet-a", "subnet-b")
				tf.cfg.PlacementScores = c.on
				f := fleet.New(tf.cloud, tf.cloud, tf.cfg, tf.clock.Now)
				tf.cloud.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: tf.cloud.Subnets["subnet-a"], Spot: true}] = 0
				for k := range c.launches {
					req := request("spot", "g5.xlarge")
					req.Token += fmt.Sprint(k)
					inst, err := f.Launch(context.Background(), req)
					if err != nil || !inst.Spot {
						b.Fatalf("launch: spot %v, %v", inst.Spot, err)
					}
					placed++
					tf.clock.AdvanceTo(tf.clock.Now().Add(time.Second))
				}
				runs += tf.cloud.Calls["RunInstances"]
				asks += tf.cloud.Calls["GetSpotPlacementScores"] + tf.cloud.Calls["DescribeSubnets"]
			}
			b.ReportMetric(float64(runs)/float64(placed), "RunInstances/launch")
			b.ReportMetric(float64(asks)/float64(placed), "score+subnet-calls/launch")
		})
	}
}
