package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
)

// httpReadHeaderTimeout bounds reading a request's headers, so that a
// client that opens a connection and sends nothing cannot hold it.
const httpReadHeaderTimeout = 10 * time.Second

// httpIdleTimeout closes a keep-alive HTTPS connection (a /healthz or
// /metrics client) after this long without a request, so that idle
// connections do not hold the per-address connection slots for ever.
const httpIdleTimeout = 2 * time.Minute

// httpServer is the HTTPS server that carries the WebSocket endpoint,
// /healthz and /metrics (docs/decisions.md D6).
type httpServer struct {
	srv  *http.Server
	ln   net.Listener // TCP listener, for its address
	tln  net.Listener // TLS over ln
	log  *slog.Logger
	once sync.Once
	done chan struct{} // closed when Serve has returned; nil before start
}

// listenHTTPS binds the HTTPS listener and registers the WebSocket
// transport listener.
func (g *Gateway) listenHTTPS(jspTLS *tls.Config) error {
	ln, err := net.Listen("tcp", g.cfg.WSAddr)
	if err != nil {
		return fmt.Errorf("gateway: WebSocket listener on %s: %w", g.cfg.WSAddr, err)
	}
	// HTTPS negotiates "http/1.1" by ALPN, not "jsp/1": the JSP protocol
	// is selected by the WebSocket subprotocol instead (JSP §7.3). HTTP/2
	// is not offered because the WebSocket upgrade needs HTTP/1.1.
	httpsTLS := jspTLS.Clone()
	httpsTLS.NextProtos = []string{"http/1.1"}
	wsl, err := newWebSocketListener(g.cfg, ln.Addr())
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("gateway: WebSocket endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle(g.cfg.WSPath, wsl.handler)
	mux.HandleFunc("GET /healthz", g.serveHealth)
	mux.HandleFunc("GET /metrics", g.serveMetrics)
	mux.HandleFunc("GET /readyz", g.serveReady)
	mux.HandleFunc("GET /status", g.serveStatus)
	// The filter sees each TCP connection before its TLS handshake; the
	// ticket follows the connection into its requests.
	fl := newFilteredListener(ln, g.adm, string(transport.KindWebSocket))
	tln, err := wsl.netListener(fl, httpsTLS, g.cfg.WSBehindTLSProxy)
	if err != nil {
		_ = wsl.listener.Close()
		_ = ln.Close()
		return fmt.Errorf("gateway: WebSocket endpoint: %w", err)
	}
	g.http = &httpServer{
		srv: &http.Server{
			Handler:           g.refuseHTTP(mux),
			ReadHeaderTimeout: httpReadHeaderTimeout,
			IdleTimeout:       httpIdleTimeout,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
			TLSConfig:         httpsTLS,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				if t := httpTicket(c); t != nil {
					return context.WithValue(ctx, ticketKey{}, t)
				}
				return ctx
			},
			ConnState: func(c net.Conn, st http.ConnState) {
				// The TLS handshake is done once a request arrives: from
				// then on the connection counts as open, not handshaking.
				if t := httpTicket(c); st == http.StateActive && t != nil && t.slot != nil {
					_ = t.slot.Established()
				}
			},
		},
		ln:  ln,
		tln: tln,
		log: g.log,
	}
	g.listeners = append(g.listeners, &listener{kind: transport.KindWebSocket, l: wsl.listener, filtered: fl})
	return nil
}

// httpTicket returns the filter ticket of an HTTPS server connection.
func httpTicket(c net.Conn) *ticket {
	// Under a TLS connection sits the admitted connection, or a record
	// feed over it (D40); both say what they wrap with NetConn.
	for range 3 {
		switch cc := c.(type) {
		case *admittedConn:
			return cc.t
		case interface{ NetConn() net.Conn }:
			c = cc.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// refuseHTTP answers every request on a refused connection with its code,
// except the WebSocket upgrade: that one goes through, so that the gateway
// can close the JSP link with the refusal code, which a JSP client reads.
func (g *Gateway) refuseHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, _ := r.Context().Value(ticketKey{}).(*ticket)
		if t == nil || t.refusal == nil || r.URL.Path == g.cfg.WSPath {
			next.ServeHTTP(w, r)
			return
		}
		status := http.StatusTooManyRequests
		if t.refusal.Code == jsperr.Blocked {
			status = http.StatusForbidden
		}
		w.Header().Set("Connection", "close")
		http.Error(w, t.refusal.Code.String()+": "+t.refusal.Reason, status)
	})
}

// start serves HTTPS on a goroutine joined by close.
func (h *httpServer) start() {
	h.done = make(chan struct{})
	go func() {
		defer close(h.done)
		if err := h.srv.Serve(h.tln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.log.Error("gateway: HTTPS server failed", "err", err)
		}
	}()
}

// close stops the HTTPS server and waits for it. Hijacked WebSocket
// connections are not affected; their sessions are closed by the gateway.
func (h *httpServer) close() {
	h.once.Do(func() {
		_ = h.srv.Close()
		_ = h.ln.Close()
		if h.done != nil {
			<-h.done
		}
	})
}
