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
//   - Sockets: Dial gives each connection a socket and quic-go Transport
//     of its own (so that it can migrate); a Dialer's connections share
//     one, for clients that hold many connections.
//   - Admission hooks: Config.VerifySourceAddress (Retry, RFC 9000 §8.1.2)
//     and Config.ConnContext (refuse or tag an attempt before its
//     handshake) let a server filter connections before they cost a
//     handshake; a listener with hooks runs its own quic-go Transport.
//   - 0-RTT (Config.Allow0RTT, off by default): a listener returns
//     connections before their handshake completes and a dialer with a
//     session ticket sends its first flight early; Conn.HandshakeComplete
//     tells the layer above when the data it read can no longer be a
//     replay (early.go).
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
	"sync"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// Listener accepts QUIC connections. It implements transport.Listener.
type Listener struct {
	ln  acceptor // quic-go's Listener, or its EarlyListener with Allow0RTT
	cfg Config
	// own is set when the listener runs its own quic-go Transport, which
	// the hooks (Config.VerifySourceAddress, Config.ConnContext) need.
	own *ownedTransport
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
	if c.hooked() {
		return listenHooked(addr, tc, c)
	}
	var ln acceptor
	switch {
	case c.PacketConn != nil && c.Allow0RTT:
		addr = c.PacketConn.LocalAddr().String()
		ln, err = quicgo.ListenEarly(c.PacketConn, tc, c.quicConfig())
	case c.PacketConn != nil:
		addr = c.PacketConn.LocalAddr().String()
		ln, err = quicgo.Listen(c.PacketConn, tc, c.quicConfig())
	case c.Allow0RTT:
		ln, err = quicgo.ListenAddrEarly(addr, tc, c.quicConfig())
	default:
		ln, err = quicgo.ListenAddr(addr, tc, c.quicConfig())
	}
	if err != nil {
		return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
	}
	return &Listener{ln: ln, cfg: c}, nil
}

// listenHooked listens on a quic-go Transport of its own, the only place
// quic-go takes VerifySourceAddress and ConnContext.
func listenHooked(addr string, tc *tls.Config, c Config) (*Listener, error) {
	pc := c.PacketConn
	var created net.PacketConn
	if pc == nil {
		udpAddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
		}
		udp, err := net.ListenUDP("udp", udpAddr)
		if err != nil {
			return nil, fmt.Errorf("quic: listen %s: %w", addr, err)
		}
		pc, created = udp, udp
	}
	tr := &quicgo.Transport{Conn: pc, VerifySourceAddress: c.VerifySourceAddress}
	if hook := c.ConnContext; hook != nil {
		tr.ConnContext = func(ctx context.Context, info *quicgo.ClientInfo) (context.Context, error) {
			return hook(ctx, ClientInfo{RemoteAddr: info.RemoteAddr, AddrVerified: info.AddrVerified})
		}
	}
	ln, err := listenOn(tr, tc, &c)
	if err != nil {
		_ = tr.Close()
		if created != nil {
			_ = created.Close()
		}
		return nil, fmt.Errorf("quic: listen %s: %w", pc.LocalAddr(), err)
	}
	return &Listener{ln: ln, cfg: c, own: &ownedTransport{tr: tr, created: created}}, nil
}

// ownedTransport closes a listener's own quic-go Transport once the
// listener is closed and the last connection it accepted has been closed
// with Conn.CloseWithError.
// Closing it earlier would cut those connections (Transport.Close ends
// every connection on it), while Listener.Close must leave them open, as a
// quic-go listener on its own socket does.
type ownedTransport struct {
	tr      *quicgo.Transport
	created net.PacketConn // the socket Listen opened; nil when the caller owns it

	mu     sync.Mutex
	live   int  // guarded by mu: accepted connections not yet ended
	closed bool // guarded by mu: the listener is closed
	done   bool // guarded by mu: the transport is closed or closing
}

// add counts an accepted connection until its Conn's first CloseWithError
// (remove), which every owner of a Conn calls, also after the peer closed
// it. Counting there rather than with a context.AfterFunc on quic-go's
// connection context spares every connection the AfterFunc's context and
// its entry in the parent's children map (D38). It returns false when the
// listener is closed already.
func (o *ownedTransport) add() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	o.live++
	return true
}

// remove ends the count of one connection and closes the transport when it
// was the last one after the listener's close.
func (o *ownedTransport) remove() {
	o.mu.Lock()
	o.live--
	last := o.finishLocked()
	o.mu.Unlock()
	if last {
		_ = o.close()
	}
}

// closeListener marks the listener closed and closes the transport when no
// connection is left.
func (o *ownedTransport) closeListener() error {
	o.mu.Lock()
	o.closed = true
	last := o.finishLocked()
	o.mu.Unlock()
	if last {
		return o.close()
	}
	return nil
}

// finishLocked reports whether the transport should close now, and marks
// it so that only one caller closes it.
func (o *ownedTransport) finishLocked() bool {
	if o.done || !o.closed || o.live > 0 {
		return false
	}
	o.done = true
	return true
}

func (o *ownedTransport) close() error {
	err := o.tr.Close()
	if o.created != nil {
		if cerr := o.created.Close(); err == nil {
			err = cerr
		}
	}
	return err
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
		// With 0-RTT the handshake may still be running (early.go).
		check := tlsconf.CheckState
		if l.cfg.Allow0RTT {
			check = checkEarlyState
		}
		if err := check(qc.ConnectionState().TLS); err != nil {
			_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.TlsRequired), err.Error())
			continue
		}
		if l.own != nil && !l.own.add() {
			_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.GoingAway), "listener closed")
			return nil, fmt.Errorf("quic: accept: %w", transport.ErrClosed)
		}
		c := newConn(qc, &l.cfg)
		c.own = l.own
		return c, nil
	}
}

// Addr returns the local UDP address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops accepting. Handshakes in progress are refused; established
// connections stay open, and the socket Listen opened closes once the last
// of them has been closed with Conn.CloseWithError.
func (l *Listener) Close() error {
	err := l.ln.Close()
	if l.own != nil {
		if oerr := l.own.closeListener(); err == nil {
			err = oerr
		}
	}
	if err != nil {
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
	tc, err := dialTLS(addr, tlsConf)
	if err != nil {
		return nil, err
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
		if c.Allow0RTT {
			qc, err = own.tr.DialEarly(ctx, udpAddr, tc, c.quicConfig())
		} else {
			qc, err = own.tr.Dial(ctx, udpAddr, tc, c.quicConfig())
		}
		if err != nil {
			own.close()
		}
	case c.PacketConn != nil:
		udpAddr, rerr := net.ResolveUDPAddr("udp", addr)
		if rerr != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, rerr)
		}
		if c.Allow0RTT {
			qc, err = quicgo.DialEarly(ctx, c.PacketConn, udpAddr, tc, c.quicConfig())
		} else {
			qc, err = quicgo.Dial(ctx, c.PacketConn, udpAddr, tc, c.quicConfig())
		}
	case c.Allow0RTT:
		qc, err = quicgo.DialAddrEarly(ctx, addr, tc, c.quicConfig())
	default:
		qc, err = quicgo.DialAddr(ctx, addr, tc, c.quicConfig())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, context.Cause(ctx))
		}
		return nil, fmt.Errorf("quic: dial %s: %w", addr, dialError(err))
	}
	check := tlsconf.CheckState
	if c.Allow0RTT {
		// A client sending 0-RTT data knows nothing of the handshake's
		// outcome yet; the check runs when it completes (early.go).
		check = checkLater(qc)
	}
	if err := check(qc.ConnectionState().TLS); err != nil {
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

// dialTLS returns the TLS configuration a dial to addr uses: tlsConf
// copied and raised by tlsconf.Enforce, with an empty ServerName set to
// addr's host.
func dialTLS(addr string, tlsConf *tls.Config) (*tls.Config, error) {
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
	return tc, nil
}
