package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/sim"
)

// notesSaying counts the SNS notices that say sub.
func notesSaying(w *sim.World, sub string) int {
	n := 0
	for _, m := range w.Cloud.Notifications() {
		if strings.Contains(m.Message, sub) {
			n++
		}
	}
	return n
}

// TestFreshAccountQuotaRequested: a brand-new account (G quota 0) whose
// stack lets nightshift ask for up to 64 vCPUs. Three jobs arrive; one
// request is filed for the pool's cap (2 × g4dn.xlarge = 8 vCPUs), its
// case is said, the jobs' reasons name it, no instance is launched while
// it is open, and two days later, when AWS approves it, the jobs are
// placed by themselves within a follow period and all succeed.
func TestFreshAccountQuotaRequested(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{QuotaRequestMax: 64})
	w.Cloud.Quota[catalog.QuotaG.Code] = 0
	const decided = 47*time.Hour + 2*time.Minute // not on a follow read: the wait for one shows
	w.Cloud.QuotaDecision = func(string, float64) []awssim.QuotaStep {
		return []awssim.QuotaStep{{After: 20 * time.Minute, Status: "CASE_OPENED"}, {After: decided - 20*time.Minute, Status: "APPROVED"}}
	}
	for _, id := range []string{"a", "b", "c"} {
		w.Send(`{"id": "` + id + `", "command": "python train.py"}`)
	}
	w.Poll(ctx)
	start := w.Clock.Now()
	w.Run(ctx, time.Hour)
	reqs := w.Cloud.QuotaRequests()
	if len(reqs) != 1 || *reqs[0].QuotaCode != catalog.QuotaG.Code || *reqs[0].DesiredValue != 8 {
		t.Fatalf("requests after an hour: %+v; want one, for L-DB2E81BA, of 8 vCPUs", reqs)
	}
	id := *reqs[0].Id
	for _, jid := range []string{"a", "b", "c"} {
		j := jobOf(t, w, jid)
		if j.State != job.Queued || !strings.Contains(j.Reason, "request "+id+", CASE_OPENED, case https://console.aws.amazon.com/support/home#/case/?displayId=") {
			t.Errorf("job %s after an hour: %s (%s); want QUEUED naming the request and its case", jid, j.State, j.Reason)
		}
	}
	if n := notesSaying(w, "increase asked: EC2 quota L-DB2E81BA"); n != 1 {
		t.Errorf("%d notices of the request; want 1", n)
	}
	if n := notesSaying(w, "AWS opened support case"); n != 1 {
		t.Errorf("%d notices of the case; want 1", n)
	}
	placed := func() bool { return jobOf(t, w, "a").State != job.Queued && jobOf(t, w, "b").State != job.Queued }
	if !w.RunUntil(ctx, 3*24*time.Hour, placed) {
		t.Fatalf("never placed: %s", jobOf(t, w, "a").Reason)
	}
	after := w.Clock.Now().Sub(start) - decided
	if after < 0 || after > scheduler.QuotaFollowEvery+2*scheduler.Period {
		t.Errorf("placed %v after the approval; want within a follow period (%v) and a tick", after, scheduler.QuotaFollowEvery)
	}
	t.Logf("placed %v after the approval; calls over the two days: %d RequestServiceQuotaIncrease, %d GetRequestedServiceQuotaChange, %d ListRequestedServiceQuotaChangeHistoryByQuota, %d GetServiceQuota, %d RunInstances",
		after, w.Cloud.Calls["RequestServiceQuotaIncrease"], w.Cloud.Calls["GetRequestedServiceQuotaChange"], w.Cloud.Calls["ListRequestedServiceQuotaChangeHistoryByQuota"], w.Cloud.Calls["GetServiceQuota"], w.Cloud.Calls["RunInstances"])
	if got := w.Cloud.Calls["RequestServiceQuotaIncrease"]; got != 1 {
		t.Errorf("%d RequestServiceQuotaIncrease calls over two days; want 1", got)
	}
	if got := w.Cloud.Calls["RunInstances"]; got > 2 {
		t.Errorf("%d RunInstances calls; want at most the cap's 2, none refused for the quota", got)
	}
	// Two days of ticks read the request's status every 5 minutes, no more.
	if got, most := w.Cloud.Calls["GetRequestedServiceQuotaChange"], int(decided/scheduler.QuotaFollowEvery)+2; got > most {
		t.Errorf("%d status reads over %v; want at most %d (one per %v)", got, decided, most, scheduler.QuotaFollowEvery)
	}
	if n := notesSaying(w, "AWS approved raising EC2 quota L-DB2E81BA"); n != 1 {
		t.Errorf("%d approval notices; want 1", n)
	}
	for _, jid := range []string{"a", "b", "c"} {
		if !w.RunUntil(ctx, 6*time.Hour, stateIs(w, jid, job.Succeeded)) {
			t.Errorf("job %s: %s (%s)", jid, jobOf(t, w, jid).State, jobOf(t, w, jid).Reason)
		}
	}
	checkSafety(t, w)
}

// TestQuotaDenied: AWS denies the request; the notice and the jobs'
// reasons say so and what to do next; nightshift asks no more; a job with
// a max_wait fails at it, saying it waited for the quota.
func TestQuotaDenied(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{QuotaRequestMax: 64})
	w.Cloud.Quota[catalog.QuotaG.Code] = 0
	w.Cloud.QuotaDecision = func(string, float64) []awssim.QuotaStep {
		return []awssim.QuotaStep{{After: time.Hour, Status: "CASE_OPENED"}, {After: 5 * time.Hour, Status: "DENIED"}}
	}
	w.Send(`{"id": "patient", "command": "python train.py"}`)
	w.Send(`{"id": "hurried", "command": "python train.py", "max_wait": "12h"}`)
	w.Poll(ctx)
	w.Run(ctx, 24*time.Hour)
	j := jobOf(t, w, "patient")
	for _, want := range []string{"was DENIED", "displayId=", "does not ask again by itself", "nightshift quota --request N"} {
		if !strings.Contains(j.Reason, want) {
			t.Errorf("reason %q does not say %q", j.Reason, want)
		}
	}
	if j.State != job.Queued {
		t.Errorf("patient: %s; want QUEUED (a denial is not the job's failure)", j.State)
	}
	if h := jobOf(t, w, "hurried"); h.State != job.Failed || !strings.Contains(h.Reason, "its max_wait of 12h0m0s") || !strings.Contains(h.Reason, "vCPU quota") {
		t.Errorf("hurried: %s (%s); want FAILED at its max_wait, saying the quota", h.State, h.Reason)
	}
	if got := w.Cloud.Calls["RequestServiceQuotaIncrease"]; got != 1 {
		t.Errorf("%d requests in a day with the first denied; want 1", got)
	}
	if n := notesSaying(w, "AWS did not approve raising EC2 quota L-DB2E81BA"); n != 1 {
		t.Errorf("%d denial notices; want 1", n)
	}
	if got := w.Cloud.Calls["RunInstances"]; got != 0 {
		t.Errorf("%d RunInstances calls with the quota at 0; want none", got)
	}
}

// TestQuotaPreflightSkipsFullFamily: a job that lists a P type first and a
// G type second, with the P quota 0: the launch asks EC2 for the G type
// only — one RunInstances call, not a refused one first.
func TestQuotaPreflightSkipsFullFamily(t *testing.T) {
	for _, tt := range []struct {
		name     string
		noQuotas bool
		calls    int
	}{{"preflight", false, 1}, {"EC2 refuses", true, 2}} {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t, sim.Config{NoQuotas: tt.noQuotas})
			w.Cloud.Quota[catalog.QuotaP.Code] = 0
			w.Send(`{"id": "a", "command": "python train.py", "instance": {"types": ["p3.2xlarge", "g5.xlarge"]}}`)
			w.Poll(ctx)
			if !w.RunUntil(ctx, time.Hour, stateIs(w, "a", job.Succeeded)) {
				t.Fatalf("job: %s", jobOf(t, w, "a").Reason)
			}
			if got := w.Cloud.Calls["RunInstances"]; got != tt.calls {
				t.Errorf("%d RunInstances calls; want %d", got, tt.calls)
			}
			if typ := jobOf(t, w, "a").InstanceType; typ != "g5.xlarge" {
				t.Errorf("ran on %s; want g5.xlarge", typ)
			}
		})
	}
}

// TestSpotQuotaFallbackSaid: a spot-then-on-demand job on an account whose
// G spot quota is 0 is launched on-demand without a refused spot call, and
// its reason says why spot was not used.
func TestSpotQuotaFallbackSaid(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t, sim.Config{})
	w.Cloud.Quota[catalog.QuotaGSpot.Code] = 0
	w.Send(`{"id": "a", "command": "python train.py", "instance": {"market": "spot-then-on-demand"}}`)
	w.Poll(ctx)
	j := jobOf(t, w, "a")
	if got := w.Cloud.Calls["RunInstances"]; got != 1 {
		t.Errorf("%d RunInstances calls; want 1, on-demand, the spot rung skipped by the preflight", got)
	}
	if !strings.Contains(j.Reason, "spot was refused for g4dn.xlarge (preflight: 0 of 0 vCPUs in use)") || !strings.Contains(j.Reason, "on-demand") {
		t.Errorf("reason %q; want it to say spot's quota sent it on-demand", j.Reason)
	}
	if !w.RunUntil(ctx, time.Hour, stateIs(w, "a", job.Succeeded)) {
		t.Fatalf("a = %s (%s)", jobOf(t, w, "a").State, jobOf(t, w, "a").Reason)
	}
}
