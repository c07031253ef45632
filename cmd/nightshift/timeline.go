package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nightshift-dev/nightshift/internal/awssim"
	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// timeline is a slog handler that prints the scheduler's decisions as a
// readable timeline on the virtual clock, with the job's own output.
type timeline struct {
	mu    sync.Mutex
	out   io.Writer
	clock *vclock.Clock
	cloud *awssim.Cloud
	start time.Time
	seen  map[string]bool
}

func (t *timeline) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (t *timeline) WithAttrs([]slog.Attr) slog.Handler           { return t }
func (t *timeline) WithGroup(string) slog.Handler                { return t }

func (t *timeline) Handle(_ context.Context, r slog.Record) error {
	attrs := map[string]string{}
	var order []string
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		order = append(order, a.Key)
		return true
	})
	msg := r.Message
	switch msg {
	case metrics.Message:
		return nil // the figures CloudWatch graphs; the timeline tells the story
	case "instance state":
		key := attrs["instance"] + attrs["state"]
		if t.seen == nil {
			t.seen = map[string]bool{}
		}
		if t.seen[key] {
			return nil // EventBridge may repeat; the timeline says it once
		}
		t.seen[key] = true
		word := map[string]string{"pending": "instance launching", "running": "instance running", "stopping": "instance stopping", "stopped": "instance stopped", "shutting-down": "instance terminating", "terminated": "instance terminated"}[attrs["state"]]
		if word == "" {
			word = "instance " + attrs["state"]
		}
		detail := attrs["instance"]
		if st := attrs["state"]; st == "stopping" || st == "shutting-down" {
			for _, i := range t.cloud.Instances() {
				if i.ID != attrs["instance"] || i.StoppedBy == "" {
					continue
				}
				by := "its own " + i.StoppedBy
				if i.StoppedBy == "StopInstances" || i.StoppedBy == "TerminateInstances" {
					by = "nightshift"
				}
				detail += " (by " + by + ")"
			}
		}
		t.say(word, "%s", detail)
		if attrs["state"] == "running" {
			t.agentOnline(attrs["instance"])
		}
		return nil
	case "finished":
		t.printOutput(attrs["instance"])
	case "action":
		t.say(attrs["verb"], "%s: %s", attrs["instance"], attrs["why"])
		return nil
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, k+"="+attrs[k])
	}
	t.say(msg, "%s", strings.Join(parts, " "))
	return nil
}

// agentOnline schedules a timeline line for when the instance's SSM agent registers.
func (t *timeline) agentOnline(id string) {
	for _, i := range t.cloud.Instances() {
		if i.ID == id && !i.AgentOnline.IsZero() {
			t.clock.At(i.AgentOnline, func() { t.say("agent online", "%s: SSM agent reports Online; ready for commands", id) })
		}
	}
}

func (t *timeline) printOutput(instance string) {
	invs := t.cloud.Invocations()
	for k := len(invs) - 1; k >= 0; k-- {
		if invs[k].InstanceID == instance {
			t.mu.Lock()
			for _, line := range strings.Split(strings.TrimRight(invs[k].Output, "\n"), "\n") {
				fmt.Fprintf(t.out, "%s │ %s\n", strings.Repeat(" ", 10), line)
			}
			t.mu.Unlock()
			return
		}
	}
}

func (t *timeline) say(what, format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.clock.Now().Sub(t.start)
	fmt.Fprintf(t.out, "T+%02d:%02d:%02d  %-20s %s\n", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60, what, fmt.Sprintf(format, args...))
}
