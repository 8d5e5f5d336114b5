package websocket_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

// TestBehindTLSProxy checks that a handler accepts upgrades over plain
// HTTP only when it is configured to sit behind a TLS-terminating proxy,
// and that the link then works.
func TestBehindTLSProxy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		behind bool
	}{{"refused by default", false}, {"accepted behind a proxy", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := websocket.NewHandler(websocket.HandlerConfig{BehindTLSProxy: tc.behind})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			srv := httptest.NewServer(h)
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := ws.Dial(ctx, "ws"+srv.URL[len("http"):], &ws.DialOptions{Subprotocols: []string{protocol.WebSocketSubprotocol}})
			if !tc.behind {
				if err == nil {
					c.CloseNow()
					t.Fatal("plain HTTP upgrade accepted")
				}
				if resp == nil || resp.StatusCode != http.StatusUpgradeRequired {
					t.Fatalf("refusal %v, want 426 Upgrade Required", resp)
				}
				return
			}
			if err != nil {
				t.Fatalf("plain HTTP upgrade refused: %v", err)
			}
			client := mux.New(ws.NetConn(ctx, c, ws.MessageBinary), mux.Config{Kind: transport.KindWebSocket}, true)
			defer client.CloseWithError(0, "")
			server, err := h.Accept(ctx)
			if err != nil {
				t.Fatalf("Accept: %v", err)
			}
			defer server.CloseWithError(0, "")
			cs, err := client.OpenStream(ctx, protocol.ClassChat)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cs.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			ss, err := server.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 5)
			if _, err := io.ReadFull(ss, buf); err != nil || string(buf) != "hello" {
				t.Fatalf("server read %q, %v", buf, err)
			}
		})
	}
}
