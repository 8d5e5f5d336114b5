// Package websocket is the JSP transport for browsers: WebSocket (RFC 6455)
// with subprotocol "jsp.1" over TLS 1.3 (JSP §7.3, §7.4). Binary messages
// carry JSP link frames, one or more whole frames per message, and package
// mux runs the same link layer as on TLS over TCP.
//
// The server side is an http.Handler, so one http.Server can serve the JSP
// endpoint next to health and metrics; the Handler is also a
// transport.Listener whose Accept returns the upgraded connections. Listen
// runs a dedicated TLS 1.3 http.Server around a Handler. Dial is the
// client.
//
// The server answers and frames every upgrade itself (upgrade.go,
// server.go, frame.go), and a poller watches the upgraded sockets, so an
// idle connection holds no goroutine: plain ones behind a TLS-terminating
// proxy (decision D33) and wss:// ones whose TLS this package's listener
// ends over a record feed (TLSListener, wss.go, decision D40). The client
// (Dial) does its own opening handshake and frames its connection with the
// same codec (dial.go).
package websocket

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/wire"
)

// maxMessagePayload caps one WebSocket frame from a client on the plain
// path: a link writer sends one batch per message, at most MaxWriteBatch
// bytes plus the frame that crosses it, and a frame is at most
// MaxFrameSize plus its header. The peer's limits are assumed equal to
// ours; DefaultMaxWriteBatch is the floor, for peers with default
// settings talking to a link configured smaller.
func maxMessagePayload(cfg mux.Config) uint64 {
	batch := max(cfg.MaxWriteBatch, mux.DefaultMaxWriteBatch)
	frame := cfg.MaxFrameSize
	if frame == 0 {
		frame = protocol.DefaultMaxFrameSize
	}
	return uint64(batch) + uint64(frame) + wire.MaxHeaderLen
}

// Defaults of HandlerConfig and Dialer.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultBacklog          = 128
)

// addr is a network address known only as text, as HTTP gives the
// remote address of a request.
type addr struct{ network, s string }

func (a addr) Network() string { return a.network }
func (a addr) String() string  { return a.s }

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	// Mux configures each connection's link.
	Mux mux.Config
	// Backlog caps upgraded connections not yet returned by Accept. Zero
	// means DefaultBacklog.
	Backlog int
	// AcceptTimeout is how long an upgraded connection waits for room in
	// the backlog before it is closed with GOING_AWAY. Zero means
	// DefaultHandshakeTimeout.
	AcceptTimeout time.Duration
	// OriginPatterns lists the host patterns (path.Match syntax) allowed in
	// a browser's Origin header besides the request's own host. Requests
	// without Origin, as from non-browser clients, are always allowed.
	OriginPatterns []string
	// Logger receives refused upgrades at debug level. Nil discards.
	Logger *slog.Logger
	// BehindTLSProxy accepts upgrade requests that did not arrive over
	// TLS, for a server behind a proxy that terminates TLS 1.3 for it
	// (JSP §7.4 then holds between the client and the proxy). The link has
	// no TLS state, so nothing can be bound to the TLS exporter (device
	// key proofs fail). Default false: such requests are refused.
	//
	// Such connections are upgraded and framed by this package and, where
	// the socket allows, read by a poller instead of a goroutine while
	// they are idle (decision D33).
	BehindTLSProxy bool
	// NoPoll reads every upgraded connection with a goroutine of its own
	// instead of a poller: plain ones, and wss:// ones accepted by
	// TLSListener, which then hands the HTTP server bare TLS
	// connections. Default false.
	NoPoll bool
}

// Handler upgrades HTTP requests to JSP WebSocket links. It implements
// http.Handler and transport.Listener.
type Handler struct {
	cfg   HandlerConfig
	ready chan *mux.Conn
	done  chan struct{}
	once  sync.Once
	addr  net.Addr
	// inflight tracks ServeHTTP calls so that Close can wait for them.
	inflight sync.WaitGroup
	mu       sync.Mutex
	closed   bool // guarded by mu; set before inflight is waited on
	// poller watches idle upgraded connections; nil: goroutines read
	// them. Guarded by mu: TLSListener starts it on first use.
	poller *netpoll.Poller
}

var (
	_ http.Handler       = (*Handler)(nil)
	_ transport.Listener = (*Handler)(nil)
)

// NewHandler returns a Handler. It fails if cfg.Mux is invalid.
func NewHandler(cfg HandlerConfig) (*Handler, error) {
	if err := cfg.Mux.Validate(); err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	if cfg.Backlog < 0 || cfg.AcceptTimeout < 0 {
		return nil, errors.New("websocket: negative handler limit")
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = DefaultBacklog
	}
	if cfg.AcceptTimeout == 0 {
		cfg.AcceptTimeout = DefaultHandshakeTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Mux.Kind = transport.KindWebSocket
	var poller *netpoll.Poller
	if cfg.BehindTLSProxy && !cfg.NoPoll {
		p, err := netpoll.New(netpoll.Config{})
		switch {
		case err == nil:
			poller = p
		case !errors.Is(err, netpoll.ErrUnsupported):
			return nil, fmt.Errorf("websocket: %w", err)
		}
	}
	return &Handler{
		cfg:    cfg,
		poller: poller,
		ready:  make(chan *mux.Conn, cfg.Backlog),
		done:   make(chan struct{}),
		addr:   addr{"tcp", "websocket-handler"},
	}, nil
}

// offersSubprotocol reports whether the client listed p in
// Sec-WebSocket-Protocol.
func offersSubprotocol(r *http.Request, p string) bool {
	for _, h := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, v := range strings.Split(h, ",") {
			if strings.TrimSpace(v) == p {
				return true
			}
		}
	}
	return false
}

// ServeHTTP upgrades the request. It refuses requests that did not arrive
// over TLS 1.3 (JSP §7.4) and clients that do not offer the "jsp.1"
// subprotocol (JSP §7.3).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		http.Error(w, "JSP endpoint closed", http.StatusServiceUnavailable)
		return
	}
	h.inflight.Add(1)
	poller := h.poller
	h.mu.Unlock()
	defer h.inflight.Done()

	if (r.TLS == nil && !h.cfg.BehindTLSProxy) || (r.TLS != nil && r.TLS.Version != tls.VersionTLS13) {
		h.cfg.Logger.Debug("websocket: refused: not TLS 1.3", "remote", r.RemoteAddr)
		http.Error(w, "JSP requires TLS 1.3", http.StatusUpgradeRequired)
		return
	}
	if !offersSubprotocol(r, protocol.WebSocketSubprotocol) {
		h.cfg.Logger.Debug("websocket: refused: no jsp.1 subprotocol", "remote", r.RemoteAddr)
		http.Error(w, "JSP requires the WebSocket subprotocol "+protocol.WebSocketSubprotocol, http.StatusBadRequest)
		return
	}
	mc := h.cfg.Mux
	mc.TLS = r.TLS
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		mc.LocalAddr = la
	}
	mc.RemoteAddr = addr{"tcp", r.RemoteAddr}
	// This package frames every upgraded connection, so that an idle one
	// needs no goroutine where its socket can be polled (D33, D40).
	sc, err := upgrade(w, r, h.cfg.OriginPatterns, poller, maxMessagePayload(mc))
	if err != nil {
		h.cfg.Logger.Debug("websocket: upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	var conn *mux.Conn
	if sc.src != nil {
		conn = mux.NewPolled(sc, mc, false)
	} else {
		conn = mux.New(sc, mc, false)
	}
	t := time.NewTimer(h.cfg.AcceptTimeout)
	defer t.Stop()
	select {
	case h.ready <- conn:
	case <-h.done:
		conn.CloseWithError(jsperr.GoingAway, "JSP endpoint closed")
	case <-t.C:
		conn.CloseWithError(jsperr.GoingAway, "server busy: connection not accepted in time")
	}
}

// Accept waits for the next upgraded connection.
func (h *Handler) Accept(ctx context.Context) (transport.Conn, error) {
	select {
	case c := <-h.ready:
		return c, nil
	case <-h.done:
		return nil, fmt.Errorf("websocket: accept: %w", transport.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("websocket: accept: %w", ctx.Err())
	}
}

// Addr returns the address set by Listen, or a placeholder when the
// Handler is mounted on a server of the caller's.
func (h *Handler) Addr() net.Addr { return h.addr }

// Close refuses further upgrades, waits for upgrades in progress and closes
// the connections not yet accepted. Accepted connections stay open.
func (h *Handler) Close() error {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		poller := h.poller
		h.mu.Unlock()
		close(h.done)
		h.inflight.Wait()
		if poller != nil {
			// Accepted connections keep the poller running until they
			// close (netpoll.Poller.Close).
			defer poller.Close()
		}
		for {
			select {
			case c := <-h.ready:
				c.CloseWithError(jsperr.GoingAway, "JSP endpoint closed")
			default:
				return
			}
		}
	})
	return nil
}

// ListenConfig configures Listen.
type ListenConfig struct {
	// HandshakeTimeout bounds the TLS handshake and the upgrade request's
	// headers. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Handler configures the JSP endpoint.
	Handler HandlerConfig
}

// Listener is a Handler served by its own TLS 1.3 http.Server. It
// implements transport.Listener.
type Listener struct {
	*Handler
	srv    *http.Server
	ln     net.Listener
	served chan struct{}
}

// Listen serves JSP over WebSocket on the TCP address addr, on every URL
// path, with TLS 1.3 only. tlsConf holds the server certificate.
func Listen(addr string, tlsConf *tls.Config, cfg mux.Config) (transport.Listener, error) {
	return ListenConfig{Handler: HandlerConfig{Mux: cfg}}.Listen(addr, tlsConf)
}

// Listen serves JSP over WebSocket on the TCP address addr.
func (lc ListenConfig) Listen(address string, tlsConf *tls.Config) (*Listener, error) {
	if lc.HandshakeTimeout < 0 {
		return nil, errors.New("websocket: negative handshake timeout")
	}
	if lc.HandshakeTimeout == 0 {
		lc.HandshakeTimeout = DefaultHandshakeTimeout
	}
	h, err := NewHandler(lc.Handler)
	if err != nil {
		return nil, err
	}
	conf := jspTLS(tlsConf)
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("websocket: listen on %s: %w", address, err)
	}
	h.addr = ln.Addr()
	tln, err := h.TLSListener(ln, conf)
	if err != nil {
		ln.Close()
		h.Close()
		return nil, err
	}
	l := &Listener{
		Handler: h,
		ln:      ln,
		served:  make(chan struct{}),
		srv: &http.Server{
			Handler: h,
			// crypto/tls's handshake in http.Server is bounded by the
			// shortest of the read timeouts; only the header timeout is set
			// so that upgraded connections have no deadline.
			ReadHeaderTimeout: lc.HandshakeTimeout,
			TLSConfig:         conf,
			// Refused handshakes are routine; they go to the debug log.
			ErrorLog: slog.NewLogLogger(h.cfg.Logger.Handler(), slog.LevelDebug),
		},
	}
	go func() {
		defer close(l.served)
		l.srv.Serve(tln)
	}()
	return l, nil
}

// jspTLS restricts tlsConf to TLS 1.3 and HTTP/1.1, the only HTTP
// version the WebSocket upgrade uses here.
func jspTLS(base *tls.Config) *tls.Config {
	c := &tls.Config{}
	if base != nil {
		c = base.Clone()
	}
	c.MinVersion = tls.VersionTLS13
	c.MaxVersion = 0
	c.NextProtos = []string{"http/1.1"}
	return c
}

// Close stops the server and the Handler; accepted connections stay open.
func (l *Listener) Close() error {
	l.Handler.Close()
	err := l.srv.Close()
	<-l.served
	if err != nil {
		return fmt.Errorf("websocket: close listener: %w", err)
	}
	return nil
}

// Dialer configures outgoing connections.
type Dialer struct {
	// HandshakeTimeout bounds connecting, TLS and the upgrade when ctx has
	// no earlier deadline. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// Header is sent with the upgrade request (for example Origin or
	// authentication headers of a proxy).
	Header http.Header
	// Mux configures the link.
	Mux mux.Config
}

// Dial connects to a wss:// URL with the defaults of Dialer.
func Dial(ctx context.Context, rawURL string, tlsConf *tls.Config, cfg mux.Config) (transport.Conn, error) {
	return Dialer{Mux: cfg}.Dial(ctx, rawURL, tlsConf)
}

// Dial connects to a wss:// URL, performs the upgrade with subprotocol
// "jsp.1" over TLS 1.3 and starts the link.
func (d Dialer) Dial(ctx context.Context, rawURL string, tlsConf *tls.Config) (*mux.Conn, error) {
	if err := d.Mux.Validate(); err != nil {
		return nil, fmt.Errorf("websocket: dial %s: %w", rawURL, err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("websocket: dial: %w", err)
	}
	if u.Scheme != "wss" && u.Scheme != "https" {
		return nil, jsperr.Newf(jsperr.TlsRequired, "websocket: dial %s: JSP requires wss:// (TLS 1.3)", rawURL)
	}
	timeout := d.HandshakeTimeout
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tc, state, early, err := d.dialUpgrade(ctx, u, jspTLS(tlsConf))
	if err != nil {
		return nil, fmt.Errorf("websocket: dial %s: %w", rawURL, err)
	}
	mc := d.Mux
	mc.Kind = transport.KindWebSocket
	mc.TLS = &state
	mc.LocalAddr, mc.RemoteAddr = tc.LocalAddr(), tc.RemoteAddr()
	return mux.New(newClientConn(tc, early), mc, true), nil
}
