package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
)

// TestWSBehindTLSProxy checks the plaintext WebSocket listener for a
// gateway behind a TLS-terminating proxy: plain HTTP serves /healthz and
// a JSP session over ws://, and the URL says ws://.
func TestWSBehindTLSProxy(t *testing.T) {
	tg := startGateway(t, Config{WSAddr: "127.0.0.1:0", WSBehindTLSProxy: true})
	addr := tg.Addrs().WebSocket.String()
	var wsURL string
	for _, u := range tg.Addrs().URLs() {
		if strings.HasPrefix(u, "ws://") {
			wsURL = u
		}
	}
	if wsURL != "ws://"+addr+DefaultWSPath {
		t.Fatalf("URLs %v, want ws://%s%s", tg.Addrs().URLs(), addr, DefaultWSPath)
	}
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("plain GET /healthz: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %s", resp.Status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := ws.Dial(ctx, wsURL, &ws.DialOptions{Subprotocols: []string{protocol.WebSocketSubprotocol}})
	if err != nil {
		t.Fatalf("ws:// dial: %v", err)
	}
	tc := mux.New(ws.NetConn(context.Background(), c, ws.MessageBinary), mux.Config{Kind: transport.KindWebSocket}, true)
	sess, err := session.Dial(ctx, tc, session.ClientInfo{Name: "proxy-test"}, session.Config{Logger: testLogger()})
	if err != nil {
		_ = tc.CloseWithError(0, "")
		t.Fatalf("session over ws://: %v", err)
	}
	defer sess.Close()
	if _, err := sess.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
}
