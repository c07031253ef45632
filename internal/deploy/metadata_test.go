package deploy

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/nightshift-dev/nightshift/internal/fleet"
)

// captureEC2 records the RunInstances request the fleet sends; the fleet
// calls nothing else to launch from an AMI id.
type captureEC2 struct {
	fleet.EC2
	run *ec2.RunInstancesInput
}

func (c *captureEC2) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	c.run = in
	return &ec2.RunInstancesOutput{Instances: []types.Instance{{InstanceId: aws.String("i-0abcd1234efgh5678")}}}, nil
}

// fleetMetadataOptions returns the MetadataOptions of the fleet's
// RunInstances request for one on-demand and one spot launch.
func fleetMetadataOptions(t *testing.T) map[string]*types.InstanceMetadataOptionsRequest {
	t.Helper()
	out := map[string]*types.InstanceMetadataOptionsRequest{}
	for _, market := range []string{"on-demand", "spot"} {
		c := &captureEC2{}
		f := fleet.New(c, nil, fleet.Config{Region: sampleRegion, LaunchTemplateID: "lt-0123456789abcdef0", Subnets: []string{"subnet-a"}}, time.Now)
		req := fleet.LaunchRequest{Token: "job-1", Pool: "default", Job: "job", Attempt: 1, Types: []string{"g4dn.xlarge"}, Market: market, AMI: "ami-0dlami000000001"}
		if _, err := f.Launch(context.Background(), req); err != nil {
			t.Fatalf("Launch(%+v): %v", req, err)
		}
		if c.run == nil {
			t.Fatalf("Launch(%+v) sent no RunInstances", req)
		}
		out[market] = c.run.MetadataOptions
	}
	return out
}

// TestMetadataOptions checks the instance metadata options: IMDSv2 only,
// a hop limit that reaches a container on the instance and no further,
// instance tags readable (the wrapper reads its own nightshift:* tags), and
// every field set alike in the launch template and in the fleet's
// RunInstances request. The request's MetadataOptions override the
// template's; a partial one may leave the fields it omits at EC2's
// defaults (hop limit 1, no tags in IMDS) rather than the template's.
func TestMetadataOptions(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		field string
		want  string
	}{
		{"HttpEndpoint", "enabled"},
		{"HttpTokens", "required"},
		{"HttpPutResponseHopLimit", "2"},
		{"InstanceMetadataTags", "enabled"},
		{"HttpProtocolIpv6", "disabled"},
	}
	runs := fleetMetadataOptions(t)
	for id, lt := range tpl.resources("AWS::EC2::LaunchTemplate") {
		mo := mapping(get(lt, "Properties", "LaunchTemplateData", "MetadataOptions"))
		if len(mo) != len(tests) {
			t.Errorf("%s MetadataOptions = %v; want exactly %d fields", id, mo, len(tests))
		}
		for _, tt := range tests {
			if got := pattern(mo[tt.field]); got != tt.want {
				t.Errorf("%s MetadataOptions.%s = %q; want %q", id, tt.field, got, tt.want)
			}
		}
	}
	for market, mo := range runs {
		if mo == nil {
			t.Errorf("%s RunInstances MetadataOptions = nil; want %v", market, tests)
			continue
		}
		got := map[string]string{
			"HttpEndpoint":            string(mo.HttpEndpoint),
			"HttpTokens":              string(mo.HttpTokens),
			"HttpPutResponseHopLimit": "",
			"InstanceMetadataTags":    string(mo.InstanceMetadataTags),
			"HttpProtocolIpv6":        string(mo.HttpProtocolIpv6),
		}
		if mo.HttpPutResponseHopLimit != nil {
			got["HttpPutResponseHopLimit"] = fmt.Sprint(*mo.HttpPutResponseHopLimit)
		}
		for _, tt := range tests {
			if got[tt.field] != tt.want {
				t.Errorf("%s RunInstances MetadataOptions.%s = %q; want %q, as in the launch template", market, tt.field, got[tt.field], tt.want)
			}
		}
	}
}
