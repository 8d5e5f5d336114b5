package websocket_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"github.com/jetstreamproto/jsp/transport/websocket"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func listen(t testing.TB) (*websocket.Listener, *tls.Config, string) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	l, err := websocket.ListenConfig{}.Listen("127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, clientTLS, "wss://" + l.Addr().String() + "/jsp"
}

func dialAccept(t testing.TB, l transport.Listener, url string, clientTLS *tls.Config) (transport.Conn, transport.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := websocket.Dial(ctx, url, clientTLS, mux.Config{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	s, err := l.Accept(ctx)
	if err != nil {
		c.CloseWithError(0, "")
		t.Fatalf("Accept: %v", err)
	}
	return c, s
}

func TestConformance(t *testing.T) {
	l, clientTLS, url := listen(t)
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		return dialAccept(t, l, url, clientTLS)
	})
}

func TestHandlerSharesServer(t *testing.T) {
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	h, err := websocket.NewHandler(websocket.HandlerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/jsp", h)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = serverTLS.Clone()
	srv.StartTLS()
	defer srv.Close()
	defer h.Close()

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: clientTLS.RootCAs, ServerName: "localhost"}}}
	defer client.CloseIdleConnections()
	resp, err := client.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("health check answered %q", body)
	}
	url := "wss" + strings.TrimPrefix(srv.URL, "https") + "/jsp"
	c, s := dialAccept(t, h, url, clientTLS)
	defer c.CloseWithError(0, "")
	defer s.CloseWithError(0, "")
	if s.Kind() != transport.KindWebSocket || s.TLS().Version != tls.VersionTLS13 {
		t.Fatalf("kind %s TLS 0x%x", s.Kind(), s.TLS().Version)
	}
}

func TestRefusals(t *testing.T) {
	l, clientTLS, url := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rawDial := func(conf *tls.Config, subprotocols ...string) error {
		tr := &http.Transport{TLSClientConfig: conf}
		defer tr.CloseIdleConnections()
		c, _, err := ws.Dial(ctx, url, &ws.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: subprotocols})
		if err == nil {
			c.CloseNow()
		}
		return err
	}
	tls12 := clientTLS.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	tests := []struct {
		name string
		dial func() error
	}{
		{"TLS 1.2 client", func() error { return rawDial(tls12, protocol.WebSocketSubprotocol) }},
		{"wrong subprotocol", func() error { return rawDial(clientTLS, "chat") }},
		{"no subprotocol", func() error { return rawDial(clientTLS) }},
		{"plain ws URL", func() error {
			_, err := websocket.Dial(ctx, "ws://"+l.Addr().String()+"/", clientTLS, mux.Config{})
			if jsperr.CodeOf(err) != jsperr.TlsRequired {
				t.Errorf("Dial ws://: %v, want TLS_REQUIRED", err)
			}
			return err
		}},
		{"plain HTTP request", func() error {
			resp, err := http.Get("http://" + l.Addr().String() + "/")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 400 {
					return nil
				}
				return errors.New(resp.Status)
			}
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.dial(); err == nil {
				t.Fatal("the server accepted it")
			}
			actx, acancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer acancel()
			if c, err := l.Accept(actx); err == nil {
				c.CloseWithError(0, "")
				t.Fatal("a refused client reached Accept")
			}
			// Others are still served.
			c, s := dialAccept(t, l, url, clientTLS)
			c.CloseWithError(0, "")
			s.CloseWithError(0, "")
		})
	}
}

func TestDialRefusesServerWithoutSubprotocol(t *testing.T) {
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ws.Accept(w, r, nil) // selects no subprotocol
		if err != nil {
			return
		}
		c.CloseNow()
	}))
	srv.TLS = serverTLS.Clone()
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "wss" + strings.TrimPrefix(srv.URL, "https")
	if c, err := websocket.Dial(ctx, url, clientTLS, mux.Config{}); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("Dial accepted a server that did not select jsp.1")
	}
}

func TestTextMessageIsAProtocolViolation(t *testing.T) {
	l, clientTLS, url := listen(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &http.Transport{TLSClientConfig: clientTLS}
	defer tr.CloseIdleConnections()
	c, _, err := ws.Dial(ctx, url, &ws.DialOptions{HTTPClient: &http.Client{Transport: tr}, Subprotocols: []string{protocol.WebSocketSubprotocol}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseWithError(0, "")
	c.Write(ctx, ws.MessageText, []byte("hello"))
	select {
	case <-s.Context().Done():
	case <-ctx.Done():
		t.Fatal("a text message did not close the link")
	}
	if code := jsperr.CodeOf(context.Cause(s.Context())); code != jsperr.ProtocolViolation {
		t.Fatalf("cause %v", context.Cause(s.Context()))
	}
	// The LINK_CLOSE reaches the client in a binary message.
	typ, b, err := c.Read(ctx)
	if err != nil || typ != ws.MessageBinary || len(b) == 0 || b[0] != 0x06 {
		t.Fatalf("client read %v %x %v, want a LINK_CLOSE frame", typ, b, err)
	}
}

func BenchmarkThroughput(b *testing.B) {
	l, clientTLS, url := listen(b)
	b.Run("websocket/streams=1", func(b *testing.B) {
		transporttest.BenchmarkThroughput(b, func(b *testing.B) (transport.Conn, transport.Conn) {
			return dialAccept(b, l, url, clientTLS)
		}, 1, 64<<10)
	})
}

func TestAcceptTimeoutClosesUnacceptedConnection(t *testing.T) {
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	l, err := websocket.ListenConfig{Handler: websocket.HandlerConfig{Backlog: 1, AcceptTimeout: 50 * time.Millisecond}}.Listen("127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	url := "wss://" + l.Addr().String() + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := websocket.Dial(ctx, url, clientTLS, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseWithError(0, "")
	time.Sleep(20 * time.Millisecond) // first takes the backlog's one place
	second, err := websocket.Dial(ctx, url, clientTLS, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer second.CloseWithError(0, "")
	select {
	case <-second.Context().Done():
	case <-ctx.Done():
		t.Fatal("a connection that found the backlog full was never closed")
	}
	var je *jsperr.Error
	if !errors.As(context.Cause(second.Context()), &je) || je.Code != jsperr.GoingAway || !je.Remote {
		t.Fatalf("cause %v, want remote GOING_AWAY", context.Cause(second.Context()))
	}
	s, err := l.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.CloseWithError(0, "")
}
