package deploy

import "testing"

// TestFunctionsSendRechecks: every function may send messages to the jobs
// queue (any reconcile may launch or start an instance, or free one, and
// then sends a delayed re-check), to no other queue, and knows the queue's
// URL from its environment.
func TestFunctionsSendRechecks(t *testing.T) {
	tpl := loadTemplate(t)
	other := "arn:aws:sqs:" + sampleRegion + ":" + sampleAccount + ":someone-elses-queue"
	for _, fn := range []string{"IntakeFunction", "DispatchFunction", "WatchdogFunction"} {
		stmts := principalStatements(t, tpl, fn)
		if !allowed(tpl, stmts, "sqs:SendMessage", sampleQueueARN) {
			t.Errorf("%s may not sqs:SendMessage to the jobs queue %s", fn, sampleQueueARN)
		}
		if allowed(tpl, stmts, "sqs:SendMessage", other) {
			t.Errorf("%s may sqs:SendMessage to %s; want the jobs queue only", fn, other)
		}
		if allowed(tpl, stmts, "sqs:SendMessageBatch", sampleQueueARN) || allowed(tpl, stmts, "sqs:PurgeQueue", sampleQueueARN) {
			t.Errorf("%s may batch-send or purge the jobs queue; want SendMessage only", fn)
		}
	}
	v := get(tpl, "Globals", "Function", "Environment", "Variables", "NIGHTSHIFT_QUEUE_URL")
	if m, ok := v.(map[string]any); !ok || m["Ref"] != "JobsQueue" {
		t.Errorf("Globals NIGHTSHIFT_QUEUE_URL = %v; want !Ref JobsQueue", v)
	}
}
