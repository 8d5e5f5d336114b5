package websocket

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/transporttest"
)

// wssClientTLS is the client side of the test certificates, for dialTLS.
var wssClientTLS *tls.Config

// startWSS serves a handler with Listen (TLS ended here, decision D40)
// and returns it with the server's host:port.
func startWSS(t *testing.T, cfg HandlerConfig) (*Handler, string) {
	t.Helper()
	return startWSSWith(t, ListenConfig{Handler: cfg})
}

func startWSSWith(t *testing.T, lc ListenConfig) (*Handler, string) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	wssClientTLS = clientTLS
	l, err := lc.Listen("127.0.0.1:0", serverTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if l.Handler.poller == nil {
		t.Fatal("wss listener without a poller")
	}
	return l.Handler, l.Addr().String()
}

// dialTLS connects a TLS 1.3 client socket speaking HTTP/1.1.
func dialTLS(t *testing.T, hostport string) net.Conn {
	t.Helper()
	conf := wssClientTLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	d := tls.Dialer{Config: conf, NetDialer: &net.Dialer{Timeout: 10 * time.Second}}
	nc, err := d.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	return nc
}

// socketPair returns two connected Unix stream sockets: bytes written to
// one are readable from the other as soon as Write returns.
func socketPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Skipf("socketpair: %v", err)
	}
	var conns [2]net.Conn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = c
	}
	return conns[0], conns[1]
}

// tearingConn writes one byte at a time and calls after each byte.
type tearingConn struct {
	net.Conn
	after func()
}

func (c *tearingConn) Write(p []byte) (int, error) {
	for i := range p {
		if _, err := c.Conn.Write(p[i : i+1]); err != nil {
			return i, err
		}
		if c.after != nil {
			c.after()
		}
	}
	return len(p), nil
}

// TLS records torn at every byte: the upgraded wss source reads without
// waiting after each byte, returns nothing until a record is whole, then
// exactly its plaintext, and never errors or blocks on a torn record.
func TestWSSTornRecords(t *testing.T) {
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		if errors.Is(err, netpoll.ErrUnsupported) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer p.Close()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	sc, cc := socketPair(t)
	sock, err := netpoll.NewSocket(p, sc)
	if err != nil {
		t.Fatal(err)
	}
	feed := tcptls.NewFeed(sock)
	server := tls.Server(feed, serverTLS)
	tc := &tearingConn{Conn: cc}
	client := tls.Client(tc, clientTLS)
	defer sock.Close()
	defer cc.Close()
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	feed.SetNonblocking()
	src := &tlsSource{tc: server, feed: feed, inner: true}
	// The test reads by itself; the callback only has to exist for
	// Rearm, which the source's contract asks for after each empty read.
	if err := src.Watch(func() {}); err != nil {
		t.Fatal(err)
	}
	readNow := func(buf []byte) (int, error) {
		n, err := src.ReadAvailable(buf)
		if n == 0 && err == nil {
			if err := src.Rearm(); err != nil {
				t.Fatal(err)
			}
		}
		return n, err
	}
	buf := make([]byte, 64)
	var got []byte
	reads := 0 // ReadAvailable calls that returned bytes
	tc.after = func() {
		n, err := readNow(buf)
		if err != nil {
			t.Fatalf("torn record: %v", err)
		}
		if n > 0 {
			reads++
			got = append(got, buf[:n]...)
		}
	}
	msgs := [][]byte{[]byte("a"), bytes.Repeat([]byte("b"), 100), clientFrame(opBinary, true, datagramFrame("frame"))}
	var want []byte
	for i, m := range msgs {
		if _, err := client.Write(m); err != nil { // one record per Write
			t.Fatal(err)
		}
		want = append(want, m...)
		// Plaintext over len(buf) stays in crypto/tls after the first
		// read; the next reads return it without a new record.
		for n := 1; n > 0; {
			n, err = readNow(buf)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, buf[:n]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after record %d: %q, want %q", i, got, want)
		}
	}
	if reads != len(msgs) {
		t.Fatalf("plaintext came in %d reads, want one per record (%d)", reads, len(msgs))
	}
	// close_notify ends the input cleanly.
	tc.after = nil
	client.CloseWrite()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := readNow(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || n > 0 || time.Now().After(deadline) {
			t.Fatalf("after close_notify: %d, %v", n, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// A client that sends its request slowly, or nothing, is dropped after
// the handshake timeout, before any upgrade.
func TestWSSSlowRequest(t *testing.T) {
	_, hostport := startWSSWith(t, ListenConfig{HandshakeTimeout: 200 * time.Millisecond})
	tests := []struct {
		name string
		conn func() net.Conn
	}{
		{"no TLS handshake", func() net.Conn {
			nc, err := net.Dial("tcp", hostport)
			if err != nil {
				t.Fatal(err)
			}
			return nc
		}},
		{"half a request", func() net.Conn {
			nc := dialTLS(t, hostport)
			if _, err := nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n")); err != nil {
				t.Fatal(err)
			}
			return nc
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc := tt.conn()
			defer nc.Close()
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			_, err := io.Copy(io.Discard, nc)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("connection still open after 5 s")
			}
			t.Logf("closed after %v (%v)", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// countingConn counts write calls on a socket and passes its descriptor
// on, as the gateway's admitted connections do.
type countingConn struct {
	net.Conn
	writes int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes++
	return c.Conn.Write(p)
}

func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.Conn.(syscall.Conn).SyscallConn()
}

// Each frame the server writes on wss leaves with one write call, however
// many TLS records it takes, and arrives intact.
func TestWSSFrameOneWrite(t *testing.T) {
	p, err := netpoll.New(netpoll.Config{})
	if err != nil {
		if errors.Is(err, netpoll.ErrUnsupported) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	defer p.Close()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	serverTLS = serverTLS.Clone()
	serverTLS.DynamicRecordSizingDisabled = true // as TLSListener sets it
	sc, cc := socketPair(t)
	counted := &countingConn{Conn: sc}
	sock, err := netpoll.NewSocket(p, counted)
	if err != nil {
		t.Fatal(err)
	}
	feed := tcptls.NewFeed(sock)
	server := tls.Server(feed, serverTLS)
	client := tls.Client(cc, clientTLS)
	defer sock.Close()
	defer cc.Close()
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	feed.SetNonblocking()
	s := newServerConn(server, &tlsSource{tc: server, feed: feed, inner: true}, nil, 1<<20)
	for _, size := range []int{0, 100, tlsRecordPayload - maxFrameHeader, tlsRecordPayload, 3*tlsRecordPayload + 7, mux.DefaultMaxWriteBatch + 1000} {
		payload := bytes.Repeat([]byte{byte(size)}, size)
		got := make(chan []byte, 1)
		go func() {
			// The client reads the frame: header, then payload.
			var hdr [10]byte
			if _, err := io.ReadFull(client, hdr[:2]); err != nil {
				got <- nil
				return
			}
			n := 2 + map[byte]int{126: 2, 127: 8}[hdr[1]&0x7f]
			if _, err := io.ReadFull(client, hdr[2:n]); err != nil {
				got <- nil
				return
			}
			h, _, _ := parseFrameHeader(hdr[:n])
			b := make([]byte, h.length)
			if _, err := io.ReadFull(client, b); err != nil || h.opcode != opBinary || !h.fin {
				got <- nil
				return
			}
			got <- b
		}()
		before := counted.writes
		if _, err := s.Write(payload); err != nil {
			t.Fatal(err)
		}
		if w := counted.writes - before; w != 1 {
			t.Errorf("frame of %d bytes: %d write calls, want 1", size, w)
		}
		if b := <-got; !bytes.Equal(b, payload) {
			t.Fatalf("frame of %d bytes arrived as %d bytes", size, len(b))
		}
	}
}
