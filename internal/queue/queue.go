// Package queue is nightshift's one use of SQS: it sends re-check messages
// ({"recheck": "i-…"}) to its own jobs queue, delayed, so that a reconcile
// runs when an instance is likely ready or its keep-warm window ends, rather
// than at the watchdog's next tick.
package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// SQS is the part of SQS used to send messages.
type SQS interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

var _ SQS = (*sqs.Client)(nil)

// MaxDelay is the longest DelaySeconds SQS takes: 15 minutes.
const MaxDelay = 900 * time.Second

// ErrTooLong: a re-check asked for further ahead than SQS can delay a message.
var ErrTooLong = errors.New("queue: delay longer than SQS's 900 s")

// Queue sends re-check messages to the jobs queue.
type Queue struct {
	api SQS
	url string
}

// New returns a Queue sending to the queue at url.
func New(api SQS, url string) *Queue { return &Queue{api: api, url: url} }

// Recheck asks for a re-check of instance id after the delay, rounded up to
// whole seconds (SQS's unit): never earlier than asked.
func (q *Queue) Recheck(ctx context.Context, id string, after time.Duration) error {
	if after > MaxDelay {
		return fmt.Errorf("%w: %v", ErrTooLong, after)
	}
	if !job.ValidInstanceID(id) {
		return fmt.Errorf("queue: recheck of %q: not an instance id", id)
	}
	secs := int32((max(after, 0) + time.Second - 1) / time.Second)
	_, err := q.api.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(q.url), MessageBody: aws.String(job.RecheckMessage(id)), DelaySeconds: secs,
	})
	if err != nil {
		return fmt.Errorf("queue: recheck of %s: %w", id, err)
	}
	return nil
}
