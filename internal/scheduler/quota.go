package scheduler

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awserr"
	"github.com/nightshift-dev/nightshift/internal/catalog"
	"github.com/nightshift-dev/nightshift/internal/fleet"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/notice"
	"github.com/nightshift-dev/nightshift/internal/quota"
	"github.com/nightshift-dev/nightshift/internal/store"
)

// Quotas is what the scheduler needs from Service Quotas and from EC2's
// list of every instance of the account.
type Quotas interface {
	// Applied is a quota's applied value in vCPUs (cached by the adapter).
	Applied(ctx context.Context, code string) (float64, error)
	// Forget drops a cached applied value: it changed, or EC2 disagreed.
	Forget(code string)
	// Usage is the vCPUs of every pending or running instance of the
	// account, nightshift's and others', under each quota code.
	Usage(ctx context.Context) (map[string]int, error)
	Request(ctx context.Context, code string, desired float64) (quota.Request, error)
	Get(ctx context.Context, id string) (quota.Request, error)
	// History lists a quota's increase requests, newest first.
	History(ctx context.Context, code string) ([]quota.Request, error)
}

var _ Quotas = (*quota.Quotas)(nil)

// Quota timing. Each is a named constant with its reason.
const (
	// QuotaFollowEvery is how often a quota's increase request is read
	// from Service Quotas while jobs wait on it: AWS decides in minutes to
	// days, and a job placed within five minutes of the decision is
	// placed "by itself" for its person; every pass would be ~1,400
	// calls a day for nothing.
	QuotaFollowEvery = 5 * time.Minute
	// QuotaAskTimeout is how long an intent to ask (store.QuotaAsking)
	// stands without a request id before another pass takes the asking
	// pass for crashed: it looks for the request Service Quotas lists,
	// and asks again only when there is none.
	QuotaAskTimeout = 5 * time.Minute
	// QuotaRetry is how long nightshift waits to ask again after Service
	// Quotas refused the call itself (access, too many open requests).
	QuotaRetry = time.Hour
)

// UseQuotas makes the scheduler read the vCPU quotas before launching,
// and follow (and, with Config.QuotaRequestMax, file) increase requests;
// nil (the default) launches without reading them, and EC2's refusal says.
func (s *Scheduler) UseQuotas(q Quotas) { s.quotas = q }

// quotaView is one pass's reading of the quotas: read when a job is about
// to launch, at most once a pass.
type quotaView struct {
	read bool
	// used is the vCPUs in use per code (nil: unreadable, so no job waits
	// on a figure nightshift does not have; EC2 decides).
	used    map[string]int
	applied map[string]float64
	// unread marks the codes whose applied value could not be read.
	unread map[string]bool
	// records are the quotas' request records read this pass.
	records map[string]store.QuotaRequest
}

// shortfall is one (type, market) of a job that does not fit its quota.
type shortfall struct {
	quota   catalog.Quota
	typ     string
	need    int
	applied float64
	used    int
}

// quotaRoom reports whether some (type, market) of a launch fits its
// vCPU quota; when none does, why (the quota, its usage, what the job
// needs, and the increase request). A figure that cannot be read lets
// the launch go: EC2's own check is the authority.
func (s *Scheduler) quotaRoom(ctx context.Context, w *world, types []string, market string) (string, bool) {
	if s.quotas == nil {
		return "", true
	}
	short, fits := s.shortfalls(ctx, w, types, market)
	if fits {
		return "", true
	}
	granted := false
	for _, code := range codes(short) {
		if s.followQuota(ctx, w, code, short) {
			granted = true
		}
	}
	if granted {
		// A request was approved just now: read the new values.
		if short, fits = s.shortfalls(ctx, w, types, market); fits {
			return "", true
		}
	}
	return s.quotaReason(w, short), false
}

// shortfalls lists the (type, market) rungs of a launch that do not fit
// their quota, in ladder order; fits is true when one does (or when a
// figure is unknown).
func (s *Scheduler) shortfalls(ctx context.Context, w *world, types []string, market string) ([]shortfall, bool) {
	var short []shortfall
	for _, t := range types {
		for _, spot := range catalog.Markets(market) {
			sf, fits := s.rung(ctx, w, t, spot)
			if fits {
				return nil, true
			}
			short = append(short, sf)
		}
	}
	return short, len(short) == 0
}

// rung reads whether one (type, market) fits its quota in this pass:
// fits is true when it does, or when a figure is unknown (the usage or
// the quota unread, a type nightshift has no figures for: EC2 decides);
// otherwise sf says by how much it does not.
func (s *Scheduler) rung(ctx context.Context, w *world, typ string, spot bool) (sf shortfall, fits bool) {
	v := s.readQuotas(ctx, w)
	ct, ok := catalog.Lookup(typ)
	if v.used == nil || !ok {
		return shortfall{}, true
	}
	q := catalog.QuotaFor(typ, spot)
	applied, ok := s.appliedQuota(ctx, w, q.Code)
	if !ok || float64(v.used[q.Code]+ct.VCPUs) <= applied {
		return shortfall{}, true
	}
	return shortfall{quota: q, typ: typ, need: ct.VCPUs, applied: applied, used: v.used[q.Code]}, false
}

// codes lists the distinct quota codes of shortfalls, in order.
func codes(short []shortfall) []string {
	var out []string
	for _, sf := range short {
		if !slices.Contains(out, sf.quota.Code) {
			out = append(out, sf.quota.Code)
		}
	}
	return out
}

// readQuotas reads the usage once a pass.
func (s *Scheduler) readQuotas(ctx context.Context, w *world) *quotaView {
	v := &w.quota
	if v.read {
		return v
	}
	v.read = true
	v.applied, v.unread, v.records = map[string]float64{}, map[string]bool{}, map[string]store.QuotaRequest{}
	used, err := s.quotas.Usage(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "vCPU usage unread; launching without the quota preflight", "err", err)
		return v
	}
	v.used = used
	return v
}

// appliedQuota is a quota's applied value, read once a pass (the adapter caches it).
func (s *Scheduler) appliedQuota(ctx context.Context, w *world, code string) (float64, bool) {
	v := &w.quota
	if a, ok := v.applied[code]; ok {
		return a, true
	}
	if v.unread[code] {
		return 0, false
	}
	a, err := s.quotas.Applied(ctx, code)
	if err != nil {
		v.unread[code] = true
		s.log.WarnContext(ctx, "quota unread; launching without the preflight", "quota", code, "err", err)
		return 0, false
	}
	v.applied[code] = a
	return a, true
}

// noRoom is the fleet's view of the pass's quota reading: a (type,
// market) whose quota has no room for it is not asked for, when the
// figures are known (nil when nothing was read).
func (s *Scheduler) noRoom(ctx context.Context, w *world) func(string, bool) error {
	if s.quotas == nil || w.quota.used == nil {
		return nil
	}
	return func(typ string, spot bool) error {
		sf, fits := s.rung(ctx, w, typ, spot)
		if fits {
			return nil
		}
		kind := fleet.ErrQuota
		if spot {
			kind = fleet.ErrSpotQuota
		}
		return &fleet.LaunchError{Kind: kind, Code: fmt.Sprintf("preflight: %d of %g vCPUs in use", sf.used, sf.applied), InstanceType: typ, Quota: sf.quota, Region: s.cfg.Region,
			Err: fmt.Errorf("%s needs %d vCPUs", typ, sf.need)}
	}
}

// quotaUsed counts an instance this pass launched or started against its
// quota, so the pass's next launch sees it.
func (s *Scheduler) quotaUsed(w *world, typ string, spot bool) {
	if w.quota.used == nil {
		return
	}
	if ct, ok := catalog.Lookup(typ); ok {
		w.quota.used[catalog.QuotaFor(typ, spot).Code] += ct.VCPUs
	}
}

// quotaRefused is told that EC2 refused a launch on a quota the
// preflight thought had room: the cached value is stale (lowered, or
// others launched meanwhile).
func (s *Scheduler) quotaRefused(err error) {
	var le *fleet.LaunchError
	if s.quotas != nil && errors.As(err, &le) && (errors.Is(err, fleet.ErrQuota) || errors.Is(err, fleet.ErrSpotQuota)) {
		s.quotas.Forget(le.Quota.Code)
	}
}

// quotaRecord reads a quota's request record once a pass; ok is false
// when the store could not be read (the pass goes on without it).
func (s *Scheduler) quotaRecord(ctx context.Context, w *world, code string) (store.QuotaRequest, bool) {
	if r, ok := w.quota.records[code]; ok {
		return r, true
	}
	r, err := s.store.QuotaRequest(ctx, code)
	switch {
	case errors.Is(err, store.ErrNotFound):
		r = store.QuotaRequest{Code: code}
	case err != nil:
		s.log.WarnContext(ctx, "quota request record unread", "quota", code, "err", err)
		return store.QuotaRequest{}, false
	}
	w.quota.records[code] = r
	return r, true
}

// putQuotaRecord writes r at its version; false when another pass wrote
// first (it acts instead) or the write failed.
func (s *Scheduler) putQuotaRecord(ctx context.Context, w *world, r *store.QuotaRequest) bool {
	if err := s.store.PutQuotaRequest(ctx, r); err != nil {
		if !errors.Is(err, store.ErrConflict) {
			s.log.WarnContext(ctx, "quota request record not written", "quota", r.Code, "err", err)
		}
		delete(w.quota.records, r.Code) // read it again if this pass needs it
		return false
	}
	w.quota.records[r.Code] = *r
	return true
}

// followQuota brings a quota's request record up to date (refreshQuota)
// for a job short of it, and files an increase when the deployment lets
// nightshift ask and none is open. It reports whether a request was
// granted just now.
func (s *Scheduler) followQuota(ctx context.Context, w *world, code string, short []shortfall) bool {
	r, ok := s.quotaRecord(ctx, w, code)
	if !ok {
		return false
	}
	r, granted := s.refreshQuota(ctx, w, r)
	if !granted && s.mayAsk(w, r) {
		s.askQuota(ctx, w, r, short)
	}
	s.sayQuota(ctx, w, code)
	return granted
}

// refreshQuota reads r's status from Service Quotas, at most every
// QuotaFollowEvery: the recorded request's, or the newest request listed
// for the quota (one a person filed in the console or with `nightshift
// quota --request` is followed too). An approval drops the cached value.
func (s *Scheduler) refreshQuota(ctx context.Context, w *world, r store.QuotaRequest) (store.QuotaRequest, bool) {
	if r.Version != 0 && w.now.Sub(r.CheckedAt) < QuotaFollowEvery {
		return r, false
	}
	next, changed, err := s.readRequest(ctx, w, r)
	if err != nil {
		s.log.WarnContext(ctx, "quota request unread", "quota", r.Code, "request", r.ID, "err", err)
		return r, false
	}
	if !s.putQuotaRecord(ctx, w, &next) {
		return r, false
	}
	granted := changed && next.Status == quota.StatusApproved && r.Status != quota.StatusApproved
	if granted {
		s.quotas.Forget(r.Code)
		delete(w.quota.applied, r.Code)
		s.log.InfoContext(ctx, "quota increase granted", "quota", r.Code, "request", next.ID, "desired", next.Desired)
	}
	return next, granted
}

// followOpenQuotas is the tick's follow of the requests still open, so a
// decision is said (and the value read afresh) whether or not a job waits
// on it now: on the first tick of every QuotaFollowEvery window, one query
// of the records and a Service Quotas read per open request not read
// within the window. The other ticks cost nothing more.
func (s *Scheduler) followOpenQuotas(ctx context.Context, w *world) error {
	if s.quotas == nil || w.now.Sub(w.now.Truncate(QuotaFollowEvery)) >= Period {
		return nil
	}
	recs, err := s.store.QuotaRequests(ctx)
	if err != nil {
		return err
	}
	if w.quota.records == nil {
		w.quota.records = map[string]store.QuotaRequest{}
	}
	for _, r := range recs {
		if !openStatus(r.Status) && r.Status != store.QuotaAsking {
			continue
		}
		if cur, ok := w.quota.records[r.Code]; ok {
			r = cur // this pass has read or written it already
		} else {
			w.quota.records[r.Code] = r
		}
		s.refreshQuota(ctx, w, r)
		s.sayQuota(ctx, w, r.Code)
	}
	return nil
}

// readRequest returns r with the status Service Quotas reports now: the
// recorded open request's; or, when none is open, the newest request
// listed for the quota when it is open (a person filed it) or newer than
// the recorded one. changed says whether anything but CheckedAt moved.
func (s *Scheduler) readRequest(ctx context.Context, w *world, r store.QuotaRequest) (store.QuotaRequest, bool, error) {
	next := r
	next.CheckedAt = w.now
	var got quota.Request
	switch {
	case r.ID != "" && openStatus(r.Status):
		g, err := s.quotas.Get(ctx, r.ID)
		if err != nil {
			return r, false, err
		}
		got = g
	case r.Status == store.QuotaAsking && w.now.Sub(r.AskedAt) < QuotaAskTimeout:
		return next, false, nil // the asking pass is at it
	default:
		hist, err := s.quotas.History(ctx, r.Code)
		if err != nil {
			return r, false, err
		}
		adopt := len(hist) > 0 && hist[0].ID != r.ID && (hist[0].Open() || r.Status != "" && hist[0].Created.After(r.AskedAt.Add(-time.Minute)))
		if !adopt {
			if r.Status == store.QuotaAsking {
				// The asking pass crashed before its call, or the call
				// never reached Service Quotas: nothing was asked.
				next.Status = ""
			}
			return next, next.Status != r.Status, nil
		}
		got = hist[0]
		next.AskedAt = got.Created
	}
	next.ID, next.CaseID, next.Status, next.Message = got.ID, got.CaseID, got.Status, ""
	if got.Desired > 0 {
		next.Desired = int(got.Desired)
	}
	switch {
	case got.Open():
		next.DecidedAt = time.Time{}
	case openStatus(r.Status) || r.ID != got.ID:
		next.DecidedAt = w.now
	}
	return next, next.Status != r.Status || next.ID != r.ID || next.CaseID != r.CaseID, nil
}

// openStatus reports whether a recorded status is a request AWS has not decided.
func openStatus(st string) bool { return st == quota.StatusPending || st == quota.StatusCaseOpened }

// mayAsk reports whether nightshift may file an increase for r's quota
// now: the deployment lets it, and no request is open, being asked, or
// refused by AWS (a person decides after a denial), or waiting out a
// failed call.
func (s *Scheduler) mayAsk(w *world, r store.QuotaRequest) bool {
	if s.cfg.QuotaRequestMax <= 0 {
		return false
	}
	switch r.Status {
	case "", quota.StatusApproved:
		return true
	case store.QuotaFailed:
		return !w.now.Before(r.NextTry)
	}
	return false
}

// quotaWanted is the value to ask for a quota: room for every pool
// launching under it at its cap (the largest of its types) and for the
// notebooks known, beside what others run; at least what the waiting job
// needs, at most the deployment's bound. ok is false when the bound cannot fit the job.
func (s *Scheduler) quotaWanted(w *world, code string, short []shortfall) (int, bool) {
	need := 0
	for _, sf := range short {
		if sf.quota.Code == code && (need == 0 || sf.used+sf.need < need) {
			need = sf.used + sf.need // the smallest rung that would fit this job
		}
	}
	ours := 0
	for _, i := range w.instances {
		if i.Up() {
			if ct, ok := catalog.Lookup(i.Type); ok && catalog.QuotaFor(i.Type, i.Spot).Code == code {
				ours += ct.VCPUs
			}
		}
	}
	others := max(0, w.quota.used[code]-ours)
	pools := 0
	for _, p := range s.cfg.Pools {
		largest := 0
		for _, t := range p.Types {
			ct, ok := catalog.Lookup(t)
			if !ok {
				continue
			}
			for _, spot := range catalog.Markets(p.Market) {
				if catalog.QuotaFor(t, spot).Code == code {
					largest = max(largest, ct.VCPUs)
				}
			}
		}
		pools += p.MaxInstances * largest
	}
	want := min(max(need, others+pools+s.notebooks(w, code)), s.cfg.QuotaRequestMax)
	return want, want >= need
}

// notebooks is the vCPUs the notebooks known to the pass take under a
// quota, each outside its pool's cap: a live notebook instance's type, or
// a waiting session's largest type.
func (s *Scheduler) notebooks(w *world, code string) int {
	took := map[string]int{}
	for _, i := range w.instances {
		if _, nb := job.NotebookOf(i.Pool); nb && i.Live() {
			if ct, ok := catalog.Lookup(i.Type); ok && catalog.QuotaFor(i.Type, i.Spot).Code == code {
				took[i.Pool] = max(took[i.Pool], ct.VCPUs)
			}
		}
	}
	for _, st := range []job.State{job.Queued, job.Placed, job.Running} {
		for _, j := range w.jobs[st] {
			if _, nb := job.NotebookOf(j.Pool); !nb || took[j.Pool] > 0 {
				continue
			}
			pool, types := s.pool(j)
			for _, t := range types {
				for _, spot := range catalog.Markets(marketOf(pool, j)) {
					if ct, ok := catalog.Lookup(t); ok && catalog.QuotaFor(t, spot).Code == code {
						took[j.Pool] = max(took[j.Pool], ct.VCPUs)
					}
				}
			}
		}
	}
	n := 0
	for _, v := range took {
		n += v
	}
	return n
}

// askQuota files an increase for r's quota: the intent first, at the
// record's version, so one pass of all those running at once asks; then
// the call; then its answer recorded and said.
func (s *Scheduler) askQuota(ctx context.Context, w *world, r store.QuotaRequest, short []shortfall) {
	want, ok := s.quotaWanted(w, r.Code, short)
	applied := w.quota.applied[r.Code]
	if !ok || float64(want) <= applied {
		return // the bound does not cover it: the reason says so
	}
	if r.Status == quota.StatusApproved && want <= r.Desired {
		return // granted already; Service Quotas has not applied it yet
	}
	intent := r
	intent.Status, intent.Desired, intent.AskedAt, intent.ID, intent.CaseID, intent.Message = store.QuotaAsking, want, w.now, "", "", ""
	intent.DecidedAt, intent.NextTry = time.Time{}, time.Time{}
	if !s.putQuotaRecord(ctx, w, &intent) {
		return
	}
	got, err := s.quotas.Request(ctx, r.Code, float64(want))
	next := intent
	switch {
	case errors.Is(err, quota.ErrOpen):
		// Filed meanwhile (by a person, or by this intent before a lost
		// answer): follow that one.
		if hist, herr := s.quotas.History(ctx, r.Code); herr == nil && len(hist) > 0 && hist[0].Open() {
			got, err = hist[0], nil
		}
	}
	if err != nil && !awserr.Answered(err) {
		// No answer (a timeout, a lost response): the request may have
		// been filed. The intent stands; after QuotaAskTimeout a pass
		// reads the quota's history, adopts the request if it is there,
		// and asks again only if it is not.
		s.log.WarnContext(ctx, "quota increase: no answer; the history decides", "quota", r.Code, "desired", want, "err", err)
		return
	}
	if err != nil {
		next.Status, next.Message, next.NextTry = store.QuotaFailed, err.Error(), w.now.Add(QuotaRetry)
		s.log.WarnContext(ctx, "quota increase not asked", "quota", r.Code, "desired", want, "err", err)
	} else {
		next.ID, next.CaseID, next.Status = got.ID, got.CaseID, got.Status
		if got.Desired > 0 {
			next.Desired = int(got.Desired)
		}
		s.log.InfoContext(ctx, "quota increase asked", "quota", r.Code, "desired", next.Desired, "request", got.ID, "status", got.Status)
	}
	next.CheckedAt = w.now
	s.putQuotaRecord(ctx, w, &next)
}

// sayQuota says a quota request's status once per change: asked, a case
// opened, approved, refused, a call that failed.
func (s *Scheduler) sayQuota(ctx context.Context, w *world, code string) {
	r, ok := w.quota.records[code]
	if !ok || r.Status == r.Notified || r.Status == "" || r.Status == store.QuotaAsking {
		return
	}
	why := quotaNotice(r, quotaName(code), s.cfg.Region)
	next := r
	next.Notified = r.Status
	if !s.putQuotaRecord(ctx, w, &next) {
		return // another pass says it
	}
	if err := s.say(ctx, notice.Action{Verb: "notify", Why: why}); err != nil {
		s.log.WarnContext(ctx, "quota notice not sent", "quota", code, "err", err)
	}
}

// quotaName is a quota code with its name.
func quotaName(code string) string {
	if q, ok := catalog.QuotaByCode(code); ok {
		return fmt.Sprintf("%s %q", q.Code, q.Name)
	}
	return code
}

// quotaNotice is what the notice says of a request's status.
func quotaNotice(r store.QuotaRequest, name, region string) string {
	req := fmt.Sprintf("EC2 quota %s to %d vCPUs (request %s)", name, r.Desired, r.ID)
	switch r.Status {
	case quota.StatusPending:
		return fmt.Sprintf("increase asked: %s, for the jobs waiting on it; nightshift reads its status every %v and places the jobs once it is granted; AWS decides in minutes to a few days", req, QuotaFollowEvery)
	case quota.StatusCaseOpened:
		return fmt.Sprintf("AWS opened support case %s for raising %s: %s (answer there if AWS asks why you need it)", r.CaseID, req, quota.CaseURL(r.CaseID))
	case quota.StatusApproved:
		return fmt.Sprintf("AWS approved raising %s; the jobs waiting on it are placed now", req)
	case store.QuotaFailed:
		return fmt.Sprintf("could not ask AWS to raise EC2 quota %s to %d vCPUs: %s; nightshift tries again after %s", name, r.Desired, r.Message, r.NextTry.Format(time.RFC3339))
	}
	return fmt.Sprintf("AWS did not approve raising %s (%s); %s", req, r.Status, refusedNext(r, region))
}

// refusedNext says what a person does after AWS refused an increase.
func refusedNext(r store.QuotaRequest, region string) string {
	var b strings.Builder
	if r.CaseID != "" {
		fmt.Fprintf(&b, "AWS's reason is in case %s (%s); ", r.CaseID, quota.CaseURL(r.CaseID))
	}
	b.WriteString("nightshift does not ask again by itself: ask for less with `nightshift quota --request N`, answer the case, or list types of another family or run the stack in another region; the jobs wait (their max_wait still applies)")
	return b.String()
}

// quotaReason is a waiting job's reason when no rung of its launch fits
// its quota: each quota's figures, and its increase request.
func (s *Scheduler) quotaReason(w *world, short []shortfall) string {
	var parts []string
	for _, code := range codes(short) {
		var sf shortfall
		for _, x := range short {
			if x.quota.Code == code {
				sf = x
				break
			}
		}
		part := fmt.Sprintf("EC2 quota %s is %g vCPUs with %d in use; %s needs %d", quotaName(code), sf.applied, sf.used, sf.typ, sf.need)
		parts = append(parts, part+"; "+s.requestState(w, sf))
	}
	return "waiting for vCPU quota: " + strings.Join(parts, ". ")
}

// requestState says where a quota's increase stands, for a job's reason.
func (s *Scheduler) requestState(w *world, sf shortfall) string {
	r := w.quota.records[sf.quota.Code]
	need := sf.used + sf.need
	byHand := fmt.Sprintf("ask for at least %d with `nightshift quota --request %d` or at %s; nightshift places the job by itself once it is granted", need, need, sf.quota.URL(s.cfg.Region))
	switch r.Status {
	case quota.StatusPending, quota.StatusCaseOpened:
		st := r.Status
		if r.CaseID != "" {
			st += ", case " + quota.CaseURL(r.CaseID)
		}
		return fmt.Sprintf("increase to %d asked %s (request %s, %s); nightshift places the job once it is granted", r.Desired, r.AskedAt.Format(time.RFC3339), r.ID, st)
	case store.QuotaAsking:
		return fmt.Sprintf("asking AWS for %d vCPUs", r.Desired)
	case store.QuotaFailed:
		return fmt.Sprintf("asking for %d failed (%s), again after %s; or %s", r.Desired, r.Message, r.NextTry.Format(time.RFC3339), byHand)
	case quota.StatusApproved:
		if r.Desired >= need {
			return fmt.Sprintf("increase to %d approved (request %s); waiting for AWS to apply it", r.Desired, r.ID)
		}
	case "":
	default:
		return fmt.Sprintf("the increase to %d (request %s) was %s on %s; %s", r.Desired, r.ID, r.Status, r.DecidedAt.Format(time.RFC3339), refusedNext(r, s.cfg.Region))
	}
	if s.cfg.QuotaRequestMax > 0 {
		if want, ok := s.quotaWanted(w, sf.quota.Code, []shortfall{sf}); !ok || float64(want) <= sf.applied {
			return fmt.Sprintf("the stack's QuotaRequestMaxVcpus (%d) does not cover it: %s", s.cfg.QuotaRequestMax, byHand)
		}
	}
	return byHand
}
