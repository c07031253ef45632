package handler

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nightshift-dev/nightshift/internal/metrics"
	"github.com/nightshift-dev/nightshift/internal/scheduler"
	"github.com/nightshift-dev/nightshift/internal/watchdog"
)

// stoppingSweeper stops one instance each sweep, as a notice says it
// (metrics.CountAction), and builds the figures from what it is given.
type stoppingSweeper struct{ actions map[string]int }

func (s *stoppingSweeper) Sweep(ctx context.Context) (watchdog.Report, error) {
	metrics.CountAction(ctx, "stop", false)
	metrics.CountAction(ctx, "stop", true) // a dry run's: not taken, not counted
	return watchdog.Report{}, nil
}

func (s *stoppingSweeper) Figures(_ context.Context, _ watchdog.Report, actions map[string]int) (metrics.Tick, error) {
	s.actions = actions
	return metrics.Tick{Actions: actions}, nil
}

// cancellingScheduler's reconcile cancels one command.
type cancellingScheduler struct{ fakeScheduler }

func (c *cancellingScheduler) Reconcile(ctx context.Context, o scheduler.Options) error {
	metrics.CountAction(ctx, "cancel", false)
	return c.fakeScheduler.Reconcile(ctx, o)
}

// TestWatchdogPublishesOneDocument: a tick writes one EMF document, after
// the reconcile, counting the actions of the sweep and of the reconcile.
func TestWatchdogPublishesOneDocument(t *testing.T) {
	at := time.Date(2026, 11, 25, 9, 41, 0, 0, time.UTC)
	var buf bytes.Buffer
	s, w := &cancellingScheduler{}, &stoppingSweeper{}
	h := Watchdog{S: s, W: w, Log: discard, Metrics: metrics.WithStack(slog.New(slog.NewJSONHandler(&buf, nil)), "ml-prod"), Now: func() time.Time { return at }}
	if err := h.Handle(context.Background(), sample(t, "watchdog-tick.json")); err != nil {
		t.Fatalf("Handle(tick) = %v", err)
	}
	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("Handle(tick) wrote %d lines; want one document:\n%s", len(lines), buf.String())
	}
	p, err := metrics.Parse(lines[0])
	if err != nil {
		t.Fatalf("Parse(%s) = %v", lines[0], err)
	}
	if p.DimensionValues[metrics.Stack] != "ml-prod" || !p.Time.Equal(at) {
		t.Errorf("document Stack %q at %v; want ml-prod at %v", p.DimensionValues[metrics.Stack], p.Time, at)
	}
	if p.Values[metrics.ActionsStop] != 1 || p.Values[metrics.ActionsCancel] != 1 || p.Values[metrics.ActionsNotify] != 0 {
		t.Errorf("document actions = stop %v, cancel %v, notify %v; want 1, 1, 0 (the sweep's stop, the reconcile's cancel)",
			p.Values[metrics.ActionsStop], p.Values[metrics.ActionsCancel], p.Values[metrics.ActionsNotify])
	}
}
