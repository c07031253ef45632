package awssim

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

// maxSubject is SNS's limit on a subject's length.
const maxSubject = 100

// Notification is a message published to an SNS topic.
type Notification struct {
	At                      time.Time
	Topic, Subject, Message string
}

// Publish records a notification. It refuses, as SNS does, a publish
// without a topic or a message, and a subject over 100 characters.
func (c *Cloud) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	return serve(c, "Publish", in, c.publish)
}

func (c *Cloud) publish(in *sns.PublishInput) (*sns.PublishOutput, error) {
	switch {
	case in.TopicArn == nil && in.TargetArn == nil && in.PhoneNumber == nil:
		return nil, apiError("InvalidParameter", "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter")
	case in.TopicArn == nil:
		return nil, notModelled("Publish to a target or phone number")
	case aws.ToString(in.Message) == "":
		return nil, apiError("InvalidParameter", "Invalid parameter: Empty message")
	case len(aws.ToString(in.Subject)) > maxSubject:
		return nil, apiError("InvalidParameter", "Invalid parameter: Subject")
	}
	c.notes = append(c.notes, Notification{At: c.clock.Now(), Topic: aws.ToString(in.TopicArn), Subject: aws.ToString(in.Subject), Message: aws.ToString(in.Message)})
	return &sns.PublishOutput{MessageId: aws.String(c.nextID("m-"))}, nil
}

// Notifications returns the notifications published so far.
func (c *Cloud) Notifications() []Notification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.notes)
}
