package awssim

import (
	"math/rand/v2"
	"sync"
	"time"
)

// The range of SSM agent registration delays AWS shows: from running to
// PingStatus Online takes 30 s to several minutes (a newly registered
// instance may also run its State Manager associations first).
const (
	AgentMin = 30 * time.Second
	AgentMax = 3 * time.Minute
)

// AgentUniform returns an AgentDelay that draws each boot's registration
// delay uniformly from [lo, hi), to the millisecond, from r: a seed gives
// the same delays in the same order of boots.
func AgentUniform(r *rand.Rand, lo, hi time.Duration) func(string) (time.Duration, bool) {
	var mu sync.Mutex
	return func(string) (time.Duration, bool) {
		mu.Lock()
		defer mu.Unlock()
		ms := int64((hi - lo) / time.Millisecond)
		return lo + time.Duration(r.Int64N(max(ms, 1)))*time.Millisecond, true
	}
}
