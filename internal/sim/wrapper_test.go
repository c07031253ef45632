package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// TestWrapperModelReadsTheHeader: the simulated instance takes the attempt,
// its lock and its timers from the command's header alone — whatever the
// script says, however its comments are worded.
func TestWrapperModelReadsTheHeader(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	id := w.Launch("g4dn.xlarge", map[string]string{"nightshift:managed": "true"})
	w.Clock.Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	commands := `# nightshift-wrapper/v2 {"job":"j","attempt":2,"deadman_seconds":3000,"idle_seconds":300,"state_dir":"/s","workdir":"/s/work/j","max_runtime_seconds":2400}` +
		"\nnot a wrapper anyone would recognize\n"
	send := func() {
		t.Helper()
		if _, err := w.Cloud.SendCommand(ctx, &ssm.SendCommandInput{
			DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{id},
			Parameters: map[string][]string{"commands": {commands}, "executionTimeout": {"2400"}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	sent := w.Clock.Now()
	send()
	send()
	invs := w.Invocations()
	if len(invs) != 2 || invs[0].JobID != "j" || invs[0].Attempt != 2 || invs[0].Duplicate || !invs[1].Duplicate {
		t.Fatalf("invocations = %+v; want attempt j#2, then a duplicate of it", invs)
	}
	if got, want := w.Cloud.Instances()[0].ShutdownAt, sent.Add(3000*time.Second); !got.Equal(want) {
		t.Errorf("dead-man timer at %v; want %v, the header's", got, want)
	}
	w.Clock.Advance(time.Minute) // the job succeeds after a minute
	invs = w.Invocations()
	if invs[0].Status != "Success" || invs[1].Status != "Success" {
		t.Errorf("statuses %s, %s; want the attempt and its duplicate to succeed", invs[0].Status, invs[1].Status)
	}
	if got, want := w.Cloud.Instances()[0].ShutdownAt, invs[0].Ended.Add(300*time.Second); !got.Equal(want) {
		t.Errorf("idle timer at %v; want %v, the header's after the job", got, want)
	}
}

// TestNotAWrapper: a command without the header runs nothing and fails.
func TestNotAWrapper(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	id := w.Launch("g4dn.xlarge", map[string]string{"nightshift:managed": "true"})
	w.Clock.Advance(awssim.DefaultBoot + awssim.DefaultAgent)
	if _, err := w.Cloud.SendCommand(ctx, &ssm.SendCommandInput{
		DocumentName: aws.String("AWS-RunShellScript"), InstanceIds: []string{id},
		Parameters: map[string][]string{"commands": {"# nightshift wrapper: job 'j', attempt 1.\necho hi"}},
	}); err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(time.Second)
	if inv := w.Invocations()[0]; inv.Status != "Failed" || inv.ResponseCode != 2 || inv.JobID != "" {
		t.Errorf("invocation = %s %d job %q; want Failed 2 and no attempt", inv.Status, inv.ResponseCode, inv.JobID)
	}
}
