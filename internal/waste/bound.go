package waste

// bound is the lower bound: every job's command starts the moment it is
// submitted (or, past the cap, the moment an instance frees up), on an
// instance booted just in time by someone who knows the future; an instance
// is stopped the moment it has no work, unless its next job starts sooner
// than a stop and a boot would bill. What remains unavoidable is the billed
// part of one boot and one stop (Agent + StopDelay) per burst — a run of
// work on one instance with no gap longer than that — plus the gaps inside
// a burst. Notebooks likewise (boundNotebooks): billed while their person
// is in a session, plus the boot and stop per run of sessions.
func bound(tr *Trace, p Params) Result {
	q := p
	q.Pending, q.Agent, q.StopDelay = 0, 0, 0
	e := simulate(tr, q, immediate{})
	overhead := p.Agent + p.StopDelay
	r := Result{Training: e.res.Training, Waits: e.res.Waits}
	for _, m := range e.pool {
		for k, s := range m.spans {
			if gap := s.from.Sub(m.spans[max(k-1, 0)].to); k > 0 && gap < overhead {
				r.Billed += gap
			} else {
				r.Billed += overhead
				r.Starts++
			}
			r.Billed += s.to.Sub(s.from)
		}
	}
	boundNotebooks(tr, p, &r)
	r.USD = r.Billed.Hours() * p.Price
	return r
}
