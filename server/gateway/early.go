package gateway

import (
	"context"

	"github.com/jetstreamproto/jsp/session"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/wire"
)

// 0-RTT replay protection (JSP §7.1). With Config.QUIC.Allow0RTT a
// resuming client's first flight (HELLO and what follows it) may arrive
// as 0-RTT data, which an attacker who captured it can send again as a
// new connection; such a replay never completes its TLS handshake. So a
// request read before the handshake completed runs at once only when
// running it twice is harmless:
//
//	SUBSCRIBE, UNSUBSCRIBE, PING       idempotent by definition (JSP §5.7)
//	PUBLISH with a bus                 the core de-duplicates by id (JSP §4.4)
//	COMMAND, MESSAGE marked idempotent header jsp-idempotent = "1"
//
// Anything else (PUBLISH to the in-memory hub, unmarked COMMAND and
// MESSAGE) waits until the handshake completes; the receive loop waits
// with it, so later requests keep their order. A replayed flight's
// deferred requests never run: its connection dies at the handshake
// timeout.

// IdempotentHeader marks a COMMAND or MESSAGE as safe to run twice, so
// that it may run from 0-RTT data (JSP §7.1). Its value is "1".
const IdempotentHeader = "jsp-idempotent"

// handshakeDone returns the channel that closes when the session's TLS
// handshake has completed, or nil when the transport has no 0-RTT or the
// handshake completed before the session started.
func handshakeDone(sess *session.Session) <-chan struct{} {
	ec, ok := sess.Conn().(jspquic.EarlyConn)
	if !ok {
		return nil
	}
	ch := ec.HandshakeComplete()
	select {
	case <-ch:
		return nil
	default:
		return ch
	}
}

// idempotent reports whether the request in may run from 0-RTT data.
func (h *host) idempotent(in session.Incoming) bool {
	switch in.Type {
	case wire.FramePublish:
		return h.g.cluster != nil
	case wire.FrameCommand, wire.FrameMessage:
		return in.Envelope != nil && in.Envelope.Headers[IdempotentHeader] == "1"
	}
	return true
}

// awaitEarly holds a non-idempotent request until the handshake has
// completed; false when the session ended first. Once the handshake is
// complete it costs one channel check.
func (h *host) awaitEarly(ctx context.Context, in session.Incoming) bool {
	if h.early == nil || h.idempotent(in) {
		return true
	}
	select {
	case <-h.early:
	default:
		h.g.metrics.earlyDeferred.add(in.Type.String(), 1)
		h.log.Debug("request from 0-RTT data waits for the handshake", "type", in.Type.String())
		select {
		case <-h.early:
		case <-ctx.Done():
			return false
		}
	}
	return true
}
