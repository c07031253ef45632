package queue_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/nightshift-dev/nightshift/internal/awstest"
	"github.com/nightshift-dev/nightshift/internal/job"
	"github.com/nightshift-dev/nightshift/internal/queue"
)

func TestMain(m *testing.M) { os.Exit(awstest.Main(m)) }

// TestMotoRecheck: a re-check goes to the queue with the real SQS client as
// a re-check message, its delay rounded up to whole seconds; the message
// is not received before its timer ends.
func TestMotoRecheck(t *testing.T) {
	ctx := context.Background()
	client := sqs.NewFromConfig(awstest.Moto(t).Config())
	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("nightshift-jobs")})
	if err != nil {
		t.Fatalf("CreateQueue: %v", err)
	}
	url := aws.ToString(q.QueueUrl)
	const id = "i-0123456789abcdef0"
	if err := queue.New(client, url).Recheck(ctx, id, 1500*time.Millisecond); err != nil {
		t.Fatalf("Recheck(%s, 1.5s) = %v", id, err)
	}
	recv := func() []sqstypes.Message {
		out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10})
		if err != nil {
			t.Fatalf("ReceiveMessage: %v", err)
		}
		return out.Messages
	}
	if ms := recv(); len(ms) != 0 {
		t.Fatalf("received %d messages at once; want none before the 2 s timer ends", len(ms))
	}
	var got []sqstypes.Message
	for end := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		got = recv()
	}
	if len(got) != 1 {
		t.Fatalf("received %d messages after the timer; want the re-check", len(got))
	}
	r, err := job.ParseRecheck([]byte(aws.ToString(got[0].Body)))
	if err != nil || r.InstanceID != id {
		t.Errorf("body %s parses as %+v, %v; want a re-check of %s", aws.ToString(got[0].Body), r, err, id)
	}
}

// TestRecheckRefusals: what SQS cannot delay, or what is no instance, is
// refused before any call.
func TestRecheckRefusals(t *testing.T) {
	var calls int
	q := queue.New(countingSQS{&calls}, "https://sqs.us-east-1.amazonaws.com/123456789012/nightshift-jobs")
	if err := q.Recheck(context.Background(), "i-0123456789abcdef0", 16*time.Minute); !errors.Is(err, queue.ErrTooLong) {
		t.Errorf("Recheck(16m) = %v; want ErrTooLong", err)
	}
	if err := q.Recheck(context.Background(), "bogus", time.Second); err == nil {
		t.Errorf("Recheck(bogus) = nil; want an error")
	}
	if calls != 0 {
		t.Errorf("%d SendMessage calls; want none", calls)
	}
	if err := q.Recheck(context.Background(), "i-0123456789abcdef0", 0); err != nil || calls != 1 {
		t.Errorf("Recheck(0) = %v after %d calls; want one call", err, calls)
	}
}

type countingSQS struct{ n *int }

func (c countingSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	*c.n++
	return &sqs.SendMessageOutput{MessageId: aws.String(strconv.Itoa(*c.n))}, nil
}
