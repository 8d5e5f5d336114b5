package quic

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	quicgo "github.com/quic-go/quic-go"
)

// Errors of Migrate.
var (
	// ErrMigrationClosed: the connection has ended.
	ErrMigrationClosed = errors.New("quic: migrate: connection closed")
	// ErrNotMigratable: the connection was not dialed with
	// Config.Migratable, or was accepted (only the dialing side migrates).
	ErrNotMigratable = errors.New("quic: migrate: connection not dialed with Config.Migratable")
)

// socket is a UDP socket one Conn sends from, with the quic-go transport
// that reads it.
type socket struct {
	tr *quicgo.Transport
	// pc wraps the socket; every socket of a migratable Conn is wrapped,
	// because quic-go cannot switch between a socket it drives with OOB
	// data (ECN) and one without.
	pc *retirableConn
	// owned is false for the caller's Config.PacketConn, which the Conn
	// never closes.
	owned bool
}

// close stops the transport and closes an owned socket. The socket goes
// first: a retired socket's reader only returns once the socket is closed,
// and Transport.Close waits for that reader.
func (s *socket) close() {
	if s.owned {
		_ = s.pc.Close()
	}
	_ = s.tr.Close()
}

// Migrate moves the connection to the UDP socket pc without a new
// handshake (RFC 9000 §9): it probes the new path with PATH_CHALLENGE until
// the server answers or ctx ends, then switches sending to it. The Conn
// takes ownership of pc and closes it when the connection closes or moves
// off it. The socket the connection moved off is closed at once; a socket
// the caller supplied through Config.PacketConn is left to the caller.
//
// Only a connection dialed with Config.Migratable can migrate
// (ErrNotMigratable otherwise), and only to a server that allows it. On
// failure the connection stays on its current path and pc is closed.
func (c *Conn) Migrate(ctx context.Context, pc net.PacketConn) error {
	c.migrateSerial.Lock()
	defer c.migrateSerial.Unlock()
	// Wrapped so that it can be retired later without ending the
	// connection, see Config.Migratable.
	s := &socket{pc: newRetirableConn(pc), owned: true}
	s.tr = &quicgo.Transport{Conn: s.pc}
	fail := func(err error) error {
		s.close()
		return fmt.Errorf("quic: migrate to %s: %w", pc.LocalAddr(), err)
	}
	if !c.migratable {
		return fail(ErrNotMigratable)
	}
	c.migrateMu.Lock()
	closed := c.closed
	c.migrateMu.Unlock()
	if closed {
		return fail(ErrMigrationClosed)
	}
	path, err := c.qc.AddPath(s.tr)
	if err != nil {
		return fail(err)
	}
	// quic-go's Probe does not watch the connection: end it when the
	// connection ends, so that Migrate never outlives it.
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(c.qc.Context(), func() { cancel(ErrMigrationClosed) })
	defer stop()
	if err := path.Probe(pctx); err != nil {
		_ = path.Close()
		return fail(err)
	}
	if err := path.Switch(); err != nil {
		_ = path.Close()
		return fail(err)
	}
	c.migrateMu.Lock()
	defer c.migrateMu.Unlock()
	if c.closed {
		// Closed while probing; closeSockets has run without s.
		s.close()
		return fmt.Errorf("quic: migrate to %s: %w", pc.LocalAddr(), ErrMigrationClosed)
	}
	old := c.current
	c.current = s
	c.sockets = append(c.sockets, s)
	if old != nil && old.owned {
		// The connection no longer sends on the old path; its socket
		// goes away as an interface would, while quic-go's transport
		// for it stays registered (closing that transport would end the
		// connection) and is closed with the connection.
		old.pc.retire()
	}
	return nil
}

// closeSockets closes every socket the Conn owns, after the connection has
// closed.
func (c *Conn) closeSockets() {
	c.migrateMu.Lock()
	defer c.migrateMu.Unlock()
	c.closed = true
	for _, s := range c.sockets {
		s.close()
	}
	c.sockets = nil
	c.current = nil
}

// retirableConn is a UDP socket that can be closed under a running quic-go
// transport without ending its connections: once retired, the real socket
// is closed, reads block until Close, and writes are dropped, exactly what
// a vanished interface looks like to QUIC. It hides the socket's
// ReadMsgUDP/SyscallConn on purpose, see Config.Migratable.
type retirableConn struct {
	net.PacketConn

	mu       sync.Mutex
	retired  bool          // guarded by mu
	closedCh chan struct{} // closed by Close
	once     sync.Once
}

func newRetirableConn(pc net.PacketConn) *retirableConn {
	return &retirableConn{PacketConn: pc, closedCh: make(chan struct{})}
}

// retire closes the real socket; the wrapper stays usable until Close.
func (r *retirableConn) retire() {
	r.mu.Lock()
	r.retired = true
	r.mu.Unlock()
	_ = r.PacketConn.Close()
}

func (r *retirableConn) isRetired() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retired
}

// ReadFrom reads from the socket; after retire, it blocks until Close.
func (r *retirableConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := r.PacketConn.ReadFrom(b)
	if err != nil && r.isRetired() {
		<-r.closedCh
		return 0, nil, net.ErrClosed
	}
	return n, addr, err
}

// WriteTo writes to the socket; after retire, it drops b.
func (r *retirableConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if r.isRetired() {
		return len(b), nil
	}
	n, err := r.PacketConn.WriteTo(b, addr)
	if err != nil && r.isRetired() {
		return len(b), nil
	}
	return n, err
}

// SetReadDeadline forwards to a live socket; a retired one has none.
func (r *retirableConn) SetReadDeadline(t time.Time) error {
	if r.isRetired() {
		return nil
	}
	return r.PacketConn.SetReadDeadline(t)
}

// SetReadBuffer forwards to the socket, so that quic-go can size it.
func (r *retirableConn) SetReadBuffer(n int) error {
	if s, ok := r.PacketConn.(interface{ SetReadBuffer(int) error }); ok {
		return s.SetReadBuffer(n)
	}
	return errors.New("quic: socket has no SetReadBuffer")
}

// SetWriteBuffer forwards to the socket, so that quic-go can size it.
func (r *retirableConn) SetWriteBuffer(n int) error {
	if s, ok := r.PacketConn.(interface{ SetWriteBuffer(int) error }); ok {
		return s.SetWriteBuffer(n)
	}
	return errors.New("quic: socket has no SetWriteBuffer")
}

// Close closes the socket (again, if retired) and releases a blocked read.
func (r *retirableConn) Close() error {
	r.once.Do(func() { close(r.closedCh) })
	err := r.PacketConn.Close()
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
