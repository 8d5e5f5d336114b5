package client

import (
	"context"
	"crypto/tls"
	"fmt"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/quic"
)

// 0-RTT (JSP §7.1). With Options.QUIC.Allow0RTT a Client resuming a QUIC
// connection to a server it has talked to sends HELLO in 0-RTT data, so
// the session is up one round trip sooner. The server runs only
// idempotent requests from 0-RTT data before the handshake completes and
// holds back the rest, so nothing here has to change what is sent.
//
// The session tickets live in Options.TLS.ClientSessionCache; without one
// the Client makes its own (DefaultSessionCacheSize tickets), which serves
// its reconnects. An application that wants 0-RTT on its first connection
// after a restart supplies a cache that outlives the Client.
//
// Credentials are made after the handshake completes: a device proof signs
// the connection's TLS exporter, which exists only then, and a token sent
// in 0-RTT could be replayed by anyone who captured the flight.

// DefaultSessionCacheSize is the number of TLS session tickets a Client
// keeps when Options.QUIC.Allow0RTT is set without a ClientSessionCache.
const DefaultSessionCacheSize = 16

// setEarlyDefaults gives a 0-RTT client a session ticket cache.
func (o *Options) setEarlyDefaults() {
	if !o.QUIC.Allow0RTT {
		return
	}
	if o.TLS != nil && o.TLS.ClientSessionCache != nil {
		return
	}
	var c *tls.Config
	if o.TLS != nil {
		c = o.TLS.Clone()
	} else {
		c = &tls.Config{}
	}
	c.ClientSessionCache = tls.NewLRUClientSessionCache(DefaultSessionCacheSize)
	o.TLS = c
}

// awaitHandshake waits until conn's TLS handshake has completed; it
// returns at once for connections that do not send early data.
func awaitHandshake(ctx context.Context, conn transport.Conn) error {
	ec, ok := conn.(quic.EarlyConn)
	if !ok {
		return nil
	}
	select {
	case <-ec.HandshakeComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("client: waiting for the TLS handshake: %w", context.Cause(ctx))
	case <-conn.Context().Done():
		return fmt.Errorf("client: TLS handshake: %w", context.Cause(conn.Context()))
	}
}
