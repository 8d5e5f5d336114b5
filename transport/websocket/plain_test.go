package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/netpoll"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"github.com/jetstreamproto/jsp/wire"
)

// startPlain serves a handler behind a (pretended) TLS proxy on plain
// HTTP and returns it with the server's host:port.
func startPlain(t *testing.T, cfg HandlerConfig) (*Handler, string) {
	t.Helper()
	cfg.BehindTLSProxy = true
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		h.Close()
		srv.Close()
	})
	return h, strings.TrimPrefix(srv.URL, "http://")
}

// tlsFaked reports the TLS state the proxy in front would have given:
// the conformance suite checks it, and plain links have none.
type tlsFaked struct{ *mux.Conn }

func (tlsFaked) TLS() tls.ConnectionState {
	return tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}
}

func TestPlainConformance(t *testing.T) {
	for _, noPoll := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPoll=%v", noPoll), func(t *testing.T) {
			h, hostport := startPlain(t, HandlerConfig{NoPoll: noPoll})
			if (h.poller == nil) != noPoll {
				t.Fatalf("poller %v with NoPoll %v", h.poller, noPoll)
			}
			transporttest.Run(t, func(t *testing.T) (transport.Conn, transport.Conn) {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, _, err := ws.Dial(ctx, "ws://"+hostport+"/", &ws.DialOptions{Subprotocols: []string{protocol.WebSocketSubprotocol}})
				if err != nil {
					t.Fatal(err)
				}
				client := mux.New(ws.NetConn(context.Background(), c, ws.MessageBinary), mux.Config{Kind: transport.KindWebSocket}, true)
				s, err := h.Accept(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return tlsFaked{client}, tlsFaked{s.(*mux.Conn)}
			})
		})
	}
}

// rawClient is a WebSocket client written by hand, to send what a
// library would not.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

const upgradeRequest = "GET / HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: jsp.1\r\n\r\n"

// endpoint is a way to serve a Handler: plain HTTP behind a (pretended)
// TLS proxy, or wss:// with TLS ended by Listen (decision D40). The tests
// of this package's framing run on both.
type endpoint struct {
	name  string
	start func(t *testing.T, cfg HandlerConfig) (*Handler, string)
	// conn connects a client socket: TCP, or TLS for wss.
	conn func(t *testing.T, hostport string) net.Conn
}

var endpoints = []endpoint{
	{"plain", startPlain, func(t *testing.T, hostport string) net.Conn {
		t.Helper()
		nc, err := net.Dial("tcp", hostport)
		if err != nil {
			t.Fatal(err)
		}
		return nc
	}},
	{"wss", startWSS, dialTLS},
}

// dialRaw upgrades a plain connection; early is sent in the same write as
// the request.
func dialRaw(t *testing.T, hostport string, early []byte) *rawClient {
	t.Helper()
	return endpoints[0].dialRaw(t, hostport, early)
}

// dialRaw upgrades a connection; early is sent in the same write as the
// request.
func (e endpoint) dialRaw(t *testing.T, hostport string, early []byte) *rawClient {
	t.Helper()
	nc := e.conn(t, hostport)
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(append([]byte(fmt.Sprintf(upgradeRequest, hostport)), early...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" ||
		resp.Header.Get("Sec-WebSocket-Protocol") != protocol.WebSocketSubprotocol {
		t.Fatalf("upgrade response %d %v", resp.StatusCode, resp.Header)
	}
	return &rawClient{t: t, nc: nc, br: br}
}

// clientFrame encodes a masked client frame.
func clientFrame(op byte, fin bool, payload []byte) []byte {
	h := frameHeader{fin: fin, opcode: op, masked: true, mask: [4]byte{0xa1, 0xb2, 0xc3, 0xd4}, length: uint64(len(payload))}
	b := appendFrameHeader(nil, h)
	p := bytes.Clone(payload)
	maskBytes(h.mask, 0, p)
	return append(b, p...)
}

func (c *rawClient) send(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// next reads one server frame.
func (c *rawClient) next() (byte, []byte) { return c.nextFrame(false) }

// nextFrame reads one whole frame, checks that it is masked exactly when
// masked is set (a client's frame) and returns its opcode and unmasked
// payload.
func (c *rawClient) nextFrame(masked bool) (byte, []byte) {
	c.t.Helper()
	var hdr [maxFrameHeader]byte
	if _, err := io.ReadFull(c.br, hdr[:2]); err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	n := 2
	if masked {
		n += 4
	}
	switch hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if _, err := io.ReadFull(c.br, hdr[2:n]); err != nil {
		c.t.Fatal(err)
	}
	h, hn, err := parseFrameHeader(hdr[:n])
	if err != nil || hn != n || h.masked != masked || !h.fin {
		c.t.Fatalf("frame %+v (want masked %v), %v", h, masked, err)
	}
	p := make([]byte, h.length)
	if _, err := io.ReadFull(c.br, p); err != nil {
		c.t.Fatal(err)
	}
	if masked {
		maskBytes(h.mask, 0, p)
	}
	return h.opcode, p
}

// nextOf skips frames until one with opcode op.
func (c *rawClient) nextOf(op byte) []byte {
	c.t.Helper()
	for {
		o, p := c.next()
		if o == op {
			return p
		}
	}
}

func closeCode(p []byte) uint16 {
	if len(p) < 2 {
		return statusNoStatus
	}
	return binary.BigEndian.Uint16(p)
}

func accept(t *testing.T, h *Handler) *mux.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := h.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := s.(*mux.Conn)
	t.Cleanup(func() { c.CloseWithError(0, "") })
	return c
}

func datagramFrame(p string) []byte {
	return wire.AppendFrame(nil, wire.FrameLinkDatagram, 0, 0, []byte(p))
}

func waitEnded(t *testing.T, c *mux.Conn) jsperr.Code {
	t.Helper()
	select {
	case <-c.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("link did not end")
	}
	return jsperr.CodeOf(context.Cause(c.Context()))
}

func TestPlainFragmentsPingAndEarlyBytes(t *testing.T) {
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) { testFragmentsPingAndEarlyBytes(t, e) })
	}
}

func testFragmentsPingAndEarlyBytes(t *testing.T, e endpoint) {
	h, hostport := e.start(t, HandlerConfig{Mux: mux.Config{CloseTimeout: 100 * time.Millisecond}})
	// The first message rides with the upgrade request.
	c := e.dialRaw(t, hostport, clientFrame(opBinary, true, datagramFrame("early")))
	s := accept(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if b, err := s.ReceiveDatagram(ctx); err != nil || string(b) != "early" {
		t.Fatalf("early datagram %q, %v", b, err)
	}
	// Two link frames split over three fragments, a ping in between, and
	// the pieces written one by one.
	link := append(datagramFrame("one"), datagramFrame("two")...)
	msg := concatBytes(
		clientFrame(opBinary, false, link[:2]),
		clientFrame(opPing, true, []byte("are you there")),
		clientFrame(opContinuation, false, link[2:9]),
		clientFrame(opContinuation, true, link[9:]),
	)
	for i := range msg {
		c.send(msg[i : i+1])
	}
	if p := c.nextOf(opPong); string(p) != "are you there" {
		t.Fatalf("pong %q", p)
	}
	for _, want := range []string{"one", "two"} {
		if b, err := s.ReceiveDatagram(ctx); err != nil || string(b) != want {
			t.Fatalf("datagram %q, %v; want %q", b, err, want)
		}
	}
	// The server's messages are unmasked binary frames carrying link frames.
	if err := s.SendDatagram([]byte("back"), protocol.ClassChat); err != nil {
		t.Fatal(err)
	}
	p := c.nextOf(opBinary)
	if _, got, _, err := wire.ParseFrame(p, 1<<20); err != nil || string(got) != "back" {
		t.Fatalf("server message %x: %v", p, err)
	}
}

func concatBytes(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// violation is a client input and how the server answers it.
type violation struct {
	name      string
	input     []byte
	wsClose   uint16      // close code the server sends, 0: none expected
	linkClose jsperr.Code // LINK_CLOSE code the server sends, 0: none expected
	code      jsperr.Code // the server link's end
}

func TestPlainViolations(t *testing.T) {
	tests := []violation{
		{"unmasked frame", appendFrameHeader(nil, frameHeader{fin: true, opcode: opBinary, length: 1}), statusProtocolError, 0, jsperr.TransportClosed},
		{"RSV bit", appendFrameHeader(nil, frameHeader{fin: true, rsv: 0x40, opcode: opBinary, masked: true, length: 1}), statusProtocolError, 0, jsperr.TransportClosed},
		{"reserved opcode", clientFrame(0x3, true, []byte("x")), statusProtocolError, 0, jsperr.TransportClosed},
		{"continuation without a message", clientFrame(opContinuation, true, []byte("x")), statusProtocolError, 0, jsperr.TransportClosed},
		{"binary inside a message", concatBytes(clientFrame(opBinary, false, []byte("x")), clientFrame(opBinary, true, []byte("y"))), statusProtocolError, 0, jsperr.TransportClosed},
		{"fragmented ping", clientFrame(opPing, false, []byte("x")), statusProtocolError, 0, jsperr.TransportClosed},
		{"oversized ping", clientFrame(opPing, true, make([]byte, 126)), statusProtocolError, 0, jsperr.TransportClosed},
		{"frame over the limit", appendFrameHeader(nil, frameHeader{fin: true, opcode: opBinary, masked: true, length: 1 << 40}), statusMessageTooBig, 0, jsperr.TransportClosed},
		{"bad close code", clientFrame(opClose, true, []byte{0x03, 0xe8 + 4}), statusProtocolError, 0, jsperr.TransportClosed},
		{"close with one byte", clientFrame(opClose, true, []byte{1}), statusProtocolError, 0, jsperr.TransportClosed},
		{"text message", clientFrame(opText, true, []byte("hi")), 0, jsperr.ProtocolViolation, jsperr.ProtocolViolation},
		{"normal close", clientFrame(opClose, true, appendClosePayload(nil, statusNormal, "bye")), statusNormal, 0, jsperr.TransportClosed},
		{"going away", clientFrame(opClose, true, appendClosePayload(nil, statusGoingAway, "")), statusGoingAway, 0, jsperr.TransportClosed},
		{"close with an error code", clientFrame(opClose, true, appendClosePayload(nil, statusInternalError, "")), statusInternalError, 0, jsperr.TransportClosed},
		// As on the library's path, input that ends inside a WebSocket
		// frame ends the link as a torn link frame.
		{"torn frame at the end", clientFrame(opBinary, true, []byte("abc"))[:4], 0, 0, jsperr.Truncated},
	}
	for _, e := range endpoints {
		for _, tt := range tests {
			t.Run(e.name+"/"+tt.name, func(t *testing.T) {
				testViolation(t, e, tt)
			})
		}
	}
}

func testViolation(t *testing.T, e endpoint, tt violation) {
	h, hostport := e.start(t, HandlerConfig{Mux: mux.Config{CloseTimeout: 200 * time.Millisecond}})
	c := e.dialRaw(t, hostport, nil)
	s := accept(t, h)
	c.send(tt.input)
	if tt.name == "torn frame at the end" {
		// TCP's FIN, or TLS close_notify on wss.
		c.nc.(interface{ CloseWrite() error }).CloseWrite()
	}
	if tt.wsClose != 0 {
		if got := closeCode(c.nextOf(opClose)); got != tt.wsClose {
			t.Fatalf("close code %d, want %d", got, tt.wsClose)
		}
	}
	if tt.linkClose != 0 {
		p := c.nextOf(opBinary)
		h, payload, _, err := wire.ParseFrame(p, 1<<20)
		if err != nil || h.Type != wire.FrameLinkClose {
			t.Fatalf("message %x is no LINK_CLOSE: %v", p, err)
		}
		if code, _, err := wire.ParseLinkClose(payload); err != nil || code != tt.linkClose {
			t.Fatalf("LINK_CLOSE %s, %v; want %s", code, err, tt.linkClose)
		}
	}
	if got := waitEnded(t, s); got != tt.code {
		t.Fatalf("link ended with %s, want %s", got, tt.code)
	}
}

func TestPlainRefusedUpgrades(t *testing.T) {
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) { testRefusedUpgrades(t, e) })
	}
}

func testRefusedUpgrades(t *testing.T, e endpoint) {
	_, hostport := e.start(t, HandlerConfig{OriginPatterns: []string{"*.example.com"}})
	base := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://"+hostport+"/", nil)
		r.Header.Set("Connection", "keep-alive, Upgrade")
		r.Header.Set("Upgrade", "WebSocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		r.Header.Set("Sec-WebSocket-Protocol", protocol.WebSocketSubprotocol)
		return r
	}
	tests := []struct {
		name   string
		edit   func(*http.Request)
		status int
	}{
		{"allowed origin", func(r *http.Request) { r.Header.Set("Origin", "https://app.example.com") }, http.StatusSwitchingProtocols},
		{"own host", func(r *http.Request) { r.Header.Set("Origin", "http://"+hostport) }, http.StatusSwitchingProtocols},
		{"foreign origin", func(r *http.Request) { r.Header.Set("Origin", "https://evil.test") }, http.StatusForbidden},
		{"old version", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Version", "8") }, http.StatusUpgradeRequired},
		{"bad key", func(r *http.Request) { r.Header.Set("Sec-WebSocket-Key", "c2hvcnQ=") }, http.StatusBadRequest},
		{"no upgrade header", func(r *http.Request) { r.Header.Del("Upgrade") }, http.StatusUpgradeRequired},
		{"POST", func(r *http.Request) { r.Method = http.MethodPost }, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.edit(r)
			nc := e.conn(t, hostport)
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			if err := r.Write(nc); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), r)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

// Idle plain links hold no goroutine on the server, and work after idling.
func TestPlainIdleLinksHoldNoGoroutine(t *testing.T) {
	for _, e := range endpoints {
		t.Run(e.name, func(t *testing.T) { testIdleLinksHoldNoGoroutine(t, e) })
	}
}

func testIdleLinksHoldNoGoroutine(t *testing.T, e endpoint) {
	h, hostport := e.start(t, HandlerConfig{Mux: mux.Config{CloseTimeout: 100 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := runtime.NumGoroutine()
	const n = 10
	var clients []*rawClient
	var servers []*mux.Conn
	for i := range n {
		c := e.dialRaw(t, hostport, clientFrame(opBinary, true, datagramFrame(fmt.Sprint(i))))
		s := accept(t, h)
		if _, err := s.ReceiveDatagram(ctx); err != nil {
			t.Fatal(err)
		}
		clients, servers = append(clients, c), append(servers, s)
	}
	// The raw clients run no goroutines; the server only the poller's.
	want := base + 1
	if !netpoll.IdleWithoutGoroutine {
		want += n // the fallback poller waits with one goroutine per socket
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > want {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle links, want at most %d", runtime.NumGoroutine(), n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, c := range clients {
		c.send(clientFrame(opBinary, true, datagramFrame("again")))
		if b, err := servers[i].ReceiveDatagram(ctx); err != nil || string(b) != "again" {
			t.Fatalf("after idle: %q, %v", b, err)
		}
	}
}

// discardConn is a net.Conn whose reads come from a fixed input and whose
// writes vanish: the decoder under fuzzing answers pings and closes.
type discardConn struct {
	net.Conn
	r io.Reader
}

func (c discardConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (c discardConn) Close() error                { return nil }

// FuzzServerConnRead: any input decodes without panicking, never yields
// more link bytes than it holds, and ends with an error.
func FuzzServerConnRead(f *testing.F) {
	f.Add(concatBytes(clientFrame(opBinary, true, datagramFrame("x")), clientFrame(opClose, true, appendClosePayload(nil, statusNormal, ""))))
	f.Add(concatBytes(clientFrame(opBinary, false, []byte("ab")), clientFrame(opPing, true, []byte("p")), clientFrame(opContinuation, true, []byte("cd"))))
	f.Add(clientFrame(opText, true, []byte("t")))
	f.Add(appendFrameHeader(nil, frameHeader{fin: true, opcode: opBinary, masked: true, length: 70000}))
	f.Fuzz(func(t *testing.T, in []byte) {
		readAllLinkBytes(t, newServerConn(discardConn{r: bytes.NewReader(in)}, nil, nil, 1<<16), in)
	})
}

// readAllLinkBytes reads s, decoding in, until an error: it fails if s
// yields more link bytes than in holds or never ends.
func readAllLinkBytes(t *testing.T, s *serverConn, in []byte) {
	t.Helper()
	p := make([]byte, mux.MinPollRead)
	total := 0
	for range len(in) + 2 {
		n, err := s.Read(p)
		total += n
		if total > len(in) {
			t.Fatalf("%d link bytes from %d input bytes", total, len(in))
		}
		if err != nil {
			return
		}
	}
	t.Fatal("input never ended")
}
