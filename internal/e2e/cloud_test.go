package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// The deployment the functions run in, as the template would configure it.
const (
	table        = "nightshift-jobs"
	amiParameter = "/nightshift/test/ami-id" // moto refuses names under /aws/
	pools        = `{"default":{"types":["g4dn.xlarge"],"max_instances":2}}`
	logGroup     = "/nightshift/jobs"
)

// cloud is one test's moto, set up with what the stack would create.
type cloud struct {
	srv            *awstest.Server
	ddb            *dynamodb.Client
	ec2            *ec2.Client
	ssm            *ssm.Client
	ami            string
	launchTemplate string
}

// newCloud resets moto and creates the jobs table, the AMI parameter and the
// launch template.
func newCloud(t testing.TB) *cloud {
	t.Helper()
	ctx := context.Background()
	srv := awstest.Moto(t)
	cfg := srv.Config()
	c := &cloud{srv: srv, ddb: dynamodb.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg), ssm: ssm.NewFromConfig(cfg)}

	if _, err := c.ddb.CreateTable(ctx, store.TableInput(table)); err != nil {
		t.Fatalf("create table: %v", err)
	}

	// Any AMI moto knows will do; the Ubuntu ones are the closest to a DLAMI.
	imgs, err := c.ec2.DescribeImages(ctx, &ec2.DescribeImagesInput{
		Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/*"}}},
	})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe moto's images: %v (%d images)", err, len(imgs.Images))
	}
	ids := make([]string, 0, len(imgs.Images))
	for _, im := range imgs.Images {
		ids = append(ids, aws.ToString(im.ImageId))
	}
	slices.Sort(ids)
	c.ami = ids[0]
	if _, err := c.ssm.PutParameter(ctx, &ssm.PutParameterInput{
		Name: aws.String(amiParameter), Value: aws.String(c.ami), Type: ssmtypes.ParameterTypeString,
	}); err != nil {
		t.Fatalf("put AMI parameter: %v", err)
	}

	// The launch template as the design asks for it: IMDSv2 required,
	// encrypted gp3 root volume, shutdown stops, a security group with no
	// inbound rule, no key pair.
	sg, err := c.ec2.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
		GroupName: aws.String("nightshift-instances"), Description: aws.String("nightshift GPU instances: no inbound"),
	})
	if err != nil {
		t.Fatalf("create security group: %v", err)
	}
	lt, err := c.ec2.CreateLaunchTemplate(ctx, &ec2.CreateLaunchTemplateInput{
		LaunchTemplateName: aws.String("nightshift-gpu"),
		LaunchTemplateData: &ec2types.RequestLaunchTemplateData{
			MetadataOptions: &ec2types.LaunchTemplateInstanceMetadataOptionsRequest{
				HttpTokens:   ec2types.LaunchTemplateHttpTokensStateRequired,
				HttpEndpoint: ec2types.LaunchTemplateInstanceMetadataEndpointStateEnabled,
			},
			InstanceInitiatedShutdownBehavior: ec2types.ShutdownBehaviorStop,
			SecurityGroupIds:                  []string{aws.ToString(sg.GroupId)},
			BlockDeviceMappings: []ec2types.LaunchTemplateBlockDeviceMappingRequest{{
				DeviceName: aws.String("/dev/sda1"),
				Ebs: &ec2types.LaunchTemplateEbsBlockDeviceRequest{
					VolumeSize: aws.Int32(100), VolumeType: ec2types.VolumeTypeGp3, Encrypted: aws.Bool(true), DeleteOnTermination: aws.Bool(true),
				},
			}},
		},
	})
	if err != nil {
		t.Fatalf("create launch template: %v", err)
	}
	c.launchTemplate = aws.ToString(lt.LaunchTemplate.LaunchTemplateId)
	return c
}

// env is a function's whole environment: moto's endpoint, fake credentials,
// and the NIGHTSHIFT_* settings the template sets. Nothing of the machine's
// AWS configuration leaks in.
func (c *cloud) env(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(home, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL=" + c.srv.URL,
		"AWS_REGION=" + awstest.Region,
		"AWS_ACCESS_KEY_ID=testing",
		"AWS_SECRET_ACCESS_KEY=testing",
		"AWS_LAMBDA_LOG_FORMAT=JSON", // as the template's LoggingConfig sets it
		"NIGHTSHIFT_TABLE=" + table,
		"NIGHTSHIFT_POOLS=" + pools,
		"NIGHTSHIFT_AMI_PARAMETER=" + amiParameter,
		"NIGHTSHIFT_LAUNCH_TEMPLATE_ID=" + c.launchTemplate,
		"NIGHTSHIFT_LOG_GROUP=" + logGroup,
	}
}

// item is a DynamoDB item as the SDK returns it.
type item = map[string]ddbtypes.AttributeValue

// jobItems returns the items under the job's partition key (the layout is
// described at the top of internal/store/dynamodb.go).
func (c *cloud) jobItems(t testing.TB, id string) []item {
	t.Helper()
	out, err := c.ddb.Query(context.Background(), &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: item{":pk": &ddbtypes.AttributeValueMemberS{Value: "JOB#" + id}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("query job %s: %v", id, err)
	}
	return out.Items
}

// jobIDs returns the id of every job item in the table, sorted. A scan is
// fine for a test's handful of items.
func (c *cloud) jobIDs(t testing.TB) []string {
	t.Helper()
	var ids []string
	p := dynamodb.NewScanPaginator(c.ddb, &dynamodb.ScanInput{TableName: aws.String(table)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("scan: %v", err)
		}
		for _, it := range page.Items {
			if pk := str(it["pk"]); strings.HasPrefix(pk, "JOB#") {
				ids = append(ids, strings.TrimPrefix(pk, "JOB#"))
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// lease returns the lease item of an instance, or nil.
func (c *cloud) lease(t testing.TB, instanceID string) item {
	t.Helper()
	out, err := c.ddb.GetItem(context.Background(), &dynamodb.GetItemInput{
		TableName:      aws.String(table),
		Key:            item{"pk": &ddbtypes.AttributeValueMemberS{Value: "LEASE"}, "sk": &ddbtypes.AttributeValueMemberS{Value: instanceID}},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		t.Fatalf("get lease %s: %v", instanceID, err)
	}
	return out.Item
}

// instances returns every instance in moto, whatever its tags or state.
func (c *cloud) instances(t testing.TB) []ec2types.Instance {
	t.Helper()
	var all []ec2types.Instance
	p := ec2.NewDescribeInstancesPaginator(c.ec2, &ec2.DescribeInstancesInput{})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatalf("describe instances: %v", err)
		}
		for _, r := range page.Reservations {
			all = append(all, r.Instances...)
		}
	}
	return all
}

// str is a string attribute's value, or "".
func str(v ddbtypes.AttributeValue) string {
	if s, ok := v.(*ddbtypes.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

// tags returns an instance's tags as a map.
func tags(i ec2types.Instance) map[string]string {
	m := map[string]string{}
	for _, tg := range i.Tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}
