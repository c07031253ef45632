package fleet

import "time"

// UnavailableTTL is how long an offering — an instance type in a subnet's
// zone, on one market — that EC2 just refused for capacity is not asked for
// again: a pass does not retry what failed seconds ago (Karpenter keeps its
// unavailable offerings three minutes). Capacity comes back within minutes
// as often as not, so the offering is tried again after it.
const UnavailableTTL = 3 * time.Minute

// offering is one rung of the launch ladder.
type offering struct {
	typ, subnet string
	spot        bool
}

// unavailable is the fleet's memory of offerings refused for capacity, in
// this process: a warm Lambda container remembers what it saw, a cold one
// starts afresh and pays one call per offering to learn it again.
type unavailable struct {
	until map[offering]time.Time
	err   map[offering]error
}

// blocked returns the error an offering was refused with, while its TTL runs.
func (f *Fleet) blocked(o offering) (error, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	until, ok := f.offerings.until[o]
	if !ok {
		return nil, false
	}
	if !f.now().Before(until) {
		delete(f.offerings.until, o)
		delete(f.offerings.err, o)
		return nil, false
	}
	if f.onSkip != nil {
		f.onSkip(Skip{At: f.now(), Type: o.typ, Subnet: o.subnet, Spot: o.spot, Until: until})
	}
	return f.offerings.err[o], true
}

// refused remembers an offering EC2 refused for capacity.
func (f *Fleet) refused(o offering, err error) {
	ttl := UnavailableTTL
	if f.cfg.UnavailableTTL != 0 {
		ttl = f.cfg.UnavailableTTL
	}
	if ttl < 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.offerings.until == nil {
		f.offerings = unavailable{until: map[offering]time.Time{}, err: map[offering]error{}}
	}
	f.offerings.until[o] = f.now().Add(ttl)
	f.offerings.err[o] = err
}
