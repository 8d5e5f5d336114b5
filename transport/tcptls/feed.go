package tcptls

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/transport/netpoll"
)

// The Feed's API for a server that runs crypto/tls over a polled socket
// outside this package: the WebSocket transport's wss:// listener, whose
// HTTP server does the TLS handshake and reads the upgrade request through
// the Feed in blocking mode, and whose upgraded connections then read it
// without waiting (decision D40).

// NewFeed returns a Feed that reads sock, waiting in Read for input until
// SetNonblocking is called.
func NewFeed(sock *netpoll.Socket) *Feed { return &Feed{sock: sock} }

// ErrWouldBlock is returned by the Read of a non-blocking Feed that has
// no whole record to hand over. It is a net.Error whose Timeout and
// Temporary report true: crypto/tls keeps no error state for such an
// error, so the next Read of the tls.Conn picks up where this one
// stopped.
var ErrWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tcptls: no whole TLS record received yet" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// SetNonblocking makes Read return ErrWouldBlock instead of waiting for
// the socket, and hand crypto/tls only whole records, so that a tls.Conn
// over the Feed can be read by a poller's callback (tls.Conn.Read returns
// ErrWouldBlock when nothing is there) and never holds a torn record. Call
// it from the goroutine that reads, once no other Read is in progress
// (after net/http's Hijack, which ends the server's background read).
func (f *Feed) SetNonblocking() { f.nonblock = true }

// Socket returns the socket the Feed reads, for Watch and Close.
func (f *Feed) Socket() *netpoll.Socket { return f.sock }

// Rearm asks the poller for the next callback of the socket. In
// non-blocking mode a Read after a short read of the socket reports
// ErrWouldBlock without reading again until Rearm: the owner re-arms
// after ErrWouldBlock, and input that arrived in between fires at once.
func (f *Feed) Rearm() error {
	f.drained.Store(false)
	return f.sock.Rearm()
}

// NetConn returns the connection under the socket, as tls.Conn.NetConn
// does for its own, so that a wrapper of the accepted connection (an
// admission ticket) can be found through tls.Conn.NetConn.
func (f *Feed) NetConn() net.Conn { return f.sock.Conn() }

// Ready reports, in non-blocking mode, whether a Read would hand
// crypto/tls something now: a whole record (or the header of an
// oversized one), the rest of one, or the end of input. With nothing
// buffered it reads the socket without waiting first, unless a read came
// back short since the last Rearm. A caller that knows crypto/tls holds
// no plaintext skips a tls.Conn.Read that could only fail with
// ErrWouldBlock.
func (f *Feed) Ready() bool {
	for {
		if f.recLeft > 0 || f.err != nil || f.handable() {
			return true
		}
		n, err := f.fill(false)
		if err != nil {
			return true // Read reports it
		}
		if n == 0 {
			return f.err != nil
		}
	}
}

// handable reports whether a record can go over in non-blocking mode:
// it is whole, or its length is over the TLS limit.
func (f *Feed) handable() bool {
	b := f.buffered()
	return f.completeRecord() || len(b) >= recordHeaderLen && int(binary.BigEndian.Uint16(b[3:5])) > maxRecordLen-recordHeaderLen
}

// readNonblock is Read in non-blocking mode. A record's header goes over
// once the whole record is buffered, or at once when its length is over
// the TLS limit, so that crypto/tls refuses it without this Feed
// buffering what the peer announces.
func (f *Feed) readNonblock(p []byte) (int, error) {
	if f.recLeft == 0 {
		for !f.handable() {
			if f.err != nil {
				return f.tail(p)
			}
			n, err := f.fill(false)
			if err != nil {
				return 0, err
			}
			if n == 0 && f.err == nil {
				return 0, ErrWouldBlock
			}
		}
		b := f.buffered()
		f.recLeft = recordHeaderLen + int(binary.BigEndian.Uint16(b[3:5]))
	}
	for len(f.buffered()) == 0 {
		// Only the rest of an oversized record gets here: crypto/tls has
		// refused it already and asks for nothing more.
		if f.err != nil {
			return 0, f.err
		}
		n, err := f.fill(false)
		if err != nil {
			return 0, err
		}
		if n == 0 && f.err == nil {
			return 0, ErrWouldBlock
		}
	}
	return f.handOut(p), nil
}

// corkBuf is the capacity of a pooled cork buffer: a link batch of
// mux.DefaultMaxWriteBatch and the frame that crosses it, sealed into
// records.
const corkBuf = 96 << 10

var corkPool = sync.Pool{New: func() any { b := make([]byte, 0, corkBuf); return &b }}

// Cork holds back what crypto/tls writes until Uncork, which sends it with
// one write call. crypto/tls writes each record with a call of its own,
// so a message of several records would otherwise cost several system
// calls. Writes from crypto/tls on other goroutines in between (a
// KeyUpdate reply) are held back too, in the order crypto/tls made them.
func (f *Feed) Cork() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.cork == nil {
		f.cork = corkPool.Get().(*[]byte)
		*f.cork = (*f.cork)[:0]
	}
}

// Uncork sends what was held back since Cork, and writes go straight to
// the socket again.
func (f *Feed) Uncork() error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	bp := f.cork
	if bp == nil {
		return nil
	}
	f.cork = nil
	_, err := f.sock.Write(*bp)
	if cap(*bp) == corkBuf {
		*bp = (*bp)[:0]
		corkPool.Put(bp)
	}
	return err
}

// Write writes to the socket, or holds p back while the Feed is corked.
// It holds the Feed's write lock while it writes, so that TryCork, which
// only tries that lock, never waits behind it.
func (f *Feed) Write(p []byte) (int, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if f.cork != nil {
		*f.cork = append(*f.cork, p...)
		return len(p), nil
	}
	return f.sock.Write(p)
}

// TryCork is Cork for a write that must not wait (decision D50): it
// corks the Feed and takes the socket's write side only when neither is
// busy, and reports false, doing nothing, when a write holds either. On
// true the caller writes through crypto/tls, which the cork holds back,
// and must then call UncorkHeld.
func (f *Feed) TryCork() bool {
	if !f.wmu.TryLock() {
		return false
	}
	defer f.wmu.Unlock()
	if f.cork != nil || !f.sock.TryHold() {
		return false
	}
	f.cork = corkPool.Get().(*[]byte)
	*f.cork = (*f.cork)[:0]
	return true
}

// TryWrite writes p through w, the crypto/tls connection over this Feed,
// if that cannot wait (decision D50): TryCork, the write into the cork,
// then UncorkHeld. It returns false, having written nothing, when another
// write holds the Feed or the socket; an error means the connection is
// over.
func (f *Feed) TryWrite(w io.Writer, p []byte, timeout time.Duration) (bool, error) {
	if !f.TryCork() {
		return false, nil
	}
	_, err := w.Write(p)
	if uerr := f.UncorkHeld(timeout); err == nil {
		err = uerr
	}
	return true, err
}

// UncorkHeld sends what was held back since TryCork without waiting for
// the socket (netpoll.Socket.WriteHeld): a tail the kernel does not take
// now is sent by the socket's own goroutine within timeout, and later
// writes wait for it.
func (f *Feed) UncorkHeld(timeout time.Duration) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	bp := f.cork
	f.cork = nil
	err := f.sock.WriteHeld(*bp, timeout)
	if cap(*bp) == corkBuf {
		*bp = (*bp)[:0]
		corkPool.Put(bp)
	}
	return err
}
