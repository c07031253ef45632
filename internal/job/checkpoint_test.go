package job

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCheckpoint(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want Checkpoint
	}{
		{`{"command": "python train.py", "checkpoint": "s3://ckpt-bucket/resnet"}`,
			Checkpoint{Path: DefaultCheckpointPath, S3: "s3://ckpt-bucket/resnet", Every: Duration(DefaultCheckpointEvery)}},
		{`{"command": "python train.py", "checkpoint": {"s3": "s3://ckpt-bucket/resnet"}}`,
			Checkpoint{Path: DefaultCheckpointPath, S3: "s3://ckpt-bucket/resnet", Every: Duration(DefaultCheckpointEvery)}},
		{`{"command": "python train.py", "checkpoint": {"path": "runs/ckpt", "s3": "s3://my.bucket-1/a/b/", "every": "30m"}}`,
			Checkpoint{Path: "runs/ckpt", S3: "s3://my.bucket-1/a/b/", Every: Duration(30 * time.Minute)}},
		{`{"command": "python train.py", "checkpoint": {"path": "/opt/dlami/nvme/ckpt", "s3": "s3://abc/x", "every": 60}}`,
			Checkpoint{Path: "/opt/dlami/nvme/ckpt", S3: "s3://abc/x", Every: Duration(time.Minute)}},
	} {
		got, err := Parse([]byte(c.msg), defaults())
		if err != nil {
			t.Errorf("Parse(%s) = %v", c.msg, err)
			continue
		}
		if diff := cmp.Diff(&c.want, got.Checkpoint); diff != "" {
			t.Errorf("Parse(%s) checkpoint mismatch (-want +got):\n%s", c.msg, diff)
		}
		if got.Checkpoint.Bucket() == "" || !got.Checkpointed() {
			t.Errorf("Parse(%s): bucket %q, checkpointed %v", c.msg, got.Checkpoint.Bucket(), got.Checkpointed())
		}
	}
	if got, err := Parse([]byte(`{"command": "python train.py"}`), defaults()); err != nil || got.Checkpoint != nil || got.Checkpointed() {
		t.Errorf("Parse(no checkpoint) = %+v, %v; want none", got.Checkpoint, err)
	}
}

func TestParseCheckpointBadInput(t *testing.T) {
	for _, c := range []struct {
		msg, field string
		kind       error
	}{
		{`{"checkpoint": {}}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": {"path": "ckpt"}}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "https://bucket/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://Bucket/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://ab/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://a..b/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://192.168.1.1/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://xn--bucket/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://bucket-s3alias/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://-bucket/x"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://bucket"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://bucket/"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": "s3://bucket///"}`, "checkpoint.s3", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "path": "../elsewhere"}}`, "checkpoint.path", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "path": "a/../.."}}`, "checkpoint.path", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "path": "."}}`, "checkpoint.path", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "path": "/"}}`, "checkpoint.path", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "path": "a\nb"}}`, "checkpoint", ErrInvalid},
		{`{"checkpoint": {"s3": "s3://bucket/x", "every": "30s"}}`, "checkpoint.every", ErrBadDuration},
		{`{"checkpoint": {"s3": "s3://bucket/x", "every": "25h"}}`, "checkpoint.every", ErrBadDuration},
		{`{"checkpoint": {"s3": "s3://bucket/x", "every": "ten minutes"}}`, "checkpoint.every", ErrBadDuration},
		{`{"checkpoint": {"s3": "s3://bucket/x", "evry": "10m"}}`, "checkpoint", ErrInvalid},
		{`{"checkpoint": {"s3": 7}}`, "checkpoint", ErrInvalid},
		{`{"checkpoint": 7}`, "checkpoint", ErrInvalid},
		{`{"checkpoint": ["s3://bucket/x"]}`, "checkpoint", ErrInvalid},
	} {
		msg := strings.Replace(c.msg, "{", `{"command": "python train.py", `, 1)
		_, err := Parse([]byte(msg), defaults())
		var e *Error
		if !errors.As(err, &e) || !errors.Is(err, c.kind) || e.Field != c.field {
			t.Errorf("Parse(%s) = %v; want a %v error on field %q", msg, err, c.kind, c.field)
		}
	}
	// A notebook keeps its files on its own disk and takes no checkpoint.
	_, err := Parse([]byte(`{"notebook": "alice", "checkpoint": "s3://bucket/x"}`), defaults())
	var e *Error
	if !errors.As(err, &e) || e.Field != "checkpoint" {
		t.Errorf("Parse(notebook with checkpoint) = %v; want an error on checkpoint", err)
	}
	// The typo of the field itself is an unknown field, with the hint.
	_, err = Parse([]byte(`{"command": "x", "chekpoint": "s3://bucket/x"}`), defaults())
	if !errors.Is(err, ErrUnknownField) || !strings.Contains(err.Error(), `did you mean "checkpoint"?`) {
		t.Errorf("Parse(chekpoint) = %v; want an unknown field that points to checkpoint", err)
	}
}

// TestCheckpointJSONRoundTrip: the spec as the record keeps it (JSON, the
// memory store and the CLI's views) reads back the same.
func TestCheckpointJSONRoundTrip(t *testing.T) {
	s, err := Parse([]byte(`{"command": "x", "checkpoint": {"path": "c", "s3": "s3://bucket/x", "every": "90s"}}`), defaults())
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("Unmarshal(%s) = %v", b, err)
	}
	if diff := cmp.Diff(s, back); diff != "" {
		t.Errorf("round trip of %s mismatch (-want +got):\n%s", b, diff)
	}
}

func TestRetriesUsed(t *testing.T) {
	for _, c := range []struct{ attempt, resumes, want int }{{1, 0, 0}, {3, 0, 2}, {4, 3, 0}, {5, 3, 1}} {
		j := &Job{Attempt: c.attempt, Resumes: c.resumes}
		if got := j.RetriesUsed(); got != c.want {
			t.Errorf("attempt %d, resumes %d: RetriesUsed = %d; want %d", c.attempt, c.resumes, got, c.want)
		}
	}
}

// TestCheckpointBuckets: a deployment names the buckets its instances may
// use; a checkpoint elsewhere is refused at the intake, naming them,
// rather than failing its first restore on a booted instance.
func TestCheckpointBuckets(t *testing.T) {
	msg := []byte(`{"command": "python train.py", "checkpoint": "s3://ckpt/run-1"}`)
	d := defaults()
	d.CheckpointBuckets = []string{"ckpt", "other"}
	if _, err := Parse(msg, d); err != nil {
		t.Errorf("Parse(bucket listed) = %v; want nil", err)
	}
	for _, tt := range []struct {
		buckets []string
		want    string
	}{
		{[]string{"other"}, "bucket ckpt is not one of this deployment's CheckpointBuckets (other)"},
		{[]string{}, "its CheckpointBuckets is empty"},
	} {
		d.CheckpointBuckets = tt.buckets
		_, err := Parse(msg, d)
		var e *Error
		if !errors.As(err, &e) || e.Field != "checkpoint.s3" || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(buckets %q) = %v; want a checkpoint.s3 error saying %q", tt.buckets, err, tt.want)
		}
	}
}
