// Package tcptls is the JSP transport over TLS 1.3 on TCP (JSP §7.2, §7.4),
// used where UDP is blocked. Streams, flow control and datagrams come from
// JSP's own link layer, package mux, running over the TLS connection.
//
// Both ends insist on TLS 1.3 and on the ALPN protocol "jsp/1" (JSP §8.1):
// a peer that offers anything else fails the handshake. The listener runs
// each handshake on its own goroutine under a timeout and a cap on
// handshakes in flight, so a client that connects and sends nothing, or
// sends something that is not TLS, costs one goroutine for at most
// HandshakeTimeout and never delays other clients.
package tcptls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
)

// Defaults for ListenConfig and Dialer.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHandshakes    = 256
	DefaultBacklog          = 128
)

// jspTLS returns a copy of base restricted to what JSP allows: TLS 1.3 only
// (JSP §7.4) and the ALPN protocol "jsp/1" (JSP §8.1).
func jspTLS(base *tls.Config) *tls.Config {
	var c *tls.Config
	if base == nil {
		c = &tls.Config{}
	} else {
		c = base.Clone()
	}
	c.MinVersion = tls.VersionTLS13
	c.MaxVersion = 0
	c.NextProtos = []string{protocol.ALPN}
	return c
}

// checkState enforces the negotiated version and ALPN. The server side of
// crypto/tls accepts a client that offers no ALPN at all, so this check is
// what makes "jsp/1" required.
func checkState(st tls.ConnectionState) error {
	if st.Version != tls.VersionTLS13 {
		return fmt.Errorf("tcptls: negotiated TLS version 0x%04x, JSP requires TLS 1.3", st.Version)
	}
	if st.NegotiatedProtocol != protocol.ALPN {
		return fmt.Errorf("tcptls: negotiated ALPN %q, JSP requires %q", st.NegotiatedProtocol, protocol.ALPN)
	}
	return nil
}

// tlsStream is the byte stream handed to mux. Close closes the socket
// directly: crypto/tls would first send close_notify with its own
// five-second write deadline, which a peer that stopped reading turns into
// a five-second stall. mux sends LINK_CLOSE and calls CloseWrite (which
// sends close_notify) itself when it closes gracefully.
type tlsStream struct {
	*tls.Conn
	raw net.Conn
}

func (s tlsStream) Close() error { return s.raw.Close() }

func muxConfig(cfg mux.Config) mux.Config {
	cfg.Kind = transport.KindTCP
	return cfg
}

// ListenConfig configures a listener.
type ListenConfig struct {
	// HandshakeTimeout bounds the TLS handshake of each accepted
	// connection. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxHandshakes caps handshakes in progress; a TCP connection arriving
	// beyond it is closed at once. Zero means DefaultMaxHandshakes.
	MaxHandshakes int
	// Backlog caps connections that finished their handshake but have not
	// been returned by Accept yet; handshakes wait for room. Zero means
	// DefaultBacklog.
	Backlog int
	// Mux configures each connection's link.
	Mux mux.Config
	// Logger receives refused handshakes at debug level. Nil discards.
	Logger *slog.Logger
	// NoPoll reads every accepted connection with a goroutine of its own
	// instead of watching idle ones with a poller (decision D33). Default
	// false: connections whose socket can be polled are.
	NoPoll bool
	// Poll configures the listener's poller.
	Poll netpoll.Config
}

func (lc *ListenConfig) validate() error {
	if lc.HandshakeTimeout < 0 || lc.MaxHandshakes < 0 || lc.Backlog < 0 {
		return errors.New("tcptls: negative listener limit")
	}
	if err := lc.Mux.Validate(); err != nil {
		return fmt.Errorf("tcptls: %w", err)
	}
	return nil
}

func (lc *ListenConfig) setDefaults() {
	if lc.HandshakeTimeout == 0 {
		lc.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if lc.MaxHandshakes == 0 {
		lc.MaxHandshakes = DefaultMaxHandshakes
	}
	if lc.Backlog == 0 {
		lc.Backlog = DefaultBacklog
	}
	if lc.Logger == nil {
		lc.Logger = slog.New(slog.DiscardHandler)
	}
}

// Listen listens on the TCP address addr with the defaults of ListenConfig.
// tlsConf must hold the server certificate; its version and ALPN settings
// are overridden with JSP's.
func Listen(addr string, tlsConf *tls.Config, cfg mux.Config) (transport.Listener, error) {
	lc := ListenConfig{Mux: cfg}
	return lc.Listen(addr, tlsConf)
}

// Listen listens on the TCP address addr.
func (lc ListenConfig) Listen(addr string, tlsConf *tls.Config) (*Listener, error) {
	if err := lc.validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcptls: listen on %s: %w", addr, err)
	}
	return lc.Serve(ln, tlsConf)
}

// Serve accepts JSP connections on ln, which the Listener owns from now on.
func (lc ListenConfig) Serve(ln net.Listener, tlsConf *tls.Config) (*Listener, error) {
	if err := lc.validate(); err != nil {
		ln.Close()
		return nil, err
	}
	lc.setDefaults()
	var poller *netpoll.Poller
	if !lc.NoPoll {
		p, err := netpoll.New(lc.Poll)
		switch {
		case err == nil:
			poller = p
		case errors.Is(err, netpoll.ErrUnsupported):
			// Each connection gets a reader goroutine instead.
		default:
			ln.Close()
			return nil, fmt.Errorf("tcptls: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{
		poller:  poller,
		cfg:     lc,
		tls:     jspTLS(tlsConf),
		ln:      ln,
		ctx:     ctx,
		cancel:  cancel,
		ready:   make(chan *mux.Conn, lc.Backlog),
		slots:   make(chan struct{}, lc.MaxHandshakes),
		stopped: make(chan struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Listener accepts JSP connections over TLS 1.3. It implements
// transport.Listener.
//
// Goroutines: one accept loop, plus one per handshake in progress (at most
// MaxHandshakes), plus the poller's (package netpoll), which watch the
// idle accepted connections and run while any is open. Close stops the
// loop, cancels the handshakes, closes the connections not yet accepted
// and waits for all of them.
type Listener struct {
	cfg     ListenConfig
	poller  *netpoll.Poller // nil when connections are read by goroutines
	tls     *tls.Config
	ln      net.Listener
	ctx     context.Context // cancelled by Close; parent of every handshake
	cancel  context.CancelFunc
	ready   chan *mux.Conn
	slots   chan struct{} // one token per handshake in progress
	stopped chan struct{} // closed by Close
	once    sync.Once
	wg      sync.WaitGroup

	refused atomic.Uint64 // handshakes that failed or were shed
}

var _ transport.Listener = (*Listener)(nil)

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			select {
			case <-l.stopped:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary trouble such as running out of file descriptors:
			// back off briefly rather than spin.
			l.cfg.Logger.Debug("tcptls: accept", "err", err)
			select {
			case <-time.After(10 * time.Millisecond):
			case <-l.stopped:
				return
			}
			continue
		}
		select {
		case l.slots <- struct{}{}:
		default:
			// Too many handshakes in flight: shed this one at once rather
			// than queue work for a possible flood.
			l.refused.Add(1)
			nc.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(nc)
	}
}

func (l *Listener) handshake(nc net.Conn) {
	defer l.wg.Done()
	release := func() { <-l.slots }
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	var feed *Feed
	var under net.Conn = nc
	if l.poller != nil {
		if sock, err := netpoll.NewSocket(l.poller, nc); err == nil {
			feed = NewFeed(sock)
			under = feed
		}
	}
	tc := tls.Server(under, l.tls)
	err := tc.HandshakeContext(ctx)
	if err == nil {
		err = checkState(tc.ConnectionState())
	}
	if err != nil {
		release()
		l.refused.Add(1)
		l.cfg.Logger.Debug("tcptls: handshake refused", "remote", nc.RemoteAddr(), "err", err)
		nc.Close()
		return
	}
	var c *mux.Conn
	if feed != nil {
		c = mux.NewPolled(&tlsSource{Conn: tc, feed: feed}, muxConfig(l.cfg.Mux), false)
	} else {
		c = mux.New(tlsStream{Conn: tc, raw: nc}, muxConfig(l.cfg.Mux), false)
	}
	// The slot is held until the connection is queued for Accept, so a
	// full backlog slows handshakes down instead of growing without bound.
	defer release()
	select {
	case l.ready <- c:
	case <-l.stopped:
		c.CloseWithError(0, "listener closed")
	}
}

// Accept waits for the next connection whose handshake completed.
func (l *Listener) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.stopped:
		return nil, fmt.Errorf("tcptls: accept: %w", transport.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("tcptls: accept: %w", ctx.Err())
	}
}

// Addr returns the listening address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Refused returns how many connections were refused: failed or timed-out
// handshakes, and connections shed over MaxHandshakes.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Close stops listening, abandons handshakes in progress and closes
// connections not yet accepted; accepted connections stay open. It waits
// for the listener's goroutines.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.stopped)
		l.cancel()
		err = l.ln.Close()
		l.wg.Wait()
		if l.poller != nil {
			// Accepted connections keep the poller running until they
			// close (netpoll.Poller.Close).
			defer l.poller.Close()
		}
		for {
			select {
			case c := <-l.ready:
				c.CloseWithError(0, "listener closed")
			default:
				return
			}
		}
	})
	if err != nil {
		return fmt.Errorf("tcptls: close listener: %w", err)
	}
	return nil
}

// Dialer configures outgoing connections.
type Dialer struct {
	// HandshakeTimeout bounds connecting and the TLS handshake when ctx has
	// no earlier deadline. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Mux configures the link.
	Mux mux.Config
}

// Dial connects to addr with the defaults of Dialer. tlsConf holds the
// client's trust roots and server name; its version and ALPN settings are
// overridden with JSP's.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg mux.Config) (transport.Conn, error) {
	return Dialer{Mux: cfg}.Dial(ctx, addr, tlsConf)
}

// Dial connects to addr, completes the TLS 1.3 handshake and starts the
// link.
func (d Dialer) Dial(ctx context.Context, addr string, tlsConf *tls.Config) (*mux.Conn, error) {
	if err := d.Mux.Validate(); err != nil {
		return nil, fmt.Errorf("tcptls: dial %s: %w", addr, err)
	}
	timeout := d.HandshakeTimeout
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("tcptls: dial %s: %w", addr, err)
	}
	conf := jspTLS(tlsConf)
	if conf.ServerName == "" {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			conf.ServerName = host
		}
	}
	tc := tls.Client(nc, conf)
	err = tc.HandshakeContext(ctx)
	if err == nil {
		err = checkState(tc.ConnectionState())
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("tcptls: handshake with %s: %w", addr, err)
	}
	return mux.New(tlsStream{Conn: tc, raw: nc}, muxConfig(d.Mux), true), nil
}
