package quic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Defaults for a zero [Config] field.
const (
	// DefaultKeepAlivePeriod is how often an otherwise silent connection
	// sends a PING so that NATs and the peer's idle timer see traffic.
	DefaultKeepAlivePeriod = 15 * time.Second
	// DefaultMaxIdleTimeout closes a connection after this long without
	// anything from the peer. The effective value is the smaller of both
	// sides' settings (RFC 9000 §10.1).
	DefaultMaxIdleTimeout = 45 * time.Second
	// DefaultHandshakeIdleTimeout aborts a handshake when the peer sends
	// nothing for this long; a handshake also fails after twice this time
	// in total.
	DefaultHandshakeIdleTimeout = 10 * time.Second
	// DefaultInitialStreamReceiveWindow is the starting per-stream
	// flow-control window; it grows with use up to the maximum.
	DefaultInitialStreamReceiveWindow protocol.ByteCount = 512 << 10
	// DefaultMaxStreamReceiveWindow caps the per-stream window.
	DefaultMaxStreamReceiveWindow protocol.ByteCount = 6 << 20
	// DefaultInitialConnectionReceiveWindow is the starting
	// connection-level flow-control window.
	DefaultInitialConnectionReceiveWindow protocol.ByteCount = 768 << 10
	// DefaultMaxConnectionReceiveWindow caps the connection-level window and
	// so the memory one peer can make us buffer.
	DefaultMaxConnectionReceiveWindow protocol.ByteCount = 15 << 20
	// DefaultDatagramSendQueue is how many outgoing datagrams wait for the
	// QUIC stack before the oldest is dropped.
	DefaultDatagramSendQueue = 32
)

// MaxDatagramSizeLimit is the largest MaxDatagramSize a Config accepts: the
// DATAGRAM payload that fits in a minimum-size (1,200-byte) QUIC packet with
// a 20-byte connection ID, so that it never depends on path MTU discovery
// (RFC 9221 §5; JSP §5.13).
const MaxDatagramSizeLimit = 1160

// Config configures a QUIC listener or dialer. The zero value is ready to
// use; every zero field means the default named in its comment.
type Config struct {
	// KeepAlivePeriod is how often to send a PING on an otherwise silent
	// connection. Zero means DefaultKeepAlivePeriod (15 s); negative
	// disables keep-alives. QUIC sends them at least every half
	// MaxIdleTimeout.
	KeepAlivePeriod time.Duration
	// MaxIdleTimeout closes a connection that received nothing for this
	// long. Zero means DefaultMaxIdleTimeout (45 s).
	MaxIdleTimeout time.Duration
	// HandshakeIdleTimeout aborts a silent handshake. Zero means
	// DefaultHandshakeIdleTimeout (10 s).
	HandshakeIdleTimeout time.Duration

	// DisableDatagrams turns off RFC 9221 datagrams, which are on by
	// default. With datagrams off on either side, MaxDatagramSize is 0 and
	// SendDatagram fails with ErrDatagramsDisabled.
	DisableDatagrams bool
	// MaxDatagramSize is the largest payload SendDatagram accepts. Zero
	// means protocol.DefaultMaxDatagramPayload (1,100 bytes); at most
	// MaxDatagramSizeLimit.
	MaxDatagramSize protocol.ByteCount
	// DatagramSendQueue is how many datagrams may wait for the QUIC stack.
	// When it is full, the oldest queued datagram is dropped and counted:
	// a stale media packet is worth less than a fresh one. Zero means
	// DefaultDatagramSendQueue (32).
	DatagramSendQueue int

	// MaxIncomingStreams caps concurrent bidirectional streams the peer
	// may open (JSP §9). Zero means protocol.DefaultMaxStreams (256).
	// Unidirectional streams are never allowed: JSP does not use them.
	MaxIncomingStreams int

	// InitialStreamReceiveWindow is the starting per-stream flow-control
	// window. Zero means DefaultInitialStreamReceiveWindow (512 KiB).
	InitialStreamReceiveWindow protocol.ByteCount
	// MaxStreamReceiveWindow caps the auto-tuned per-stream window. Zero
	// means DefaultMaxStreamReceiveWindow (6 MiB).
	MaxStreamReceiveWindow protocol.ByteCount
	// InitialConnectionReceiveWindow is the starting connection window.
	// Zero means DefaultInitialConnectionReceiveWindow (768 KiB).
	InitialConnectionReceiveWindow protocol.ByteCount
	// MaxConnectionReceiveWindow caps the auto-tuned connection window.
	// Zero means DefaultMaxConnectionReceiveWindow (15 MiB).
	MaxConnectionReceiveWindow protocol.ByteCount

	// PacketConn, when set, is the socket to use instead of a new UDP
	// socket: Listen ignores its addr argument and serves on it, Dial
	// sends from it. The caller keeps ownership and closes it after the
	// listener and its connections (or the dialed connection) are closed.
	// Only a *net.UDPConn (or another conn with ReadMsgUDP/WriteMsgUDP)
	// gets ECN, batched reads and GSO.
	PacketConn net.PacketConn

	// VerifySourceAddress, on a listener, is asked about each connection
	// attempt whose source address is not validated yet; true makes the
	// server answer with a stateless Retry, so the client must prove it
	// owns its address before the server keeps any state for it (RFC 9000
	// §8.1.2). It costs the client one round trip. The address is
	// unvalidated and may be spoofed. Nil never asks for Retry. Ignored by
	// Dial.
	VerifySourceAddress func(net.Addr) bool
	// ConnContext, on a listener, is called for each new connection attempt
	// before its handshake. A non-nil error refuses the attempt (the client
	// sees a CONNECTION_REFUSED transport error). The returned context,
	// which must derive from ctx, is the parent of the accepted Conn's
	// Context, so values stored in it reach Accept's caller; ctx ends when
	// the connection closes or its handshake fails. Nil admits everyone.
	// Ignored by Dial.
	ConnContext func(ctx context.Context, info ClientInfo) (context.Context, error)
	// Migratable makes a dialed connection able to move to a new socket
	// with Conn.Migrate. Dial then runs the connection on a quic-go
	// transport of its own with non-empty connection IDs (quic-go's
	// one-shot dialing uses empty ones, with which a path cannot change),
	// over its own UDP socket or PacketConn. Sockets the Conn owns (its
	// own and every one handed to Migrate) are closed as soon as the
	// connection has moved off them. The price is the plain socket path
	// on every socket of the connection, PacketConn included: no GSO, ECN
	// or batched reads, because quic-go would otherwise read a retired
	// socket's descriptor directly and end the connection when it closes,
	// and cannot switch between a socket with ECN and one without. Default false: Migrate fails with
	// ErrNotMigratable. Listen ignores it.
	Migratable bool
	// Allow0RTT turns on 0-RTT (early.go). On a listener it accepts 0-RTT
	// data from resuming clients, and Accept returns each connection
	// before its handshake completes (Conn.HandshakeComplete says when);
	// the caller must not act on a non-idempotent request read before
	// then, since 0-RTT data can be replayed (JSP §7.1). On Dial it sends
	// the first flight as 0-RTT data when tls.Config.ClientSessionCache
	// holds a ticket for the server, and returns before the handshake
	// completes. Default false: no 0-RTT, Accept and Dial return completed
	// handshakes.
	Allow0RTT bool
}

// ClientInfo describes a connection attempt to ConnContext.
type ClientInfo struct {
	// RemoteAddr is the client's address. Unless AddrVerified, it is not
	// validated and may be spoofed.
	RemoteAddr net.Addr
	// AddrVerified reports whether the client proved its address with a
	// token from a Retry (or an earlier connection's NEW_TOKEN).
	AddrVerified bool
}

// hooked reports whether the listener needs its own quic-go Transport for
// the hooks.
func (c *Config) hooked() bool { return c.VerifySourceAddress != nil || c.ConnContext != nil }

// validate rejects values that have no meaning. It runs on the caller's
// values, before defaults are filled in, so that a negative value is never
// mistaken for "use the default".
func (c *Config) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"MaxIdleTimeout", c.MaxIdleTimeout},
		{"HandshakeIdleTimeout", c.HandshakeIdleTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	if c.MaxDatagramSize < 0 || c.MaxDatagramSize > MaxDatagramSizeLimit {
		errs = append(errs, fmt.Errorf("MaxDatagramSize %d outside 0..%d", c.MaxDatagramSize, MaxDatagramSizeLimit))
	}
	if c.DatagramSendQueue < 0 {
		errs = append(errs, fmt.Errorf("DatagramSendQueue %d is negative", c.DatagramSendQueue))
	}
	if c.MaxIncomingStreams < 0 {
		errs = append(errs, fmt.Errorf("MaxIncomingStreams %d is negative", c.MaxIncomingStreams))
	}
	for _, w := range []struct {
		name string
		v    protocol.ByteCount
	}{
		{"InitialStreamReceiveWindow", c.InitialStreamReceiveWindow},
		{"MaxStreamReceiveWindow", c.MaxStreamReceiveWindow},
		{"InitialConnectionReceiveWindow", c.InitialConnectionReceiveWindow},
		{"MaxConnectionReceiveWindow", c.MaxConnectionReceiveWindow},
	} {
		if w.v < 0 {
			errs = append(errs, fmt.Errorf("%s %d is negative", w.name, w.v))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("quic: invalid config: %w", err)
	}
	return nil
}

// setDefaults fills zero fields with their defaults and checks the
// relations between fields that only make sense once both are known.
func (c *Config) setDefaults() error {
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = DefaultKeepAlivePeriod
	}
	if c.MaxIdleTimeout == 0 {
		c.MaxIdleTimeout = DefaultMaxIdleTimeout
	}
	if c.HandshakeIdleTimeout == 0 {
		c.HandshakeIdleTimeout = DefaultHandshakeIdleTimeout
	}
	if c.MaxDatagramSize == 0 {
		c.MaxDatagramSize = protocol.DefaultMaxDatagramPayload
	}
	if c.DatagramSendQueue == 0 {
		c.DatagramSendQueue = DefaultDatagramSendQueue
	}
	if c.MaxIncomingStreams == 0 {
		c.MaxIncomingStreams = protocol.DefaultMaxStreams
	}
	if c.InitialStreamReceiveWindow == 0 {
		c.InitialStreamReceiveWindow = DefaultInitialStreamReceiveWindow
	}
	if c.MaxStreamReceiveWindow == 0 {
		c.MaxStreamReceiveWindow = max(DefaultMaxStreamReceiveWindow, c.InitialStreamReceiveWindow)
	}
	if c.InitialConnectionReceiveWindow == 0 {
		c.InitialConnectionReceiveWindow = DefaultInitialConnectionReceiveWindow
	}
	if c.MaxConnectionReceiveWindow == 0 {
		c.MaxConnectionReceiveWindow = max(DefaultMaxConnectionReceiveWindow, c.InitialConnectionReceiveWindow)
	}
	if c.InitialStreamReceiveWindow > c.MaxStreamReceiveWindow {
		return fmt.Errorf("quic: invalid config: InitialStreamReceiveWindow %d above MaxStreamReceiveWindow %d",
			c.InitialStreamReceiveWindow, c.MaxStreamReceiveWindow)
	}
	if c.InitialConnectionReceiveWindow > c.MaxConnectionReceiveWindow {
		return fmt.Errorf("quic: invalid config: InitialConnectionReceiveWindow %d above MaxConnectionReceiveWindow %d",
			c.InitialConnectionReceiveWindow, c.MaxConnectionReceiveWindow)
	}
	return nil
}

// resolve validates cfg and returns it with defaults filled in.
func resolve(cfg Config) (Config, error) {
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	if err := cfg.setDefaults(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// quicConfig translates a resolved Config to quic-go's.
func (c *Config) quicConfig() *quicgo.Config {
	keepAlive := c.KeepAlivePeriod
	if keepAlive < 0 {
		keepAlive = 0 // quic-go: zero disables
	}
	return &quicgo.Config{
		HandshakeIdleTimeout:           c.HandshakeIdleTimeout,
		MaxIdleTimeout:                 c.MaxIdleTimeout,
		KeepAlivePeriod:                keepAlive,
		InitialStreamReceiveWindow:     uint64(c.InitialStreamReceiveWindow),
		MaxStreamReceiveWindow:         uint64(c.MaxStreamReceiveWindow),
		InitialConnectionReceiveWindow: uint64(c.InitialConnectionReceiveWindow),
		MaxConnectionReceiveWindow:     uint64(c.MaxConnectionReceiveWindow),
		MaxIncomingStreams:             int64(c.MaxIncomingStreams),
		MaxIncomingUniStreams:          -1, // quic-go: negative allows none
		EnableDatagrams:                !c.DisableDatagrams,
		// 0-RTT data can be replayed; JSP allows it only for idempotent
		// requests (JSP §7.1), which this layer cannot tell apart: it
		// only reports when the handshake completes (early.go).
		Allow0RTT: c.Allow0RTT,
	}
}
