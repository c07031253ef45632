// Package notice makes every action nightshift takes on an instance said and
// seen: the instance is tagged with what was done and why, the action is
// logged, and it is published to the stack's SNS topic.
package notice

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/nightshift-dev/nightshift/internal/metrics"
)

// TagLastAction is the instance tag that says what nightshift last did to it.
const TagLastAction = "nightshift:last-action"

// maxTagValue is EC2's limit on a tag value's length.
const maxTagValue = 256

// Tagger is the part of EC2 used to tag instances.
type Tagger interface {
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// Publisher is the part of SNS used to notify.
type Publisher interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var (
	_ Tagger    = (*ec2.Client)(nil)
	_ Publisher = (*sns.Client)(nil)
)

// Notice tags, logs and publishes actions.
type Notice struct {
	tags  Tagger
	sns   Publisher
	topic string
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Notice; with an empty topic nothing is published.
func New(t Tagger, p Publisher, topic string, log *slog.Logger, now func() time.Time) *Notice {
	return &Notice{tags: t, sns: p, topic: topic, log: log, now: now}
}

// Action is one thing nightshift did, or in a dry run would have done.
type Action struct {
	// Instance is the instance acted on; empty for an account-wide notice (budget).
	Instance string
	// Verb is what was done: "stop", "cancel", "notify", …
	Verb string
	// Why says why, in words a person can act on.
	Why    string
	Job    string
	DryRun bool
}

func (a Action) String() string {
	s := a.Verb
	if a.DryRun {
		s = "would " + s
	}
	if a.Instance != "" {
		s += " " + a.Instance
	}
	if a.Job != "" {
		s += " (job " + a.Job + ")"
	}
	return s + ": " + a.Why
}

// Say records a: the tag (not in a dry run), the log line, the
// notification; and counts it in the tick's tally of actions when ctx
// carries one (metrics.WithActions).
func (n *Notice) Say(ctx context.Context, a Action) error {
	metrics.CountAction(ctx, a.Verb, a.DryRun)
	var errs []error
	stamp := n.now().UTC().Format("2006-01-02T15:04Z")
	if a.Instance != "" && !a.DryRun && n.tags != nil {
		v := fmt.Sprintf("%s %s: %s", stamp, a.Verb, a.Why)
		if len(v) > maxTagValue {
			v = v[:maxTagValue]
		}
		_, err := n.tags.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: []string{a.Instance},
			Tags:      []types.Tag{{Key: aws.String(TagLastAction), Value: aws.String(v)}},
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("tag %s: %w", a.Instance, err))
		}
	}
	n.log.InfoContext(ctx, "action", "verb", a.Verb, "instance", a.Instance, "job", a.Job, "why", a.Why, "dry_run", a.DryRun)
	if n.topic != "" && n.sns != nil {
		subject := "nightshift: " + a.Verb
		if a.DryRun {
			subject = "nightshift (dry run): would " + a.Verb
		}
		if a.Instance != "" {
			subject += " " + a.Instance
		}
		_, err := n.sns.Publish(ctx, &sns.PublishInput{
			TopicArn: aws.String(n.topic),
			Subject:  aws.String(truncate(subject, 100)), // SNS subjects are at most 100 characters
			Message:  aws.String(stamp + " " + a.String()),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("publish: %w", err))
		}
	}
	return errors.Join(errs...)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
