// Package quic is the QUIC binding of JSP (JSP §7.1): a transport.Conn
// over one QUIC connection (RFC 9000) made with quic-go.
//
// Flow:
//
//	client                                   server
//	Dial ── QUIC handshake, TLS 1.3, ALPN "jsp/1" ──> Listen / Accept
//	OpenStream(class) ── first stream = control stream (HELLO) ──> AcceptStream
//	SendDatagram ── RFC 9221 DATAGRAM frames ──> ReceiveDatagram
//	CloseWithError(code, reason) ── CONNECTION_CLOSE (application) ──> Context cause
//
// What this binding maps, and how:
//
//   - JSP streams are QUIC bidirectional streams; unidirectional streams are
//     refused. QUIC has no per-stream QoS class on the wire: the opener keeps
//     the class locally (it orders quic-go's sending, see Stream.SetClass)
//     and the session's STREAM_OPEN frame tells the peer (JSP §5.12).
//   - JSP datagrams are QUIC DATAGRAM frames, on by default. SendDatagram
//     never blocks: a bounded queue drops its oldest entry when quic-go
//     cannot take more (see Config.DatagramSendQueue).
//   - Close codes: CloseWithError sends the JSP code as the QUIC application
//     error code; the peer's Context cause is a *jsperr.Error with that code,
//     the reason and Remote set. Stream resets carry JSP codes as QUIC
//     stream error codes and surface as STREAM_RESET errors that wrap the
//     resetting side's code (errors.Is(err, jsperr.New(code, "")) holds).
//   - TLS: every tls.Config passes through tlsconf.Enforce (TLS 1.3, ALPN
//     "jsp/1" only) and every handshake through tlsconf.CheckState.
//   - Connection migration (RFC 9000 §9): a connection dialed with
//     Config.Migratable moves to a new UDP socket with Conn.Migrate, which
//     probes the new path (PATH_CHALLENGE) and switches to it without a new
//     handshake; streams and datagrams carry on, and the socket left
//     behind is closed.
//
// GSO: on Linux quic-go sends with UDP generic segmentation offload when the
// kernel and socket allow it (Conn.GSO reports it); QUIC_GO_DISABLE_GSO=true
// in the environment turns it off. quic-go also tries to enlarge the socket
// buffers and logs once when the system caps them
// (QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING silences that).
package quic

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// Listener accepts QUIC connections. It implements transport.Listener.
type Listener struct {
	ln  *quicgo.Listener
	cfg Config
}

var _ transport.Listener = (*Listener)(nil)

// Listen listens for QUIC connections on the UDP address addr (or on
// cfg.PacketConn, when set). tlsConf must hold a certificate; it is copied
// and raised to TLS 1.3 with ALPN "jsp/1" (JSP §7.4, §8.1).
func Listen(addr string, tlsConf *tls.Config, cfg Config) (transport.Listener, error) {
	c, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	tc, err := tlsconf.Enforce(tlsConf)
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
		return nil, fmt.Errorf("quic: listen %s: tls.Config has no certificate", addr)
	}
	var ln *quicgo.Listener
	if c.PacketConn != nil {
		addr = c.PacketConn.LocalAddr().String()
		ln, err = quicgo.Listen(c.PacketConn, tc, c.quicConfig())
	} else {
		ln, err = quicgo.ListenAddr(addr, tc, c.quicConfig())
	}
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	return &Listener{ln: ln, cfg: c}, nil
}

// Accept waits for the next connection whose handshake completed.
// After Close it fails with an error matching transport.ErrClosed.
func (l *Listener) Accept(ctx context.Context) (transport.Conn, error) {
	for {
		qc, err := l.ln.Accept(ctx)
		if err != nil {
			if errors.Is(err, quicgo.ErrServerClosed) {
				return nil, fmt.Errorf("quic: accept: %w", transport.ErrClosed)
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("quic: accept: %w", context.Cause(ctx))
			}
			return nil, fmt.Errorf("quic: accept: %w", connError(err))
		}
		// quic-go already insists on TLS 1.3 and a common ALPN; checking
		// the outcome keeps that guarantee independent of its internals.
		if err := tlsconf.CheckState(qc.ConnectionState().TLS); err != nil {
			_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.TlsRequired), err.Error())
			continue
		}
		return newConn(qc, &l.cfg), nil
	}
}

// Addr returns the local UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting. Handshakes in progress are refused; established
// connections stay open, and the socket Listen opened closes after the last
// of them.
func (l *Listener) Close() error {
	if err := l.ln.Close(); err != nil {
		return fmt.Errorf("quic: close listener: %w", err)
	}
	return nil
}

// Dial connects to the QUIC server at addr ("host:port"). tlsConf is copied
// and raised to TLS 1.3 with ALPN "jsp/1"; an empty ServerName becomes the
// host of addr. Handshake failures are *jsperr.Error values (TLS_REQUIRED
// for TLS alerts such as a refused ALPN or an untrusted certificate,
// HANDSHAKE_TIMEOUT, TRANSPORT_CLOSED); the end of ctx stays a context
// error.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config) (transport.Conn, error) {
	c, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	tc, err := tlsconf.Enforce(tlsConf)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s: %w", addr, err)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s: %w", addr, err)
	}
	if tc.ServerName == "" {
		tc.ServerName = host
	}
	var qc *quicgo.Conn
	var own *socket
	switch {
	case c.Migratable:
		// A transport of our own (see Config.Migratable); on a socket of
		// our own, wrapped so that Migrate can retire it.
		udpAddr, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, rerr)
		}
		own = &socket{}
		if c.PacketConn != nil {
			own.pc = newRetirableConn(c.PacketConn)
		} else {
			uc, lerr := net.ListenUDP("udp", nil)
			if lerr != nil {
				return nil, fmt.Errorf("quic: dial %s: open UDP socket: %w", addr, lerr)
			}
			own.pc, own.owned = newRetirableConn(uc), true
		}
		own.tr = &quicgo.Transport{Conn: own.pc}
		qc, err = own.tr.Dial(ctx, udpAddr, tc, c.quicConfig())
		if err != nil {
			own.close()
		}
	case c.PacketConn != nil:
		udpAddr, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, rerr)
		}
		qc, err = quicgo.Dial(ctx, c.PacketConn, udpAddr, tc, c.quicConfig())
	default:
		qc, err = quicgo.DialAddr(ctx, addr, tc, c.quicConfig())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, context.Cause(ctx))
		}
		return nil, fmt.Errorf("quic: dial %s: %w", addr, dialError(err))
	}
	if err := tlsconf.CheckState(qc.ConnectionState().TLS); err != nil {
		_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.TlsRequired), err.Error())
		if own != nil {
			own.close()
		}
		return nil, fmt.Errorf("quic: dial %s: %w", addr, jsperr.Wrap(jsperr.TlsRequired, err))
	}
	conn := newConn(qc, &c)
	conn.migratable = c.Migratable
	if own != nil {
		conn.remote = qc.RemoteAddr()
		conn.current = own
		conn.sockets = []*socket{own}
	}
	return conn, nil
}

// dialError maps a failed handshake. quic-go reports a silent server as an
// idle timeout when the handshake idle timer fires first, and as a handshake
// timeout when the handshake's total time runs out; for the caller both mean
// the handshake did not finish in time.
func dialError(err error) error {
	if _, ok := errors.AsType[*quicgo.IdleTimeoutError](err); ok {
		return jsperr.Wrap(jsperr.HandshakeTimeout, err)
	}
	return connError(err)
}
