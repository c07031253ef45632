package awssim

import (
	"fmt"
	"slices"
	"time"
)

// Message is one SQS message on the jobs queue.
type Message struct {
	ID, Body string
	Sent     time.Time
	// Receives counts the deliveries of this copy (ApproximateReceiveCount).
	Receives int
}

// queue is a standard SQS queue as a Lambda event source sees it: messages
// wait in order, a received batch is in flight until it is deleted or its
// visibility timeout returns it to the back.
type queue struct {
	seq      int
	waiting  []Message
	inFlight []Message
	sent     []Message
}

// Enqueue puts a message on the queue, as SendMessage does, and returns its id.
func (c *Cloud) Enqueue(body string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := &c.queue
	q.seq++
	m := Message{ID: fmt.Sprintf("5f0c6e2a-0000-4000-8000-%012d", q.seq), Body: body, Sent: c.clock.Now()}
	q.waiting = append(q.waiting, m)
	q.sent = append(q.sent, m)
	return m.ID
}

// Redeliver puts another copy of an already sent message on the queue, as
// SQS's at-least-once delivery may.
func (c *Cloud) Redeliver(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m.Receives = 0
	c.queue.waiting = append(c.queue.waiting, m)
}

// Sent returns every message sent so far, in order.
func (c *Cloud) Sent() []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.queue.sent)
}

// Waiting reports how many messages wait to be received.
func (c *Cloud) Waiting() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue.waiting)
}

// Receive takes up to max waiting messages, oldest first, and puts them in
// flight.
func (c *Cloud) Receive(max int) []Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := &c.queue
	n := min(max, len(q.waiting))
	batch := slices.Clone(q.waiting[:n])
	q.waiting = q.waiting[n:]
	for k := range batch {
		batch[k].Receives++
	}
	q.inFlight = append(q.inFlight, batch...)
	return batch
}

// Delete removes an in-flight message: it was handled.
func (c *Cloud) Delete(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.queue.inFlight = slices.DeleteFunc(c.queue.inFlight, func(m Message) bool { return m.ID == id })
}

// Return puts an in-flight message back at the end of the queue, as its
// visibility timeout expiring does.
func (c *Cloud) Return(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := &c.queue
	k := slices.IndexFunc(q.inFlight, func(m Message) bool { return m.ID == id })
	if k < 0 {
		return
	}
	q.waiting = append(q.waiting, q.inFlight[k])
	q.inFlight = slices.Delete(q.inFlight, k, k+1)
}
