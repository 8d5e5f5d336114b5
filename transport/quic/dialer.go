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

// Dialer dials connections that share one UDP socket and one quic-go
// Transport: QUIC tells the connections on a socket apart by their
// connection ids, so a client holding many connections (a load generator,
// a service dialing many peers) needs one socket and one pair of the
// Transport's goroutines instead of one per connection, as Dial starts.
// It is safe for concurrent use.
type Dialer struct {
	cfg Config // resolved
	tr  *quicgo.Transport
}

// ErrMigratableDialer is returned by NewDialer for a Config with
// Migratable set: a migratable connection needs a socket of its own.
var ErrMigratableDialer = errors.New("quic: a Dialer's connections share a socket and cannot migrate")

// NewDialer returns a Dialer whose connections use pc and cfg;
// cfg.PacketConn is ignored. The caller keeps pc and closes it after the
// Dialer.
func NewDialer(pc net.PacketConn, cfg Config) (*Dialer, error) {
	if cfg.Migratable {
		return nil, ErrMigratableDialer
	}
	cfg.PacketConn = nil
	c, err := resolve(cfg)
	if err != nil {
		return nil, err
	}
	return &Dialer{cfg: c, tr: &quicgo.Transport{Conn: pc}}, nil
}

// Dial connects to the QUIC server at addr over the Dialer's socket, as
// the package's Dial does.
func (d *Dialer) Dial(ctx context.Context, addr string, tlsConf *tls.Config) (transport.Conn, error) {
	tc, err := dialTLS(addr, tlsConf)
	if err != nil {
		return nil, err
	}
	udpAddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("quic: dial %s: %w", addr, err)
	}
	var qc *quicgo.Conn
	if d.cfg.Allow0RTT {
		qc, err = d.tr.DialEarly(ctx, udpAddr, tc, d.cfg.quicConfig())
	} else {
		qc, err = d.tr.Dial(ctx, udpAddr, tc, d.cfg.quicConfig())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("quic: dial %s: %w", addr, context.Cause(ctx))
		}
		return nil, fmt.Errorf("quic: dial %s: %w", addr, dialError(err))
	}
	check := tlsconf.CheckState
	if d.cfg.Allow0RTT {
		check = checkLater(qc)
	}
	if err := check(qc.ConnectionState().TLS); err != nil {
		_ = qc.CloseWithError(quicgo.ApplicationErrorCode(jsperr.TlsRequired), err.Error())
		return nil, fmt.Errorf("quic: dial %s: %w", addr, jsperr.Wrap(jsperr.TlsRequired, err))
	}
	return newConn(qc, &d.cfg), nil
}

// Close closes the Dialer's quic-go Transport, which ends every
// connection dialed through it; close those with CloseWithError first.
// The socket stays open.
func (d *Dialer) Close() error {
	if err := d.tr.Close(); err != nil {
		return fmt.Errorf("quic: close dialer: %w", err)
	}
	return nil
}
