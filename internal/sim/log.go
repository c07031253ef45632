package sim

import (
	"context"
	"log/slog"

	"github.com/nightshift-dev/nightshift/internal/vclock"
)

// LogHandler stamps every record with the virtual time, so logs read as the
// simulated timeline.
func LogHandler(h slog.Handler, c *vclock.Clock) slog.Handler { return clockHandler{h, c} }

type clockHandler struct {
	slog.Handler
	c *vclock.Clock
}

func (h clockHandler) Handle(ctx context.Context, r slog.Record) error {
	r.Time = h.c.Now()
	return h.Handler.Handle(ctx, r)
}

func (h clockHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return clockHandler{h.Handler.WithAttrs(as), h.c}
}

func (h clockHandler) WithGroup(name string) slog.Handler {
	return clockHandler{h.Handler.WithGroup(name), h.c}
}
