package deploy

import (
	"testing"
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
