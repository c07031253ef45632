package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nightshift-dev/nightshift/internal/waste"
)

func TestRunTable(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-keep-warm", "2m", "-notebook-idle", "7m", "-notebook-idle-connected", "45m", "../../traces/one-long-job.trace"}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	rows := 0
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| policy") {
			rows++
		}
	}
	if rows != 6 || !strings.Contains(out.String(), "keep-warm 2m") || !strings.Contains(out.String(), "notebook idle 7m, 45m connected") {
		t.Errorf("run printed %d policy rows:\n%s\nwant 6 (nightshift, 4 baselines, bound), with keep-warm 2m and notebook idle 7m, 45m connected", rows, out.String())
	}
	if !strings.Contains(out.String(), "| interruptions |") {
		t.Errorf("run printed no interruptions column:\n%s", out.String())
	}
}

func TestRunGenerate(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-gen", "month", "-seed", "1"}, &out); err != nil {
		t.Fatalf("run -gen: %v", err)
	}
	want, err := os.ReadFile("../../traces/small-team-month.trace")
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("run -gen month -seed 1 differs from traces/small-team-month.trace")
	}
}

func TestRunErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.trace")
	if err := os.WriteFile(bad, []byte("d0 10:00,job,a,1h\nd0 11:00,job,b,soon\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var le *waste.LineError
	if err := run(context.Background(), []string{bad}, &bytes.Buffer{}); !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("run(bad trace) = %v; want a line 2 error", err)
	}
	for _, args := range [][]string{{}, {"-looks", "9am", bad}, {"-type", "m5.large", bad}, {"-gen", "year"}, {"-notebook-idle", "0s", "../../traces/one-long-job.trace"}, {"-notebook-idle-connected", "-1m", "../../traces/one-long-job.trace"}} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("run(%q) = nil; want an error", args)
		}
	}
}
