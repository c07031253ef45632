package awssim_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// TestSendMessageDelay: a message with DelaySeconds cannot be received
// until its timer ends on the clock; more than 900 s is refused.
func TestSendMessageDelay(t *testing.T) {
	ctx := context.Background()
	clock := vclock.New()
	c := awssim.New(clock)
	send := func(body string, delay int32) error {
		_, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(awssim.QueueURL), MessageBody: aws.String(body), DelaySeconds: delay})
		return err
	}
	if err := send("later", 30); err != nil {
		t.Fatal(err)
	}
	if err := send("now", 0); err != nil {
		t.Fatal(err)
	}
	if got := c.Receive(10); len(got) != 1 || got[0].Body != "now" {
		t.Fatalf("received %+v at once; want only the undelayed message", got)
	}
	clock.Advance(29 * time.Second)
	if n := c.Waiting(); n != 0 || c.Delayed() != 1 {
		t.Fatalf("after 29 s: %d waiting, %d delayed; want 0 and 1", n, c.Delayed())
	}
	clock.Advance(time.Second)
	if got := c.Receive(10); len(got) != 1 || got[0].Body != "later" || !got[0].Visible.Equal(got[0].Sent.Add(30*time.Second)) {
		t.Fatalf("received %+v after 30 s; want the delayed message", got)
	}
	if err := send("too late", 901); err == nil {
		t.Errorf("DelaySeconds 901 accepted; SQS refuses more than 900")
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String("https://sqs.us-east-1.amazonaws.com/123456789012/other"), MessageBody: aws.String("x")}); err == nil {
		t.Errorf("SendMessage to another queue accepted; the account has one")
	}
	if len(c.Sent()) != 2 {
		t.Errorf("Sent() lists %d messages; want the 2 accepted", len(c.Sent()))
	}
}
