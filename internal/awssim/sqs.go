package awssim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// QueueURL is the jobs queue's URL, the one queue of the simulated account.
const QueueURL = "https://sqs." + Region + ".amazonaws.com/" + Account + "/nightshift-jobs"

// MaxDelaySeconds is the longest message timer SQS takes: 15 minutes.
const MaxDelaySeconds = 900

// Message is one SQS message on the jobs queue.
type Message struct {
	ID, Body string
	Sent     time.Time
	// Visible is when it can first be received: Sent plus its DelaySeconds.
	Visible time.Time
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
	// delayed counts the messages whose timers have not ended.
	delayed int
}

// Enqueue puts a message on the queue, as SendMessage does, and returns its id.
func (c *Cloud) Enqueue(body string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.enqueue(body, 0).ID
}

// enqueue puts a message on the queue, invisible for delay: a delayed one
// joins the waiting messages when its timer ends, on the clock.
func (c *Cloud) enqueue(body string, delay time.Duration) Message {
	q := &c.queue
	q.seq++
	now := c.clock.Now()
	m := Message{ID: fmt.Sprintf("5f0c6e2a-0000-4000-8000-%012d", q.seq), Body: body, Sent: now, Visible: now.Add(delay)}
	q.sent = append(q.sent, m)
	if delay <= 0 {
		q.waiting = append(q.waiting, m)
		return m
	}
	q.delayed++
	c.clock.At(m.Visible, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		q.delayed--
		q.waiting = append(q.waiting, m)
	})
	return m
}

// SendMessage sends a message to the jobs queue, with an optional message
// timer (DelaySeconds, 0 to 900): the message cannot be received until it
// ends. Message attributes, and any other queue, are not modelled.
func (c *Cloud) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return serve(c, "SendMessage", in, c.sendMessage)
}

func (c *Cloud) sendMessage(in *sqs.SendMessageInput) (*sqs.SendMessageOutput, error) {
	switch {
	case aws.ToString(in.QueueUrl) != QueueURL:
		return nil, apiError("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
	case aws.ToString(in.MessageBody) == "":
		return nil, apiError("MissingParameter", "The request must contain the parameter MessageBody.")
	case in.DelaySeconds < 0 || in.DelaySeconds > MaxDelaySeconds:
		return nil, apiError("InvalidParameterValue", "Value %d for parameter DelaySeconds is invalid. Reason: must be between 0 and %d, if provided.", in.DelaySeconds, MaxDelaySeconds)
	case len(in.MessageAttributes) > 0 || len(in.MessageSystemAttributes) > 0 || in.MessageGroupId != nil || in.MessageDeduplicationId != nil:
		return nil, notModelled("SendMessage with attributes, a group or a deduplication id")
	}
	m := c.enqueue(aws.ToString(in.MessageBody), time.Duration(in.DelaySeconds)*time.Second)
	return &sqs.SendMessageOutput{MessageId: aws.String(m.ID)}, nil
}

// Delayed reports how many messages wait for their timers to end.
func (c *Cloud) Delayed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queue.delayed
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
