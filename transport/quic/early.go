package quic

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// 0-RTT (RFC 9001 §4.6, JSP §7.1). With Config.Allow0RTT:
//
//   - a listener hands out connections as soon as their 0-RTT data can be
//     read, before the TLS handshake completes (quic-go's early listener);
//   - Dial sends its first flight in 0-RTT packets when the TLS
//     configuration's ClientSessionCache holds a ticket from an earlier
//     connection to the server, and returns before the handshake
//     completes.
//
// 0-RTT data can be replayed: anyone who captured the client's first
// flight can send it again, and the server cannot tell (RFC 8446 §8). The
// replayed connection never completes its handshake, because the replayer
// lacks the keys for the client's Finished; so Conn.HandshakeComplete is
// the signal that what arrived so far came from the live client. The
// session layer above decides what may run before it (JSP §7.1: only
// idempotent requests; the gateway defers the rest until the handshake
// completes).

// EarlyConn is what a connection that may carry 0-RTT data offers beyond
// transport.Conn. *Conn implements it; callers that hold a transport.Conn
// test for it with a type assertion.
type EarlyConn interface {
	// HandshakeComplete is closed once the TLS handshake has completed;
	// it never closes for a connection whose handshake fails.
	HandshakeComplete() <-chan struct{}
	// Used0RTT reports whether the connection accepted (server) or sent
	// and had accepted (client) 0-RTT data. Meaningful once
	// HandshakeComplete is closed.
	Used0RTT() bool
}

var _ EarlyConn = (*Conn)(nil)

// HandshakeComplete implements EarlyConn. For connections from a listener
// without Allow0RTT, and from Dial without it, it is closed already.
func (c *Conn) HandshakeComplete() <-chan struct{} { return c.qc.HandshakeComplete() }

// Used0RTT implements EarlyConn.
func (c *Conn) Used0RTT() bool { return c.qc.ConnectionState().Used0RTT }

// acceptor is quic-go's Listener or EarlyListener.
type acceptor interface {
	Accept(ctx context.Context) (*quicgo.Conn, error)
	Close() error
	Addr() net.Addr
}

// listenOn starts a listener of the kind cfg asks for on tr.
func listenOn(tr *quicgo.Transport, tc *tls.Config, c *Config) (acceptor, error) {
	if c.Allow0RTT {
		return tr.ListenEarly(tc, c.quicConfig())
	}
	return tr.Listen(tc, c.quicConfig())
}

// checkEarlyState checks what the TLS state of a connection whose
// handshake may still be running already says: TLS 1.3 and ALPN "jsp/1"
// are fixed by the ServerHello (a 0-RTT client resumes a session that had
// them). quic-go refuses anything else itself; the check keeps that
// guarantee independent of its internals, as tlsconf.CheckState does for
// a completed handshake.
func checkEarlyState(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("quic: negotiated %s, need TLS 1.3 (JSP §7.4)", tls.VersionName(cs.Version))
	}
	if cs.NegotiatedProtocol != protocol.ALPN {
		return fmt.Errorf("quic: negotiated ALPN %q, need %q (JSP §8.1)", cs.NegotiatedProtocol, protocol.ALPN)
	}
	return nil
}

// checkLater returns the TLS check for a dialed 0-RTT connection: the
// full check when the handshake has completed already, else none now and
// a goroutine that runs it when the handshake completes and closes the
// connection with TLS_REQUIRED if it fails. The goroutine ends with the
// handshake or the connection.
func checkLater(qc *quicgo.Conn) func(tls.ConnectionState) error {
	select {
	case <-qc.HandshakeComplete():
		return tlsconf.CheckState
	default:
	}
	go func() {
		select {
		case <-qc.HandshakeComplete():
			if err := tlsconf.CheckState(qc.ConnectionState().TLS); err != nil {
				_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.TlsRequired), err.Error())
			}
		case <-qc.Context().Done():
		}
	}()
	return func(tls.ConnectionState) error { return nil }
}
