// Package netpoll tells a server when an idle connection has input, so
// that the connection needs no goroutine blocked in Read while it is quiet
// (decision D33).
//
// The flow for one connection:
//
//	Register(raw, onReadable)  the socket joins the poller, armed
//	... input arrives ...      one event; the poller starts onReadable on a
//	                           fresh goroutine and does not watch the socket
//	                           again until it is re-armed
//	onReadable                 reads with ReadNonblock until it reports
//	                           nothing more (EAGAIN), then calls Arm
//	Deregister                 before the socket is closed
//
// On Linux a Poller is an epoll instance watched by a few goroutines
// (Config.Waiters) in epoll_wait; each socket is registered level-triggered
// with EPOLLONESHOT, so one burst of input yields one callback, and input
// that arrives between the last read and Arm fires at once instead of being
// missed. The event carries a registration number, never the descriptor, so
// an event that is delivered after Deregister, or for a descriptor number
// the kernel has handed to a new socket since, finds no registration and is
// dropped. On other Unix systems (or with the build tag jspnoepoll) every
// armed registration waits on a goroutine of its own in the Go runtime's
// poller: the same contract, without the memory saving. Elsewhere New
// fails with ErrUnsupported.
package netpoll

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"
)

// ErrUnsupported is returned by New where sockets cannot be polled
// (platforms without Unix sockets); callers then read with a goroutine.
var ErrUnsupported = errors.New("netpoll: not supported on this platform")

// ErrClosed is returned by Register once the poller has shut down, and by
// Arm after Deregister.
var ErrClosed = errors.New("netpoll: closed")

// DefaultWaiters is the number of goroutines waiting in epoll_wait when
// Config.Waiters is zero: an event only starts a goroutine, so one waiter
// keeps up with many thousands of events a second.
const DefaultWaiters = 1

// DefaultMaxEvents is how many events one wait returns at most when
// Config.MaxEvents is zero.
const DefaultMaxEvents = 128

// Config tunes a Poller. The zero value is valid.
type Config struct {
	// Waiters is the number of goroutines waiting for events. Zero means
	// DefaultWaiters.
	Waiters int
	// MaxEvents caps the events one wait returns. Zero means
	// DefaultMaxEvents.
	MaxEvents int
}

func (c *Config) validate() error {
	if c.Waiters < 0 || c.MaxEvents < 0 {
		return errors.New("netpoll: negative limit")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Waiters == 0 {
		c.Waiters = DefaultWaiters
	}
	if c.MaxEvents == 0 {
		c.MaxEvents = DefaultMaxEvents
	}
}

// Registration is one socket in a Poller.
type Registration struct {
	p  *Poller
	id uint64
	rc syscall.RawConn
	fn func()

	mu      sync.Mutex // guards dead and waiting
	dead    bool
	waiting bool // the portable poller's waiter runs
}

// Poller watches registered sockets. Its goroutines run while it holds a
// reference: one from New, dropped by Close, and one per registration,
// dropped by Deregister; after the last one they end and the Poller
// cannot be used again. So a listener can Close its Poller while the
// connections it accepted stay served.
type Poller struct {
	cfg Config

	mu     sync.Mutex
	refs   int
	closed bool // Close was called
	down   bool // refs reached zero: the goroutines have been told to end
	nextID uint64
	regs   map[uint64]*Registration

	impl impl
}

// New starts a Poller.
func New(cfg Config) (*Poller, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Poller{cfg: cfg, refs: 1, regs: make(map[uint64]*Registration)}
	if err := p.impl.start(p); err != nil {
		return nil, fmt.Errorf("netpoll: start: %w", err)
	}
	return p, nil
}

// Register adds the socket behind rc, armed: fn will run on a fresh
// goroutine when the socket has input (or its peer closed, or it failed).
// After each run fn's owner reads until ReadNonblock reports nothing and
// then calls Arm for the next one. fn never runs twice for one arming, but
// it may run when nothing is left to read (for example, when the owner
// has already read what the event announced); owners tolerate that.
func (p *Poller) Register(rc syscall.RawConn, fn func()) (*Registration, error) {
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	p.nextID++
	// Number 0 is the poller's own wake-up pipe.
	r := &Registration{p: p, id: p.nextID, rc: rc, fn: fn}
	p.regs[r.id] = r
	p.refs++
	p.mu.Unlock()
	if err := p.impl.add(r); err != nil {
		p.mu.Lock()
		delete(p.regs, r.id)
		p.mu.Unlock()
		p.release()
		return nil, fmt.Errorf("netpoll: register: %w", err)
	}
	return r, nil
}

// Arm asks for the next callback. Call it after ReadNonblock has reported
// that nothing is left; input that arrived in between fires at once.
func (r *Registration) Arm() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead {
		return ErrClosed
	}
	if err := r.p.impl.arm(r); err != nil {
		return fmt.Errorf("netpoll: arm: %w", err)
	}
	return nil
}

// Deregister removes the socket; call it before closing the socket. No
// callback starts after it returns (one already started may still be
// running). Later calls do nothing.
func (r *Registration) Deregister() {
	r.mu.Lock()
	if r.dead {
		r.mu.Unlock()
		return
	}
	r.dead = true
	r.p.impl.del(r)
	r.mu.Unlock()
	r.p.mu.Lock()
	delete(r.p.regs, r.id)
	r.p.mu.Unlock()
	r.p.release()
}

// dispatch runs the callback of registration id, unless it is gone.
func (p *Poller) dispatch(id uint64) {
	p.mu.Lock()
	r := p.regs[id]
	p.mu.Unlock()
	if r == nil {
		return // a late event for a socket deregistered since
	}
	r.mu.Lock()
	dead := r.dead
	r.mu.Unlock()
	if !dead {
		go r.fn()
	}
}

// Close drops the reference New gave: the Poller takes no more
// registrations once the existing ones are gone, and its goroutines end
// with the last Deregister (at once if there is none). Later calls do
// nothing.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.release()
	return nil
}

// Registrations returns how many sockets are registered.
func (p *Poller) Registrations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.regs)
}

// release drops one reference and stops the Poller after the last.
func (p *Poller) release() {
	p.mu.Lock()
	p.refs--
	stop := p.refs == 0 && !p.down
	if stop {
		p.down = true
	}
	p.mu.Unlock()
	if stop {
		p.impl.stop()
	}
}

// nbRead is the state of one ReadNonblock, pooled with the function that
// RawConn.Control runs for it.
type nbRead struct {
	p   []byte
	n   int
	err error
	fn  func(fd uintptr)
}

var nbReads = sync.Pool{New: func() any {
	r := &nbRead{}
	r.fn = func(fd uintptr) { r.n, r.err = readFD(fd, r.p) }
	return r
}}

// ReadNonblock reads what the socket behind rc holds into p without
// waiting: it returns n > 0 bytes, or 0 and nil when nothing is there now
// (EAGAIN), or io.EOF when the peer has closed its side, or the error.
func ReadNonblock(rc syscall.RawConn, p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	// Control, not Read: it holds a reference to the descriptor but not
	// the connection's read lock, which the portable poller's waiter
	// holds while it waits, and it never parks this goroutine in the
	// runtime's poller, which is the wait this package avoids. The
	// function it runs comes with a pooled state, so a read allocates
	// nothing (a closure over n and err would be three allocations).
	r := nbReads.Get().(*nbRead)
	r.p = p
	err := rc.Control(r.fn)
	n, rerr := r.n, r.err
	r.p, r.n, r.err = nil, 0, nil
	nbReads.Put(r)
	switch {
	case err != nil:
		return 0, err
	case rerr == errWouldBlock:
		return 0, nil
	case rerr != nil:
		return 0, rerr
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
