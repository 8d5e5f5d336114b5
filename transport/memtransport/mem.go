// Package memtransport is an in-memory JSP transport for fast tests: two
// ends of a buffered in-memory pipe joined by the link layer of package
// mux, exactly as a TLS-over-TCP connection is, minus the sockets and TLS.
//
// Use [NewPair] for a connected client and server, or [Listen] and [Dial]
// with a name in a process-wide table when code under test dials by
// address. [Pipe] gives the raw byte streams, for tests that speak link
// frames by hand.
package memtransport

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
)

// DefaultBacklog caps the dialed connections a Listener holds before Accept
// takes them; Dial waits while it is full.
const DefaultBacklog = 64

func memConfig(cfg mux.Config, local, remote Addr) mux.Config {
	cfg.Kind = transport.KindMem
	if cfg.LocalAddr == nil {
		cfg.LocalAddr = local
	}
	if cfg.RemoteAddr == nil {
		cfg.RemoteAddr = remote
	}
	return cfg
}

// NewPair returns a connected client and server link over a Pipe.
func NewPair(cfg mux.Config) (client, server *mux.Conn) {
	a, b := Pipe(0)
	client = mux.New(a, memConfig(cfg, "mem-client", "mem-server"), true)
	server = mux.New(b, memConfig(cfg, "mem-server", "mem-client"), false)
	return client, server
}

var (
	registryMu sync.Mutex
	registry   = map[string]*Listener{}
)

// Listener accepts in-memory connections dialed by name. It implements
// transport.Listener.
type Listener struct {
	name    string
	cfg     mux.Config
	backlog chan *PipeEnd
	done    chan struct{}
	once    sync.Once
}

var _ transport.Listener = (*Listener)(nil)

// Listen registers a listener under name. The name must be unused.
func Listen(name string, cfg mux.Config) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memtransport: listen %q: %w", name, err)
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, ok := registry[name]; ok {
		return nil, fmt.Errorf("memtransport: listen %q: name in use", name)
	}
	l := &Listener{name: name, cfg: cfg, backlog: make(chan *PipeEnd, DefaultBacklog), done: make(chan struct{})}
	registry[name] = l
	return l, nil
}

// Accept waits for the next dialed connection.
func (l *Listener) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case <-l.done:
		return nil, fmt.Errorf("memtransport: accept on %q: %w", l.name, transport.ErrClosed)
	default:
	}
	select {
	case end := <-l.backlog:
		return mux.New(end, memConfig(l.cfg, Addr(l.name), "mem-client"), false), nil
	case <-l.done:
		return nil, fmt.Errorf("memtransport: accept on %q: %w", l.name, transport.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("memtransport: accept on %q: %w", l.name, ctx.Err())
	}
}

// Addr returns the listener's name as an address.
func (l *Listener) Addr() net.Addr { return Addr(l.name) }

// Close unregisters the listener and refuses the connections not yet
// accepted; accepted ones stay open.
func (l *Listener) Close() error {
	l.once.Do(func() {
		registryMu.Lock()
		delete(registry, l.name)
		registryMu.Unlock()
		close(l.done)
		for {
			select {
			case end := <-l.backlog:
				end.Close()
			default:
				return
			}
		}
	})
	return nil
}

// Dial connects to the listener registered under name.
func Dial(ctx context.Context, name string, cfg mux.Config) (transport.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("memtransport: dial %q: %w", name, err)
	}
	registryMu.Lock()
	l := registry[name]
	registryMu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("memtransport: dial %q: no listener", name)
	}
	a, b := Pipe(0)
	select {
	case l.backlog <- b:
		select {
		case <-l.done:
			// Close raced with this dial and may have drained the backlog
			// before b arrived: refuse rather than leave b unowned.
			b.Close()
			a.Close()
			return nil, fmt.Errorf("memtransport: dial %q: %w", name, transport.ErrClosed)
		default:
		}
	case <-l.done:
		return nil, fmt.Errorf("memtransport: dial %q: %w", name, transport.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("memtransport: dial %q: %w", name, ctx.Err())
	}
	return mux.New(a, memConfig(cfg, "mem-client", Addr(name)), true), nil
}
