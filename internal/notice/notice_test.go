package notice

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
)

type fakeTags struct{ calls []*ec2.CreateTagsInput }

func (f *fakeTags) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.calls = append(f.calls, in)
	return &ec2.CreateTagsOutput{}, nil
}

type fakeSNS struct{ calls []*sns.PublishInput }

func (f *fakeSNS) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.calls = append(f.calls, in)
	return &sns.PublishOutput{}, nil
}

func TestSay(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 11, 25, 10, 39, 0, 0, time.UTC) }
	tests := []struct {
		name        string
		give        Action
		wantTag     string
		wantSubject string
	}{
		{"stop", Action{Instance: "i-1", Verb: "stop", Why: "idle for 45m"}, "2026-11-25T10:39Z stop: idle for 45m", "nightshift: stop i-1"},
		{"dry run: no tag", Action{Instance: "i-1", Verb: "stop", Why: "idle", DryRun: true}, "", "nightshift (dry run): would stop i-1"},
		{"account-wide: no tag", Action{Verb: "notify", Why: "budget"}, "", "nightshift: notify"},
		{"long reason: tag cut to 256", Action{Instance: "i-1", Verb: "cancel", Why: strings.Repeat("x", 400)}, "2026-11-25T10:39Z cancel: " + strings.Repeat("x", 256-len("2026-11-25T10:39Z cancel: ")), "nightshift: cancel i-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags, pub := &fakeTags{}, &fakeSNS{}
			n := New(tags, pub, "arn:aws:sns:us-east-1:123456789012:t", slog.New(slog.DiscardHandler), now)
			if err := n.Say(context.Background(), tt.give); err != nil {
				t.Fatal(err)
			}
			gotTag := ""
			if len(tags.calls) == 1 {
				gotTag = aws.ToString(tags.calls[0].Tags[0].Value)
				if k := aws.ToString(tags.calls[0].Tags[0].Key); k != TagLastAction {
					t.Errorf("tag key %q; want %q", k, TagLastAction)
				}
			}
			if gotTag != tt.wantTag || len(tags.calls) > 1 {
				t.Errorf("Say(%v) tagged %q (%d calls); want %q", tt.give, gotTag, len(tags.calls), tt.wantTag)
			}
			if len(pub.calls) != 1 || aws.ToString(pub.calls[0].Subject) != tt.wantSubject {
				t.Errorf("Say(%v) published %v; want subject %q", tt.give, pub.calls, tt.wantSubject)
			}
		})
	}
}
