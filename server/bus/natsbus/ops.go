package natsbus

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
)

// Ping checks that the NATS connection is up, that no JetStream resource
// is still waiting to open (Opening), and that a server answers: a round
// trip (FLUSH) on the connection. /readyz uses it.
func (b *Bus) Ping(ctx context.Context) error {
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("natsbus: connection %s (servers %s)", st, b.nc.Servers())
	}
	if o := b.Opening(); len(o) > 0 {
		return fmt.Errorf("%w: %s", ErrNotReady, strings.Join(o, "; "))
	}
	if err := b.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("natsbus: ping %s: %w", b.nc.ConnectedUrlRedacted(), err)
	}
	return nil
}

// ConnectedURL returns the URL of the server the bus is connected to, ""
// while disconnected (or in-process).
func (b *Bus) ConnectedURL() string { return b.nc.ConnectedUrlRedacted() }

// WriteMetrics writes the connection's counters in the Prometheus text
// format (version 0.0.4).
func (b *Bus) WriteMetrics(w io.Writer) error {
	s := b.Stats()
	_, err := fmt.Fprintf(w, `# HELP jsp_nats_disconnects_total Losses of the NATS connection.
# TYPE jsp_nats_disconnects_total counter
jsp_nats_disconnects_total %d
# HELP jsp_nats_reconnects_total Successful NATS reconnects.
# TYPE jsp_nats_reconnects_total counter
jsp_nats_reconnects_total %d
# HELP jsp_nats_async_errors_total Errors the NATS server reported asynchronously (permissions, slow consumer).
# TYPE jsp_nats_async_errors_total counter
jsp_nats_async_errors_total %d
# HELP jsp_nats_dropped_total Messages dropped by slow NATS subscriptions.
# TYPE jsp_nats_dropped_total counter
jsp_nats_dropped_total %d
# HELP jsp_nats_messages_total Messages on the NATS connection, by direction.
# TYPE jsp_nats_messages_total counter
jsp_nats_messages_total{direction="in"} %d
jsp_nats_messages_total{direction="out"} %d
`, s.Disconnects, s.Reconnects, s.AsyncErrors, s.Dropped, s.InMsgs, s.OutMsgs)
	return err
}

// Flush implements bus.Flusher: one round trip (PING, PONG) with the
// server, after which every subscription made before it is in effect.
func (b *Bus) Flush(ctx context.Context) error {
	if err := b.checkOpen("flush"); err != nil {
		return err
	}
	ctx, cancel := apiCtx(ctx)
	defer cancel()
	if err := b.nc.FlushWithContext(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("natsbus: flush: %w", context.Cause(ctx))
		}
		return fmt.Errorf("natsbus: flush: %w", mapErr(err))
	}
	return nil
}
