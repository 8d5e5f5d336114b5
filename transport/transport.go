// Package transport defines the connection interface every JSP transport
// implements (JSP §7): reliable bidirectional streams and unreliable
// datagrams over one TLS 1.3-secured connection.
//
// Implementations:
//   - transport/quic: QUIC (RFC 9000) via quic-go, ALPN "jsp/1", RFC 9221
//     datagrams;
//   - transport/tcptls: TLS 1.3 over TCP with JSP link frames (transport/mux);
//   - transport/websocket: WebSocket subprotocol "jsp.1" carrying link frames;
//   - transport/memtransport: in-memory links for fast tests.
//
// Packages here never import session or server code.
package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Kind names a transport binding.
type Kind string

// Transport kinds, also used as URL schemes by the client (jsp+quic://,
// jsp+tcp://, ws:// / wss://).
const (
	KindQUIC      Kind = "quic"
	KindTCP       Kind = "tcp"
	KindWebSocket Kind = "ws"
	KindMem       Kind = "mem"
)

// ErrClosed is returned by operations on a closed connection or listener
// when no more specific error is known.
var ErrClosed = errors.New("transport: closed")

// Stream is one reliable, ordered, bidirectional byte stream.
//
// Close closes the sending side (the peer reads io.EOF after the data);
// CancelWrite abandons it (the peer's Read fails with a STREAM_RESET error);
// CancelRead tells the peer to stop sending.
type Stream interface {
	io.Reader
	io.Writer
	io.Closer
	// ID returns the stream's identifier within its connection.
	ID() protocol.StreamID
	// Class returns the QoS class the stream was opened with.
	Class() protocol.Class
	// CancelWrite abandons the sending side with an error code.
	CancelWrite(code jsperr.Code)
	// CancelRead abandons the receiving side with an error code.
	CancelRead(code jsperr.Code)
	// SetReadDeadline sets the deadline for future Read calls.
	SetReadDeadline(t time.Time) error
	// SetWriteDeadline sets the deadline for future Write calls.
	SetWriteDeadline(t time.Time) error
}

// Conn is one secured connection between a client and a server.
type Conn interface {
	// OpenStream opens a new bidirectional stream with a QoS class. It blocks
	// while the peer's stream limit is reached, until ctx ends.
	OpenStream(ctx context.Context, class protocol.Class) (Stream, error)
	// AcceptStream waits for the next stream opened by the peer.
	AcceptStream(ctx context.Context) (Stream, error)
	// SendDatagram sends one unreliable datagram. It fails with a
	// DATAGRAM_TOO_LARGE error when len(b) > MaxDatagramSize(). A datagram
	// that cannot be sent before it goes stale is dropped, never queued
	// without bound.
	SendDatagram(b []byte, class protocol.Class) error
	// ReceiveDatagram waits for the next datagram from the peer.
	ReceiveDatagram(ctx context.Context) ([]byte, error)
	// MaxDatagramSize is the largest payload SendDatagram accepts.
	MaxDatagramSize() int
	// CloseWithError closes the connection, sending code and reason to the
	// peer where the transport can.
	CloseWithError(code jsperr.Code, reason string) error
	// Context is cancelled when the connection closes; context.Cause returns
	// the reason (a *jsperr.Error when known).
	Context() context.Context
	// LocalAddr returns the local network address.
	LocalAddr() net.Addr
	// RemoteAddr returns the peer's network address.
	RemoteAddr() net.Addr
	// TLS returns the negotiated TLS state.
	TLS() tls.ConnectionState
	// Kind names the transport.
	Kind() Kind
}

// Listener accepts connections of one transport.
type Listener interface {
	// Accept waits for the next connection whose TLS handshake completed.
	Accept(ctx context.Context) (Conn, error)
	// Addr returns the listening address.
	Addr() net.Addr
	// Close stops listening; established connections stay open.
	Close() error
}
