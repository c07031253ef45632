package deploy

import (
	"slices"
	"testing"
)

// TestCheckpointBuckets: the instance role may list the buckets of
// CheckpointBuckets and get and put their objects (a checkpoint's restore
// and syncs), never delete one (the wrapper syncs without --delete), and
// touch no other bucket; with the parameter empty (its default) the policy
// is not created at all.
func TestCheckpointBuckets(t *testing.T) {
	tpl := loadTemplate(t)
	p := tpl.resource("InstanceCheckpointBucketsPolicy")
	if p == nil || str(p["Condition"]) != "HasCheckpointBuckets" || refTarget(get(p, "Properties", "RoleName")) != "InstanceRole" {
		t.Fatalf("InstanceCheckpointBucketsPolicy = %v; want a policy of InstanceRole under HasCheckpointBuckets", p)
	}
	if typ, def := str(get(tpl, "Parameters", "CheckpointBuckets", "Type")), get(tpl, "Parameters", "CheckpointBuckets", "Default"); typ != "CommaDelimitedList" || def != "" {
		t.Errorf("CheckpointBuckets is a %q, default %v; want a CommaDelimitedList, default empty (no access)", typ, def)
	}
	e := func(buckets string) evaluator {
		return evaluator{tpl: tpl, params: map[string]string{"CheckpointBuckets": buckets}}
	}
	for give, want := range map[string]bool{"": false, "ckpt-a": true, "ckpt-a,ckpt-b": true} {
		if got, err := e(give).condition("HasCheckpointBuckets"); err != nil || got != want {
			t.Errorf("HasCheckpointBuckets with %q = %v, %v; want %v", give, got, err, want)
		}
	}
	// Deployed with two buckets: one ARN each.
	doc, err := tpl.evaluate(get(p, "Properties", "PolicyDocument"), map[string]string{"CheckpointBuckets": "ckpt-a,ckpt-b"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]any{
		"ListCheckpointBuckets": {"arn:*:s3:::ckpt-a", "arn:*:s3:::ckpt-b"},
		"ReadWriteCheckpoints":  {"arn:*:s3:::ckpt-a/*", "arn:*:s3:::ckpt-b/*"},
	}
	for _, st := range items(get(doc, "Statement")) {
		sid := str(get(st, "Sid"))
		if got, _ := get(st, "Resource").([]any); !slices.Equal(got, want[sid]) {
			t.Errorf("statement %s resources = %v; want %v", sid, get(st, "Resource"), want[sid])
		}
		delete(want, sid)
	}
	if len(want) > 0 {
		t.Errorf("statements missing: %v", want)
	}

	// What the role may do, with one bucket (the sample renders a
	// parameter by its default).
	params := mapping(get(tpl, "Parameters", "CheckpointBuckets"))
	params["Default"] = "ckpt-a"
	defer func() { params["Default"] = "" }()
	stmts := principalStatements(t, tpl, "InstanceRole")
	for _, tt := range []struct {
		action, arn string
		want        bool
	}{
		{"s3:ListBucket", "arn:aws:s3:::ckpt-a", true},
		{"s3:GetObject", "arn:aws:s3:::ckpt-a/resnet/step-100.pt", true},
		{"s3:PutObject", "arn:aws:s3:::ckpt-a/resnet/step-200.pt", true},
		{"s3:AbortMultipartUpload", "arn:aws:s3:::ckpt-a/resnet/step-200.pt", true},
		{"s3:DeleteObject", "arn:aws:s3:::ckpt-a/resnet/step-100.pt", false},
		{"s3:DeleteBucket", "arn:aws:s3:::ckpt-a", false},
		{"s3:PutBucketPolicy", "arn:aws:s3:::ckpt-a", false},
		{"s3:GetObject", "arn:aws:s3:::other-bucket/x", false},
		{"s3:ListBucket", "arn:aws:s3:::other-bucket", false},
		{"s3:PutObject", "arn:aws:s3:::ckpt-a-other/x", false},
	} {
		if got := allowed(tpl, stmts, tt.action, tt.arn); got != tt.want {
			t.Errorf("InstanceRole %s %s: allowed = %v; want %v", tt.action, tt.arn, got, tt.want)
		}
	}
}

// TestRebalanceRule: the dispatch function hears EC2's rebalance
// recommendations.
func TestRebalanceRule(t *testing.T) {
	dispatch := loadTemplate(t).functions()["DispatchFunction"]
	if !dispatchMatches(dispatch, "aws.ec2", "EC2 Instance Rebalance Recommendation") {
		t.Error("no DispatchFunction rule matches aws.ec2 EC2 Instance Rebalance Recommendation")
	}
}
