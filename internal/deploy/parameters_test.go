package deploy

import (
	"strings"
	"testing"

	"github.com/nightshift-dev/nightshift/internal/config"
)

// parameterARN is the ARN IAM authorizes a request for the SSM parameter
// name in account (empty for AWS's public parameters) against.
func parameterARN(account, name string) string {
	return "arn:aws:ssm:" + sampleRegion + ":" + account + ":parameter" + name
}

// TestFunctionsReadAMIParameters checks which AMI parameters the functions
// may resolve: AWS's public ones (the DLAMI parameters, and the template's
// default), and any in the stack's own account and Region, which a job
// names with "ami": "resolve:ssm:/my/param". A public parameter's ARN has
// no account; one of the account's own has it.
func TestFunctionsReadAMIParameters(t *testing.T) {
	tpl := loadTemplate(t)
	def := pattern(get(tpl, "Parameters", "AmiParameter", "Default"))
	tests := []struct {
		name string
		give string
		want bool
	}{
		{"the template's default AMI parameter", parameterARN("", def), true},
		{"another public DLAMI parameter", parameterARN("", "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"), true},
		{"another public AMI parameter", parameterARN("", "/aws/service/canonical/ubuntu/server/18.04/stable/20220810/amd64/hvm/ebs-gp2/ami-id"), true},
		{"a parameter of the stack's account a job names", parameterARN(sampleAccount, "/my/param"), true},
		{"a parameter of the stack's account at the root", parameterARN(sampleAccount, "/golden-ami"), true},
		{"another account's parameter", parameterARN("210987654321", "/my/param"), false},
		{"a parameter in another Region", "arn:aws:ssm:eu-west-1:" + sampleAccount + ":parameter/my/param", false},
	}
	for _, fn := range []string{"IntakeFunction", "DispatchFunction", "WatchdogFunction"} {
		stmts := principalStatements(t, tpl, fn)
		for _, tt := range tests {
			// The fleet resolves a parameter with ssm:GetParameter.
			if got := allowed(tpl, stmts, "ssm:GetParameter", tt.give); got != tt.want {
				t.Errorf("%s: allowed(ssm:GetParameter, %s) = %v; want %v (%s)", fn, tt.give, got, tt.want, tt.name)
			}
		}
	}
}

// TestInstanceReadsOnlyItsParameters checks what job code on an instance
// can read from Parameter Store with the instance's role. The role carries
// AmazonSSMManagedInstanceCore, which allows ssm:GetParameter and
// ssm:GetParameters on "*": without a Deny, any job could read every
// parameter of the account. The instance needs one, the CloudWatch agent's
// configuration.
func TestInstanceReadsOnlyItsParameters(t *testing.T) {
	tpl := loadTemplate(t)
	agentConfig := parameterARN(sampleAccount, render(tpl, pattern(get(tpl.resource("CloudWatchAgentConfig"), "Properties", "Name"))))
	tests := []struct {
		name   string
		action string
		give   string
		want   bool
	}{
		{"the CloudWatch agent's configuration", "ssm:GetParameter", agentConfig, true},
		{"another parameter of the account", "ssm:GetParameter", parameterARN(sampleAccount, "/prod/db-password"), false},
		{"several at once", "ssm:GetParameters", parameterARN(sampleAccount, "/prod/db-password"), false},
		{"a path", "ssm:GetParametersByPath", parameterARN(sampleAccount, "/prod"), false},
		{"a parameter's history", "ssm:GetParameterHistory", parameterARN(sampleAccount, "/prod/db-password"), false},
		{"another stack's agent configuration", "ssm:GetParameter", parameterARN(sampleAccount, "/nightshift/other/cloudwatch-agent"), false},
		{"a public parameter", "ssm:GetParameter", parameterARN("", "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-24.04/latest/ami-id"), false},
	}
	stmts := principalStatements(t, tpl, "InstanceRole")
	for _, tt := range tests {
		if got := allowed(tpl, stmts, tt.action, tt.give); got != tt.want {
			t.Errorf("InstanceRole: allowed(%s, %s) = %v; want %v (%s)", tt.action, tt.give, got, tt.want, tt.name)
		}
	}
}

// TestDefaultAMIParameter checks that the template's AmiParameter default
// and the functions' own default (config.DefaultAMIParameter, used when
// NIGHTSHIFT_AMI_PARAMETER is unset) are one parameter, and that it names
// a DLAMI line AWS still patches.
func TestDefaultAMIParameter(t *testing.T) {
	tpl := loadTemplate(t)
	got := pattern(get(tpl, "Parameters", "AmiParameter", "Default"))
	if got != config.DefaultAMIParameter {
		t.Errorf("template AmiParameter Default = %q; want config.DefaultAMIParameter %q", got, config.DefaultAMIParameter)
	}
	// DLAMI support policy: PyTorch 2.7 left patch support on 2026-04-23
	// and 2.9 on 2026-10-15.
	for _, retired := range []string{"pytorch-2.7-", "pytorch-2.8-", "pytorch-2.9-"} {
		if strings.Contains(config.DefaultAMIParameter, retired) {
			t.Errorf("config.DefaultAMIParameter = %q; a DLAMI past its end of patch", config.DefaultAMIParameter)
		}
	}
	if !strings.HasPrefix(config.DefaultAMIParameter, "/aws/service/deeplearning/ami/x86_64/") {
		t.Errorf("config.DefaultAMIParameter = %q; want an x86_64 DLAMI parameter (G and P instances)", config.DefaultAMIParameter)
	}
}
