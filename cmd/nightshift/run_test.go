package main

import (
	"bytes"
	"context"
	"math"
	"os/exec"
	"regexp"
	"strconv"
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

// TestUsageErrors: a keep-warm window that is negative or under a minute,
// an argument where none is taken, an unknown flag or command, are usage
// errors (exit 2) that say what is wrong on stderr, before anything runs;
// --help prints the usage on stdout and succeeds.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name     string
		give     []string
		wantText string // in stderr
	}{
		{name: "negative keep-warm", give: []string{"local", "--keep-warm", "-5m"}, wantText: "--keep-warm -5m0s: want at least 1m0s"},
		{name: "keep-warm under a minute", give: []string{"local", "--keep-warm", "30s"}, wantText: "--keep-warm 30s: want at least 1m0s"},
		{name: "an extra argument", give: []string{"local", `{"command": "echo hi"}`}, wantText: `unknown command "{\"command\": \"echo hi\"}" for "nightshift local"`},
		{name: "the old alias, with arguments", give: []string{"run", "--keep-warm", "5m", "now"}, wantText: `unknown command "now" for "nightshift local"`},
		{name: "an unknown flag", give: []string{"local", "--fast"}, wantText: "unknown flag: --fast"},
		{name: "an unknown command", give: []string{"launch"}, wantText: `unknown command "launch" for "nightshift"`},
		{name: "a bad duration", give: []string{"local", "--keep-warm", "soon"}, wantText: `invalid argument "soon" for "--keep-warm"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := Main(context.Background(), tt.give, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }, false)
			if got != exitUsage || !strings.Contains(stderr.String(), tt.wantText) {
				t.Errorf("Main(%q) = %d, stderr %q; want %d and %q", tt.give, got, stderr.String(), exitUsage, tt.wantText)
			}
			if stdout.Len() > 0 {
				t.Errorf("Main(%q) wrote %q to stdout; want nothing run", tt.give, stdout.String())
			}
		})
	}
	var stdout, stderr bytes.Buffer
	got := Main(context.Background(), []string{"local", "--help"}, strings.NewReader(""), &stdout, &stderr, func(string) string { return "" }, false)
	if text := stdout.String(); got != 0 || strings.Count(text, "nightshift local [flags]") != 1 || strings.Count(text, "--keep-warm duration") != 1 || stderr.Len() > 0 {
		t.Errorf("Main(local --help) = %d, stdout %q, stderr %q; want 0 and the usage once on stdout", got, text, stderr.String())
	}
}

// TestLocalRunNoAWS: the local run's instances have an aws that reaches no
// AWS: input and output syncs say they were skipped (an input's directory
// is made, empty) and the job runs on; whatever aws is on the machine's PATH
// is never called.
func TestLocalRunNoAWS(t *testing.T) {
	var out bytes.Buffer
	msg := `{"id": "synced", "command": "test -d data && echo inputs in place; mkdir -p out && echo done > out/result", "max_runtime": "10m",
		"inputs": [{"s3": "s3://no-such-bucket/data", "path": "data"}], "outputs": [{"s3": "s3://no-such-bucket/out", "path": "out"}]}`
	if err := run(context.Background(), runOptions{Message: msg, Dir: t.TempDir()}, &out); err != nil {
		t.Fatalf("run(job with syncs) = %v\n%s", err, out.String())
	}
	text := out.String()
	for _, want := range []string{"aws s3 sync s3://no-such-bucket/data data skipped", "inputs in place", "aws s3 sync out s3://no-such-bucket/out skipped", "SUCCEEDED (exit code 0)"} {
		if !strings.Contains(text, want) {
			t.Errorf("run(job with syncs) output lacks %q:\n%s", want, text)
		}
	}
}

// TestLocalRunSpotBill: for a spot job, each line of the bill is at the
// price the instance ran at, says which, and the lines add up to the total.
func TestLocalRunSpotBill(t *testing.T) {
	var out bytes.Buffer
	msg := `{"id": "cheap", "command": "echo on spot", "max_runtime": "10m", "instance": {"market": "spot"}}`
	if err := run(context.Background(), runOptions{Message: msg, Dir: t.TempDir()}, &out); err != nil {
		t.Fatalf("run(spot job) = %v\n%s", err, out.String())
	}
	text := out.String()
	line := regexp.MustCompile(`(?m)^  g4dn\.xlarge (spot|on-demand) +(\d+) instance-seconds × \$([0-9.]+)/h = \$([0-9.]+)$`)
	lines := line.FindAllStringSubmatch(text, -1)
	if len(lines) != 1 || lines[0][1] != "spot" {
		t.Fatalf("bill lines %q in:\n%s\nwant one g4dn.xlarge spot line", lines, text)
	}
	secs, _ := strconv.ParseFloat(lines[0][2], 64)
	hourly, _ := strconv.ParseFloat(lines[0][3], 64)
	usd, _ := strconv.ParseFloat(lines[0][4], 64)
	if spot := 0.526 * 0.3; math.Abs(hourly-spot) > 0.0005 {
		t.Errorf("spot line at $%.4f/h; want the spot price, $%.4f/h", hourly, spot)
	}
	if math.Abs(secs*hourly/3600-usd) > 0.0001+secs*0.0005/3600 {
		t.Errorf("line says %v s × $%v/h = $%v; the product is $%.4f", secs, hourly, usd, secs*hourly/3600)
	}
	total := regexp.MustCompile(`(?m)^  total \$([0-9.]+)`).FindStringSubmatch(text)
	if total == nil || total[1] != lines[0][4] {
		t.Errorf("total %q; want the line's $%s", total, lines[0][4])
	}
}
