package bench

import (
	"context"
	"sync"
	"sync/atomic"
)

// Conn is a client connection of one stack under test, handshake done.
type Conn interface {
	// Bulk sends data to the server as one transfer (a new stream on JSP
	// and QUIC, a length-prefixed message on raw TLS) and returns the
	// server's acknowledgement. With verify the server also hashes what it
	// received.
	Bulk(ctx context.Context, data []byte, verify bool) (Ack, error)
	// Echo sends p and reads the server's answer of the same size into out,
	// which must be at least len(p) long.
	Echo(ctx context.Context, p, out []byte) error
	// Close closes the connection and waits for its goroutines.
	Close() error
}

// Server is the server side of one stack under test.
type Server interface {
	// Addr is the address clients connect to.
	Addr() string
	// Close stops accepting, closes every connection, waits for every
	// goroutine and returns the first error seen while serving.
	Close() error
}

// Stack is one protocol stack under test: how to start its server and how
// to connect to it.
type Stack struct {
	// Name is "jsp" or "raw"; it names the sub-benchmark.
	Name string
	// Listen starts a server on 127.0.0.1 with a free port.
	Listen func(t TLS) (Server, error)
	// Connect dials addr and completes every handshake the stack has.
	// The connection is closed when ctx ends, so that a stuck peer fails
	// an operation instead of hanging it.
	Connect func(ctx context.Context, addr string, t TLS) (Conn, error)
}

// serverBase is the life cycle every server shares: a context that ends on
// Close, a wait group for its goroutines, and the first serving error.
type serverBase struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	closing atomic.Bool
	errMu   sync.Mutex
	err     error // guarded by errMu: the first serving error
}

func newServerBase() serverBase {
	ctx, cancel := context.WithCancel(context.Background())
	return serverBase{ctx: ctx, cancel: cancel}
}

// fail records a serving error unless the server is closing, when
// connections break on purpose.
func (s *serverBase) fail(err error) {
	if err == nil || s.closing.Load() {
		return
	}
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
}

// shutdown ends the context, runs stop (closing the listener), waits for
// every goroutine and returns the first serving error.
func (s *serverBase) shutdown(stop func() error) error {
	s.closing.Store(true)
	s.cancel()
	serr := stop()
	s.wg.Wait()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err != nil {
		return s.err
	}
	return serr
}
