package netpoll

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Socket is a connection watched by a Poller: the byte stream under a
// server link that holds no goroutine while it is idle. It reads without
// waiting (ReadAvailable) and writes and closes through the connection it
// wraps, so wrappers of the connection (an admission ticket released on
// Close) keep working. It has the methods transport/mux's PollSource asks
// for, and serves as one directly for plain TCP.
type Socket struct {
	conn net.Conn
	rc   syscall.RawConn
	p    *Poller

	mu  sync.Mutex // guards reg
	reg *Registration

	// wmu is held by every write: Write for its length, a TryHold until
	// WriteHeld has sent everything or its tail's writer is done (D50).
	// It may be unlocked by another goroutine than the one that locked
	// it, which sync.Mutex allows.
	wmu sync.Mutex
	// werr is the failure of a tail's writer, which closed the socket;
	// guarded by wmu. Later writes return it.
	werr error
	// tails counts tails handed to a writer goroutine, for tests and
	// stats.
	tails atomic.Uint64
}

// ErrNotPollable is returned by NewSocket for a connection that does not
// expose its descriptor (it has no SyscallConn method).
var ErrNotPollable = errors.New("netpoll: connection has no pollable descriptor")

// NewSocket prepares c to be watched by p; Watch registers it. c must have
// a SyscallConn method (as *net.TCPConn has, and wrappers that pass it
// on).
func NewSocket(p *Poller, c net.Conn) (*Socket, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrNotPollable, c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netpoll: %T: %w", c, err)
	}
	return &Socket{conn: c, rc: rc, p: p}, nil
}

// Conn returns the wrapped connection.
func (s *Socket) Conn() net.Conn { return s.conn }

// ReadAvailable reads what has arrived without waiting: n > 0 bytes, or 0
// and nil when nothing is there, or io.EOF at the peer's end.
func (s *Socket) ReadAvailable(p []byte) (int, error) { return ReadNonblock(s.rc, p) }

// Read reads, waiting for input as net.Conn.Read does.
func (s *Socket) Read(p []byte) (int, error) { return s.conn.Read(p) }

// Write writes to the connection, after any tail a WriteHeld left.
func (s *Socket) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.werr != nil {
		return 0, s.werr
	}
	return s.conn.Write(p)
}

// TryHold takes the socket's write side without waiting, for a WriteHeld
// that follows: false when a write holds it (a Write in progress, or the
// tail of an earlier WriteHeld not yet sent). The fan-out path uses it to
// write on its own goroutine only when doing so cannot wait (D50).
func (s *Socket) TryHold() bool { return s.wmu.TryLock() }

// WriteHeld writes p, which the caller holds the write side for
// (TryHold), without waiting for the socket: what the kernel takes now
// is sent by one write(2), and a tail it does not take is copied and sent
// by a goroutine that keeps the write side until it is done. A tail not
// sent within timeout fails the socket: it is closed (its reader sees the
// end) and later writes return the error. WriteHeld releases the write
// side, at once or when the tail is sent. It returns an error only for a
// failure of the immediate write, which leaves the socket unchanged but
// for the bytes it may have sent; the caller ends the link.
func (s *Socket) WriteHeld(p []byte, timeout time.Duration) error {
	if s.werr != nil {
		s.wmu.Unlock()
		return s.werr
	}
	n, err := s.writeNow(p)
	if err != nil || n == len(p) {
		s.wmu.Unlock()
		return err
	}
	tail := append([]byte(nil), p[n:]...)
	s.tails.Add(1)
	go s.writeTail(tail, timeout)
	return nil
}

// writeNow is one non-blocking write(2) of p (retried on EINTR): it
// returns how much the kernel took, 0 when the socket buffer is full.
func (s *Socket) writeNow(p []byte) (int, error) {
	var n int
	var werr error
	err := s.rc.Write(func(fd uintptr) bool {
		n, werr = writeFD(fd, p)
		return true // never wait in the runtime's poller
	})
	if err == nil && werr != nil && werr != errWouldBlock {
		err = werr
	}
	if err != nil {
		return 0, fmt.Errorf("netpoll: write: %w", err)
	}
	return n, nil
}

// writeTail sends the rest of a WriteHeld and releases the write side.
// It is the Socket's goroutine: the timeout, or Close, ends it.
func (s *Socket) writeTail(tail []byte, timeout time.Duration) {
	defer s.wmu.Unlock()
	_ = s.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := s.conn.Write(tail)
	if err == nil {
		_ = s.conn.SetWriteDeadline(time.Time{})
		return
	}
	s.werr = fmt.Errorf("netpoll: write of a held tail: %w", err)
	_ = s.Close()
}

// Tails returns how many WriteHeld calls left a tail to a goroutine.
func (s *Socket) Tails() uint64 { return s.tails.Load() }

// Watch registers ready with the poller, armed. It may be called once.
func (s *Socket) Watch(ready func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg != nil {
		return errors.New("netpoll: socket watched twice")
	}
	r, err := s.p.Register(s.rc, ready)
	if err != nil {
		return err
	}
	s.reg = r
	return nil
}

// Rearm asks for the next call of the Watch callback.
func (s *Socket) Rearm() error {
	s.mu.Lock()
	r := s.reg
	s.mu.Unlock()
	if r == nil {
		return ErrClosed
	}
	return r.Arm()
}

// Close deregisters the socket, then closes the connection.
func (s *Socket) Close() error {
	s.mu.Lock()
	r := s.reg
	s.mu.Unlock()
	if r != nil {
		r.Deregister()
	}
	return s.conn.Close()
}

// CloseWrite half-closes the connection if it can.
func (s *Socket) CloseWrite() error {
	if cw, ok := s.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// LocalAddr returns the connection's local address.
func (s *Socket) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// RemoteAddr returns the connection's remote address.
func (s *Socket) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }
