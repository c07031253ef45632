package fleet_test

import (
	"context"
	"errors"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/fleet"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// amiParameter stands in for the DLAMI's public parameter: moto refuses
// parameter names under /aws/.
const amiParameter = "/nightshift/test/ami-id"

// motoFleet is a Fleet on moto's EC2 and SSM, through counting wrappers.
type motoFleet struct {
	*fleet.Fleet
	ec2    *ec2.Client
	ssm    *ssm.Client
	calls  *callCounter
	clock  *clock
	ami    string
	lt     string
	region string
}

func newMotoFleet(t *testing.T) *motoFleet {
	t.Helper()
	ctx := context.Background()
	cfg := awstest.Moto(t).Config()
	m := &motoFleet{ec2: ec2.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg), calls: &callCounter{}, clock: &clock{t: time.Date(2026, 11, 25, 21, 0, 0, 0, time.UTC)}, region: awstest.Region}

	imgs, err := m.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/*"}}}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe moto's images: %v", err)
	}
	ids := make([]string, 0, len(imgs.Images))
	for _, im := range imgs.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	slices.Sort(ids)
	m.ami = ids[0]
	if _, err := m.ssm.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(amiParameter), Value: aws.String(m.ami), Type: ssmtypes.ParameterTypeString}); err != nil {
		t.Fatalf("put parameter: %v", err)
	}
	lt, err := m.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("nightshift-gpu"),
		LaunchTemplateData: &types.RequestLaunchTemplateData{
			MetadataOptions:                   &types.LaunchTemplateInstanceMetadataOptionsRequest{HttpTokens: types.LaunchTemplateHttpTokensStateRequired},
			InstanceInitiatedShutdownBehavior: types.ShutdownBehaviorStop,
		},
	})
	if err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	m.lt = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	m.Fleet = fleet.New(&countingEC2{EC2: m.ec2, calls: m.calls}, &countingParams{Parameters: m.ssm, calls: m.calls},
		fleet.Config{Region: m.region, LaunchTemplateID: m.lt, AMIParameter: amiParameter}, m.clock.now)
	return m
}

// describe reads one instance back from moto.
func (m *motoFleet) describe(t *testing.T, id string) types.Instance {
	t.Helper()
	out, err := m.ec2.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatalf("describe %s: %v", id, err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("describe %s: %d reservations; want one instance", id, len(out.Reservations))
	}
	return out.Reservations[0].Instances[0]
}

func launchRequest(job string) fleet.LaunchRequest {
	return fleet.LaunchRequest{Token: "ns-" + job, Pool: "default", Job: job, Attempt: 1, Types: []string{"g4dn.xlarge"}, Market: "on-demand"}
}

// TestMotoLaunch: Launch sends the tags (on the instance and its volume),
// type, AMI, launch template, IMDSv2 setting, root volume and shutdown
// behaviour that EC2 then reports; a spot instance is launched as spot, and
// Stop terminates it (a one-time spot instance cannot be stopped).
func TestMotoLaunch(t *testing.T) {
	tests := []struct {
		name         string
		give         string // market
		wantSpot     bool
		wantShutdown string
		wantStopped  types.InstanceStateName
	}{
		{name: "on-demand", give: "on-demand", wantShutdown: "stop", wantStopped: types.InstanceStateNameStopped},
		{name: "spot", give: "spot", wantSpot: true, wantShutdown: "terminate", wantStopped: types.InstanceStateNameTerminated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMotoFleet(t)
			ctx := context.Background()
			req := launchRequest("train-1")
			req.Market = tt.give
			req.VolumeGB = 200
			got, err := m.Launch(ctx, req)
			if err != nil {
				t.Fatalf("Launch(%+v) = %v; want an instance", req, err)
			}
			want := fleet.Instance{
				ID: got.ID, Type: "g4dn.xlarge", State: got.State, Pool: "default", Job: "train-1", Attempt: 1, Managed: true, Spot: tt.wantSpot, Zone: "us-east-1a",
			}
			ignore := cmp.FilterPath(func(p cmp.Path) bool {
				f := p.Last().String()
				return f == ".LaunchTime" || f == ".Tags"
			}, cmp.Ignore())
			if diff := cmp.Diff(want, got, ignore); diff != "" {
				t.Errorf("Launch(%+v) (-want +got):\n%s", req, diff)
			}
			if got.State != "pending" && got.State != "running" {
				t.Errorf("Launch(%+v).State = %q; want pending or running", req, got.State)
			}

			inst := m.describe(t, got.ID)
			wantTags := map[string]string{
				fleet.TagManaged: "true", fleet.TagPool: "default", fleet.TagJob: "train-1", fleet.TagAttempt: "1",
				fleet.TagName: "nightshift default train-1",
			}
			// EC2 itself tags an instance launched from a template.
			wantInstanceTags := map[string]string{"aws:ec2launchtemplate:id": m.lt, "aws:ec2launchtemplate:version": "1"}
			maps.Copy(wantInstanceTags, wantTags)
			if diff := cmp.Diff(wantInstanceTags, tagMap(inst.Tags)); diff != "" {
				t.Errorf("tags of %s (-want +got):\n%s", got.ID, diff)
			}
			if inst.InstanceType != types.InstanceTypeG4dnXlarge {
				t.Errorf("type of %s = %s; want g4dn.xlarge", got.ID, inst.InstanceType)
			}
			if id := aws.ToString(inst.ImageId); id != m.ami {
				t.Errorf("image of %s = %s; want %s, the value of %s", got.ID, id, m.ami, amiParameter)
			}
			if inst.MetadataOptions == nil || inst.MetadataOptions.HttpTokens != types.HttpTokensStateRequired {
				t.Errorf("MetadataOptions of %s = %+v; want HttpTokens required (IMDSv2)", got.ID, inst.MetadataOptions)
			}
			if gotSpot := inst.InstanceLifecycle == types.InstanceLifecycleTypeSpot; gotSpot != tt.wantSpot {
				t.Errorf("lifecycle of %s = %q; want spot %v", got.ID, inst.InstanceLifecycle, tt.wantSpot)
			}
			attr, err := m.ec2.DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
				InstanceId: aws.String(got.ID), Attribute: types.InstanceAttributeNameInstanceInitiatedShutdownBehavior,
			})
			if err != nil {
				t.Fatalf("describe shutdown behaviour of %s: %v", got.ID, err)
			}
			if sb := aws.ToString(attr.InstanceInitiatedShutdownBehavior.Value); sb != tt.wantShutdown {
				t.Errorf("shutdown behaviour of %s = %q; want %q", got.ID, sb, tt.wantShutdown)
			}

			vols, err := m.ec2.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{
				Filters: []types.Filter{{Name: aws.String("attachment.instance-id"), Values: []string{got.ID}}},
			})
			if err != nil {
				t.Fatalf("describe volumes of %s: %v", got.ID, err)
			}
			if len(vols.Volumes) != 1 {
				t.Fatalf("volumes of %s = %d; want 1", got.ID, len(vols.Volumes))
			}
			v := vols.Volumes[0]
			if aws.ToInt32(v.Size) != 200 || v.VolumeType != types.VolumeTypeGp3 || !aws.ToBool(v.Encrypted) {
				t.Errorf("volume of %s: %d GB %s encrypted %v; want 200 GB gp3 encrypted", got.ID, aws.ToInt32(v.Size), v.VolumeType, aws.ToBool(v.Encrypted))
			}
			if diff := cmp.Diff(wantTags, tagMap(v.Tags)); diff != "" {
				t.Errorf("tags of %s's volume (-want +got):\n%s", got.ID, diff)
			}

			if err := m.Stop(ctx, got); err != nil {
				t.Fatalf("Stop(%s) = %v", got.ID, err)
			}
			if s := m.describe(t, got.ID).State.Name; s != tt.wantStopped {
				t.Errorf("after Stop(%s): %s; want %s", got.ID, s, tt.wantStopped)
			}
		})
	}
}

func tagMap(tags []types.Tag) map[string]string {
	m := map[string]string{}
	for _, tg := range tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// TestMotoList: List returns the managed instances only; an instance
// without the tag is invisible to it, and the fleet refuses to act on it
// without calling EC2.
func TestMotoList(t *testing.T) {
	m := newMotoFleet(t)
	ctx := context.Background()
	managed, err := m.Launch(ctx, launchRequest("train-1"))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	out, err := m.ec2.RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(m.ami), InstanceType: types.InstanceTypeG4dnXlarge, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
			{Key: aws.String(fleet.TagName), Value: aws.String("someone's notebook")},
			{Key: aws.String(fleet.TagManaged), Value: aws.String("false")},
		}}},
	})
	if err != nil {
		t.Fatalf("RunInstances (unmanaged): %v", err)
	}
	unmanagedID := aws.ToString(out.Instances[0].InstanceId)

	list, err := m.List(ctx)
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	var ids []string
	for _, i := range list {
		ids = append(ids, i.ID)
	}
	if diff := cmp.Diff([]string{managed.ID}, ids); diff != "" {
		t.Errorf("List() ids (-want +got):\n%s", diff)
	}

	unmanaged := fleet.Instance{ID: unmanagedID, Type: "g4dn.xlarge", State: "running"}
	before := m.calls.snapshot()
	for name, op := range map[string]func(context.Context, fleet.Instance) error{"Stop": m.Stop, "Start": m.Start, "Terminate": m.Terminate} {
		if err := op(ctx, unmanaged); !errors.Is(err, fleet.ErrNotManaged) {
			t.Errorf("%s(%s) = %v; want ErrNotManaged", name, unmanagedID, err)
		}
	}
	if diff := cmp.Diff(before, m.calls.snapshot()); diff != "" {
		t.Errorf("EC2 calls for an unmanaged instance (-before +after):\n%s", diff)
	}
	if s := m.describe(t, unmanagedID).State.Name; s != types.InstanceStateNameRunning {
		t.Errorf("unmanaged %s is %s; want running, untouched", unmanagedID, s)
	}
}

// TestMotoStopStart: Stop, Start and Terminate change the instance's state,
// and List stops showing a terminated instance.
func TestMotoStopStart(t *testing.T) {
	m := newMotoFleet(t)
	ctx := context.Background()
	inst, err := m.Launch(ctx, launchRequest("train-1"))
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	tests := []struct {
		name string
		give func(context.Context, fleet.Instance) error
		want types.InstanceStateName
	}{
		{name: "Stop", give: m.Stop, want: types.InstanceStateNameStopped},
		{name: "Start", give: m.Start, want: types.InstanceStateNameRunning},
		{name: "Terminate", give: m.Terminate, want: types.InstanceStateNameTerminated},
	}
	for _, tt := range tests {
		if err := tt.give(ctx, inst); err != nil {
			t.Fatalf("%s(%s) = %v", tt.name, inst.ID, err)
		}
		if got := m.describe(t, inst.ID).State.Name; got != tt.want {
			t.Errorf("after %s(%s): state %s; want %s", tt.name, inst.ID, got, tt.want)
		}
	}
	list, err := m.List(ctx)
	if err != nil {
		t.Fatalf("List() = %v", err)
	}
	if len(list) != 1 || list[0].Live() {
		t.Errorf("List() after Terminate = %v; want the one instance, no longer live", list)
	}
}

// TestMotoAMICache: the AMI comes from the SSM parameter, read once per
// cache period however many launches there are.
func TestMotoAMICache(t *testing.T) {
	m := newMotoFleet(t)
	ctx := context.Background()
	for _, job := range []string{"a", "b", "c"} {
		inst, err := m.Launch(ctx, launchRequest(job))
		if err != nil {
			t.Fatalf("Launch(%s): %v", job, err)
		}
		if got := aws.ToString(m.describe(t, inst.ID).ImageId); got != m.ami {
			t.Errorf("image of %s = %s; want %s", inst.ID, got, m.ami)
		}
	}
	if got := m.calls.get("GetParameter"); got != 1 {
		t.Errorf("GetParameter calls for three launches = %d; want 1", got)
	}
	m.clock.advance(time.Hour)
	if _, err := m.Launch(ctx, launchRequest("d")); err != nil {
		t.Fatalf("Launch(d): %v", err)
	}
	if got := m.calls.get("GetParameter"); got != 2 {
		t.Errorf("GetParameter calls after the cache expired = %d; want 2", got)
	}
}

// callCounter counts calls by operation name.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) add(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[op]++
}

func (c *callCounter) get(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[op]
}

func (c *callCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]int{}
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

// countingEC2 counts the calls that reach a real client.
type countingEC2 struct {
	fleet.EC2
	calls *callCounter
}

func (c *countingEC2) DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	c.calls.add("DescribeInstances")
	return c.EC2.DescribeInstances(ctx, in, optFns...)
}

func (c *countingEC2) RunInstances(ctx context.Context, in *ec2.RunInstancesInput, optFns ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c.calls.add("RunInstances")
	return c.EC2.RunInstances(ctx, in, optFns...)
}

func (c *countingEC2) StartInstances(ctx context.Context, in *ec2.StartInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StartInstancesOutput, error) {
	c.calls.add("StartInstances")
	return c.EC2.StartInstances(ctx, in, optFns...)
}

func (c *countingEC2) StopInstances(ctx context.Context, in *ec2.StopInstancesInput, optFns ...func(*ec2.Options)) (*ec2.StopInstancesOutput, error) {
	c.calls.add("StopInstances")
	return c.EC2.StopInstances(ctx, in, optFns...)
}

func (c *countingEC2) TerminateInstances(ctx context.Context, in *ec2.TerminateInstancesInput, optFns ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	c.calls.add("TerminateInstances")
	return c.EC2.TerminateInstances(ctx, in, optFns...)
}

// countingParams counts GetParameter calls that reach a real client.
type countingParams struct {
	fleet.Parameters
	calls *callCounter
}

func (c *countingParams) GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	c.calls.add("GetParameter")
	return c.Parameters.GetParameter(ctx, in, optFns...)
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
