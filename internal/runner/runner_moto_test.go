package runner_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/google/go-cmp/cmp"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/runner"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// TestMotoSendAndResult: SendCommand and GetCommandInvocation over HTTP
// with the real SSM client. moto runs nothing: every invocation it creates
// reads Success with exit code 0.
func TestMotoSendAndResult(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Moto(t).Config()
	e := ec2.NewFromConfig(cfg)
	client := ssm.NewFromConfig(cfg)
	imgs, err := e.DescribeImages(ctx, &ec2.DescribeImagesInput{Filters: []ec2types.Filter{{Name: aws.String("name"), Values: []string{"ubuntu/images/*"}}}})
	if err != nil || len(imgs.Images) == 0 {
		t.Fatalf("describe moto's images: %v", err)
	}
	run, err := e.RunInstances(ctx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, InstanceType: ec2types.InstanceTypeG4dnXlarge, MinCount: aws.Int32(2), MaxCount: aws.Int32(2)})
	if err != nil {
		t.Fatalf("RunInstances: %v", err)
	}
	target, bystander := aws.ToString(run.Instances[0].InstanceId), aws.ToString(run.Instances[1].InstanceId)

	opts := runner.ScriptOptions{Region: awstest.Region}
	r := runner.New(client, runner.Config{LogGroup: "/nightshift/jobs", Script: opts})
	j := ssmJob()
	id, err := r.Send(ctx, j, target, 10*time.Minute)
	if err != nil || id == "" {
		t.Fatalf("Send(%s, %s) = %q, %v; want a command id", j.ID, target, id, err)
	}

	// What moto recorded of the command.
	list, err := client.ListCommands(ctx, &ssm.ListCommandsInput{CommandId: aws.String(id)})
	if err != nil || len(list.Commands) != 1 {
		t.Fatalf("ListCommands(%s) = %v; want the command", id, err)
	}
	cmd := list.Commands[0]
	commands, err := runner.Launcher(j, target, 10*time.Minute, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantParams := map[string][]string{"commands": {commands}, "executionTimeout": {"7200"}, "workingDirectory": {"/"}}
	if diff := cmp.Diff(wantParams, cmd.Parameters); diff != "" {
		t.Errorf("command %s parameters (-want +got):\n%s", id, diff)
	}
	if got := aws.ToString(cmd.Comment); got != j.Comment() {
		t.Errorf("command %s comment = %q; want %q", id, got, j.Comment())
	}
	if got := aws.ToString(cmd.DocumentName); got != runner.Document {
		t.Errorf("command %s document = %q; want %s", id, got, runner.Document)
	}
	// moto limitation: a command sent to one instance lists every instance
	// in the region (it reads the empty Targets as "all"), so the test only
	// requires the target among them.
	if !slices.Contains(cmd.InstanceIds, target) {
		t.Errorf("command %s instances = %v; want %s among them", id, cmd.InstanceIds, target)
	}
	t.Logf("moto: command sent to %s lists instances %v (bystander %s)", target, cmd.InstanceIds, bystander)

	res, err := r.Result(ctx, id, target)
	if err != nil {
		t.Fatalf("Result(%s, %s) = %v", id, target, err)
	}
	if res.CommandID != id || res.Status != runner.Success || res.ExitCode != 0 {
		t.Errorf("Result(%s, %s) = %+v; want Success, exit code 0", id, target, res)
	}
	// moto limitation: its ExecutionStartDateTime has no time zone
	// ("2026-11-25T21:03:10.512000"), which is not RFC 3339; real SSM's is.
	t.Logf("moto: Result times started %v ended %v", res.Started, res.Ended)

	// An instance the command never went to has no invocation: Pending,
	// through the real error code on the wire.
	res, err = r.Result(ctx, id, "i-00000000000000000")
	if err != nil || res.Status != runner.Pending {
		t.Errorf("Result(%s, unknown instance) = %+v, %v; want Pending", id, res, err)
	}
}

// TestMotoUnimplemented pins what moto lacks (layer 2, the simulation,
// covers these calls): it fails them with HTTP 500. If this test fails,
// moto has learnt the call, and it can be tested here for real.
func TestMotoUnimplemented(t *testing.T) {
	ctx := context.Background()
	cfg := awstest.Moto(t).Config()
	client := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.RetryMaxAttempts = 1 })
	r := runner.New(client, runner.Config{})
	_, online := r.Online(ctx, []string{"i-0123456789abcdef0"})
	_, find := r.Find(ctx, ssmJob(), "i-0123456789abcdef0")
	cancel := r.Cancel(ctx, "cmd-1", "i-0123456789abcdef0")
	for name, err := range map[string]error{"DescribeInstanceInformation": online, "ListCommandInvocations": find, "CancelCommand": cancel} {
		var re *awshttp.ResponseError
		if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusInternalServerError {
			t.Errorf("moto %s = %v; want HTTP 500 (not implemented)", name, err)
		}
	}
}
