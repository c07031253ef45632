package scheduler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// fakeQuotas is Service Quotas with one applied value per code and a
// history of requests, counting every call. Like the adapter, it keeps
// the value it answered until told to Forget it (a cache that never
// expires: only Forget lets a change through).
type fakeQuotas struct {
	applied map[string]float64
	cached  map[string]float64
	used    map[string]int
	reqs    []quota.Request // oldest first
	calls   map[string]int
	// requestErr, usageErr, appliedErr: the calls fail.
	requestErr, usageErr, appliedErr error
	forgot                           []string
	now                              func() time.Time
}

func newFakeQuotas(now func() time.Time) *fakeQuotas {
	return &fakeQuotas{applied: map[string]float64{}, cached: map[string]float64{}, used: map[string]int{}, calls: map[string]int{}, now: now}
}

func (q *fakeQuotas) Applied(_ context.Context, code string) (float64, error) {
	q.calls["Applied"]++
	if q.appliedErr != nil {
		return 0, q.appliedErr
	}
	if v, ok := q.cached[code]; ok {
		return v, nil
	}
	q.cached[code] = q.applied[code]
	return q.applied[code], nil
}
func (q *fakeQuotas) Forget(code string) {
	q.forgot = append(q.forgot, code)
	delete(q.cached, code)
}
func (q *fakeQuotas) Usage(context.Context) (map[string]int, error) {
	q.calls["Usage"]++
	if q.usageErr != nil {
		return nil, q.usageErr
	}
	m := map[string]int{}
	for k, v := range q.used {
		m[k] = v
	}
	return m, nil
}
func (q *fakeQuotas) Request(_ context.Context, code string, desired float64) (quota.Request, error) {
	q.calls["Request"]++
	if q.requestErr != nil {
		return quota.Request{}, q.requestErr
	}
	for _, r := range q.reqs {
		if r.Code == code && r.Open() {
			return quota.Request{}, quota.ErrOpen
		}
	}
	r := quota.Request{ID: fmt.Sprintf("req-%d", len(q.reqs)+1), Code: code, Desired: desired, Status: quota.StatusPending, Created: q.now()}
	q.reqs = append(q.reqs, r)
	return r, nil
}
func (q *fakeQuotas) Get(_ context.Context, id string) (quota.Request, error) {
	q.calls["Get"]++
	for _, r := range q.reqs {
		if r.ID == id {
			return r, nil
		}
	}
	return quota.Request{}, errors.New("no such request")
}
func (q *fakeQuotas) History(_ context.Context, code string) ([]quota.Request, error) {
	q.calls["History"]++
	var out []quota.Request
	for i := len(q.reqs) - 1; i >= 0; i-- {
		if q.reqs[i].Code == code {
			out = append(out, q.reqs[i])
		}
	}
	return out, nil
}

// decide sets the status of request id, as AWS would.
func (q *fakeQuotas) decide(id, status, caseID string) {
	for i := range q.reqs {
		if q.reqs[i].ID == id {
			q.reqs[i].Status, q.reqs[i].CaseID = status, caseID
			if status == quota.StatusApproved {
				q.applied[q.reqs[i].Code] = q.reqs[i].Desired
			}
		}
	}
}

// launchFleet launches every request as a new running instance.
type launchFleet struct {
	followFleet
	launches int
}

func (f *launchFleet) Launch(_ context.Context, r fleet.LaunchRequest) (fleet.Instance, error) {
	f.launches++
	i := fleet.Instance{ID: fmt.Sprintf("i-%08d", f.launches), Type: r.Types[0], State: fleet.StatePending, Pool: r.Pool, Job: r.Job, Attempt: r.Attempt, Managed: true}
	f.insts = append(f.insts, i)
	return i, nil
}

// quotaWorld is a scheduler over a store, a launching fleet and fake
// quotas, on a clock the test moves.
type quotaWorld struct {
	t     *testing.T
	now   time.Time
	st    *store.Memory
	fl    *launchFleet
	q     *fakeQuotas
	said  *saidNotifier
	sched *Scheduler
}

func newQuotaWorld(t *testing.T, askMax int) *quotaWorld {
	w := &quotaWorld{t: t, now: t0, st: store.NewMemory(), fl: &launchFleet{}, said: &saidNotifier{}}
	w.q = newFakeQuotas(func() time.Time { return w.now })
	cfg := Config{Pools: map[string]Pool{"gpu": {Types: []string{"g5.xlarge"}, MaxInstances: 2}}, DefaultPool: "gpu", QuotaRequestMax: askMax, Region: "us-east-1"}
	w.sched = New(w.st, w.fl, &followRunner{}, w.said, cfg, func() time.Time { return w.now }, slog.New(slog.DiscardHandler))
	w.sched.UseQuotas(w.q)
	return w
}

func (w *quotaWorld) submit(id string) {
	w.t.Helper()
	if _, err := w.sched.Submit(context.Background(), []byte(`{"id": "`+id+`", "command": "python train.py"}`), "m-"+id); err != nil {
		w.t.Fatal(err)
	}
}

// pass runs one reconcile, d after the last, as the watchdog's tick does.
func (w *quotaWorld) pass(d time.Duration) {
	w.t.Helper()
	w.now = w.now.Add(d)
	if err := w.sched.Reconcile(context.Background(), Options{Poll: true}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *quotaWorld) job(id string) *job.Job {
	w.t.Helper()
	j, err := w.st.Job(context.Background(), id)
	if err != nil {
		w.t.Fatal(err)
	}
	return j
}

func (w *quotaWorld) notices(sub string) int {
	n := 0
	for _, a := range w.said.said {
		if strings.Contains(a.Why, sub) {
			n++
		}
	}
	return n
}

// TestQuotaPreflightWaits: with a quota of 0 and nightshift not allowed to
// ask, the job waits without a launch, its reason giving the quota, the
// usage, what it needs and the command to ask; Service Quotas' history is
// read every QuotaFollowEvery, not every pass.
func TestQuotaPreflightWaits(t *testing.T) {
	w := newQuotaWorld(t, 0)
	w.q.used[catalog.QuotaG.Code] = 0
	w.submit("a")
	for range 10 {
		w.pass(time.Minute)
	}
	j := w.job("a")
	if j.State != job.Queued || w.fl.launches != 0 {
		t.Fatalf("job %s after %d launches; want QUEUED and none", j.State, w.fl.launches)
	}
	for _, want := range []string{"L-DB2E81BA", "Running On-Demand G and VT instances", "is 0 vCPUs with 0 in use", "g5.xlarge needs 4", "nightshift quota --request 4", "servicequotas/home"} {
		if !strings.Contains(j.Reason, want) {
			t.Errorf("reason %q does not say %q", j.Reason, want)
		}
	}
	if got := w.q.calls["Request"]; got != 0 {
		t.Errorf("%d RequestServiceQuotaIncrease calls with QuotaRequestMax 0; want none", got)
	}
	// 11 passes over 10 minutes (the submit's, then one a minute): read at
	// 0, 5 and 10 minutes.
	if got := w.q.calls["History"]; got < 2 || got > 3 {
		t.Errorf("%d history reads in 10 minutes; want one every %v (2–3)", got, QuotaFollowEvery)
	}
	// A person files the request in the console: the reason names it
	// within a follow period, and the job is placed once it is approved.
	w.q.reqs = append(w.q.reqs, quota.Request{ID: "by-hand", Code: catalog.QuotaG.Code, Desired: 8, Status: quota.StatusPending, Created: w.now})
	for range 5 {
		w.pass(time.Minute)
	}
	if j := w.job("a"); !strings.Contains(j.Reason, "request by-hand") {
		t.Errorf("reason %q does not name the request filed by hand", j.Reason)
	}
	w.q.decide("by-hand", quota.StatusApproved, "")
	for range 5 {
		w.pass(time.Minute)
	}
	if j := w.job("a"); j.State != job.Placed || w.fl.launches != 1 {
		t.Errorf("after the approval: %s (%s), %d launches; want PLACED, one launch", j.State, j.Reason, w.fl.launches)
	}
}

// TestQuotaAskedOnceAndFollowed: nightshift asks once for room for the
// pool's cap, says so, reads the status every QuotaFollowEvery, says the
// case it opened, and places the jobs in the pass that sees the approval.
func TestQuotaAskedOnceAndFollowed(t *testing.T) {
	w := newQuotaWorld(t, 64)
	w.submit("a")
	w.submit("b")
	w.pass(time.Minute)
	if got := w.q.calls["Request"]; got != 1 {
		t.Fatalf("%d requests after the first pass; want 1", got)
	}
	if r := w.q.reqs[0]; r.Desired != 8 {
		t.Errorf("asked for %g vCPUs; want 8 (2 instances of 4, the pool's cap)", r.Desired)
	}
	for range 20 {
		w.pass(time.Minute)
	}
	if got := w.q.calls["Request"]; got != 1 {
		t.Errorf("%d requests in 20 minutes with one open; want 1", got)
	}
	if got := w.q.calls["Get"]; got < 3 || got > 5 {
		t.Errorf("%d status reads in 20 minutes; want one every %v (4)", got, QuotaFollowEvery)
	}
	for _, id := range []string{"a", "b"} {
		if j := w.job(id); j.State != job.Queued || !strings.Contains(j.Reason, "increase to 8 asked") || !strings.Contains(j.Reason, "request req-1") {
			t.Errorf("job %s: %s (%s); want QUEUED naming the request", id, j.State, j.Reason)
		}
	}
	if got := w.notices("increase asked"); got != 1 {
		t.Errorf("%d notices of the request; want 1", got)
	}
	w.q.decide("req-1", quota.StatusCaseOpened, "17123")
	for range 5 {
		w.pass(time.Minute)
	}
	if got := w.notices("displayId=17123"); got != 1 {
		t.Errorf("%d notices with the case link; want 1", got)
	}
	if j := w.job("a"); !strings.Contains(j.Reason, "CASE_OPENED, case https://console.aws.amazon.com/support/home#/case/?displayId=17123") {
		t.Errorf("reason %q does not give the case", j.Reason)
	}
	w.q.decide("req-1", quota.StatusApproved, "17123")
	placed := false
	for range 6 {
		w.pass(time.Minute)
		if w.fl.launches == 2 {
			placed = true
			break
		}
	}
	if !placed || w.job("a").State != job.Placed || w.job("b").State != job.Placed {
		t.Fatalf("after the approval: %d launches, a %s, b %s; want both placed within a follow period", w.fl.launches, w.job("a").State, w.job("b").State)
	}
	if got := w.notices("AWS approved"); got != 1 {
		t.Errorf("%d approval notices; want 1", got)
	}
	if len(w.q.forgot) == 0 || w.q.forgot[0] != catalog.QuotaG.Code {
		t.Errorf("forgot %v; want the approved quota's cached value dropped", w.q.forgot)
	}
}

// TestQuotaDenied: a denial is said with what to do next, the job's reason
// says it, and nightshift does not ask again by itself.
func TestQuotaDenied(t *testing.T) {
	w := newQuotaWorld(t, 64)
	w.submit("a")
	w.pass(time.Minute)
	w.q.decide("req-1", quota.StatusDenied, "17999")
	for range 30 {
		w.pass(time.Minute)
	}
	j := w.job("a")
	for _, want := range []string{"request req-1) was DENIED", "displayId=17999", "does not ask again by itself", "nightshift quota --request N"} {
		if !strings.Contains(j.Reason, want) {
			t.Errorf("reason %q does not say %q", j.Reason, want)
		}
	}
	if got := w.q.calls["Request"]; got != 1 {
		t.Errorf("%d requests after a denial; want 1 (a person decides)", got)
	}
	if got := w.notices("AWS did not approve"); got != 1 {
		t.Errorf("%d denial notices; want 1", got)
	}
}

// TestQuotaUsageCountsThePass: two jobs, room for one beside what others
// run: the pass launches one and the other waits, saying the usage.
func TestQuotaUsageCountsThePass(t *testing.T) {
	w := newQuotaWorld(t, 0)
	w.q.applied[catalog.QuotaG.Code] = 8
	w.q.used[catalog.QuotaG.Code] = 4 // another team's g5.xlarge
	w.submit("a")
	w.submit("b")
	w.pass(time.Minute)
	if w.fl.launches != 1 {
		t.Fatalf("%d launches with room for one; want 1", w.fl.launches)
	}
	var waiting *job.Job
	for _, id := range []string{"a", "b"} {
		if j := w.job(id); j.State == job.Queued {
			waiting = j
		}
	}
	if waiting == nil || !strings.Contains(waiting.Reason, "is 8 vCPUs with 8 in use") {
		t.Fatalf("the second job: %+v; want it QUEUED, saying 8 of 8 in use", waiting)
	}
}

// TestQuotaUnreadLaunches: when the quota or the usage cannot be read, the
// launch goes ahead (EC2's check is the authority), and nothing is asked.
func TestQuotaUnreadLaunches(t *testing.T) {
	for _, tt := range []struct {
		name string
		set  func(q *fakeQuotas)
	}{
		{"usage", func(q *fakeQuotas) { q.usageErr = errors.New("UnauthorizedOperation") }},
		{"applied", func(q *fakeQuotas) { q.appliedErr = quota.ErrDenied }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newQuotaWorld(t, 64)
			tt.set(w.q)
			w.submit("a")
			w.pass(time.Minute)
			if w.fl.launches != 1 || w.q.calls["Request"] != 0 {
				t.Errorf("%d launches, %d requests; want the launch tried, nothing asked", w.fl.launches, w.q.calls["Request"])
			}
		})
	}
}

// TestQuotaAskFailures: a refused call is recorded and said, and asked
// again after QuotaRetry; an open request filed meanwhile is adopted; an
// intent whose pass crashed before the call is asked again after
// QuotaAskTimeout, once.
func TestQuotaAskFailures(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		w := newQuotaWorld(t, 64)
		w.q.requestErr = fmt.Errorf("%w: %w", quota.ErrDenied, &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not allowed"})
		w.submit("a")
		w.pass(time.Minute)
		if got := w.notices("could not ask AWS"); got != 1 {
			t.Errorf("%d failure notices; want 1", got)
		}
		if j := w.job("a"); !strings.Contains(j.Reason, "AccessDeniedException") {
			t.Errorf("reason %q does not say the call failed", j.Reason)
		}
		w.q.requestErr = nil
		for range 59 {
			w.pass(time.Minute)
		}
		if got := w.q.calls["Request"]; got != 1 {
			t.Errorf("%d calls within %v of the failure; want 1", got, QuotaRetry)
		}
		for range 6 {
			w.pass(time.Minute)
		}
		if got := w.q.calls["Request"]; got != 2 {
			t.Errorf("%d calls after %v; want 2", got, QuotaRetry)
		}
	})
	t.Run("no answer", func(t *testing.T) {
		// The call timed out: it may have been filed. Nothing is asked
		// again until the history says it was not.
		w := newQuotaWorld(t, 64)
		w.q.requestErr = context.DeadlineExceeded
		w.submit("a")
		w.pass(time.Minute)
		w.q.requestErr = nil
		w.q.reqs = append(w.q.reqs, quota.Request{ID: "filed", Code: catalog.QuotaG.Code, Desired: 8, Status: quota.StatusPending, Created: w.now})
		for range 10 {
			w.pass(time.Minute)
		}
		if j := w.job("a"); w.q.calls["Request"] != 1 || !strings.Contains(j.Reason, "request filed") {
			t.Errorf("%d calls, reason %q; want the unanswered request found in the history, not asked again", w.q.calls["Request"], j.Reason)
		}
	})
	t.Run("open already", func(t *testing.T) {
		w := newQuotaWorld(t, 64)
		w.q.reqs = append(w.q.reqs, quota.Request{ID: "theirs", Code: catalog.QuotaG.Code, Desired: 4, Status: quota.StatusPending, Created: t0.Add(-time.Hour)})
		w.submit("a")
		w.pass(time.Minute)
		if j := w.job("a"); !strings.Contains(j.Reason, "request theirs") || w.q.calls["Request"] != 0 {
			t.Errorf("reason %q after %d requests; want the open request adopted, none filed", j.Reason, w.q.calls["Request"])
		}
	})
	t.Run("crashed intent", func(t *testing.T) {
		w := newQuotaWorld(t, 64)
		rec := store.QuotaRequest{Code: catalog.QuotaG.Code, Status: store.QuotaAsking, Desired: 8, AskedAt: t0, CheckedAt: t0}
		if err := w.st.PutQuotaRequest(context.Background(), &rec); err != nil {
			t.Fatal(err)
		}
		w.submit("a")
		for range 4 {
			w.pass(time.Minute)
		}
		if got := w.q.calls["Request"]; got != 0 {
			t.Errorf("%d calls within %v of another pass's intent; want none", got, QuotaAskTimeout)
		}
		for range 6 {
			w.pass(time.Minute)
		}
		if got := w.q.calls["Request"]; got != 1 {
			t.Errorf("%d calls after the intent went stale with nothing filed; want 1", got)
		}
	})
}

// TestQuotaApprovedNotAskedAgain: an approved increase that Service Quotas
// has not applied yet is not asked for again; the reason says it waits.
func TestQuotaApprovedNotAskedAgain(t *testing.T) {
	w := newQuotaWorld(t, 64)
	w.submit("a")
	w.pass(time.Minute)
	w.q.decide("req-1", quota.StatusApproved, "")
	w.q.applied[catalog.QuotaG.Code] = 0 // approved, not applied yet
	for range 15 {
		w.pass(time.Minute)
	}
	if got := w.q.calls["Request"]; got != 1 {
		t.Errorf("%d requests; want 1: the approval stands while AWS applies it", got)
	}
	if j := w.job("a"); !strings.Contains(j.Reason, "increase to 8 approved (request req-1); waiting for AWS to apply it") {
		t.Errorf("reason %q; want it waiting for the approved value", j.Reason)
	}
}

// TestMaxWaitDeepInTheQueue: sixty jobs wait on a quota of 0, more than
// the head a pass reads (its room plus queueScanMargin): the first 55 for
// ever, the last five with a max_wait of 5m. The five, never in the head,
// fail at their max_wait within a QuotaFollowEvery of it, saying what they
// waited for; the others wait on.
func TestMaxWaitDeepInTheQueue(t *testing.T) {
	w := newQuotaWorld(t, 0)
	const n, patient = 60, 55
	for i := range n {
		id, mw := fmt.Sprintf("j%02d", i), ""
		if i >= patient {
			mw = `, "max_wait": "5m"`
		}
		if _, err := w.sched.Submit(context.Background(), []byte(`{"id": "`+id+`", "command": "python train.py"`+mw+`}`), "m-"+id); err != nil {
			t.Fatal(err)
		}
		w.now = w.now.Add(time.Second) // submitted in order: the queue's order
	}
	for range 5 + int(QuotaFollowEvery/time.Minute) + 1 {
		w.pass(time.Minute)
	}
	for i := range n {
		j := w.job(fmt.Sprintf("j%02d", i))
		switch {
		case i < patient && j.State != job.Queued:
			t.Errorf("job %s, no max_wait: %s (%s); want QUEUED", j.ID, j.State, j.Reason)
		case i >= patient && (j.State != job.Failed || !strings.Contains(j.Reason, "its max_wait of 5m0s")):
			t.Errorf("job %s, deep in the queue, after its max_wait and a follow window: %s (%s); want FAILED for waiting", j.ID, j.State, j.Reason)
		}
	}
}
