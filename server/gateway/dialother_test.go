package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

// dialOther dials the link-based transports.
func dialOther(ctx context.Context, t testing.TB, g *testGateway, kind transport.Kind) (transport.Conn, error) {
	a := g.Addrs()
	switch kind {
	case transport.KindTCP:
		return tcptls.Dial(ctx, a.TCP.String(), g.clientTLS(t), mux.Config{})
	case transport.KindWebSocket:
		return websocket.Dial(ctx, "wss://"+a.WebSocket.String()+a.WSPath, g.clientTLS(t), mux.Config{})
	}
	return nil, fmt.Errorf("no dialer for %s", kind)
}
