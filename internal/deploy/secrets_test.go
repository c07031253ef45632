package deploy

import "testing"

// TestInstanceReadsOnlyItsSecrets: the instance role may read a parameter
// under the SecretsPrefix default (a job's secret by reference) and the
// CloudWatch agent's configuration, and no other parameter of the account,
// however the AWS managed policy it carries allows them all.
func TestInstanceReadsOnlyItsSecrets(t *testing.T) {
	tpl := loadTemplate(t)
	prefix := str(get(tpl, "Parameters", "SecretsPrefix", "Default"))
	if prefix == "" {
		t.Fatal("SecretsPrefix has no default")
	}
	stmts := principalStatements(t, tpl, "InstanceRole")
	arn := func(name string) string {
		return "arn:aws:ssm:" + sampleRegion + ":" + sampleAccount + ":parameter" + name
	}
	for _, tt := range []struct {
		action, name string
		want         bool
	}{
		{"ssm:GetParameter", prefix + "wandb", true},
		{"ssm:GetParameter", prefix + "team/hf-token", true},
		{"ssm:GetParameter", "/other/secret", false},
		{"ssm:GetParameters", "/other/secret", false},
		{"ssm:GetParameter", "/nightshift/secrets-elsewhere/x", false},
	} {
		if got := allowed(tpl, stmts, tt.action, arn(tt.name)); got != tt.want {
			t.Errorf("InstanceRole %s %s: allowed = %v; want %v", tt.action, tt.name, got, tt.want)
		}
	}
}
