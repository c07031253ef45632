package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/job"
)

// TestShowResumes: show says of a job whose lost attempts resumed from its
// checkpoint how many did, and the retries the others used; a job without
// resumes reads as before, "N of retries+1".
func TestShowResumes(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	a := &app{now: func() time.Time { return now }}
	two := 2
	for _, tt := range []struct {
		attempt, resumes int
		want             string
	}{
		{4, 3, "attempt     4 (3 resumed from its checkpoint; retries used 0 of 2)"},
		{2, 0, "attempt     2 of 3"},
	} {
		j := job.New(job.Spec{ID: "resnet", Command: "python train.py", Retries: &two,
			Checkpoint: &job.Checkpoint{S3: "s3://b/p", Path: "checkpoints", Every: job.Duration(10 * time.Minute)}}, "default", now.Add(-time.Hour))
		j.Attempt, j.Resumes = tt.attempt, tt.resumes
		var b bytes.Buffer
		a.printJob(&b, j, nil)
		if !strings.Contains(b.String(), tt.want) || !strings.Contains(b.String(), "checkpoint  s3://b/p, from checkpoints, synced every 10m0s") {
			t.Errorf("show of attempt %d with %d resumes:\n%s\nwant a line %q and the checkpoint", tt.attempt, tt.resumes, b.String(), tt.want)
		}
	}
}
