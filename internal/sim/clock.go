// Package sim is a simulated AWS — EC2, SSM and EventBridge — in process, on
// a virtual clock. It implements the same SDK-shaped interfaces the product
// uses, with boot and agent-registration delays, client-token idempotency,
// capacity and quota errors, throttling, crashes between calls, spot
// interruptions and lost agents, so the real handlers and Reconcile can run
// against it in tests and in the local run.
package sim

import (
	"container/heap"
	"sync"
	"time"
)

// Epoch is where every simulation's clock starts.
var Epoch = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// Clock is a virtual clock with a queue of timed actions.
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	seq   int
	queue timers
}

// NewClock returns a clock at Epoch.
func NewClock() *Clock { return &Clock{now: Epoch} }

// Now returns the virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At schedules f to run when the clock reaches t.
func (c *Clock) At(t time.Time, f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	heap.Push(&c.queue, timer{at: t, seq: c.seq, f: f})
}

// Advance moves the clock forward by d, running due actions in time order.
func (c *Clock) Advance(d time.Duration) {
	c.AdvanceTo(c.Now().Add(d))
}

// AdvanceTo moves the clock to t, running due actions in time order.
func (c *Clock) AdvanceTo(t time.Time) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 || c.queue[0].at.After(t) {
			if t.After(c.now) {
				c.now = t
			}
			c.mu.Unlock()
			return
		}
		next := heap.Pop(&c.queue).(timer)
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// Next returns when the next action is due, if any.
func (c *Clock) Next() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) == 0 {
		return time.Time{}, false
	}
	return c.queue[0].at, true
}

type timer struct {
	at  time.Time
	seq int
	f   func()
}

type timers []timer

func (t timers) Len() int { return len(t) }
func (t timers) Less(i, j int) bool {
	if t[i].at.Equal(t[j].at) {
		return t[i].seq < t[j].seq
	}
	return t[i].at.Before(t[j].at)
}
func (t timers) Swap(i, j int) { t[i], t[j] = t[j], t[i] }
func (t *timers) Push(x any)   { *t = append(*t, x.(timer)) }
func (t *timers) Pop() any     { old := *t; x := old[len(old)-1]; *t = old[:len(old)-1]; return x }
