package gateway

import (
	"context"
	"log/slog"
)

// hostLog is the slog.Handler of a host's logger: the gateway's handler
// with the session's attributes (session id, transport, remote address,
// user and device), which it adds only when a record is written. A
// logger made with With up front would cost every idle session its
// formatted attributes, some 0.5-0.7 KB (D34); a session logs rarely,
// and below Info not at all by default.
type hostLog struct {
	base slog.Handler
	h    *host
}

// newHostLog returns h's logger.
func newHostLog(base *slog.Logger, h *host) *slog.Logger {
	return slog.New(&hostLog{base: base.Handler(), h: h})
}

// Enabled asks the gateway's handler.
func (l *hostLog) Enabled(ctx context.Context, level slog.Level) bool {
	return l.base.Enabled(ctx, level)
}

// Handle writes r with the session's attributes.
func (l *hostLog) Handle(ctx context.Context, r slog.Record) error {
	return l.full().Handle(ctx, r)
}

// WithAttrs returns the gateway's handler with the session's attributes
// and as.
func (l *hostLog) WithAttrs(as []slog.Attr) slog.Handler { return l.full().WithAttrs(as) }

// WithGroup returns the gateway's handler with the session's attributes
// and the group name.
func (l *hostLog) WithGroup(name string) slog.Handler { return l.full().WithGroup(name) }

// full is the gateway's handler with the session's attributes.
func (l *hostLog) full() slog.Handler {
	h := l.h
	as := []slog.Attr{
		slog.String("session", h.id),
		slog.String("transport", string(h.kind)),
		slog.String("remote", h.ident.RemoteAddr),
	}
	if h.user != "" || h.auth.Device != "" {
		as = append(as, slog.String("user", h.user), slog.String("device", h.auth.Device))
	}
	return l.base.WithAttrs(as)
}
