// Package vclock is a virtual clock with a queue of timed actions: the one
// timeline that the simulated cloud, the local run and the waste report's
// models all run on. Nothing in it reads the wall clock.
package vclock

import (
	"container/heap"
	"sync"
	"time"
)

// Epoch is where every simulation's clock starts.
var Epoch = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// Clock is a virtual clock with a queue of timed actions. Actions due at the
// same instant run in the order they were scheduled.
type Clock struct {
	mu    sync.Mutex
	now   time.Time
	seq   int
	queue timers
}

// New returns a clock at Epoch.
func New() *Clock { return NewAt(Epoch) }

// NewAt returns a clock at t.
func NewAt(t time.Time) *Clock { return &Clock{now: t} }

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

// AdvanceTo moves the clock to t, running due actions in time order. An
// action may schedule others; those due by t run too.
func (c *Clock) AdvanceTo(t time.Time) {
	for c.step(t, true) {
	}
}

// Drain runs every scheduled action, and every action they schedule, in
// time order, moving the clock to each; it returns when none is left.
func (c *Clock) Drain() {
	for c.step(time.Time{}, false) {
	}
}

// step runs the next action due by t (any action when bounded is false);
// it reports whether one ran.
func (c *Clock) step(t time.Time, bounded bool) bool {
	c.mu.Lock()
	if len(c.queue) == 0 || bounded && c.queue[0].at.After(t) {
		if bounded && t.After(c.now) {
			c.now = t
		}
		c.mu.Unlock()
		return false
	}
	next := heap.Pop(&c.queue).(timer)
	if next.at.After(c.now) {
		c.now = next.at
	}
	c.mu.Unlock()
	next.f()
	return true
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

// Pending reports how many actions are scheduled.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
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
