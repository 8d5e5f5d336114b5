package tcptls

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
)

// Accepted connections are read without a goroutine while idle (decision
// D33): the socket is watched by the listener's netpoll.Poller and the
// link is a mux.NewPolled link over tlsSource. crypto/tls cannot read
// without blocking, so it sits on a Feed instead of the socket: the
// feed hands crypto/tls one whole TLS record at a time, and the link asks
// crypto/tls for plaintext only while a whole record is buffered, so the
// Read never waits for the network.

// TLS record layout (RFC 8446, Section 5.1): type (1) | legacy version
// (2) | length (2) | fragment. A fragment is at most 2^14 + 256 bytes.
const (
	recordHeaderLen = 5
	maxRecordLen    = recordHeaderLen + 1<<14 + 256
)

// feedBuf is the capacity of a feed buffer: a whole record and room to
// read on. Buffers come from feedPool while bytes wait and go back when
// the feed is empty, so an idle connection holds none.
const feedBuf = maxRecordLen + 4<<10

var feedPool = sync.Pool{New: func() any { b := make([]byte, 0, feedBuf); return &b }}

// Feed is the net.Conn under a server tls.Conn. Its buffer is used by
// one goroutine at a time: the handshake, then the link's pump (a pump
// run is never concurrent with another). Write, Close and the deadlines go
// straight to the socket, except while the output is corked (Cork).
//
// tcptls builds one per accepted connection; the WebSocket transport
// builds one under each TLS connection its HTTP server accepts and, once
// the connection is upgraded, switches it to non-blocking reads
// (SetNonblocking, feed.go).
type Feed struct {
	sock *netpoll.Socket

	bp       *[]byte // received bytes not yet handed to crypto/tls, from off; nil when empty
	off      int
	recLeft  int   // bytes of the record being handed out that crypto/tls has not taken
	err      error // the socket's read error, reported after the bytes before it
	nonblock bool  // Read returns ErrWouldBlock instead of waiting (SetNonblocking)
	// drained is set in non-blocking mode when a read of the socket came
	// back short, and cleared by Rearm; see fill.
	drained atomic.Bool

	// wmu guards the corked output; see Cork.
	wmu  sync.Mutex
	cork *[]byte // output held back until Uncork; nil when not corked
}

func (f *Feed) buffered() []byte {
	if f.bp == nil {
		return nil
	}
	return (*f.bp)[f.off:]
}

// completeRecord reports whether a whole record waits at the front.
func (f *Feed) completeRecord() bool {
	b := f.buffered()
	return len(b) >= recordHeaderLen && len(b) >= recordHeaderLen+int(binary.BigEndian.Uint16(b[3:5]))
}

// pending reports whether crypto/tls can make progress from the feed
// without the network: a whole record, or the rest of one it has begun.
func (f *Feed) pending() bool { return f.recLeft > 0 || f.completeRecord() }

// room returns the buffer with free space for a read, compacted.
func (f *Feed) room() []byte {
	if f.bp == nil {
		f.bp = feedPool.Get().(*[]byte)
		*f.bp = (*f.bp)[:0]
	}
	b := *f.bp
	if f.off > 0 {
		n := copy(b, b[f.off:])
		b, f.off = b[:n], 0
	}
	if cap(b)-len(b) < 1<<10 {
		// Only a peer that sends records over the TLS limit gets here;
		// crypto/tls rejects them once handed over.
		nb := make([]byte, len(b), 2*cap(b))
		copy(nb, b)
		b = nb
	}
	*f.bp = b
	return b
}

// fill reads from the socket into the buffer, waiting if wait is set.
// It returns the bytes read. The end of input or a failure is kept for
// Read to report after the bytes before it; a timeout (a read deadline,
// as net/http sets one to stop its background read before a hijack) is
// returned and not kept, so that the connection stays usable.
func (f *Feed) fill(wait bool) (int, error) {
	b := f.room()
	var n int
	var err error
	switch {
	case wait:
		n, err = f.sock.Read(b[len(b):cap(b)])
	case f.nonblock && f.drained.Load():
		// A read came back short since the socket was re-armed: the
		// socket had nothing more then, and what arrived since will fire
		// the poller again once re-armed (level-triggered), so another
		// read now would most likely only cost a system call that says
		// EAGAIN.
	default:
		free := cap(b) - len(b)
		n, err = f.sock.ReadAvailable(b[len(b):cap(b)])
		if f.nonblock && n < free {
			f.drained.Store(true)
		}
	}
	*f.bp = b[:len(b)+n]
	f.releaseIfEmpty()
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return n, err
		}
		if f.err == nil {
			f.err = err
		}
	}
	return n, nil
}

func (f *Feed) releaseIfEmpty() {
	if f.bp != nil && len(*f.bp) == f.off {
		if cap(*f.bp) == feedBuf {
			*f.bp = (*f.bp)[:0]
			feedPool.Put(f.bp)
		}
		f.bp, f.off = nil, 0
	}
}

// Read hands crypto/tls bytes of one record at most, never any past its
// end, so crypto/tls holds nothing beyond the record it works on. It waits
// for the socket when it has nothing to hand: during the handshake, and in
// the rare case that crypto/tls wants a record after a non-data one (a
// KeyUpdate) that has not arrived yet. The header goes over as soon as it
// is here, so that crypto/tls refuses a peer that does not speak TLS
// without waiting for the length that peer's bytes seem to announce.
func (f *Feed) Read(p []byte) (int, error) {
	if f.nonblock {
		return f.readNonblock(p)
	}
	if f.recLeft == 0 {
		for len(f.buffered()) < recordHeaderLen {
			if f.err != nil {
				return f.tail(p)
			}
			if _, err := f.fill(true); err != nil {
				return 0, err
			}
		}
		b := f.buffered()
		f.recLeft = recordHeaderLen + int(binary.BigEndian.Uint16(b[3:5]))
	}
	for len(f.buffered()) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if _, err := f.fill(true); err != nil {
			return 0, err
		}
	}
	return f.handOut(p), nil
}

// handOut copies buffered bytes of the current record into p.
func (f *Feed) handOut(p []byte) int {
	n := copy(p[:min(len(p), f.recLeft)], f.buffered())
	f.off += n
	f.recLeft -= n
	f.releaseIfEmpty()
	return n
}

// tail hands over a torn record header at the end of input, then the
// error, so crypto/tls reports the end as it would from the socket.
func (f *Feed) tail(p []byte) (int, error) {
	if b := f.buffered(); len(b) > 0 {
		n := copy(p, b)
		f.off += n
		f.releaseIfEmpty()
		return n, nil
	}
	return 0, f.err
}

// Close closes the socket.
func (f *Feed) Close() error { return f.sock.Close() }

// LocalAddr returns the socket's local address.
func (f *Feed) LocalAddr() net.Addr { return f.sock.LocalAddr() }

// RemoteAddr returns the socket's remote address.
func (f *Feed) RemoteAddr() net.Addr { return f.sock.RemoteAddr() }

// SetDeadline sets the connection's deadlines; a read deadline bounds the
// waits of Read in blocking mode.
func (f *Feed) SetDeadline(t time.Time) error { return f.sock.Conn().SetDeadline(t) }

// SetReadDeadline sets the connection's read deadline.
func (f *Feed) SetReadDeadline(t time.Time) error { return f.sock.Conn().SetReadDeadline(t) }

// SetWriteDeadline sets the connection's write deadline.
func (f *Feed) SetWriteDeadline(t time.Time) error { return f.sock.Conn().SetWriteDeadline(t) }

// tlsSource is the mux.PollSource of an accepted connection.
type tlsSource struct {
	*tls.Conn
	feed *Feed
}

var _ mux.PollSource = (*tlsSource)(nil)

// ReadAvailable returns plaintext from whole buffered records, reading the
// socket without waiting when none is buffered. p holds a whole record's
// plaintext (mux.MinPollRead), so each tls.Conn.Read takes exactly one
// record and leaves nothing behind in crypto/tls.
func (s *tlsSource) ReadAvailable(p []byte) (int, error) {
	f := s.feed
	for {
		if f.pending() || (f.err != nil && f.recLeft == 0) {
			// With an error pending, crypto/tls reads it from the feed and
			// reports it as it would from the socket (close_notify is
			// io.EOF, a bare end io.ErrUnexpectedEOF).
			n, err := s.Conn.Read(p)
			if n > 0 || err != nil {
				return n, err
			}
			continue
		}
		if n, err := f.fill(false); err != nil {
			return 0, err
		} else if n == 0 && f.err == nil {
			return 0, nil
		}
	}
}

// TryWrite writes p through crypto/tls if that cannot wait (decision
// D50, Feed.TryWrite).
func (s *tlsSource) TryWrite(p []byte, timeout time.Duration) (bool, error) {
	ok, err := s.feed.TryWrite(s.Conn, p, timeout)
	if err != nil {
		return ok, fmt.Errorf("tcptls: write: %w", err)
	}
	return ok, nil
}

// Watch implements mux.PollSource.
func (s *tlsSource) Watch(ready func()) error { return s.feed.sock.Watch(ready) }

// Rearm implements mux.PollSource.
func (s *tlsSource) Rearm() error { return s.feed.sock.Rearm() }

// Close closes the socket directly, as tlsStream does.
func (s *tlsSource) Close() error { return s.feed.sock.Close() }
