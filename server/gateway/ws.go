package gateway

import (
	"crypto/tls"
	"net"
	"net/http"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

// wsListener is the WebSocket endpoint: one value that is both the HTTP
// handler mounted at WSPath and the transport listener the gateway accepts
// upgraded connections from.
type wsListener struct {
	handler  http.Handler
	listener transport.Listener
	ws       *websocket.Handler
}

// netListener returns what the HTTPS server accepts from: fl itself
// behind a TLS-terminating proxy, else TLS connections that the WebSocket
// handler reads through record feeds on its poller, so that an upgraded
// wss:// connection holds no goroutine while idle (D40). The HTTP server
// still runs each TLS handshake and reads each request under its own
// timeouts.
func (w *wsListener) netListener(fl net.Listener, conf *tls.Config, behindProxy bool) (net.Listener, error) {
	if behindProxy {
		return fl, nil
	}
	return w.ws.TLSListener(fl, conf)
}

func newWebSocketListener(cfg Config, bound net.Addr) (*wsListener, error) {
	var trust *proxyTrust
	if cfg.WSBehindTLSProxy {
		// Checked before the handler exists: a plaintext listener that
		// anyone can reach is refused outright (D32).
		t, err := newProxyTrust(cfg, bound)
		if err != nil {
			return nil, err
		}
		trust = t
	}
	h, err := websocket.NewHandler(websocket.HandlerConfig{
		Mux:            cfg.Link,
		OriginPatterns: cfg.WSOriginPatterns,
		Logger:         cfg.Logger,
		BehindTLSProxy: cfg.WSBehindTLSProxy,
	})
	if err != nil {
		return nil, err
	}
	if trust != nil {
		p := newProxyEndpoint(trust, h, h, cfg.Now)
		return &wsListener{handler: p, listener: p, ws: h}, nil
	}
	return &wsListener{handler: h, listener: h, ws: h}, nil
}
