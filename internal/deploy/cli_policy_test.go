package deploy

import (
	"os"
	"strings"
	"testing"
)

// TestUserPolicy: the UserPolicy the stack outputs for the command line's
// users allows every operation the command line makes (testdata/cli-calls.txt,
// which internal/e2e checks against the calls it really makes on moto), and
// nothing that writes to the table, deletes messages or changes instances.
func TestUserPolicy(t *testing.T) {
	tpl := loadTemplate(t)
	if typ := str(tpl.resource("UserPolicy")["Type"]); typ != "AWS::IAM::ManagedPolicy" {
		t.Fatalf("UserPolicy is a %q; want an AWS::IAM::ManagedPolicy", typ)
	}
	all, problems := statements(tpl)
	if len(problems) > 0 {
		t.Fatalf("statements: %q", problems)
	}
	var stmts []statement
	for _, s := range all {
		if strings.HasPrefix(s.where, "UserPolicy[") {
			stmts = append(stmts, s)
		}
	}
	if len(stmts) == 0 {
		t.Fatal("UserPolicy has no statements")
	}
	raw, err := os.ReadFile("testdata/cli-calls.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			t.Fatalf("cli-calls.txt: %q: want an operation and a resource", line)
		}
		n++
		if !allowed(tpl, stmts, f[0], f[1]) {
			t.Errorf("UserPolicy does not allow %s on %s, which the command line calls", f[0], f[1])
		}
	}
	if n == 0 {
		t.Fatal("cli-calls.txt lists no operation")
	}
	for _, deny := range []struct{ action, arn string }{
		{"dynamodb:PutItem", "arn:aws:dynamodb:us-east-1:123456789012:table/nightshift-jobs"},
		{"dynamodb:UpdateItem", "arn:aws:dynamodb:us-east-1:123456789012:table/nightshift-jobs"},
		{"dynamodb:Scan", "arn:aws:dynamodb:us-east-1:123456789012:table/nightshift-jobs"},
		{"sqs:DeleteMessage", sampleQueueARN},
		{"sqs:ReceiveMessage", sampleQueueARN},
		{"ec2:StopInstances", "arn:aws:ec2:us-east-1:123456789012:instance/" + sampleInstance},
		{"ec2:RunInstances", "arn:aws:ec2:us-east-1:123456789012:instance/*"},
		{"lambda:UpdateFunctionConfiguration", "arn:aws:lambda:us-east-1:123456789012:function:nightshift-intake"},
		{"ssm:SendCommand", "arn:aws:ec2:us-east-1:123456789012:instance/" + sampleInstance},
	} {
		if allowed(tpl, stmts, deny.action, deny.arn) {
			t.Errorf("UserPolicy allows %s on %s; the command line only reads, and sends to the queue", deny.action, deny.arn)
		}
	}
}
