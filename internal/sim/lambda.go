package sim

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
)

// Concurrency makes the world run Lambda invocations at once, as AWS does:
// several SQS batches in parallel, one dispatch invocation per event, a
// watchdog tick whether or not the last one has ended. In-flight
// invocations are interleaved call by call — every AWS and DynamoDB call is
// a point where another may run first — in an order drawn from Rand, so a
// seed replays the same interleaving. Only one invocation runs at a time:
// the interleaving is the simulation's choice, never the Go scheduler's.
type Concurrency struct {
	Rand *rand.Rand
	// SQSBatches is how many intake invocations may run at once: the
	// template's event source MaximumConcurrency.
	SQSBatches int
	// MaxStep is the most the virtual clock moves between two calls.
	MaxStep time.Duration
	// Timeout is the functions' timeout: an invocation in flight longer is
	// killed, as Lambda kills it — its next call fails, as a crash's does.
	Timeout time.Duration
	// Preempt, when above 0, picks the next call by priority rather than
	// uniformly, as probabilistic concurrency testing (PCT) does: each
	// invocation starts with a random priority, the highest runs, and at
	// each call it is demoted below all others with this probability. An
	// invocation can so wait, its snapshot of the world going stale, while
	// others run many calls — the interleavings that find bugs.
	Preempt float64
}

// Lambda is one invocation of a function.
type Lambda struct {
	// ID numbers the world's invocations from 1, in the order they started.
	ID int
	// Function is "intake", "dispatch" or "watchdog".
	Function string
	// Started is when it began, on the virtual clock.
	Started time.Time

	resume   chan struct{}
	priority int64
	done     bool
	killed   bool
	err      error
	end      func(error)
}

// lambdas is the world's invocations in flight and the one running.
type lambdas struct {
	flight  []*Lambda
	current *Lambda
	back    chan *Lambda
	seq     int
}

// Current returns the invocation running now, nil outside any.
func (w *World) Current() *Lambda { return w.current }

// lambda starts an invocation of fn: serially it runs to its end at once;
// with Concurrency it joins the invocations in flight.
func (w *World) lambda(ctx context.Context, fn string, run func(context.Context) error) {
	w.seq++
	l := &Lambda{ID: w.seq, Function: fn, Started: w.Clock.Now(), end: func(error) {}}
	if w.Invoke != nil {
		l.end = w.Invoke(l)
	}
	if w.Concurrent == nil {
		w.current = l
		err := run(ctx)
		w.current = nil
		w.finish(l, err)
		return
	}
	if w.back == nil {
		w.back = make(chan *Lambda)
	}
	l.resume = make(chan struct{})
	l.priority = w.Concurrent.Rand.Int64N(1 << 30)
	w.flight = append(w.flight, l)
	go func() {
		<-l.resume
		l.err = run(ctx)
		l.done = true
		w.back <- l
	}()
}

// finish records an invocation's end.
func (w *World) finish(l *Lambda, err error) {
	if err != nil {
		w.Errors = append(w.Errors, err)
	}
	l.end(err)
}

// step runs one invocation in flight, drawn at random, to its next call or
// its end. One past its timeout is killed first.
func (w *World) step() {
	now := w.Clock.Now()
	for _, l := range w.flight {
		if now.Sub(l.Started) > w.Concurrent.Timeout {
			l.killed = true
		}
	}
	k := w.pick()
	l := w.flight[k]
	w.current = l
	l.resume <- struct{}{}
	<-w.back
	w.current = nil
	if l.done {
		w.flight = append(w.flight[:k], w.flight[k+1:]...)
		w.finish(l, l.err)
	}
	if w.Stepped != nil {
		w.Stepped()
	}
}

// pick chooses the invocation that makes the next call.
func (w *World) pick() int {
	c := w.Concurrent
	if c.Preempt <= 0 {
		return c.Rand.IntN(len(w.flight))
	}
	k := 0
	for i, l := range w.flight {
		if l.priority > w.flight[k].priority {
			k = i
		}
	}
	if c.Rand.Float64() < c.Preempt {
		w.seq++
		w.flight[k].priority = -int64(w.seq) // below every other, and below those demoted before
	}
	return k
}

// yield is every call's point of interleaving: with Concurrency, the
// invocation making the call hands control back and waits its turn. A
// killed invocation's call fails as a crashed process's would.
func (w *World) yield() error {
	l := w.current
	if l == nil || w.Concurrent == nil {
		return nil // the harness itself, or a serial world
	}
	w.back <- l
	<-l.resume
	if l.killed {
		return awssim.ErrCrash
	}
	return nil
}
