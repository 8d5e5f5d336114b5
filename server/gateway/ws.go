package gateway

import (
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
}

func newWebSocketListener(cfg Config, _ net.Addr) (*wsListener, error) {
	h, err := websocket.NewHandler(websocket.HandlerConfig{
		Mux:            cfg.Link,
		OriginPatterns: cfg.WSOriginPatterns,
		Logger:         cfg.Logger,
		BehindTLSProxy: cfg.WSBehindTLSProxy,
	})
	if err != nil {
		return nil, err
	}
	return &wsListener{handler: h, listener: h}, nil
}
