package websocket

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/tcptls"
)

// serverConn is the server's side of a WebSocket upgraded by upgradePlain
// (decision D33): the link's byte stream, decoded and encoded here instead
// of by the WebSocket library, so that an idle connection holds neither a
// reading goroutine nor the library's buffers. It reads client frames
// from a socket watched by a netpoll.Poller (ReadAvailable, as a
// mux.PollSource), or, when the socket cannot be polled, with the link's
// reader goroutine (Read).
//
// Client frames must be masked binary frames, possibly fragmented; ping is
// answered with pong; a close frame is answered with the same code and
// ends the input (io.EOF for a normal close or going away, an error
// otherwise); a text message ends the link with PROTOCOL_VIOLATION, as on
// the library's path. Every other violation of RFC 6455 is answered with
// close code 1002 (1009 for a frame over the size limit) and ends the
// input with an error.
//
// The dialing side uses the same codec with client set (dial.go): it reads
// unmasked server frames with the link's goroutine and masks the frames it
// sends.
type serverConn struct {
	nc         net.Conn  // the upgraded connection: a TCP socket, or a *tls.Conn (wss://)
	src        rawSource // nil: read by a goroutine
	maxPayload uint64
	// feed is the record feed under nc on wss:// (decision D40); nil
	// otherwise. Writes cork it so that a frame of several TLS records
	// leaves in one write call.
	feed    *tcptls.Feed
	overTLS bool // nc is a *tls.Conn
	// client marks the dialing end: the peer's frames are unmasked and
	// its own are masked (RFC 6455, Section 5.1).
	client bool
	// drained is set when a read of the polled socket (the plain path)
	// came back short, and cleared by Rearm; see read. On wss the feed
	// keeps its own.
	drained atomic.Bool

	// wmu serializes whole frames on the wire: link batches from the
	// link's writer, pong and close from the reader.
	wmu       sync.Mutex
	closeSent bool // guarded by wmu: no data frame may follow a close

	// Read state, used by one reader at a time (a pump run or the link's
	// reader goroutine).
	bp        *[]byte // received bytes from off on; nil when empty
	off       int
	payLeft   uint64 // payload bytes of the current data frame not yet decoded
	mask      [4]byte
	maskPos   int
	inMessage bool  // a fragmented data message continues
	err       error // the socket's end of input, reported after the bytes before it
	fatal     error // a close frame or a violation: input ends here
}

var _ mux.PollSource = (*serverConn)(nil)

// rawBuf is the capacity of a read buffer: headers and the payloads of
// small frames. Buffers come from rawPool while bytes wait and go back
// when none do, so an idle connection holds none.
const rawBuf = 8 << 10

var rawPool = sync.Pool{New: func() any { b := make([]byte, 0, rawBuf); return &b }}

// smallWrite is the largest payload Write copies behind its header for
// one write; a larger one goes out as header and payload in one vectored
// write where the connection allows.
const smallWrite = 4 << 10

var writePool = sync.Pool{New: func() any { b := make([]byte, 0, smallWrite+maxFrameHeader); return &b }}

// rawSource is the byte stream under the frame decoder when a poller
// watches it: a netpoll.Socket on the plain path, a tlsSource on wss://.
type rawSource interface {
	// ReadAvailable reads what has arrived without waiting: n > 0, or 0
	// and nil when nothing is there, or the end of input.
	ReadAvailable(p []byte) (int, error)
	Watch(ready func()) error
	Rearm() error
	Close() error
}

// newServerConn wraps an upgraded connection read from src (nil: read nc
// with a goroutine). early holds bytes read past the upgrade request (a
// client may send its first frames at once).
func newServerConn(nc net.Conn, src rawSource, early []byte, maxPayload uint64) *serverConn {
	s := &serverConn{nc: nc, src: src, maxPayload: maxPayload}
	if ts, ok := src.(*tlsSource); ok {
		s.feed = ts.feed
	}
	_, s.overTLS = nc.(*tls.Conn)
	if len(early) > 0 {
		s.bp = rawPool.Get().(*[]byte)
		*s.bp = append((*s.bp)[:0], early...)
	}
	return s
}

func (s *serverConn) buffered() []byte {
	if s.bp == nil {
		return nil
	}
	return (*s.bp)[s.off:]
}

func (s *serverConn) consume(n int) {
	s.off += n
	if s.bp != nil && s.off == len(*s.bp) {
		if cap(*s.bp) == rawBuf {
			*s.bp = (*s.bp)[:0]
			rawPool.Put(s.bp)
		}
		s.bp, s.off = nil, 0
	}
}

// fill reads more input, waiting for it if wait is set. It returns how
// many bytes arrived; the end of input is kept in s.err. When the current
// frame's payload is all that is missing and nothing is buffered, the
// caller reads straight into its own buffer instead (readPayload).
func (s *serverConn) fill(wait bool) int {
	if s.bp == nil {
		s.bp = rawPool.Get().(*[]byte)
		*s.bp = (*s.bp)[:0]
	}
	b := *s.bp
	if s.off > 0 {
		n := copy(b, b[s.off:])
		b, s.off = b[:n], 0
	}
	if cap(b)-len(b) < maxFrameHeader+maxControlPayload {
		// A header and a whole control frame always fit.
		nb := make([]byte, len(b), 2*cap(b))
		copy(nb, b)
		b = nb
	}
	n, err := s.read(b[len(b):cap(b)], wait)
	*s.bp = b[:len(b)+n]
	s.noteErr(err)
	if len(*s.bp) == 0 {
		s.consume(0)
	}
	return n
}

func (s *serverConn) read(p []byte, wait bool) (int, error) {
	if wait || s.src == nil {
		return s.nc.Read(p)
	}
	sock, plain := s.src.(*netpoll.Socket)
	if !plain {
		return s.src.ReadAvailable(p)
	}
	if s.drained.Load() {
		// The socket had nothing more at the last short read; what came
		// since fires the poller again once re-armed (level-triggered),
		// so a read now would most likely only cost a system call.
		return 0, nil
	}
	n, err := sock.ReadAvailable(p)
	if n < len(p) && err == nil {
		s.drained.Store(true)
	}
	return n, err
}

// noteErr keeps the first end of input. The socket's end without a close
// frame reads as io.EOF, as on the library's path, so the link reports it
// in the same words: TRANSPORT_CLOSED, or TRUNCATED inside a link frame.
func (s *serverConn) noteErr(err error) {
	if err != nil && s.err == nil {
		if errors.Is(err, io.EOF) {
			err = io.EOF
		} else {
			err = fmt.Errorf("websocket: read: %w", err)
		}
		s.err = err
	}
}

// ReadAvailable implements mux.PollSource.
func (s *serverConn) ReadAvailable(p []byte) (int, error) { return s.readLink(p, false) }

// Read reads link bytes, waiting for them; the link's reader goroutine
// uses it when the socket is not polled.
func (s *serverConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return s.readLink(p, true)
}

// readLink decodes link bytes into p until p is full or, without wait,
// the socket has nothing more; with wait it returns as soon as it has
// something.
func (s *serverConn) readLink(p []byte, wait bool) (int, error) {
	if s.fatal != nil {
		return 0, s.fatal
	}
	n := 0
	for n < len(p) {
		k, err := s.decode(p[n:])
		n += k
		if err != nil {
			s.fatal = err
			break
		}
		if n == len(p) || (wait && n > 0) || s.err != nil {
			break
		}
		if s.payLeft > 0 && len(s.buffered()) == 0 {
			// Payload straight into p, unmasked in place: no copy
			// through the read buffer for the bulk of the bytes.
			q := p[n:min(uint64(len(p)), uint64(n)+s.payLeft)]
			k, err := s.read(q, wait)
			if !s.client {
				s.maskPos = maskBytes(s.mask, s.maskPos, q[:k])
			}
			s.payLeft -= uint64(k)
			n += k
			s.noteErr(err)
			if k == 0 && err == nil {
				break // nothing now
			}
			continue
		}
		if s.fill(wait) == 0 && s.err == nil {
			break // nothing now
		}
	}
	switch {
	case n > 0:
		return n, nil
	case s.fatal != nil:
		return 0, s.fatal
	case s.err == nil:
		return 0, nil
	case s.payLeft > 0 || len(s.buffered()) > 0:
		return 0, fmt.Errorf("websocket: read: connection ended inside a frame: %w", io.ErrUnexpectedEOF)
	}
	return 0, s.err
}

// decode turns buffered frames into link bytes in p, handling control
// frames on the way. It stops when p is full or the buffer holds no
// whole header (or, for a control frame, no whole frame).
func (s *serverConn) decode(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b := s.buffered()
		if s.payLeft > 0 {
			if len(b) == 0 {
				break
			}
			k := int(min(uint64(len(p)-n), s.payLeft, uint64(len(b))))
			copy(p[n:n+k], b[:k])
			if !s.client {
				s.maskPos = maskBytes(s.mask, s.maskPos, p[n:n+k])
			}
			s.consume(k)
			s.payLeft -= uint64(k)
			n += k
			continue
		}
		h, hn, err := parseFrameHeader(b)
		if err != nil {
			return n, s.fail(statusProtocolError, err.Error())
		}
		if hn == 0 {
			break
		}
		if h.rsv != 0 {
			return n, s.fail(statusProtocolError, "RSV bits set without an extension")
		}
		if h.masked == s.client {
			// RFC 6455, Section 5.1: a server closes on an unmasked
			// frame, a client on a masked one.
			if s.client {
				return n, s.fail(statusProtocolError, "masked server frame")
			}
			return n, s.fail(statusProtocolError, "unmasked client frame")
		}
		switch h.opcode {
		case opContinuation, opBinary:
			if (h.opcode == opContinuation) != s.inMessage {
				return n, s.fail(statusProtocolError, "fragment out of order")
			}
			if h.length > s.maxPayload {
				return n, s.fail(statusMessageTooBig, fmt.Sprintf("frame of %d bytes over the limit of %d", h.length, s.maxPayload))
			}
			s.inMessage = !h.fin
			s.payLeft, s.mask, s.maskPos = h.length, h.mask, 0
			s.consume(hn)
		case opText:
			// JSP §7.3: binary messages only. As on the library's path
			// the link closes with PROTOCOL_VIOLATION and sends it in
			// LINK_CLOSE.
			return n, jsperr.New(jsperr.ProtocolViolation, "websocket: text message; JSP/1 uses binary messages (JSP §7.3)")
		case opClose, opPing, opPong:
			if !h.fin || h.length > maxControlPayload {
				return n, s.fail(statusProtocolError, "fragmented or oversized control frame")
			}
			if len(b) < hn+int(h.length) {
				return n, nil // wait for the whole control frame
			}
			var ctl [maxControlPayload]byte
			payload := ctl[:copy(ctl[:], b[hn:hn+int(h.length)])]
			maskBytes(h.mask, 0, payload)
			s.consume(hn + int(h.length))
			if err := s.control(h.opcode, payload); err != nil {
				return n, err
			}
		default:
			return n, s.fail(statusProtocolError, fmt.Sprintf("reserved opcode %#x", h.opcode))
		}
	}
	return n, nil
}

// control handles a control frame (RFC 6455, Section 5.5).
func (s *serverConn) control(op byte, payload []byte) error {
	switch op {
	case opPing:
		return s.writeFrame(opPong, payload, false)
	case opPong:
		return nil
	}
	code := uint16(statusNoStatus)
	switch {
	case len(payload) == 1:
		return s.fail(statusProtocolError, "close frame with a one-byte payload")
	case len(payload) >= 2:
		code = binary.BigEndian.Uint16(payload)
		if !validCloseCode(code) || !utf8.Valid(payload[2:]) {
			return s.fail(statusProtocolError, "invalid close frame")
		}
	}
	// Answer with the same code and end the input (Section 5.5.1).
	var reply []byte
	if code != statusNoStatus {
		reply = appendClosePayload(nil, code, "")
	}
	s.writeFrame(opClose, reply, true)
	if code == statusNormal || code == statusGoingAway {
		return io.EOF
	}
	return fmt.Errorf("websocket: read: peer closed with status %d %q", code, payload[min(2, len(payload)):])
}

// fail sends a close frame with code and returns the error that ends the
// input (RFC 6455, Section 7.1.7: fail the connection).
func (s *serverConn) fail(code uint16, reason string) error {
	s.writeFrame(opClose, appendClosePayload(nil, code, reason), true)
	return fmt.Errorf("websocket: read: %s (closed with status %d)", reason, code)
}

// Write sends p as one binary message (JSP §7.3: whole link frames).
func (s *serverConn) Write(p []byte) (int, error) {
	if err := s.writeFrame(opBinary, p, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// TryWrite sends p as one binary message, as Write does, if it can do so
// without waiting (decision D50): on wss:// with a record feed, when no
// other write holds the connection and the frame fits one TLS record. The
// record then leaves by one non-blocking write(2); what the kernel does
// not take at once is sent by the socket's own goroutine within timeout.
// It returns false, having written nothing, when it cannot.
func (s *serverConn) TryWrite(p []byte, timeout time.Duration) (bool, error) {
	if s.client || s.feed == nil || len(p) > tlsRecordPayload-maxFrameHeader {
		return false, nil
	}
	if !s.wmu.TryLock() {
		return false, nil
	}
	defer s.wmu.Unlock()
	if s.closeSent {
		return true, errors.New("websocket: write: close frame sent")
	}
	bp := recordPool.Get().(*[]byte)
	b := appendFrameHeader((*bp)[:0], frameHeader{fin: true, opcode: opBinary, length: uint64(len(p))})
	b = append(b, p...)
	ok, err := s.feed.TryWrite(s.nc, b, timeout)
	*bp = b[:0]
	recordPool.Put(bp)
	if err != nil {
		return ok, fmt.Errorf("websocket: write: %w", err)
	}
	return ok, nil
}

// writeFrame writes one frame, unmasked from the server and masked from
// the client. After a close frame nothing more goes out.
func (s *serverConn) writeFrame(op byte, p []byte, closing bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closeSent {
		return errors.New("websocket: write: close frame sent")
	}
	if closing {
		s.closeSent = true
	}
	h := frameHeader{fin: true, opcode: op, length: uint64(len(p))}
	var err error
	switch {
	case s.client:
		err = s.writeMaskedLocked(h, p)
	case s.overTLS:
		err = s.writeTLSLocked(h, p)
	case len(p) <= smallWrite:
		bp := writePool.Get().(*[]byte)
		b := append(appendFrameHeader((*bp)[:0], h), p...)
		_, err = s.nc.Write(b)
		*bp = b[:0]
		writePool.Put(bp)
	default:
		var hdr [maxFrameHeader]byte
		bufs := net.Buffers{appendFrameHeader(hdr[:0], h), p}
		_, err = bufs.WriteTo(s.nc)
	}
	if err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// tlsRecordPayload is the most plaintext one TLS record carries (RFC 8446,
// Section 5.1).
const tlsRecordPayload = 16 << 10

var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, tlsRecordPayload); return &b }}

// writeTLSLocked writes a frame on wss:// in as few records and write
// calls as it can (decision D40): the header and the start of the payload
// are copied into one record's worth, the rest of the payload follows in
// whole records, and the feed (when there is one) is corked meanwhile so
// that all of them leave in one write call. A frame of up to a record's payload, as a
// batch of small link frames is, is one record and one call.
func (s *serverConn) writeTLSLocked(h frameHeader, p []byte) error {
	bp := recordPool.Get().(*[]byte)
	b := appendFrameHeader((*bp)[:0], h)
	k := min(len(p), tlsRecordPayload-len(b))
	b = append(b, p[:k]...)
	defer func() {
		*bp = b[:0]
		recordPool.Put(bp)
	}()
	if k == len(p) {
		_, err := s.nc.Write(b)
		return err
	}
	if s.feed != nil {
		s.feed.Cork()
	}
	_, err := s.nc.Write(b)
	if err == nil {
		_, err = s.nc.Write(p[k:])
	}
	if s.feed != nil {
		if uerr := s.feed.Uncork(); err == nil {
			err = uerr
		}
	}
	return err
}

// Watch implements mux.PollSource.
func (s *serverConn) Watch(ready func()) error { return s.src.Watch(ready) }

// Rearm implements mux.PollSource.
func (s *serverConn) Rearm() error {
	s.drained.Store(false)
	return s.src.Rearm()
}

// Close closes the connection at once, as the library's path does: the
// link has exchanged LINK_CLOSE already when it closes gracefully.
func (s *serverConn) Close() error {
	if s.src != nil {
		return s.src.Close()
	}
	if tc, ok := s.nc.(*tls.Conn); ok {
		// Not tls.Conn.Close: its close_notify has a write deadline of
		// its own that a peer that stopped reading turns into a stall.
		return tc.NetConn().Close()
	}
	return s.nc.Close()
}
