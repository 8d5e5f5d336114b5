package tcptls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// listen starts a listener on loopback that the test closes.
func listen(t testing.TB, lc tcptls.ListenConfig) (*tcptls.Listener, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	l, err := lc.Listen("127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, clientTLS
}

func dialAccept(t testing.TB, l *tcptls.Listener, clientTLS *tls.Config) (transport.Conn, transport.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := tcptls.Dial(ctx, l.Addr().String(), clientTLS, mux.Config{})
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
	l, clientTLS := listen(t, tcptls.ListenConfig{})
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		return dialAccept(t, l, clientTLS)
	})
}

// expectRefused checks that the server ends a raw connection without
// handing it to Accept.
func expectClosedByServer(t *testing.T, nc net.Conn, within time.Duration) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(within))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("server kept the connection open for %v", within)
	}
}

func expectNoAccept(t *testing.T, l *tcptls.Listener) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c, err := l.Accept(ctx); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("a refused client was accepted")
	}
}

// expectServed checks that a good client is still served.
func expectServed(t *testing.T, l *tcptls.Listener, clientTLS *tls.Config) {
	t.Helper()
	c, s := dialAccept(t, l, clientTLS)
	defer c.CloseWithError(0, "")
	defer s.CloseWithError(0, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := c.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	cs.Write([]byte("ping"))
	ss, err := s.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(ss, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}
}

func TestRefusedClients(t *testing.T) {
	tests := []struct {
		name   string
		client func(t *testing.T, addr string, clientTLS *tls.Config) net.Conn
	}{
		{"TLS 1.2 only", func(t *testing.T, addr string, clientTLS *tls.Config) net.Conn {
			conf := clientTLS.Clone()
			conf.MinVersion, conf.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
			conf.NextProtos = []string{protocol.ALPN}
			c, err := tls.Dial("tcp", addr, conf)
			if err == nil {
				c.Close()
				t.Fatal("TLS 1.2 handshake succeeded")
			}
			return nil
		}},
		{"no ALPN", func(t *testing.T, addr string, clientTLS *tls.Config) net.Conn {
			c, err := tls.Dial("tcp", addr, clientTLS)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			return c // the server closes it after its ALPN check
		}},
		{"wrong ALPN", func(t *testing.T, addr string, clientTLS *tls.Config) net.Conn {
			conf := clientTLS.Clone()
			conf.NextProtos = []string{"h2"}
			if c, err := tls.Dial("tcp", addr, conf); err == nil {
				c.Close()
				t.Fatal("handshake with ALPN h2 succeeded")
			}
			return nil
		}},
		{"plaintext HTTP", func(t *testing.T, addr string, _ *tls.Config) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"))
			return c
		}},
		{"garbage", func(t *testing.T, addr string, _ *tls.Config) net.Conn {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write([]byte{0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8})
			return c
		}},
	}
	l, clientTLS := listen(t, tcptls.ListenConfig{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := l.Refused()
			if nc := tc.client(t, l.Addr().String(), clientTLS); nc != nil {
				expectClosedByServer(t, nc, 5*time.Second)
				nc.Close()
			}
			expectNoAccept(t, l)
			deadline := time.Now().Add(5 * time.Second)
			for l.Refused() == before {
				if time.Now().After(deadline) {
					t.Fatal("the listener did not count the refusal")
				}
				time.Sleep(time.Millisecond)
			}
			expectServed(t, l, clientTLS)
		})
	}
}

func TestSilentClientIsDroppedWhileOthersAreServed(t *testing.T) {
	const timeout = 300 * time.Millisecond
	l, clientTLS := listen(t, tcptls.ListenConfig{HandshakeTimeout: timeout})
	silent := make([]net.Conn, 3)
	for i := range silent {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent[i] = c
	}
	// While the silent clients hold their handshakes open, others connect.
	start := time.Now()
	for i := 0; i < 3; i++ {
		expectServed(t, l, clientTLS)
	}
	for _, c := range silent {
		expectClosedByServer(t, c, 10*time.Second)
	}
	if waited := time.Since(start); waited < timeout/2 {
		t.Fatalf("silent clients dropped after %v, before the handshake timeout %v", waited, timeout)
	}
}

func TestHandshakeCapShedsExcess(t *testing.T) {
	l, clientTLS := listen(t, tcptls.ListenConfig{MaxHandshakes: 2, HandshakeTimeout: 5 * time.Second})
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Two silent clients take both handshake slots; a third is shed at once.
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	expectClosedByServer(t, conns[2], 3*time.Second)
	// Freeing a slot lets a real client in.
	conns[0].Close()
	conns[1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.Refused() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	expectServed(t, l, clientTLS)
}

func TestDialRefusesServerWithoutJSP(t *testing.T) {
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	serverTLS = serverTLS.Clone()
	serverTLS.NextProtos = []string{"http/1.1"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		c.(*tls.Conn).Handshake()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := tcptls.Dial(ctx, ln.Addr().String(), clientTLS, mux.Config{}); err == nil {
		c.CloseWithError(0, "")
		t.Fatal("Dial succeeded against a server that does not speak jsp/1")
	}
	<-done
}

func TestListenerClose(t *testing.T) {
	l, clientTLS := listen(t, tcptls.ListenConfig{})
	c, s := dialAccept(t, l, clientTLS)
	// A connection dialed but not accepted is closed by Close.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pending, err := tcptls.Dial(ctx, l.Addr().String(), clientTLS, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the server finish its side
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(ctx); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	select {
	case <-pending.Context().Done():
	case <-ctx.Done():
		t.Fatal("a connection never accepted stayed open after Close")
	}
	pending.CloseWithError(0, "")
	// The accepted connection is unaffected.
	if c.Context().Err() != nil || s.Context().Err() != nil {
		t.Fatal("an accepted connection closed with the listener")
	}
	c.CloseWithError(0, "")
	s.CloseWithError(0, "")
}

func BenchmarkThroughput(b *testing.B) {
	l, clientTLS := listen(b, tcptls.ListenConfig{})
	cases := []struct{ streams, size int }{{1, 64 << 10}, {4, 64 << 10}, {4, 256}}
	for _, tc := range cases {
		b.Run(fmt.Sprintf("tcptls/streams=%d/write=%d", tc.streams, tc.size), func(b *testing.B) {
			var client transport.Conn
			transporttest.BenchmarkThroughput(b, func(b *testing.B) (transport.Conn, transport.Conn) {
				c, s := dialAccept(b, l, clientTLS)
				client = c
				return c, s
			}, tc.streams, tc.size)
			st := client.(*mux.Conn).Stats()
			b.ReportMetric(float64(st.FramesWritten)/float64(st.Writes), "frames/write")
		})
	}
}

func TestBacklogBoundsUnacceptedConnections(t *testing.T) {
	// One handshake slot and a backlog of one: the first client waits in
	// the backlog, the second holds the slot waiting for room, a third is
	// shed at once.
	l, clientTLS := listen(t, tcptls.ListenConfig{MaxHandshakes: 1, Backlog: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var dialed []transport.Conn
	defer func() {
		for _, c := range dialed {
			c.CloseWithError(0, "")
		}
	}()
	for i := 0; i < 2; i++ {
		c, err := tcptls.Dial(ctx, l.Addr().String(), clientTLS, mux.Config{})
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		dialed = append(dialed, c)
		time.Sleep(20 * time.Millisecond) // let the server finish its side
	}
	before := l.Refused()
	nc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	expectClosedByServer(t, nc, 5*time.Second)
	if l.Refused() != before+1 {
		t.Fatalf("refused %d, want %d", l.Refused(), before+1)
	}
	for i := 0; i < 2; i++ {
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatalf("accept %d: %v", i, err)
		}
		s.CloseWithError(0, "")
	}
}
