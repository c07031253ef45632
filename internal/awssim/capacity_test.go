package awssim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

func runIn(subnet string, spot bool) *ec2.RunInstancesInput {
	in := &ec2.RunInstancesInput{MinCount: aws.Int32(1), MaxCount: aws.Int32(1), ImageId: aws.String("ami-1"), InstanceType: "g5.xlarge", SubnetId: aws.String(subnet)}
	if spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{MarketType: types.MarketTypeSpot}
	}
	return in
}

// TestZoneCapacity: capacity per type, zone and market. A zone and market
// with none refuses RunInstances there, naming the zone, while the other
// zone and the other market launch; N left admits N launches; the type's
// own Capacity still applies on top; every refusal and launch is logged.
func TestZoneCapacity(t *testing.T) {
	ctx := context.Background()
	c := awssim.New(vclock.New())
	c.Subnets = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	c.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1a", Spot: true}] = 0
	c.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1b", Spot: false}] = 1

	_, err := c.RunInstances(ctx, runIn("subnet-a", true))
	if code(err) != "InsufficientInstanceCapacity" || !strings.Contains(err.Error(), "(us-east-1a)") {
		t.Fatalf("spot in us-east-1a = %v; want InsufficientInstanceCapacity naming us-east-1a", err)
	}
	if _, err := c.RunInstances(ctx, runIn("subnet-a", false)); err != nil {
		t.Errorf("on-demand in us-east-1a = %v; want a launch (only spot is out there)", err)
	}
	if _, err := c.RunInstances(ctx, runIn("subnet-b", true)); err != nil {
		t.Errorf("spot in us-east-1b = %v; want a launch", err)
	}
	if _, err := c.RunInstances(ctx, runIn("subnet-b", false)); err != nil {
		t.Errorf("first on-demand in us-east-1b = %v; want a launch (1 left)", err)
	}
	if _, err := c.RunInstances(ctx, runIn("subnet-b", false)); code(err) != "InsufficientInstanceCapacity" {
		t.Errorf("second on-demand in us-east-1b = %v; want InsufficientInstanceCapacity (the one left was used)", err)
	}
	c.Capacity["g5.xlarge"] = 0 // the type's own knob: out everywhere
	if _, err := c.RunInstances(ctx, runIn("subnet-a", false)); code(err) != "InsufficientInstanceCapacity" {
		t.Errorf("with Capacity[g5.xlarge] = 0: %v; want InsufficientInstanceCapacity", err)
	}
	var got []string
	for _, l := range c.Launches {
		got = append(got, l.Offering.String()+" "+l.Subnet+" "+l.Code)
	}
	want := []string{
		"g5.xlarge spot in us-east-1a subnet-a InsufficientInstanceCapacity",
		"g5.xlarge on-demand in us-east-1a subnet-a ",
		"g5.xlarge spot in us-east-1b subnet-b ",
		"g5.xlarge on-demand in us-east-1b subnet-b ",
		"g5.xlarge on-demand in us-east-1b subnet-b InsufficientInstanceCapacity",
		"g5.xlarge on-demand in us-east-1a subnet-a InsufficientInstanceCapacity",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("launch log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestZoneCapacityStart: a stopped instance starts in its own zone and
// market: StartInstances is refused when that offering has no capacity
// (whatever the other zones have), and succeeds once it is back; a start
// counts one down from N left, as a launch does.
func TestZoneCapacityStart(t *testing.T) {
	ctx := context.Background()
	clock := vclock.New()
	c := awssim.New(clock)
	c.Subnets = map[string]string{"subnet-a": "us-east-1a", "subnet-b": "us-east-1b"}
	out, err := c.RunInstances(ctx, runIn("subnet-a", false))
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(out.Instances[0].InstanceId)
	clock.Advance(awssim.DefaultBoot)
	if _, err := c.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Minute)
	a := awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1a"}
	c.ZoneCapacity[a] = 0
	c.ZoneCapacity[awssim.Offering{Type: "g5.xlarge", Zone: "us-east-1b"}] = 5
	_, err = c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}})
	if code(err) != "InsufficientInstanceCapacity" || !strings.Contains(err.Error(), "us-east-1a") {
		t.Fatalf("StartInstances in a zone with none = %v; want InsufficientInstanceCapacity naming us-east-1a", err)
	}
	if err := c.ByHand(id, "start"); code(err) != "InsufficientInstanceCapacity" {
		t.Errorf("a person's start = %v; want InsufficientInstanceCapacity too", err)
	}
	c.ZoneCapacity[a] = 1
	if _, err := c.StartInstances(ctx, &ec2.StartInstancesInput{InstanceIds: []string{id}}); err != nil {
		t.Fatalf("StartInstances with 1 left = %v", err)
	}
	if left := c.ZoneCapacity[a]; left != 0 {
		t.Errorf("capacity left after a start = %d; want 0", left)
	}
}
