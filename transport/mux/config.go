package mux

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/transport"
)

// InitialConnWindow is the connection-level flow-control window both ends
// assume when a link starts (JSP §7.2), before any WINDOW_UPDATE on stream
// 0. It is four stream windows, so that a few streams whose readers stall
// cannot hold the whole connection's credit.
const InitialConnWindow = 4 * protocol.DefaultStreamWindow

// Defaults for the Config fields that have no protocol-wide constant.
const (
	DefaultDatagramMaxAge          = 100 * time.Millisecond
	DefaultDatagramQueueLength     = 256
	DefaultDatagramRecvQueueLength = 256
	DefaultMaxWriteBatch           = 64 << 10
	DefaultWriteTimeout            = 10 * time.Second
	DefaultCloseTimeout            = 2 * time.Second
)

// Config tunes a link. The zero value is valid: every zero field means the
// default documented on it.
type Config struct {
	// StreamWindow is the receive window granted to each stream. Zero means
	// protocol.DefaultStreamWindow, which is also the initial window both
	// ends assume (JSP §7.2); a larger value is granted with WINDOW_UPDATE
	// as the application reads. It cannot be smaller than the default.
	StreamWindow protocol.ByteCount
	// ConnWindow is the receive window of the whole link, the bound on the
	// bytes buffered for all streams together. Zero means
	// InitialConnWindow; it cannot be smaller.
	ConnWindow protocol.ByteCount
	// MaxStreams caps the concurrent streams the peer may open; one more
	// closes the link with STREAM_LIMIT. Zero means
	// protocol.DefaultMaxStreams.
	MaxStreams int
	// PeerMaxStreams is the peer's MaxStreams: OpenStream waits while that
	// many locally opened streams are still open. Zero means
	// protocol.DefaultMaxStreams.
	PeerMaxStreams int
	// MaxChunk caps the data in one STREAM frame so that streams
	// interleave. Zero means protocol.DefaultMaxLinkChunk.
	MaxChunk protocol.ByteCount
	// MaxFrameSize caps the payload of a received link frame; a larger one
	// closes the link with FRAME_TOO_LARGE. Zero means
	// protocol.DefaultMaxFrameSize.
	MaxFrameSize protocol.ByteCount
	// MaxDatagramSize caps a datagram payload, sent or received. Zero means
	// protocol.DefaultMaxDatagramPayload, as on QUIC, so the session layer
	// fragments the same way on every transport.
	MaxDatagramSize int
	// DatagramMaxAge is how long a datagram may wait in the send queue; an
	// older one is dropped, never sent. Zero means DefaultDatagramMaxAge.
	DatagramMaxAge time.Duration
	// DatagramQueueLength caps the datagrams waiting to be sent. Zero means
	// DefaultDatagramQueueLength.
	DatagramQueueLength int
	// DatagramRecvQueueLength caps received datagrams not yet taken by
	// ReceiveDatagram; when full, the oldest is dropped. Zero means
	// DefaultDatagramRecvQueueLength.
	DatagramRecvQueueLength int
	// SendQueueLength caps the stream-data and datagram frames queued per
	// class; a writer waits while its class is full. Zero means
	// protocol.DefaultSendQueueLength.
	SendQueueLength int
	// MaxWriteBatch is the size at which the writer stops coalescing queued
	// frames into one write. Zero means DefaultMaxWriteBatch.
	MaxWriteBatch int
	// WriteTimeout bounds one write to the underlying stream; when a peer
	// reads nothing for that long the link closes with SLOW_CONSUMER. Zero
	// means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// CloseTimeout bounds sending LINK_CLOSE and then waiting for the peer
	// to close its side. Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// QoS sets the scheduler's class weights and quantum (JSP §11.3). Its
	// QueueLength is ignored: the link sizes its queues from
	// SendQueueLength and the stream limits.
	QoS qos.Config
	// Kind names the transport in Conn.Kind. Zero means transport.KindTCP.
	Kind transport.Kind
	// LocalAddr and RemoteAddr are reported by the Conn. Nil means the
	// underlying stream's, if it has LocalAddr/RemoteAddr methods.
	LocalAddr, RemoteAddr net.Addr
	// TLS is the link's TLS state. Nil means the underlying stream's, if it
	// has a ConnectionState method (as *tls.Conn does).
	TLS *tls.ConnectionState
	// Now is the clock for datagram ages. Nil means time.Now.
	Now func() time.Time
	// Logger receives link-level events at debug level. Nil discards them.
	Logger *slog.Logger
}

// Validate reports a configuration that no default can fix.
func (c *Config) Validate() error {
	switch {
	case c.StreamWindow != 0 && c.StreamWindow < protocol.DefaultStreamWindow:
		return fmt.Errorf("mux: StreamWindow %d below the initial window %d", c.StreamWindow, protocol.DefaultStreamWindow)
	case c.ConnWindow != 0 && c.ConnWindow < InitialConnWindow:
		return fmt.Errorf("mux: ConnWindow %d below the initial window %d", c.ConnWindow, InitialConnWindow)
	case c.MaxStreams < 0 || c.PeerMaxStreams < 0:
		return fmt.Errorf("mux: negative stream limit")
	case c.MaxChunk < 0 || c.MaxFrameSize < 0 || c.MaxDatagramSize < 0:
		return fmt.Errorf("mux: negative size limit")
	case c.DatagramQueueLength < 0 || c.DatagramRecvQueueLength < 0 || c.SendQueueLength < 0 || c.MaxWriteBatch < 0:
		return fmt.Errorf("mux: negative queue length")
	case c.DatagramMaxAge < 0 || c.WriteTimeout < 0 || c.CloseTimeout < 0:
		return fmt.Errorf("mux: negative duration")
	}
	if err := c.QoS.Validate(); err != nil {
		return fmt.Errorf("mux: %w", err)
	}
	d := *c
	d.setDefaults()
	if d.MaxChunk > d.MaxFrameSize || protocol.ByteCount(d.MaxDatagramSize) > d.MaxFrameSize {
		return fmt.Errorf("mux: MaxChunk %d and MaxDatagramSize %d must fit MaxFrameSize %d", d.MaxChunk, d.MaxDatagramSize, d.MaxFrameSize)
	}
	return nil
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defB := func(v *protocol.ByteCount, d protocol.ByteCount) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defB(&c.StreamWindow, protocol.DefaultStreamWindow)
	defB(&c.ConnWindow, InitialConnWindow)
	def(&c.MaxStreams, protocol.DefaultMaxStreams)
	def(&c.PeerMaxStreams, protocol.DefaultMaxStreams)
	defB(&c.MaxChunk, protocol.DefaultMaxLinkChunk)
	defB(&c.MaxFrameSize, protocol.DefaultMaxFrameSize)
	def(&c.MaxDatagramSize, int(protocol.DefaultMaxDatagramPayload))
	defD(&c.DatagramMaxAge, DefaultDatagramMaxAge)
	def(&c.DatagramQueueLength, DefaultDatagramQueueLength)
	def(&c.DatagramRecvQueueLength, DefaultDatagramRecvQueueLength)
	def(&c.SendQueueLength, protocol.DefaultSendQueueLength)
	def(&c.MaxWriteBatch, DefaultMaxWriteBatch)
	defD(&c.WriteTimeout, DefaultWriteTimeout)
	defD(&c.CloseTimeout, DefaultCloseTimeout)
	if c.Kind == "" {
		c.Kind = transport.KindTCP
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}
