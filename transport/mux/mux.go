// Package mux is JSP's own stream layer over one reliable byte stream (JSP
// §3.4, §7.2): the link that TLS-over-TCP and WebSocket connections carry.
// QUIC provides the same service natively; mux gives the other transports
// streams with flow control, QoS and datagrams that go stale instead of
// queueing forever.
//
// A link is a sequence of link frames, each a JSP frame (package wire):
//
//	STREAM        stream id, flags = class | FIN, payload = data chunk
//	WINDOW_UPDATE stream id (0 = connection), payload = increment (vi)
//	RESET_STREAM  stream id, payload = code (vi): sender abandons the stream
//	STOP_SENDING  stream id, payload = code (vi): receiver wants no more data
//
// (control frames carry flags 0)
//
//	LINK_DATAGRAM stream id 0, flags = class, payload = datagram
//	LINK_CLOSE    stream id 0, payload = code (vi) | reason (UTF-8)
//
// Streams. The client opens odd stream ids (1, 3, 5, ...) and the server
// even ones (2, 4, 6, ...); 0 names the connection. A stream exists for the
// peer from the first frame that carries its id, and opening a higher id
// implicitly opens the lower unused ids of the same side, so that streams
// whose first frames arrive out of order are not mistaken for closed ones.
// A peer stream reaches AcceptStream with its first STREAM or RESET_STREAM
// frame. A stream ends when both directions are done: FIN or RESET_STREAM sent,
// and FIN or RESET_STREAM received. Each end counts the streams the other
// opened and closes the link with STREAM_LIMIT when the count passes
// Config.MaxStreams; the opener waits in OpenStream instead, and frees a
// slot only after its own last frame for the stream has been handed to the
// writer, so that the peer has always retired the old stream before it sees
// the new one.
//
// Flow control. Both ends start each stream with protocol.DefaultStreamWindow
// of credit and the connection with InitialConnWindow; the receiver grants
// more with WINDOW_UPDATE as the application reads. Data past the credit
// closes the link with FLOW_CONTROL_ERROR. Because credit is returned only
// as data is read, a stream whose reader stalls holds at most its own
// window, and the others go on.
//
// Scheduling. One writer goroutine drains a qos.Scheduler (JSP §11.3):
// control frames travel as class system, stream data in its stream's class
// in chunks of at most Config.MaxChunk, datagrams in their class with a
// deadline of Config.DatagramMaxAge. The writer coalesces queued frames into
// one write of up to Config.MaxWriteBatch bytes. A write that takes longer
// than Config.WriteTimeout means the peer stopped reading: the link closes
// with SLOW_CONSUMER.
//
// Closing. CloseWithError, or a protocol violation found by the reader,
// sends LINK_CLOSE with the code, half-closes the byte stream if it can,
// waits up to Config.CloseTimeout for the peer to close its side (so that
// the close code is not lost to a reset), and closes. A received LINK_CLOSE
// ends the link with a *jsperr.Error whose Remote is true; the byte stream
// ending without one ends it with TRANSPORT_CLOSED.
//
// Goroutines: a Conn made by New runs one reader for its whole life; one
// made by NewPolled (a server link over a socket the transport can poll,
// decision D33) reads only while input is there, on a goroutine the
// poller starts, so an idle link holds none. Either way a writer runs only
// while frames are queued (and briefly after), and from the start of the
// close a close goroutine waits for the writer, sends LINK_CLOSE, and ends
// after the reader. The reader never blocks on the application (receive
// buffers are bounded by flow control). Close waits for all of them.
package mux

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/qos"
	"github.com/jetstreamproto/jsp/transport"
)

// Stats are a link's counters.
type Stats struct {
	Writes        uint64 // writes to the byte stream; each carries one or more frames
	FramesWritten uint64
	BytesWritten  uint64
	FramesRead    uint64
	BytesRead     uint64 // frame headers and payloads

	StreamsOpened   uint64 // by this end
	StreamsAccepted uint64 // opened by the peer

	DatagramsSent         uint64
	DatagramsExpired      uint64 // dropped at the sender after DatagramMaxAge
	DatagramsDropped      uint64 // dropped at the sender: send queue full of fresh datagrams
	DatagramsReceived     uint64
	DatagramsRecvDropped  uint64 // dropped on receipt: receive queue full, or over MaxDatagramSize
	WritesBlockedOnCredit uint64 // times a stream writer waited for flow-control credit or queue room
	WritesThrough         uint64 // writes a stream's WriteNow made itself, the queue being empty (D45)

	// Queues are the send scheduler's counters per class.
	Queues [protocol.NumClasses]qos.ClassStats
}

// Conn is one link: streams and datagrams multiplexed over a byte stream.
// It implements transport.Conn.
type Conn struct {
	cfg      Config
	rw       io.WriteCloser // the byte stream: read by readLoop, or a PollSource read by pump
	pump     *pump          // non-nil when the link is read by the pump (NewPolled)
	isClient bool

	ctx    context.Context
	cancel context.CancelCauseFunc

	writeWake  chan struct{} // cap 1: frames were queued
	readerDone chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once // closes rw (closeRW)
	// writers counts running writer goroutines (0 or 1); the close
	// goroutine waits for it. Add happens under mu while closeErr is nil.
	writers    sync.WaitGroup
	closingNow atomic.Bool // mirror of closeErr != nil, read by the reader without the lock

	// mu guards everything below and the state of every stream of the
	// link. Lock order: stream.readMu / stream.writeMu, then mu.
	mu            sync.Mutex
	closeErr      *jsperr.Error
	sendLinkClose bool
	writerRunning bool // a writeLoop goroutine runs (kickWriterLocked)
	// sched is the send queue: made by the first frame queued, dropped
	// when the writer ends with it empty (schedLocked, writerEndLocked),
	// so an idle link holds none (D33). schedTotals keeps the counters
	// of the dropped ones.
	sched       *qos.Scheduler[*outFrame]
	schedTotals *[protocol.NumClasses]qos.ClassStats
	dataQueued  [protocol.NumClasses]int // stream-data and datagram frames queued, per class
	dgQueued    int                      // datagrams queued
	// sendWake is closed when send credit, queue room or a stream slot
	// appears; acceptWake (cap 1) is signalled when a stream joins
	// acceptQ, dgramWake (cap 1) when a datagram joins dgRecv. Each is
	// made by the first waiter (sendWakeLocked and friends), so an idle
	// link, whose session waits by callback (D27), holds none (D33).
	sendWake   chan struct{}
	acceptWake chan struct{}
	dgramWake  chan struct{}
	// writeTimer bounds the write in flight (writeTimed). It exists only
	// while a writer runs or the close writes, so an idle link holds no
	// timer (D33).
	writeTimer  *time.Timer
	streams     map[protocol.StreamID]*stream
	nextLocalID protocol.StreamID
	nextPeerID  protocol.StreamID
	localOpen   int // locally opened streams not yet retired
	peerOpen    int // peer-opened streams not yet retired
	acceptQ     []*stream
	dgRecv      [][]byte
	onArrival   func() // NotifyArrivals's callback (notify.go)

	sendConnLimit, sendConnOffset protocol.ByteCount
	recvConnLimit, recvConnOffset protocol.ByteCount
	recvConnConsumed              protocol.ByteCount
	connWUQueued                  bool
	connWUPending                 protocol.ByteCount

	stats counters
}

// counters are the link's own counters: Stats without the scheduler's,
// which Stats reads from the scheduler.
type counters struct {
	Writes, FramesWritten, BytesWritten, FramesRead, BytesRead uint64
	StreamsOpened, StreamsAccepted                             uint64
	DatagramsSent, DatagramsExpired, DatagramsDropped          uint64
	DatagramsReceived, DatagramsRecvDropped                    uint64
	WritesBlockedOnCredit, WritesThrough                       uint64
}

var _ transport.Conn = (*Conn)(nil)

// New starts a link over rw and returns it. isClient selects the stream id
// parity: the client opens odd ids, the server even ones. The Conn owns rw
// from now on and closes it when the link ends. New panics if cfg fails
// Config.Validate, which is a programming error.
func New(rw io.ReadWriteCloser, cfg Config, isClient bool) *Conn {
	c := newConn(rw, cfg, isClient)
	go c.readLoop(rw)
	return c
}

// newConn builds a link over rw without starting its reader.
func newConn(rw io.WriteCloser, cfg Config, isClient bool) *Conn {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.setDefaults()
	c := &Conn{
		cfg:        cfg,
		rw:         rw,
		isClient:   isClient,
		writeWake:  make(chan struct{}, 1),
		readerDone: make(chan struct{}),
		writerDone: make(chan struct{}),
		streams:    make(map[protocol.StreamID]*stream),

		sendConnLimit: InitialConnWindow,
		recvConnLimit: InitialConnWindow,
	}
	c.nextLocalID, c.nextPeerID = 2, 1
	if isClient {
		c.nextLocalID, c.nextPeerID = 1, 2
	}
	// The addresses live in c.cfg and the TLS state is read when asked
	// for (TLS), not copied: the link struct stays small (D33).
	if a, ok := rw.(interface{ LocalAddr() net.Addr }); ok && c.cfg.LocalAddr == nil {
		c.cfg.LocalAddr = a.LocalAddr()
	}
	if a, ok := rw.(interface{ RemoteAddr() net.Addr }); ok && c.cfg.RemoteAddr == nil {
		c.cfg.RemoteAddr = a.RemoteAddr()
	}

	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	return c
}

// OpenStream opens a stream of the given class. It waits while the peer's
// stream limit (Config.PeerMaxStreams) is reached, until ctx ends. The peer
// learns of the stream with its first frame.
func (c *Conn) OpenStream(ctx context.Context, class protocol.Class) (transport.Stream, error) {
	if class >= protocol.NumClasses {
		return nil, fmt.Errorf("mux: open stream: invalid class %d", uint8(class))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.closeErr != nil {
			return nil, fmt.Errorf("mux: open stream: %w", c.closeErr)
		}
		if c.localOpen < c.cfg.PeerMaxStreams {
			break
		}
		wake := c.sendWakeLocked()
		c.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			c.mu.Lock()
			return nil, fmt.Errorf("mux: open stream: waiting for the peer's stream limit (%d): %w", c.cfg.PeerMaxStreams, ctx.Err())
		case <-c.ctx.Done():
		}
		c.mu.Lock()
	}
	id := c.nextLocalID
	if uint64(id) > maxStreamID {
		return nil, jsperr.New(jsperr.StreamLimit, "mux: stream ids exhausted")
	}
	c.nextLocalID += 2
	s := c.newStreamLocked(id, class)
	s.announced = true
	c.localOpen++
	c.stats.StreamsOpened++
	return s, nil
}

// maxStreamID is the largest id a varint carries.
const maxStreamID = 1<<62 - 1

// AcceptStream waits for the next stream opened by the peer.
func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	for {
		c.mu.Lock()
		if len(c.acceptQ) > 0 {
			s := c.acceptQ[0]
			c.acceptQ[0] = nil
			c.acceptQ = c.acceptQ[1:]
			if len(c.acceptQ) > 0 {
				signal(c.acceptWake)
			}
			c.mu.Unlock()
			return s, nil
		}
		err := c.closeErr
		if c.acceptWake == nil {
			c.acceptWake = make(chan struct{}, 1)
		}
		wake := c.acceptWake
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("mux: accept stream: %w", err)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("mux: accept stream: %w", ctx.Err())
		case <-c.ctx.Done():
		}
	}
}

// SendDatagram queues one datagram (JSP §7.2). It fails with
// DATAGRAM_TOO_LARGE when b is over MaxDatagramSize. A datagram that waits
// longer than Config.DatagramMaxAge is dropped at the sender; when the send
// queue is full of fresh datagrams, b is dropped at once. Both are counted
// in Stats and are not errors: datagrams are unreliable.
func (c *Conn) SendDatagram(b []byte, class protocol.Class) error {
	if len(b) > c.cfg.MaxDatagramSize {
		return jsperr.Newf(jsperr.DatagramTooLarge, "mux: datagram of %d bytes over the limit of %d", len(b), c.cfg.MaxDatagramSize)
	}
	if class >= protocol.NumClasses {
		return fmt.Errorf("mux: send datagram: invalid class %d", uint8(class))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeErr != nil {
		return fmt.Errorf("mux: send datagram: %w", c.closeErr)
	}
	now := c.cfg.Now()
	if c.datagramQueueFullLocked(class) && c.sched != nil {
		c.sched.Expire(now)
		if c.datagramQueueFullLocked(class) {
			c.stats.DatagramsDropped++
			return nil
		}
	}
	f := &outFrame{kind: kindDatagram, class: class, payload: append([]byte(nil), b...), counted: true}
	c.dgQueued++
	return c.pushLocked(f, now.Add(c.cfg.DatagramMaxAge))
}

func (c *Conn) datagramQueueFullLocked(class protocol.Class) bool {
	return c.dgQueued >= c.cfg.DatagramQueueLength || c.dataQueued[class] >= c.cfg.SendQueueLength
}

// datagramExpiredLocked is the scheduler's expiry hook; only datagrams
// carry deadlines.
func (c *Conn) datagramExpiredLocked(it qos.Item[*outFrame]) {
	c.dataQueued[it.Class]--
	c.dgQueued--
	c.stats.DatagramsExpired++
	c.broadcastSendLocked()
}

// ReceiveDatagram waits for the next datagram from the peer.
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	for {
		c.mu.Lock()
		if len(c.dgRecv) > 0 {
			b := c.dgRecv[0]
			c.dgRecv[0] = nil
			c.dgRecv = c.dgRecv[1:]
			if len(c.dgRecv) > 0 {
				signal(c.dgramWake)
			}
			c.mu.Unlock()
			return b, nil
		}
		err := c.closeErr
		if c.dgramWake == nil {
			c.dgramWake = make(chan struct{}, 1)
		}
		wake := c.dgramWake
		c.mu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("mux: receive datagram: %w", err)
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("mux: receive datagram: %w", ctx.Err())
		case <-c.ctx.Done():
		}
	}
}

// MaxDatagramSize is the largest payload SendDatagram accepts.
func (c *Conn) MaxDatagramSize() int { return c.cfg.MaxDatagramSize }

// CloseWithError closes the link, sending LINK_CLOSE with code and reason
// to the peer, and returns when the reader and writer have ended. Queued
// frames not yet written are abandoned. Later calls do nothing.
func (c *Conn) CloseWithError(code jsperr.Code, reason string) error {
	c.mu.Lock()
	c.closeLocked(&jsperr.Error{Code: code, Reason: reason}, true)
	c.mu.Unlock()
	<-c.writerDone
	return nil
}

// Close closes the link with NO_ERROR.
func (c *Conn) Close() error { return c.CloseWithError(jsperr.NoError, "") }

// Done is closed when the link's goroutines have ended.
func (c *Conn) Done() <-chan struct{} { return c.writerDone }

// Context is cancelled when the link closes; its cause is a *jsperr.Error.
func (c *Conn) Context() context.Context { return c.ctx }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.cfg.LocalAddr }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.cfg.RemoteAddr }

// TLS returns the TLS state given in Config or found on the byte stream.
func (c *Conn) TLS() tls.ConnectionState {
	if c.cfg.TLS != nil {
		return *c.cfg.TLS
	}
	if t, ok := c.rw.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return t.ConnectionState()
	}
	return tls.ConnectionState{}
}

// Kind names the transport (Config.Kind).
func (c *Conn) Kind() transport.Kind { return c.cfg.Kind }

// Stats returns a snapshot of the link's counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := &c.stats
	return Stats{
		Writes: k.Writes, FramesWritten: k.FramesWritten, BytesWritten: k.BytesWritten,
		FramesRead: k.FramesRead, BytesRead: k.BytesRead,
		StreamsOpened: k.StreamsOpened, StreamsAccepted: k.StreamsAccepted,
		DatagramsSent: k.DatagramsSent, DatagramsExpired: k.DatagramsExpired, DatagramsDropped: k.DatagramsDropped,
		DatagramsReceived: k.DatagramsReceived, DatagramsRecvDropped: k.DatagramsRecvDropped,
		WritesBlockedOnCredit: k.WritesBlockedOnCredit,
		WritesThrough:         k.WritesThrough,
		Queues:                c.queueStatsLocked(),
	}
}

// closeLocked starts closing the link with err unless it is already
// closing. send says whether LINK_CLOSE should go to the peer: not when the
// peer closed first or the byte stream broke.
func (c *Conn) closeLocked(err *jsperr.Error, send bool) {
	if c.closeErr != nil {
		return
	}
	c.closeErr, c.sendLinkClose = err, send
	c.closingNow.Store(true)
	c.cfg.Logger.Debug("mux: link closing", "code", err.Code, "reason", err.Reason, "remote", err.Remote)
	c.cancel(err)
	go c.closeLink()
	c.broadcastSendLocked()
	for _, s := range c.streams {
		if s.onReadable != nil {
			s.onReadable() // a Read now returns the close error
		}
	}
	// A write in flight may be stuck behind a peer that stopped reading:
	// bound the wait for it by CloseTimeout instead of WriteTimeout. When
	// no write is in flight the writer re-arms or stops the timer itself.
	if c.writeTimer != nil {
		c.writeTimer.Reset(c.cfg.CloseTimeout)
	}
}

// fail closes the link after a protocol violation: LINK_CLOSE carries the
// code to the peer (JSP §10, send the code first, then return the error).
func (c *Conn) failLocked(err error) {
	var je *jsperr.Error
	if !errors.As(err, &je) {
		je = jsperr.Wrap(jsperr.Internal, err)
	}
	c.closeLocked(je, true)
}

// broadcastSendLocked wakes every goroutine waiting for send credit, queue
// room or a stream slot.
func (c *Conn) broadcastSendLocked() {
	if c.sendWake != nil {
		close(c.sendWake)
		c.sendWake = nil
	}
}

// sendWakeLocked returns the channel broadcastSendLocked closes next.
func (c *Conn) sendWakeLocked() chan struct{} {
	if c.sendWake == nil {
		c.sendWake = make(chan struct{})
	}
	return c.sendWake
}

// closeRW closes the byte stream once.
func (c *Conn) closeRW() { c.closeOnce.Do(c.closeRWOnce) }

func (c *Conn) closeRWOnce() { c.rw.Close() }

// signal leaves a token in a one-slot channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// errorf builds a local protocol error.
func errorf(code jsperr.Code, format string, args ...any) *jsperr.Error {
	return jsperr.Newf(code, "mux: "+format, args...)
}

// schedLocked returns the send queue, making it if the link has none.
func (c *Conn) schedLocked() *qos.Scheduler[*outFrame] {
	if c.sched != nil {
		return c.sched
	}
	// Every stream may have a FIN or RESET and a STOP_SENDING and a
	// WINDOW_UPDATE queued beyond the data cap; reserving room for them
	// means closing or cancelling a stream never waits for queue room.
	qc := c.cfg.QoS
	reserve := 4*(c.cfg.MaxStreams+c.cfg.PeerMaxStreams) + 16
	for cl := range qc.QueueLength {
		qc.QueueLength[cl] = c.cfg.SendQueueLength + reserve
	}
	c.sched = qos.New[*outFrame](qc)
	c.sched.OnExpire(c.datagramExpiredLocked)
	return c.sched
}

// queuedLocked returns the frames and bytes in the send queue.
func (c *Conn) queuedLocked() (frames, bytes int) {
	if c.sched == nil {
		return 0, 0
	}
	return c.sched.Len(), c.sched.Bytes()
}

// dropSchedLocked lets an empty send queue go, keeping its counters. The
// scheduler's round-robin position is worth nothing with every queue
// empty, so a new one schedules the same.
func (c *Conn) dropSchedLocked() {
	if c.sched == nil || c.sched.Len() > 0 {
		return
	}
	if c.schedTotals == nil {
		c.schedTotals = new([protocol.NumClasses]qos.ClassStats)
	}
	for cl, st := range c.sched.Stats() {
		t := &c.schedTotals[cl]
		t.Queued += st.Queued
		t.Sent += st.Sent
		t.Dropped += st.Dropped
		t.Expired += st.Expired
		t.Refused += st.Refused
	}
	c.sched = nil
}

// queueStatsLocked returns the send queue's counters since the link
// started.
func (c *Conn) queueStatsLocked() [protocol.NumClasses]qos.ClassStats {
	var out [protocol.NumClasses]qos.ClassStats
	if c.schedTotals != nil {
		out = *c.schedTotals
	}
	if c.sched != nil {
		for cl, st := range c.sched.Stats() {
			o := &out[cl]
			o.Queued += st.Queued
			o.Sent += st.Sent
			o.Dropped += st.Dropped
			o.Expired += st.Expired
			o.Refused += st.Refused
			o.Len, o.Bytes = st.Len, st.Bytes
		}
	}
	return out
}
