package netpoll

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
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

// Write writes to the connection.
func (s *Socket) Write(p []byte) (int, error) { return s.conn.Write(p) }

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
