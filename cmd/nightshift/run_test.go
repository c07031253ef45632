package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestLocalRun(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("the local run needs bash")
	}
	var out bytes.Buffer
	if err := run(context.Background(), runOptions{Message: defaultJob, Dir: t.TempDir()}, &out); err != nil {
		t.Fatalf("run() = %v\n%s", err, out.String())
	}
	// The timeline a newcomer reads, in order.
	want := []string{"queued", "launched", "instance running", "agent online", "running",
		"activated", "epoch 3/3", "exited with code 0", "state=SUCCEEDED", "instance stopping", "instance stopped",
		"the bill", "total $"}
	text := out.String()
	at := 0
	for _, w := range want {
		i := strings.Index(text[at:], w)
		if i < 0 {
			t.Fatalf("run() output lacks %q after position %d:\n%s", w, at, text)
		}
		at += i + len(w)
	}
}

func TestLocalRunRejected(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), runOptions{Message: `{"comand": "python train.py"}`, Dir: t.TempDir(), KeepWarm: time.Minute}, &out)
	if err == nil || !strings.Contains(out.String(), `did you mean "command"`) {
		t.Errorf("run(bad message) = %v, output:\n%s\nwant an error and the reason", err, out.String())
	}
}

func TestLocalRunFailingJob(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), runOptions{Message: `{"id": "boom", "command": "echo going down; exit 7", "max_runtime": "5m"}`, Dir: t.TempDir()}, &out)
	if err == nil || !strings.Contains(out.String(), "FAILED (exit code 7)") || !strings.Contains(out.String(), "going down") {
		t.Errorf("run(failing job) = %v, output:\n%s\nwant FAILED with exit code 7 and the job's output", err, out.String())
	}
}
