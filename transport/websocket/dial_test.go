package websocket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/transporttest"
)

// fakeServer is a TLS 1.3 endpoint that answers one upgrade request with
// what answer returns and then hands the connection to the test.
type fakeServer struct {
	url   string
	conns chan *rawClient
}

// startFakeServer serves one connection; answer gets the request's
// Sec-WebSocket-Key and returns the raw bytes to send back.
func startFakeServer(t *testing.T, answer func(key string) string) (*fakeServer, *tls.Config) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	conf := serverTLS.Clone()
	conf.NextProtos = []string{"http/1.1"}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{url: "wss://" + ln.Addr().String() + "/jsp?x=1", conns: make(chan *rawClient, 1)}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(nc)
		req, err := http.ReadRequest(br)
		if err != nil || req.URL.RequestURI() != "/jsp?x=1" || req.Header.Get("Sec-WebSocket-Protocol") != protocol.WebSocketSubprotocol {
			nc.Close()
			return
		}
		io.WriteString(nc, answer(req.Header.Get("Sec-WebSocket-Key")))
		fs.conns <- &rawClient{t: t, nc: nc, br: br}
	}()
	return fs, clientTLS
}

// accept returns the server's side of the upgraded connection.
func (fs *fakeServer) accept(t *testing.T) *rawClient {
	t.Helper()
	select {
	case c := <-fs.conns:
		t.Cleanup(func() { c.nc.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	return nil
}

// dialFake dials a fake server that answers the upgrade with answer and
// returns a context that ends with the test (at most 10 s), the client's
// link, closed at cleanup, and the server's side of the connection.
func dialFake(t *testing.T, answer func(key string) string) (context.Context, *mux.Conn, *rawClient) {
	t.Helper()
	fs, clientTLS := startFakeServer(t, answer)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, err := Dialer{Mux: mux.Config{CloseTimeout: 200 * time.Millisecond}}.Dial(ctx, fs.url, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseWithError(0, "") })
	return ctx, c, fs.accept(t)
}

func upgradeAnswer(key string, extra string) string {
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + acceptKey(key) + "\r\n" + extra + "\r\n"
}

// serverFrame encodes an unmasked server frame.
func serverFrame(op byte, fin bool, payload []byte) []byte {
	return append(appendFrameHeader(nil, frameHeader{fin: fin, opcode: op, length: uint64(len(payload))}), payload...)
}

// nextMasked reads one client frame, checks that it is masked and returns
// its opcode and unmasked payload.
func (c *rawClient) nextMasked() (byte, []byte) { return c.nextFrame(true) }

func TestDialRefusesBadUpgradeResponses(t *testing.T) {
	proto := "Sec-WebSocket-Protocol: " + protocol.WebSocketSubprotocol + "\r\n"
	tests := []struct {
		name   string
		answer func(key string) string
		want   string
	}{
		{"refused", func(string) string { return "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n" }, "403"},
		{"wrong accept key", func(string) string { return upgradeAnswer("other", proto) }, "Sec-WebSocket-Accept"},
		{"no upgrade header", func(key string) string {
			return strings.Replace(upgradeAnswer(key, proto), "Upgrade: websocket\r\n", "", 1)
		}, "Upgrade"},
		{"no subprotocol", func(key string) string { return upgradeAnswer(key, "") }, "subprotocol"},
		{"other subprotocol", func(key string) string { return upgradeAnswer(key, "Sec-WebSocket-Protocol: chat\r\n") }, "subprotocol"},
		{"extension not offered", func(key string) string {
			return upgradeAnswer(key, proto+"Sec-WebSocket-Extensions: permessage-deflate\r\n")
		}, "extension"},
		{"response over the limit", func(key string) string {
			return upgradeAnswer(key, proto+"X-Pad: "+strings.Repeat("a", maxUpgradeResponse)+"\r\n")
		}, errUpgradeResponseTooLarge.Error()},
		{"not HTTP", func(string) string { return "hello\r\n\r\n" }, "read upgrade response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, clientTLS := startFakeServer(t, tt.answer)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := Dial(ctx, fs.url, clientTLS, mux.Config{})
			if err == nil {
				c.CloseWithError(0, "")
				t.Fatal("Dial accepted the response")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDialRefusesPlainScheme(t *testing.T) {
	_, err := Dial(context.Background(), "ws://127.0.0.1:1/jsp", nil, mux.Config{})
	if jsperr.CodeOf(err) != jsperr.TlsRequired {
		t.Fatalf("error %v, want TLS_REQUIRED", err)
	}
}

func TestDialHandshakeTimeout(t *testing.T) {
	fs, clientTLS := startFakeServer(t, func(string) string { return "" }) // never answers
	start := time.Now()
	_, err := Dialer{HandshakeTimeout: 200 * time.Millisecond}.Dial(context.Background(), fs.url, clientTLS)
	if err == nil {
		t.Fatal("Dial succeeded without an answer")
	}
	if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "timeout") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if time.Since(start) > 9*time.Second {
		t.Fatal("handshake timeout not applied")
	}
}

// TestClientFraming checks the client's side of the framing: early frames
// behind the upgrade response, fragments, masked writes, a ping answered
// with a masked pong, and a normal close ending the link.
func TestClientFraming(t *testing.T) {
	proto := "Sec-WebSocket-Protocol: " + protocol.WebSocketSubprotocol + "\r\n"
	ctx, c, s := dialFake(t, func(key string) string {
		// The first frame rides in the same write as the response.
		return upgradeAnswer(key, proto) + string(serverFrame(opBinary, true, datagramFrame("early")))
	})
	if b, err := c.ReceiveDatagram(ctx); err != nil || string(b) != "early" {
		t.Fatalf("early datagram %q, %v", b, err)
	}

	// A link frame split over two fragments with a ping between them.
	df := datagramFrame(strings.Repeat("f", 300))
	s.send(concatBytes(serverFrame(opBinary, false, df[:100]), serverFrame(opPing, true, []byte("p1")), serverFrame(opContinuation, true, df[100:])))
	if b, err := c.ReceiveDatagram(ctx); err != nil || string(b) != strings.Repeat("f", 300) {
		t.Fatalf("fragmented datagram %q, %v", b, err)
	}
	if op, p := s.nextMasked(); op != opPong || string(p) != "p1" {
		t.Fatalf("ping answered with %#x %q", op, p)
	}

	// Client frames are masked.
	if err := c.SendDatagram([]byte("up"), protocol.ClassChat); err != nil {
		t.Fatal(err)
	}
	// The link frame's header carries the class flags; the datagram ends
	// the message.
	if op, p := s.nextMasked(); op != opBinary || len(p) != len(datagramFrame("up")) || !bytes.HasSuffix(p, []byte("up")) {
		t.Fatalf("client frame %#x %x, want a binary frame with the datagram", op, p)
	}

	s.send(serverFrame(opClose, true, appendClosePayload(nil, statusNormal, "")))
	if op, p := s.nextMasked(); op != opClose || closeCode(p) != statusNormal {
		t.Fatalf("close answered with %#x %v", op, p)
	}
	if code := waitEnded(t, c); code != jsperr.TransportClosed {
		t.Fatalf("link ended with %v, want TRANSPORT_CLOSED", code)
	}
}

// captureConn is a net.Conn that keeps what is written to it.
type captureConn struct {
	net.Conn
	out    bytes.Buffer
	writes int
}

func (c *captureConn) Write(p []byte) (int, error) { c.writes++; return c.out.Write(p) }

// TestClientWriteMasks checks that a client frame is masked with a fresh
// key, leaves the caller's bytes alone, and that a frame larger than a TLS
// record is written a record's worth at a time.
func TestClientWriteMasks(t *testing.T) {
	for _, n := range []int{0, 5, tlsRecordPayload - 2, 3*tlsRecordPayload + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var keys [][4]byte
			for range 2 {
				cc := &captureConn{}
				s := newClientConn(cc, nil)
				msg := bytes.Repeat([]byte{0x5a}, n)
				if _, err := s.Write(msg); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(msg, bytes.Repeat([]byte{0x5a}, n)) {
					t.Fatal("Write changed the caller's bytes")
				}
				if want := max(1, (n+maxFrameHeader+tlsRecordPayload-1)/tlsRecordPayload); cc.writes != want {
					t.Fatalf("%d writes, want %d", cc.writes, want)
				}
				b := cc.out.Bytes()
				h, hn, err := parseFrameHeader(b)
				if err != nil || hn == 0 || !h.masked || !h.fin || h.opcode != opBinary || h.length != uint64(n) || len(b) != hn+n {
					t.Fatalf("frame %+v (%d header bytes of %d), %v", h, hn, len(b), err)
				}
				p := b[hn:]
				maskBytes(h.mask, 0, p)
				if !bytes.Equal(p, msg) {
					t.Fatal("payload does not unmask to the message")
				}
				keys = append(keys, h.mask)
			}
			if keys[0] == keys[1] {
				t.Fatalf("two frames with the same masking key %x", keys[0])
			}
		})
	}
}

func TestClientViolations(t *testing.T) {
	tests := []struct {
		name    string
		input   []byte
		wsClose uint16
		code    jsperr.Code
	}{
		{"masked server frame", clientFrame(opBinary, true, datagramFrame("x")), statusProtocolError, jsperr.TransportClosed},
		{"RSV bit", append(appendFrameHeader(nil, frameHeader{fin: true, rsv: 0x40, opcode: opBinary, length: 1}), 0), statusProtocolError, jsperr.TransportClosed},
		{"reserved opcode", serverFrame(0x3, true, []byte("x")), statusProtocolError, jsperr.TransportClosed},
		{"continuation without a message", serverFrame(opContinuation, true, []byte("x")), statusProtocolError, jsperr.TransportClosed},
		{"oversized ping", serverFrame(opPing, true, make([]byte, 126)), statusProtocolError, jsperr.TransportClosed},
		{"close with an error code", serverFrame(opClose, true, appendClosePayload(nil, statusInternalError, "")), statusInternalError, jsperr.TransportClosed},
		{"text message", serverFrame(opText, true, []byte("hi")), 0, jsperr.ProtocolViolation},
	}
	proto := "Sec-WebSocket-Protocol: " + protocol.WebSocketSubprotocol + "\r\n"
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c, s := dialFake(t, func(key string) string { return upgradeAnswer(key, proto) })
			s.send(tt.input)
			if tt.wsClose != 0 {
				for {
					op, p := s.nextMasked()
					if op != opClose {
						continue
					}
					if closeCode(p) != tt.wsClose {
						t.Fatalf("close code %d, want %d", closeCode(p), tt.wsClose)
					}
					break
				}
			}
			if code := waitEnded(t, c); code != tt.code {
				t.Fatalf("link ended with %v, want %v", code, tt.code)
			}
		})
	}
}

// FuzzClientConnRead: any server input decodes without panicking, never
// yields more link bytes than it holds, and ends with an error.
func FuzzClientConnRead(f *testing.F) {
	f.Add(concatBytes(serverFrame(opBinary, true, datagramFrame("x")), serverFrame(opClose, true, appendClosePayload(nil, statusNormal, ""))))
	f.Add(concatBytes(serverFrame(opBinary, false, []byte("ab")), serverFrame(opPing, true, []byte("p")), serverFrame(opContinuation, true, []byte("cd"))))
	f.Add(serverFrame(opText, true, []byte("t")))
	f.Add(clientFrame(opBinary, true, []byte("masked")))
	f.Add(appendFrameHeader(nil, frameHeader{fin: true, opcode: opBinary, length: 70000}))
	f.Fuzz(func(t *testing.T, in []byte) {
		readAllLinkBytes(t, newClientConn(discardConn{r: bytes.NewReader(in)}, nil), in)
	})
}

// BenchmarkClientRead measures the client's decoding of server frames as
// a burst arrives: 64 binary messages of one 200-byte link datagram each
// per read.
func BenchmarkClientRead(b *testing.B) {
	var burst []byte
	for range 64 {
		burst = append(burst, serverFrame(opBinary, true, datagramFrame(strings.Repeat("e", 200)))...)
	}
	r := &repeatReader{b: burst}
	s := newClientConn(discardConn{r: r}, nil)
	p := make([]byte, 32<<10)
	b.SetBytes(int64(len(burst)))
	b.ReportAllocs()
	for range b.N {
		for want := 64 * len(datagramFrame(strings.Repeat("e", 200))); want > 0; {
			n, err := s.Read(p[:min(len(p), want)])
			if err != nil {
				b.Fatal(err)
			}
			want -= n
		}
	}
}

// repeatReader returns b over and over, all of it per Read when p has
// room, like a socket with a burst waiting.
type repeatReader struct {
	b   []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}
