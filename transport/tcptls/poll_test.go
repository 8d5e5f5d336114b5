package tcptls

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/transporttest"
)

func pollListen(t *testing.T, lc ListenConfig) (*Listener, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	l, err := lc.Listen("127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, clientTLS
}

// The goroutine-per-connection path stays available and correct.
func TestConformanceNoPoll(t *testing.T) {
	l, clientTLS := pollListen(t, ListenConfig{NoPoll: true})
	if l.poller != nil {
		t.Fatal("NoPoll listener has a poller")
	}
	transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := Dial(ctx, l.Addr().String(), clientTLS, mux.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return c, s
	})
}

// trickleConn writes in pieces of a few bytes, so the server sees TLS
// records torn at every position, across many reads.
type trickleConn struct {
	net.Conn
	piece int
}

func (c trickleConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(c.piece, len(p))
		m, err := c.Conn.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
	}
	return n, nil
}

func TestPolledTornRecords(t *testing.T) {
	l, clientTLS := pollListen(t, ListenConfig{})
	for _, piece := range []int{1, 3, 5, 700} {
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conf := jspTLS(clientTLS)
		conf.ServerName = "localhost"
		tc := tls.Client(trickleConn{nc, piece}, conf)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatalf("piece %d: handshake: %v", piece, err)
		}
		client := mux.New(tlsStream{Conn: tc, raw: nc}, mux.Config{}, true)
		server, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte("0123456789abcdef"), 3000) // several records, chunks and frames
		st, err := client.OpenStream(ctx, protocol.ClassBulk)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			st.Write(want)
			st.Close()
		}()
		ss, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(ss)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("piece %d: read %d bytes (%v), want %d", piece, len(got), err, len(want))
		}
		cancel()
		client.Close()
		server.CloseWithError(0, "")
	}
}

// An idle accepted link holds no goroutine on the server: with n idle
// links open the count is the clients' readers and the poller's waiter.
func TestPolledIdleLinksHoldNoGoroutine(t *testing.T) {
	l, clientTLS := pollListen(t, ListenConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := runtime.NumGoroutine()
	const n = 10
	var conns []transport.Conn
	for range n {
		c, err := Dial(ctx, l.Addr().String(), clientTLS, mux.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SendDatagram([]byte("hi"), protocol.ClassChat); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReceiveDatagram(ctx); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	defer func() {
		for _, c := range conns {
			c.CloseWithError(0, "")
		}
	}()
	want := base + n + 1
	if !netpoll.IdleWithoutGoroutine {
		want += n // the fallback poller waits with one goroutine per socket
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		g := runtime.NumGoroutine()
		if g <= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle links, want at most %d", g, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// And they still work after idling.
	for i := 0; i < len(conns); i += 2 {
		if err := conns[i].SendDatagram([]byte("again"), protocol.ClassChat); err != nil {
			t.Fatal(err)
		}
		if b, err := conns[i+1].ReceiveDatagram(ctx); err != nil || string(b) != "again" {
			t.Fatalf("after idle: %q, %v", b, err)
		}
	}
}

// The peer ending the connection with and without close_notify ends the
// server link as the goroutine reader does: TRANSPORT_CLOSED.
func TestPolledPeerEnds(t *testing.T) {
	for _, notify := range []bool{true, false} {
		l, clientTLS := pollListen(t, ListenConfig{})
		nc, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conf := jspTLS(clientTLS)
		conf.ServerName = "localhost"
		tc := tls.Client(nc, conf)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := tc.HandshakeContext(ctx); err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if notify {
			tc.Close()
		} else {
			nc.Close()
		}
		select {
		case <-s.(*mux.Conn).Done():
		case <-ctx.Done():
			t.Fatalf("notify=%v: server link did not end", notify)
		}
		cancel()
		if code := jsperr.CodeOf(context.Cause(s.(*mux.Conn).Context())); code != jsperr.TransportClosed {
			t.Fatalf("notify=%v: closed with %s, want TRANSPORT_CLOSED", notify, code)
		}
	}
}
