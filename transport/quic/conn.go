package quic

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// Conn is one QUIC connection. It implements transport.Conn.
//
// Goroutines: a Conn with datagrams runs one goroutine that feeds queued
// datagrams to quic-go while some are queued; it stops when the
// connection ends, and CloseWithError waits for it. Callers must call CloseWithError on every
// Conn, also after the peer closed it.
type Conn struct {
	qc *quicgo.Conn

	// ctx is cancelled, with the mapped *jsperr.Error as cause, once qc's
	// context ends; quic-go's own context carries quic-go error types.
	// It is made by the first Context call: a server session that never
	// asks (an idle one) holds no child context, no registration on qc's
	// context and no Done channel (D34).
	ctxMu sync.Mutex
	ctx   context.Context // guarded by ctxMu

	maxDatagram int // 0 when datagrams are off on either side
	dgramLimit  int // Config.DatagramSendQueue
	// dgrams is made by the first SendDatagram, under migrateMu unless
	// closing: a connection that never sends a datagram (an idle server
	// session) holds no queue (D38). Its goroutine runs while datagrams
	// are queued.
	dgrams  atomic.Pointer[datagramQueue]
	closing bool // guarded by migrateMu; set by the first CloseWithError
	// own is the accepting listener's own quic-go Transport, which counts
	// this Conn until its first CloseWithError; nil otherwise.
	own *ownedTransport

	// migrateSerial serialises Migrate calls; it is taken before
	// migrateMu and held while probing.
	migrateSerial sync.Mutex
	// migrateMu guards the socket state below, briefly.
	migrateMu  sync.Mutex
	migratable bool // Config.Migratable on a dialed Conn
	// remote is the server's address on a migratable Conn: quic-go
	// replaces the object it reads it from, without a lock, when the path
	// switches, and a migrating client never changes the server's address.
	remote  net.Addr
	closed  bool      // guarded by migrateMu; set by CloseWithError
	current *socket   // guarded by migrateMu; the socket in use, nil for quic-go's own
	sockets []*socket // guarded by migrateMu; every socket the Conn owns
}

var _ transport.Conn = (*Conn)(nil)

func newConn(qc *quicgo.Conn, cfg *Config) *Conn {
	c := &Conn{qc: qc}
	st := qc.ConnectionState()
	if st.SupportsDatagrams.Local && st.SupportsDatagrams.Remote {
		c.maxDatagram = int(cfg.MaxDatagramSize)
		c.dgramLimit = cfg.DatagramSendQueue
	}
	return c
}

// OpenStream opens a bidirectional stream with a QoS class. It blocks while
// the peer's stream limit is reached, until ctx ends. The class is kept
// locally (see Stream); nothing is sent until the first Write.
func (c *Conn) OpenStream(ctx context.Context, class protocol.Class) (transport.Stream, error) {
	if class >= protocol.NumClasses {
		return nil, fmt.Errorf("quic: open stream: unknown QoS class %d", class)
	}
	qs, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: open stream: %w", c.opError(ctx, err))
	}
	return newStream(qs, class), nil
}

// AcceptStream waits for the next stream the peer opened. Its class is
// protocol.ClassChat until set with Stream.SetClass.
func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	qs, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: accept stream: %w", c.opError(ctx, err))
	}
	return newStream(qs, protocol.ClassChat), nil
}

// opError maps err from an operation bounded by ctx: the context's own end
// stays a context error; everything else is the connection's error.
func (c *Conn) opError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return connError(err)
}

// SendDatagram queues one RFC 9221 datagram and returns without waiting for
// the network. It fails with DATAGRAM_TOO_LARGE when len(b) exceeds
// MaxDatagramSize, with ErrDatagramsDisabled when either side turned
// datagrams off, and with the connection's error once it is closed.
//
// Queued datagrams wait for congestion control; when Config.DatagramSendQueue
// of them are waiting, the oldest is dropped (Stats.DatagramsDropped). The
// class is not sent: on QUIC the session's DATAGRAM frame carries it (JSP
// §5.13).
func (c *Conn) SendDatagram(b []byte, _ protocol.Class) error {
	if c.maxDatagram == 0 {
		return fmt.Errorf("quic: send datagram: %w", ErrDatagramsDisabled)
	}
	if len(b) > c.maxDatagram {
		return jsperr.Newf(jsperr.DatagramTooLarge, "quic: datagram of %d bytes over the %d-byte limit", len(b), c.maxDatagram)
	}
	if cause := context.Cause(c.qc.Context()); cause != nil {
		return fmt.Errorf("quic: send datagram: %w", connError(cause))
	}
	q := c.dgrams.Load()
	if q == nil {
		if q = c.datagramQueue(); q == nil {
			return fmt.Errorf("quic: send datagram: %w", connError(context.Cause(c.qc.Context())))
		}
	}
	q.push(b)
	return nil
}

// datagramQueue returns the send queue, making it unless CloseWithError
// has begun (then nil).
func (c *Conn) datagramQueue() *datagramQueue {
	c.migrateMu.Lock()
	defer c.migrateMu.Unlock()
	if q := c.dgrams.Load(); q != nil || c.closing {
		return q
	}
	q := newDatagramQueue(c.dgramLimit, c.qc.SendDatagram)
	c.dgrams.Store(q)
	return q
}

// ReceiveDatagram waits for the next datagram from the peer. quic-go keeps
// at most 128 received datagrams that nobody has read yet and drops newer
// ones, so a receiver must keep reading.
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	if c.maxDatagram == 0 {
		return nil, fmt.Errorf("quic: receive datagram: %w", ErrDatagramsDisabled)
	}
	b, err := c.qc.ReceiveDatagram(ctx)
	if err != nil {
		return nil, fmt.Errorf("quic: receive datagram: %w", c.opError(ctx, err))
	}
	return b, nil
}

// MaxDatagramSize returns the largest payload SendDatagram accepts, or 0
// when datagrams are off on either side. It is Config.MaxDatagramSize, which
// fits every path QUIC runs on, so it never changes during a connection.
func (c *Conn) MaxDatagramSize() int { return c.maxDatagram }

// CloseWithError closes the connection with a JSP code and reason, sent to
// the peer as a QUIC application close, and waits until the connection's
// goroutines have stopped; then it closes the sockets the Conn owns. Closing
// again has no effect.
func (c *Conn) CloseWithError(code jsperr.Code, reason string) error {
	if err := c.qc.CloseWithError(quicgo.ApplicationErrorCode(code), reason); err != nil {
		return fmt.Errorf("quic: close: %w", err)
	}
	c.migrateMu.Lock()
	first := !c.closing
	c.closing = true
	q := c.dgrams.Load()
	c.migrateMu.Unlock()
	if q != nil {
		q.close()
	}
	c.closeSockets()
	if first && c.own != nil {
		c.own.remove()
	}
	// The AfterFunc has fired or is about to (qc's context is done once
	// CloseWithError returns); wait for the mapped cause to be set so the
	// caller observes a consistent Context.
	<-c.Context().Done()
	return nil
}

// Context is cancelled when the connection closes. context.Cause returns a
// *jsperr.Error: the peer's code and reason with Remote set when the peer
// closed it, the local code when CloseWithError did, IDLE_TIMEOUT when the
// peer went silent.
func (c *Conn) Context() context.Context {
	c.ctxMu.Lock()
	defer c.ctxMu.Unlock()
	if c.ctx != nil {
		return c.ctx
	}
	qctx := c.qc.Context()
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(qctx))
	c.ctx = ctx
	if qctx.Err() != nil {
		// Ended already: the cause is set before the context is handed
		// out.
		cancel(connError(context.Cause(qctx)))
		return ctx
	}
	// A child of qc.Context() would inherit quic-go's cause; a separate
	// context cancelled from an AfterFunc gets the mapped one. The
	// AfterFunc runs once, when the connection ends, so it is not stopped.
	context.AfterFunc(qctx, func() {
		cancel(connError(context.Cause(qctx)))
	})
	return ctx
}

// Value returns the value for key of the connection's context (quic-go's,
// which carries what the listener's Config.ConnContext added) without
// making the mapped context Context returns.
func (c *Conn) Value(key any) any { return c.qc.Context().Value(key) }

// LocalAddr returns the local UDP address; after Migrate, the new socket's.
func (c *Conn) LocalAddr() net.Addr {
	// quic-go updates its own copy on its run loop without a lock when
	// the path switches, so a migratable Conn answers from its sockets.
	c.migrateMu.Lock()
	defer c.migrateMu.Unlock()
	if c.current != nil {
		return c.current.pc.LocalAddr()
	}
	return c.qc.LocalAddr()
}

// RemoteAddr returns the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.qc.RemoteAddr()
}

// TLS returns the negotiated TLS 1.3 state.
func (c *Conn) TLS() tls.ConnectionState { return c.qc.ConnectionState().TLS }

// Kind returns transport.KindQUIC.
func (c *Conn) Kind() transport.Kind { return transport.KindQUIC }

// GSO reports whether quic-go sends this connection's packets with generic
// segmentation offload. quic-go turns GSO on by itself on Linux when the
// socket supports UDP_SEGMENT, and off for good after the first send that
// fails with it; the environment variable QUIC_GO_DISABLE_GSO=true turns it
// off for the whole process.
func (c *Conn) GSO() bool { return c.qc.ConnectionState().GSO }

// Stats is a snapshot of a connection's counters.
type Stats struct {
	// DatagramsSent counts datagrams handed to QUIC.
	DatagramsSent uint64
	// DatagramsDropped counts datagrams dropped before QUIC took them:
	// evicted from a full send queue, or refused by QUIC after queueing
	// (connection closed, or a peer that allows smaller DATAGRAM frames).
	DatagramsDropped uint64
	// DatagramsQueued is the number waiting now.
	DatagramsQueued int
	// SmoothedRTT and MinRTT are QUIC's RTT estimates (RFC 9002 §5).
	SmoothedRTT, MinRTT time.Duration
	// BytesSent and BytesReceived count QUIC packet bytes, UDP headers
	// excluded; PacketsLost counts packets declared lost.
	BytesSent, BytesReceived, PacketsLost uint64
}

// Stats returns the connection's counters.
func (c *Conn) Stats() Stats {
	qs := c.qc.ConnectionStats()
	s := Stats{
		SmoothedRTT:   qs.SmoothedRTT,
		MinRTT:        qs.MinRTT,
		BytesSent:     qs.BytesSent,
		BytesReceived: qs.BytesReceived,
		PacketsLost:   qs.PacketsLost,
	}
	if q := c.dgrams.Load(); q != nil {
		s.DatagramsSent = q.sent.Load()
		s.DatagramsDropped = q.dropped.Load()
		s.DatagramsQueued = q.len()
	}
	return s
}
