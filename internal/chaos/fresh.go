package chaos

import (
	"math/rand/v2"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
)

// Fresh accounts: one history in five (drawn from a source of its own, so
// the others replay as before) runs on a brand-new account: its G vCPU
// quotas, on-demand and spot, are 0, and the stack lets nightshift ask
// for up to FreshQuotaMax vCPUs. AWS opens a case within hours and
// approves each request about two days after it was filed.
const (
	// FreshQuotaMax is the stack's QuotaRequestMaxVcpus in fresh histories.
	FreshQuotaMax = 64
	// freshApproveMin and freshApproveSpan bound when AWS approves: 40 to
	// 56 hours after the request, as a new account's GPU ask takes.
	freshApproveMin, freshApproveSpan = 40 * time.Hour, 16 * time.Hour
)

// freshAccount draws whether the history's account is brand new, and how
// AWS decides its requests.
func (h *history) freshAccount() {
	r := rand.New(rand.NewPCG(h.seed^0xc0ac29b7c97c50dd, h.seed))
	if r.IntN(5) != 0 {
		return
	}
	h.fresh = true
	h.caseAfter = time.Duration(10+r.IntN(360)) * time.Minute
	h.approveAfter = freshApproveMin + time.Duration(r.Int64N(int64(freshApproveSpan)))
}

// freshCloud sets the brand-new account's quotas and AWS's decisions.
func (h *history) freshCloud() {
	if !h.fresh {
		return
	}
	h.w.Cloud.Quota = map[string]int{catalog.QuotaG.Code: 0, catalog.QuotaGSpot.Code: 0}
	h.w.Cloud.QuotaDecision = func(string, float64) []awssim.QuotaStep {
		return []awssim.QuotaStep{{After: h.caseAfter, Status: "CASE_OPENED"}, {After: h.approveAfter - h.caseAfter, Status: "APPROVED"}}
	}
}

// freshKnown reports whether nightshift has had the time to see the fresh
// account's quotas granted: every G quota raised, none of its requests
// open, the last approval one follow period and a tick ago.
func (h *history) freshKnown(now time.Time) bool {
	if !h.fresh {
		return true
	}
	for _, code := range []string{catalog.QuotaG.Code, catalog.QuotaGSpot.Code} {
		if h.w.Cloud.Quota[code] == 0 {
			return false
		}
	}
	var last time.Time
	for _, r := range h.w.Cloud.QuotaRequests() {
		if r.Status == "PENDING" || r.Status == "CASE_OPENED" {
			return false // a further increase asked (notebooks past the pool's cap), not granted yet
		}
		if r.Status == "APPROVED" && r.LastUpdated != nil && r.LastUpdated.After(last) {
			last = *r.LastUpdated
		}
	}
	return now.Sub(last) >= scheduler.QuotaFollowEvery+scheduler.Period
}

// q1: nightshift never asks for a quota while a request of it is open
// (Service Quotas refuses the second: it would be a caller that asks
// twice), never asks past the stack's bound, and never asks again for
// what it was granted: each quota's requests ask for more each time.
func (c *checker) q1() {
	h := c.h
	if n := h.w.Cloud.QuotaAskedWhileOpen; n > 0 {
		c.fail("Q1", "%d increase requests made while the quota had one open", n)
		return
	}
	asked := map[string]float64{}
	for _, r := range h.w.Cloud.QuotaRequests() {
		code, want := *r.QuotaCode, *r.DesiredValue
		if h.fresh && want > FreshQuotaMax || !h.fresh {
			c.fail("Q1", "request %s for %s asks %g vCPUs (fresh account %v, bound %d)", *r.Id, code, want, h.fresh, FreshQuotaMax)
			return
		}
		if prev, ok := asked[code]; ok && want <= prev {
			c.fail("Q1", "request %s for %s asks %g vCPUs after a request for %g", *r.Id, code, want, prev)
			return
		}
		asked[code] = want
	}
}

// q2end: a fresh account's jobs were placed by nightshift's own request:
// one was filed for the on-demand G quota whenever a job was sent.
func (c *checker) q2end() {
	h := c.h
	if !h.fresh || len(h.jobs) == 0 {
		return
	}
	for _, r := range h.w.Cloud.QuotaRequests() {
		if *r.QuotaCode == catalog.QuotaG.Code {
			return
		}
	}
	c.fail("Q2", "a fresh account with %d jobs sent, and no increase of %s asked", len(h.jobs), catalog.QuotaG.Code)
}
