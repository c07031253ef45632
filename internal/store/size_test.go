package store

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// maxItemBytes is DynamoDB's item size limit, 400 KB, read as 400,000
// bytes to keep clear of the question whether a KB is 1,000 or 1,024.
const maxItemBytes = 400_000

// itemSize is an item's size by DynamoDB's rules ("DynamoDB item sizes and
// formats"): the UTF-8 length of every attribute name plus its value; a
// string its UTF-8 length, a number 1 byte per two significant digits plus
// 1, a boolean or null 1, a list or map 3 bytes plus 1 per element plus its
// elements (names included, for a map).
func itemSize(it item) int {
	n := 0
	for name, v := range it {
		n += len(name) + valueSize(v)
	}
	return n
}

func valueSize(v types.AttributeValue) int {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return len(v.Value)
	case *types.AttributeValueMemberN:
		digits := strings.Trim(strings.NewReplacer("-", "", ".", "").Replace(v.Value), "0")
		return (len(digits)+1)/2 + 1
	case *types.AttributeValueMemberBOOL, *types.AttributeValueMemberNULL:
		return 1
	case *types.AttributeValueMemberL:
		n := 3
		for _, e := range v.Value {
			n += 1 + valueSize(e)
		}
		return n
	case *types.AttributeValueMemberM:
		n := 3
		for name, e := range v.Value {
			n += 1 + len(name) + valueSize(e)
		}
		return n
	default:
		panic(fmt.Sprintf("valueSize: %T is not used by the store", v))
	}
}

func TestItemSize(t *testing.T) {
	tests := []struct {
		name string
		give item
		want int
	}{
		{name: "string", give: item{"id": str("train-1")}, want: 2 + 7},
		{name: "multibyte string", give: item{"name": str("résumé")}, want: 4 + 8},
		{name: "number", give: item{"attempt": num(2)}, want: 7 + 2},
		{name: "trailing zeros trimmed", give: item{"n": num(1000)}, want: 1 + 2},
		{name: "epoch seconds", give: item{"expires_at": num(1795640400)}, want: 10 + 5}, // 17956404: 8 digits
		{name: "list", give: item{"l": strList([]string{"ab", "c"})}, want: 1 + 3 + (1 + 2) + (1 + 1)},
		{name: "empty map", give: item{"m": &types.AttributeValueMemberM{Value: item{}}}, want: 1 + 3},
		{name: "map", give: item{"m": &types.AttributeValueMemberM{Value: item{"k": str("v")}}}, want: 1 + 3 + 1 + 1 + 1},
	}
	for _, tt := range tests {
		if got := itemSize(tt.give); got != tt.want {
			t.Errorf("itemSize(%s) = %d; want %d", tt.name, got, tt.want)
		}
	}
}

// largestJob is the largest job record nightshift can write: a spec as
// large as a message can be, the longest ids, a long reason, and a full
// history of the longest entries, made by Move as a job re-queued over and
// over is.
func largestJob() *job.Job {
	id := strings.Repeat("j", 64) // job.ValidID's longest
	retries := job.MaxRetries
	spec := job.Spec{
		ID:      id,
		Name:    strings.Repeat("n", 256),
		Command: strings.Repeat("x", job.MaxMessageBytes), // more than a whole message
		Workdir: "/var/lib/nightshift/work/" + id,
		Setup:   ". /opt/pytorch/bin/activate",
		Instance: job.Instance{
			Pool: "default", Types: []string{"p5en.48xlarge", "p5.48xlarge", "p4de.24xlarge"},
			Market: job.SpotThenOnDemand, VolumeGB: job.MaxVolumeGB,
		},
		MaxRuntime: job.Duration(job.MaxRuntimeLimit),
		Retries:    &retries,
		Priority:   job.MaxPriority,
	}
	j := job.New(spec, "default", time.Date(2026, 11, 25, 2, 0, 0, 0, time.UTC))
	j.Source = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
	// An AWS error message, as long as any: the job's own reason is kept whole.
	reason := strings.Repeat("é", 2*job.MaxHistoryReason)
	now := j.SubmittedAt
	for i := 0; j.HistoryDropped == 0; i++ {
		now = now.Add(time.Minute)
		to := job.Placed
		if j.State == job.Placed {
			to = job.Running
		} else if j.State == job.Running {
			to = job.Queued
		}
		j.InstanceID, j.InstanceType = fmt.Sprintf("i-%017x", i), "p5en.48xlarge"
		j.CommandID = fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		j.LogStream = j.CommandID + "/" + j.InstanceID + "/aws-runShellScript/stdout"
		if err := j.Move(to, reason, now); err != nil {
			panic(err)
		}
	}
	if err := j.Move(job.Failed, reason, now.Add(time.Minute)); err != nil {
		panic(err)
	}
	code := 137
	j.ExitCode, j.Cost, j.LaunchTry = &code, 12345.678901234567, 1<<20
	j.DispatchedAt, j.StalledAt = now, now
	j.Version = 1 << 40
	return j
}

// TestLargestJobSize measures the largest job record against DynamoDB's
// item limit, with its expiry: MaxHistory and MaxHistoryReason must leave
// room for it.
func TestLargestJobSize(t *testing.T) {
	j := largestJob()
	it, err := marshalJob(j)
	if err != nil {
		t.Fatal(err)
	}
	it[attrExpiresAt] = num(settings{retention: 90 * 24 * time.Hour}.expiresAt(j))
	size := itemSize(it)
	hist := len("history") + valueSize(it["history"])
	t.Logf("largest job record: %d bytes (history %d bytes in %d entries, %d dropped); limit %d", size, hist, len(j.History), j.HistoryDropped, maxItemBytes)
	if len(j.History) != job.MaxHistory {
		t.Errorf("largest job history = %d entries; want %d", len(j.History), job.MaxHistory)
	}
	if size > maxItemBytes {
		t.Errorf("itemSize(largest job) = %d; want at most %d", size, maxItemBytes)
	}
}
