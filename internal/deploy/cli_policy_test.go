package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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

// TestUserPolicyNotebookSessions: `nightshift notebook` may forward a port
// to a notebook's own instance, and nothing else: Session Manager's
// StartSession only on nightshift's instances of a notebook pool, with the
// document checked (SessionDocumentAccessCheck), the port-forwarding
// document only (no shell), and TerminateSession on the person's own
// sessions only. The evaluator leaves conditional statements out, so this
// test reads them.
func TestUserPolicyNotebookSessions(t *testing.T) {
	tpl := loadTemplate(t)
	all, problems := statements(tpl)
	if len(problems) > 0 {
		t.Fatalf("statements: %q", problems)
	}
	var instance, document, terminate []statement
	for _, s := range all {
		if !strings.HasPrefix(s.where, "UserPolicy[") {
			continue
		}
		for _, a := range s.actions {
			switch strings.ToLower(a) {
			case "ssm:startsession":
				for _, r := range s.resources {
					if strings.Contains(r, ":instance/") {
						instance = append(instance, s)
					} else {
						document = append(document, s)
					}
				}
			case "ssm:terminatesession":
				terminate = append(terminate, s)
			}
		}
	}
	if len(instance) != 1 {
		t.Fatalf("%d StartSession statements on instances; want 1", len(instance))
	}
	want := map[string]map[string][]string{
		"stringequals": {"ssm:resourcetag/nightshift:managed": {"true"}},
		"stringlike":   {"ssm:resourcetag/nightshift:pool": {"notebook:*"}},
		"boolifexists": {"ssm:sessiondocumentaccesscheck": {"true"}},
	} // as the statement parser keeps them: operators and keys lower-cased
	if diff := cmp.Diff(want, instance[0].conditions); diff != "" {
		t.Errorf("%s: conditions (-want +got):\n%s", instance[0].where, diff)
	}
	for _, s := range document {
		for _, r := range s.resources {
			if !strings.HasSuffix(r, ":document/AWS-StartPortForwardingSession") {
				t.Errorf("%s: StartSession on %s; want the port-forwarding document only", s.where, r)
			}
		}
	}
	if len(document) == 0 {
		t.Error("no StartSession on the AWS-StartPortForwardingSession document")
	}
	for _, s := range terminate {
		for _, r := range s.resources {
			// ${!x} is how !Sub writes a literal ${x}: the policy variable.
			if !strings.HasSuffix(r, ":session/${!aws:username}-*") && !strings.HasSuffix(r, ":session/${!aws:userid}-*") {
				t.Errorf("%s: TerminateSession on %s; want the person's own sessions only", s.where, r)
			}
		}
	}
	if len(terminate) == 0 {
		t.Error("no TerminateSession: the command line ends the session it opened when the plugin cannot start")
	}
}
