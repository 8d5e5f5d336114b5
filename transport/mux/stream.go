package mux

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// stream is one link stream. Its state is guarded by the link's mu; readMu
// and writeMu only serialize concurrent Read and Write callers.
type stream struct {
	c     *Conn
	id    protocol.StreamID
	class protocol.Class

	readMu  sync.Mutex
	writeMu sync.Mutex
	// Guarded by c.mu, made by the first Read or Write that waits
	// (D33): readWake (cap 1) is signalled on data, FIN, reset or a new
	// read deadline, writeWake (cap 1) on a new write deadline.
	readWake  chan struct{}
	writeWake chan struct{}

	// Guarded by c.mu.
	announced bool // handed to the application (opened here, or queued for AcceptStream)
	inMap     bool // counted in c.streams and against the stream limit

	// Receive side.
	rbuf          []recvChunk
	rbufLen       int
	recvOffset    protocol.ByteCount // bytes received
	readOffset    protocol.ByteCount // bytes consumed (read or discarded)
	recvLimit     protocol.ByteCount // credit granted to the peer
	finRecv       bool
	resetRecv     bool
	readErr       error // reset by the peer, or cancelled here
	readCancelled bool
	wuQueued      bool
	wuPending     protocol.ByteCount
	readDeadline  time.Time

	// Send side.
	sendOffset    protocol.ByteCount
	sendLimit     protocol.ByteCount
	finQueued     bool
	finWritten    bool
	resetQueued   bool
	resetWritten  bool
	writeErr      error     // stopped by the peer, or cancelled here
	lastData      *outFrame // newest data frame still queued, for FIN piggyback
	writeDeadline time.Time

	onReadable func() // NotifyReadable's callback (notify.go)
}

var _ transport.Stream = (*stream)(nil)

func (c *Conn) newStreamLocked(id protocol.StreamID, class protocol.Class) *stream {
	s := &stream{
		c: c, id: id, class: class,
		recvLimit: protocol.DefaultStreamWindow,
		sendLimit: protocol.DefaultStreamWindow,
		inMap:     true,
	}
	c.streams[id] = s
	return s
}

// ID returns the stream id.
func (s *stream) ID() protocol.StreamID { return s.id }

// Class returns the stream's QoS class.
func (s *stream) Class() protocol.Class { return s.class }

// streamError builds the error of a reset or stopped stream: its code is
// STREAM_RESET, and the application's code follows in the chain, so both
// jsperr.CodeOf(err) == STREAM_RESET and errors.Is(err, jsperr.New(code, ""))
// hold.
func streamError(id protocol.StreamID, code jsperr.Code, remote bool, what string) *jsperr.Error {
	app := &jsperr.Error{Code: code, Reason: fmt.Sprintf("stream %d %s", id, what), Remote: remote}
	e := jsperr.Wrap(jsperr.StreamReset, app)
	e.Remote = remote
	return e
}

// Read reads stream data. After the peer's FIN it returns io.EOF; after
// the peer's RESET_STREAM, a STREAM_RESET error carrying the peer's code.
// Data received before the link closed is still returned.
func (s *stream) Read(p []byte) (int, error) {
	s.readMu.Lock()
	defer s.readMu.Unlock()
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if s.readCancelled || s.resetRecv {
			return 0, s.readErr
		}
		if s.rbufLen > 0 {
			n := s.copyOutLocked(p)
			c.consumeLocked(s, protocol.ByteCount(n))
			return n, nil
		}
		if len(p) == 0 {
			return 0, nil
		}
		if s.finRecv {
			return 0, io.EOF
		}
		if c.closeErr != nil {
			return 0, fmt.Errorf("mux: read stream %d: %w", s.id, c.closeErr)
		}
		if s.readWake == nil {
			s.readWake = make(chan struct{}, 1)
		}
		if err := s.waitLocked(s.readWake, nil, s.readDeadline); err != nil {
			return 0, fmt.Errorf("mux: read stream %d: %w", s.id, err)
		}
	}
}

// recvChunk is one received STREAM payload, read from off on. Its buffer
// comes from chunkPool and goes back once read.
type recvChunk struct {
	b   []byte
	off int
}

// copyOutLocked moves buffered bytes into p.
func (s *stream) copyOutLocked(p []byte) int {
	n := 0
	for n < len(p) && len(s.rbuf) > 0 {
		ch := &s.rbuf[0]
		k := copy(p[n:], ch.b[ch.off:])
		n += k
		ch.off += k
		if ch.off == len(ch.b) {
			putChunk(ch.b)
			s.rbuf[0] = recvChunk{}
			s.rbuf = s.rbuf[1:]
		}
	}
	s.rbufLen -= n
	return n
}

// waitLocked releases c.mu until wake or extra fires, the deadline passes
// or the link closes. It returns os.ErrDeadlineExceeded if the deadline has
// passed.
func (s *stream) waitLocked(wake, extra <-chan struct{}, deadline time.Time) error {
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return os.ErrDeadlineExceeded
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	c := s.c
	c.mu.Unlock()
	defer c.mu.Lock()
	select {
	case <-wake:
	case <-extra:
	case <-timeout:
		return os.ErrDeadlineExceeded
	case <-c.ctx.Done():
	}
	return nil
}

// Write queues p for sending. It waits for flow-control credit and queue
// room, so it returns when all of p is queued or an error occurs: the
// stream was stopped or cancelled, the deadline passed, the link closed.
func (s *stream) Write(p []byte) (int, error) { return s.write(p, false) }

// WriteNow is Write for a caller that is itself a writer goroutine, such
// as a session's sender: when nothing is queued on the link and no writer
// runs, it writes p as one frame on the caller's goroutine instead of
// handing it to the link's writer (D45). A frame is written ahead of
// nothing, so order is kept. Plain Write never does this, so that a
// goroutine with more to do (a handler answering a burst of requests)
// leaves the write to the writer and its answers coalesce.
func (s *stream) WriteNow(p []byte) (int, error) { return s.write(p, true) }

// TryWrite writes p as one STREAM frame on the caller's goroutine when
// that cannot wait (decision D50): the link has nothing queued and no
// writer, the stream and link have credit for all of p, and the byte
// stream can write without waiting. It reports false, having written
// nothing, otherwise; the caller then queues p as usual. An error means
// the stream or link is over.
func (s *stream) TryWrite(p []byte) (bool, error) {
	c := s.c
	tw, ok := c.rw.(tryWriter)
	if !ok || len(p) == 0 || !s.writeMu.TryLock() {
		return false, nil
	}
	defer s.writeMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.writeErr != nil:
		return true, s.writeErr
	case s.finQueued:
		return true, fmt.Errorf("mux: write on stream %d after Close", s.id)
	case c.closeErr != nil:
		return true, fmt.Errorf("mux: write stream %d: %w", s.id, c.closeErr)
	}
	credit := min(s.sendLimit-s.sendOffset, c.sendConnLimit-c.sendConnOffset, c.cfg.MaxChunk)
	if protocol.ByteCount(len(p)) > credit || c.writerRunning {
		return false, nil
	}
	if n, _ := c.queuedLocked(); n > 0 {
		return false, nil
	}
	return c.writeOneLocked(s, p, tw)
}

func (s *stream) write(p []byte, now bool) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for {
		if s.writeErr != nil {
			return n, s.writeErr
		}
		if s.finQueued {
			return n, fmt.Errorf("mux: write on stream %d after Close", s.id)
		}
		if c.closeErr != nil {
			return n, fmt.Errorf("mux: write stream %d: %w", s.id, c.closeErr)
		}
		if len(p) == 0 {
			return n, nil
		}
		credit := min(s.sendLimit-s.sendOffset, c.sendConnLimit-c.sendConnOffset, c.cfg.MaxChunk)
		if credit > 0 && c.dataQueued[s.class] < c.cfg.SendQueueLength {
			k := int(min(credit, protocol.ByteCount(len(p))))
			if now && k == len(p) && c.mayWriteThroughLocked(s) {
				return n + k, c.writeThroughLocked(s, p)
			}
			f := &outFrame{kind: kindData, s: s, class: s.class, payload: getChunk(p[:k]), pooled: true, counted: true}
			if err := c.pushLocked(f, time.Time{}); err != nil {
				return n, err
			}
			s.lastData = f
			s.sendOffset += protocol.ByteCount(k)
			c.sendConnOffset += protocol.ByteCount(k)
			p = p[k:]
			n += k
			continue
		}
		c.stats.WritesBlockedOnCredit++
		if s.writeWake == nil {
			s.writeWake = make(chan struct{}, 1)
		}
		if err := s.waitLocked(c.sendWakeLocked(), s.writeWake, s.writeDeadline); err != nil {
			return n, fmt.Errorf("mux: write stream %d: %w", s.id, err)
		}
	}
}

// Close ends the sending side: the peer reads io.EOF after the data
// already written. It does not wait; the FIN rides on the last queued data
// frame when there is one.
func (s *stream) Close() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.finQueued || s.resetQueued || c.closeErr != nil {
		return nil
	}
	s.finQueued = true
	if s.lastData != nil {
		s.lastData.fin = true
		return nil
	}
	// Room for this frame is reserved (see New), so Close never waits.
	return c.pushLocked(&outFrame{kind: kindData, s: s, class: s.class, fin: true}, time.Time{})
}

// CancelWrite abandons the sending side: data not yet written is
// discarded and the peer's reads fail with STREAM_RESET and code. It does
// nothing after the FIN has been written.
func (s *stream) CancelWrite(code jsperr.Code) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	s.resetLocked(code, streamError(s.id, code, false, "write cancelled"))
}

// resetLocked queues RESET_STREAM unless the sending side is already done.
func (s *stream) resetLocked(code jsperr.Code, err error) {
	c := s.c
	if s.writeErr == nil {
		s.writeErr = err
	}
	if s.finWritten || s.resetQueued || c.closeErr != nil {
		return
	}
	s.resetQueued = true
	// Queued data of this stream is skipped when popped (see popLocked).
	c.pushLocked(&outFrame{kind: kindReset, s: s, class: protocol.ClassSystem, code: code}, time.Time{})
	c.broadcastSendLocked()
}

// CancelRead abandons the receiving side: buffered data is discarded,
// further data is dropped on arrival, and the peer is asked with
// STOP_SENDING to reset the stream with code.
func (s *stream) CancelRead(code jsperr.Code) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.readCancelled {
		return
	}
	s.readCancelled = true
	if s.readErr == nil {
		s.readErr = streamError(s.id, code, false, "read cancelled")
	}
	s.discardLocked()
	s.wakeReaderLocked()
	if !s.finRecv && !s.resetRecv && c.closeErr == nil {
		c.pushLocked(&outFrame{kind: kindStopSending, s: s, class: protocol.ClassSystem, code: code}, time.Time{})
	}
}

// discardLocked drops buffered data, returning its connection credit.
func (s *stream) discardLocked() {
	n := s.rbufLen
	for _, ch := range s.rbuf {
		putChunk(ch.b)
	}
	s.rbuf, s.rbufLen = nil, 0
	s.readOffset += protocol.ByteCount(n)
	s.c.consumeConnLocked(protocol.ByteCount(n))
}

// SetReadDeadline sets the deadline of pending and future Reads.
func (s *stream) SetReadDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.readDeadline = t
	signal(s.readWake)
	s.c.mu.Unlock()
	return nil
}

// SetWriteDeadline sets the deadline of pending and future Writes.
func (s *stream) SetWriteDeadline(t time.Time) error {
	s.c.mu.Lock()
	s.writeDeadline = t
	signal(s.writeWake)
	s.c.mu.Unlock()
	return nil
}

// consumeLocked accounts n bytes read by the application and grants the
// peer more credit once half a window has been read (JSP §7.2), so that
// WINDOW_UPDATE frames stay few.
func (c *Conn) consumeLocked(s *stream, n protocol.ByteCount) {
	s.readOffset += n
	c.consumeConnLocked(n)
	if s.finRecv || s.resetRecv || s.readCancelled {
		return
	}
	win := c.cfg.StreamWindow
	if s.recvLimit-s.readOffset > win/2 {
		return
	}
	inc := s.readOffset + win - s.recvLimit
	s.recvLimit += inc
	s.wuPending += inc
	if !s.wuQueued {
		s.wuQueued = true
		c.pushLocked(&outFrame{kind: kindWindowUpdate, s: s, class: protocol.ClassSystem}, time.Time{})
	}
}

// consumeConnLocked returns n bytes of connection credit.
func (c *Conn) consumeConnLocked(n protocol.ByteCount) {
	if n == 0 {
		return
	}
	c.recvConnConsumed += n
	win := c.cfg.ConnWindow
	if c.recvConnLimit-c.recvConnConsumed > win/2 {
		return
	}
	inc := c.recvConnConsumed + win - c.recvConnLimit
	c.recvConnLimit += inc
	c.connWUPending += inc
	if !c.connWUQueued && c.closeErr == nil {
		c.connWUQueued = true
		c.pushLocked(&outFrame{kind: kindWindowUpdate, class: protocol.ClassSystem}, time.Time{})
	}
}

// retireLocked removes s from the stream table once both directions are
// done, freeing its slot under the stream limit.
func (c *Conn) retireLocked(s *stream) {
	if !s.inMap || !(s.finWritten || s.resetWritten) || !(s.finRecv || s.resetRecv) {
		return
	}
	s.inMap = false
	delete(c.streams, s.id)
	if c.isLocal(s.id) {
		c.localOpen--
	} else {
		c.peerOpen--
	}
	c.broadcastSendLocked()
}

// isLocal reports whether id belongs to a stream this end opens.
func (c *Conn) isLocal(id protocol.StreamID) bool {
	return (id%2 == 1) == c.isClient
}
