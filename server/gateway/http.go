package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/transport"
)

// httpReadHeaderTimeout bounds reading a request's headers, so that a
// client that opens a connection and sends nothing cannot hold it.
const httpReadHeaderTimeout = 10 * time.Second

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
	g.http = &httpServer{
		srv: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: httpReadHeaderTimeout,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
			TLSConfig:         httpsTLS,
		},
		ln:  ln,
		tln: tls.NewListener(ln, httpsTLS),
		log: g.log,
	}
	g.listeners = append(g.listeners, &listener{kind: transport.KindWebSocket, l: wsl.listener})
	return nil
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
