package quic

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	quicgo "github.com/quic-go/quic-go"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

func TestHandshakeState(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	for name, c := range map[string]*Conn{"client": client, "server": server} {
		st := c.TLS()
		if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != protocol.ALPN {
			t.Errorf("%s: TLS %s ALPN %q", name, tls.VersionName(st.Version), st.NegotiatedProtocol)
		}
		if st.CurveID != tls.X25519MLKEM768 {
			t.Errorf("%s: key exchange %v, want X25519MLKEM768 (JSP §7.4)", name, st.CurveID)
		}
		if c.Kind() != transport.KindQUIC {
			t.Errorf("%s: Kind %q", name, c.Kind())
		}
	}
	if client.RemoteAddr().String() != server.LocalAddr().String() {
		t.Errorf("client remote %v, server local %v", client.RemoteAddr(), server.LocalAddr())
	}
	t.Logf("GSO: client %v, server %v", client.GSO(), server.GSO())
}

func TestStreamEchoAndClass(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)

	cs, err := client.OpenStream(ctx, protocol.ClassBulk)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Class() != protocol.ClassBulk {
		t.Fatalf("opener class %v", cs.Class())
	}
	if _, err := cs.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}

	ss, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ss.ID() != cs.ID() {
		t.Fatalf("stream ids %d vs %d", ss.ID(), cs.ID())
	}
	// QUIC carries no class: the acceptor reports chat until told.
	if ss.Class() != protocol.ClassChat {
		t.Fatalf("accepted class %v, want chat", ss.Class())
	}
	ss.(*Stream).SetClass(protocol.ClassMedia)
	if ss.Class() != protocol.ClassMedia {
		t.Fatalf("class after SetClass %v", ss.Class())
	}
	got, err := io.ReadAll(ss)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Fatalf("server read %q", got)
	}
	if _, err := ss.Write(bytes.ToUpper(got)); err != nil {
		t.Fatal(err)
	}
	if err := ss.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(cs)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != "HELLO" {
		t.Fatalf("client read %q", back)
	}
}

func TestOpenStreamRejectsUnknownClass(t *testing.T) {
	client, _ := pair(t, Config{}, Config{})
	if _, err := client.OpenStream(testCtx(t, time.Second), protocol.NumClasses); err == nil {
		t.Fatal("OpenStream accepted an unknown class")
	}
}

func TestLargeTransferSHA256(t *testing.T) {
	size := 8 << 20
	if testing.Short() {
		size = 1 << 20
	}
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 20*time.Second)
	data := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(data)
	want := sha256.Sum256(data)

	serverErr := make(chan error, 1)
	go func() {
		serverErr <- func() error {
			ss, err := server.AcceptStream(ctx)
			if err != nil {
				return err
			}
			h := sha256.New()
			if _, err := io.Copy(h, ss); err != nil {
				return err
			}
			if _, err := ss.Write(h.Sum(nil)); err != nil {
				return err
			}
			return ss.Close()
		}()
	}()

	cs, err := client.OpenStream(ctx, protocol.ClassBulk)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven write sizes exercise stream framing across packet boundaries.
	for off := 0; off < len(data); {
		n := min(len(data)-off, 1+rand.IntN(100_000))
		if _, err := cs.Write(data[off : off+n]); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := cs.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := io.ReadAll(cs)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-serverErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	if !bytes.Equal(sum, want[:]) {
		t.Fatalf("server hashed %x, sent %x", sum, want)
	}
}

func TestDatagrams(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	if client.MaxDatagramSize() != int(protocol.DefaultMaxDatagramPayload) {
		t.Fatalf("MaxDatagramSize %d", client.MaxDatagramSize())
	}
	ctx := testCtx(t, 10*time.Second)

	// Echo every datagram back. Datagrams may be lost even on loopback,
	// so the client resends until it hears the echo.
	var echoWG sync.WaitGroup
	echoWG.Go(func() {
		for {
			b, err := server.ReceiveDatagram(ctx)
			if err != nil {
				return
			}
			_ = server.SendDatagram(b, protocol.ClassMedia)
		}
	})
	for i := range 20 {
		size := []int{0, 1, 500, client.MaxDatagramSize()}[i%4]
		msg := bytes.Repeat([]byte{byte(i)}, size)
		if !roundTripDatagram(t, client, msg) {
			t.Fatalf("datagram %d (%d bytes) never echoed", i, size)
		}
	}

	err := client.SendDatagram(make([]byte, client.MaxDatagramSize()+1), protocol.ClassMedia)
	wantJSPError(t, err, jsperr.DatagramTooLarge, false)

	st := client.Stats()
	if st.DatagramsSent < 20 {
		t.Errorf("Stats.DatagramsSent = %d, want >= 20", st.DatagramsSent)
	}
	client.CloseWithError(jsperr.NoError, "")
	server.CloseWithError(jsperr.NoError, "")
	echoWG.Wait()

	// After close, sending reports the connection's end.
	err = client.SendDatagram([]byte("late"), protocol.ClassMedia)
	wantJSPError(t, err, jsperr.NoError, false)
}

// roundTripDatagram sends msg until it comes back, up to 10 tries.
func roundTripDatagram(t *testing.T, c *Conn, msg []byte) bool {
	t.Helper()
	for range 10 {
		if err := c.SendDatagram(msg, protocol.ClassMedia); err != nil {
			t.Fatalf("SendDatagram: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		for {
			b, err := c.ReceiveDatagram(ctx)
			if err != nil {
				break // resend
			}
			if bytes.Equal(b, msg) {
				cancel()
				return true
			}
			// An echo of an earlier resend: keep waiting for ours.
		}
		cancel()
	}
	return false
}

func TestDatagramsDisabled(t *testing.T) {
	tests := []struct {
		name           string
		client, server Config
	}{
		{"server off", Config{}, Config{DisableDatagrams: true}},
		{"client off", Config{DisableDatagrams: true}, Config{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, tt.client, tt.server)
			for _, c := range []*Conn{client, server} {
				if c.MaxDatagramSize() != 0 {
					t.Fatalf("MaxDatagramSize %d, want 0", c.MaxDatagramSize())
				}
				if err := c.SendDatagram([]byte("x"), protocol.ClassMedia); !errors.Is(err, ErrDatagramsDisabled) {
					t.Fatalf("SendDatagram: %v, want ErrDatagramsDisabled", err)
				}
				if _, err := c.ReceiveDatagram(testCtx(t, time.Second)); !errors.Is(err, ErrDatagramsDisabled) {
					t.Fatalf("ReceiveDatagram: %v, want ErrDatagramsDisabled", err)
				}
			}
		})
	}
}

func TestCloseCodesBothWays(t *testing.T) {
	tests := []struct {
		name         string
		serverCloses bool
		code         jsperr.Code
		reason       string
	}{
		{"client closes rate limited", false, jsperr.RateLimited, "slow down"},
		{"server closes going away", true, jsperr.GoingAway, "draining"},
		{"server closes unregistered code", true, jsperr.Code(0x3fff), ""},
		{"client closes no error", false, jsperr.NoError, "bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client, server := pair(t, Config{}, Config{})
			closer, peer := client, server
			if tt.serverCloses {
				closer, peer = server, client
			}
			if err := closer.CloseWithError(tt.code, tt.reason); err != nil {
				t.Fatal(err)
			}
			if err := closer.CloseWithError(jsperr.Internal, "again"); err != nil {
				t.Fatalf("second close: %v", err)
			}
			waitDone(t, peer.Context(), 5*time.Second)

			je := wantJSPError(t, context.Cause(peer.Context()), tt.code, true)
			if je.Reason != tt.reason {
				t.Errorf("peer cause reason %q, want %q", je.Reason, tt.reason)
			}
			if !errors.Is(je, net.ErrClosed) {
				t.Errorf("peer cause %v does not match net.ErrClosed", je)
			}
			wantJSPError(t, context.Cause(closer.Context()), tt.code, false)

			// Operations on the peer now fail with the same error.
			_, err := peer.AcceptStream(testCtx(t, time.Second))
			wantJSPError(t, err, tt.code, true)
			_, err = peer.OpenStream(testCtx(t, time.Second), protocol.ClassChat)
			wantJSPError(t, err, tt.code, true)
		})
	}
}

func TestStreamResets(t *testing.T) {
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 10*time.Second)

	t.Run("peer cancels write", func(t *testing.T) {
		cs, err := client.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
		ss, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		cs.CancelWrite(jsperr.Cancelled)
		_, err = io.ReadAll(ss)
		je := wantJSPError(t, err, jsperr.StreamReset, true)
		if !strings.Contains(je.Reason, "CANCELLED") {
			t.Errorf("reason %q does not name the peer's code", je.Reason)
		}
		if !errors.Is(err, jsperr.New(jsperr.Cancelled, "")) {
			t.Errorf("error %v does not carry the peer's code", err)
		}
		if code, ok := ResetCode(err); !ok || code != jsperr.Cancelled {
			t.Errorf("ResetCode = %v, %v", code, ok)
		}
		// The resetting side sees its own reset as local.
		_, err = cs.Write([]byte("more"))
		wantJSPError(t, err, jsperr.StreamReset, false)
	})

	t.Run("peer cancels read", func(t *testing.T) {
		cs, err := client.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		ss, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ss.CancelRead(jsperr.Forbidden)
		// STOP_SENDING arrives asynchronously; keep writing until it does.
		buf := make([]byte, 1024)
		var werr error
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
			if _, werr = cs.Write(buf); werr != nil {
				break
			}
			time.Sleep(time.Millisecond)
		}
		wantJSPError(t, werr, jsperr.StreamReset, true)
		if code, ok := ResetCode(werr); !ok || code != jsperr.Forbidden {
			t.Errorf("ResetCode = %v, %v", code, ok)
		}
	})

	t.Run("read deadline passes through", func(t *testing.T) {
		cs, err := client.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		cs.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err = cs.Read(make([]byte, 1))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read after deadline: %v, want a timeout", err)
		}
		if _, ok := errors.AsType[*jsperr.Error](err); ok {
			t.Fatalf("deadline mapped to a protocol error: %v", err)
		}
	})
}

func TestWrongALPNRefused(t *testing.T) {
	ln := listen(t, Config{})
	ctx := testCtx(t, 5*time.Second)
	tc := clientTLS.Clone()
	tc.NextProtos = []string{"h3"}
	// Dial through quic-go directly: this package's Dial would force
	// "jsp/1" and never offer anything else.
	qc, err := quicgo.DialAddr(ctx, ln.Addr().String(), tc, &quicgo.Config{})
	if err == nil {
		qc.CloseWithError(0, "")
		t.Fatal("server accepted ALPN h3")
	}
	mapped := connError(err)
	wantJSPError(t, mapped, jsperr.TlsRequired, true)

	// The listener handed out nothing.
	actx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if c, err := ln.Accept(actx); err == nil {
		c.CloseWithError(jsperr.NoError, "")
		t.Fatal("listener returned a connection for a refused handshake")
	}
}

func TestDialForcesALPNAndTLS13(t *testing.T) {
	ln := listen(t, Config{})
	tc := clientTLS.Clone()
	tc.NextProtos = []string{"h3"}
	tc.MinVersion = tls.VersionTLS12
	c, err := Dial(testCtx(t, 5*time.Second), ln.Addr().String(), tc, Config{})
	if err != nil {
		t.Fatalf("Dial with a config Enforce must fix: %v", err)
	}
	defer c.CloseWithError(jsperr.NoError, "")
	if c.TLS().NegotiatedProtocol != protocol.ALPN {
		t.Fatalf("ALPN %q", c.TLS().NegotiatedProtocol)
	}
	if tc.NextProtos[0] != "h3" {
		t.Fatal("Dial modified the caller's tls.Config")
	}
	sc, err := ln.Accept(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sc.CloseWithError(jsperr.NoError, "")

	bad := clientTLS.Clone()
	bad.MaxVersion = tls.VersionTLS12
	if _, err := Dial(testCtx(t, time.Second), ln.Addr().String(), bad, Config{}); err == nil {
		t.Fatal("Dial accepted MaxVersion TLS 1.2")
	}
}

func TestDialUntrustedServer(t *testing.T) {
	ln := listen(t, Config{})
	var wrong tlsconf.Fingerprint
	tc, err := tlsconf.Client(tlsconf.ClientConfig{Pins: []tlsconf.Fingerprint{wrong}, TrustPinsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dial(testCtx(t, 5*time.Second), ln.Addr().String(), tc, Config{})
	wantJSPError(t, err, jsperr.TlsRequired, false)
	if jsperr.CodeOf(err).Retryable() {
		t.Error("a refused certificate must not be marked retryable")
	}
}

func TestDialTimeoutIsContextError(t *testing.T) {
	// A UDP socket that never answers.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, pc.LocalAddr().String(), clientTLS, Config{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent address: %v, want context.DeadlineExceeded", err)
	}
}

func TestHandshakeIdleTimeout(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_, err = Dial(testCtx(t, 10*time.Second), pc.LocalAddr().String(), clientTLS,
		Config{HandshakeIdleTimeout: 150 * time.Millisecond})
	wantJSPError(t, err, jsperr.HandshakeTimeout, false)
}

// silentConn is a client socket that can stop sending, to play a peer
// that went away without closing.
type silentConn struct {
	net.PacketConn
	silent atomic.Bool
}

func (c *silentConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.silent.Load() {
		return len(p), nil
	}
	return c.PacketConn.WriteTo(p, addr)
}

func TestIdleTimeoutClosesSilentPeer(t *testing.T) {
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	sc := &silentConn{PacketConn: udp}
	short := Config{MaxIdleTimeout: 500 * time.Millisecond, KeepAlivePeriod: 100 * time.Millisecond}
	clientCfg := short
	clientCfg.PacketConn = sc
	client, server := pair(t, clientCfg, short)

	sc.silent.Store(true)
	start := time.Now()
	waitDone(t, server.Context(), 5*time.Second)
	wantJSPError(t, context.Cause(server.Context()), jsperr.IdleTimeout, false)
	if el := time.Since(start); el < 400*time.Millisecond {
		t.Errorf("server gave up after %v, before the 500 ms idle timeout", el)
	}
	// The client hears nothing either once the server gave up.
	waitDone(t, client.Context(), 5*time.Second)
	wantJSPError(t, context.Cause(client.Context()), jsperr.IdleTimeout, false)
}

func TestKeepAliveKeepsQuietConnection(t *testing.T) {
	short := Config{MaxIdleTimeout: 300 * time.Millisecond, KeepAlivePeriod: 50 * time.Millisecond}
	client, server := pair(t, short, short)
	select {
	case <-client.Context().Done():
		t.Fatalf("connection closed while quiet: %v", context.Cause(client.Context()))
	case <-server.Context().Done():
		t.Fatalf("connection closed while quiet: %v", context.Cause(server.Context()))
	case <-time.After(1200 * time.Millisecond): // four idle timeouts
	}
	noKeepAlive := Config{MaxIdleTimeout: 300 * time.Millisecond, KeepAlivePeriod: -1}
	client2, _ := pair(t, noKeepAlive, noKeepAlive)
	waitDone(t, client2.Context(), 5*time.Second)
	wantJSPError(t, context.Cause(client2.Context()), jsperr.IdleTimeout, false)
}

func TestManyConcurrentStreams(t *testing.T) {
	const streams = 200
	client, server := pair(t, Config{}, Config{})
	ctx := testCtx(t, 20*time.Second)

	var serverWG sync.WaitGroup
	serverWG.Go(func() {
		for range streams {
			s, err := server.AcceptStream(ctx)
			if err != nil {
				return
			}
			serverWG.Go(func() {
				b, err := io.ReadAll(s)
				if err != nil {
					return
				}
				s.Write(b)
				s.Close()
			})
		}
	})

	var wg sync.WaitGroup
	errs := make(chan error, streams)
	for i := range streams {
		wg.Go(func() {
			s, err := client.OpenStream(ctx, protocol.Class(i%protocol.NumClasses))
			if err != nil {
				errs <- err
				return
			}
			msg := bytes.Repeat([]byte{byte(i)}, 4096+i)
			if _, err := s.Write(msg); err != nil {
				errs <- err
				return
			}
			s.Close()
			got, err := io.ReadAll(s)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(got, msg) {
				errs <- errors.New("echo mismatch")
			}
		})
	}
	wg.Wait()
	serverWG.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStreamLimit(t *testing.T) {
	const limit = 3
	client, server := pair(t, Config{}, Config{MaxIncomingStreams: limit})
	ctx := testCtx(t, 10*time.Second)

	var open []transport.Stream
	for range limit {
		s, err := client.OpenStream(ctx, protocol.ClassChat)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, s)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := client.OpenStream(short, protocol.ClassChat); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stream %d: %v, want to block until the deadline", limit+1, err)
	}

	// Finishing one stream on both sides returns its credit.
	blocked := make(chan error, 1)
	go func() {
		s, err := client.OpenStream(ctx, protocol.ClassChat)
		if err == nil {
			s.CancelWrite(jsperr.Cancelled)
			s.CancelRead(jsperr.Cancelled)
		}
		blocked <- err
	}()
	first := open[0]
	if _, err := first.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	first.Close()
	ss, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(ss); err != nil {
		t.Fatal(err)
	}
	ss.Close()
	if _, err := io.ReadAll(first); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-blocked:
		if err != nil {
			t.Fatalf("OpenStream after a stream finished: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OpenStream still blocked after a stream finished")
	}
}

func TestListenerCloseKeepsConnections(t *testing.T) {
	ln := listen(t, Config{})
	client, server := dialAccept(t, ln, Config{})
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Accept(testCtx(t, time.Second)); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want transport.ErrClosed", err)
	}
	ctx := testCtx(t, 5*time.Second)
	cs, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	cs.Write([]byte("still here"))
	cs.Close()
	ss, err := server.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("established connection died with the listener: %v", err)
	}
	got, err := io.ReadAll(ss)
	if err != nil || string(got) != "still here" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestCallerPacketConn(t *testing.T) {
	serverPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer serverPC.Close()
	clientPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer clientPC.Close()

	ln, err := Listen("ignored:0", tlsconf.Server(serverCert), Config{PacketConn: serverPC})
	if err != nil {
		t.Fatal(err)
	}
	if ln.Addr().String() != serverPC.LocalAddr().String() {
		t.Fatalf("listener on %v, want %v", ln.Addr(), serverPC.LocalAddr())
	}
	client, server := dialAccept(t, ln.(*Listener), Config{PacketConn: clientPC})
	if client.LocalAddr().String() != clientPC.LocalAddr().String() {
		t.Fatalf("client on %v, want %v", client.LocalAddr(), clientPC.LocalAddr())
	}
	if server.RemoteAddr().String() != clientPC.LocalAddr().String() {
		t.Fatalf("server sees %v, want %v", server.RemoteAddr(), clientPC.LocalAddr())
	}
	client.CloseWithError(jsperr.NoError, "")
	server.CloseWithError(jsperr.NoError, "")
	ln.Close()

	// The caller still owns both sockets: they work after the QUIC side
	// closed.
	if _, err := clientPC.WriteTo([]byte("ping"), serverPC.LocalAddr()); err != nil {
		t.Fatalf("client socket closed by the transport: %v", err)
	}
}

func TestGSODisabledByEnvironment(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_GSO", "true")
	client, server := pair(t, Config{}, Config{})
	if client.GSO() || server.GSO() {
		t.Fatalf("GSO reported on (client %v, server %v) with QUIC_GO_DISABLE_GSO=true", client.GSO(), server.GSO())
	}
}

func TestListenRejects(t *testing.T) {
	tests := []struct {
		name string
		tc   *tls.Config
		cfg  Config
	}{
		{"nil tls", nil, Config{}},
		{"no certificate", &tls.Config{}, Config{}},
		{"tls12 only", &tls.Config{Certificates: []tls.Certificate{serverCert}, MaxVersion: tls.VersionTLS12}, Config{}},
		{"bad config", tlsconf.Server(serverCert), Config{MaxIncomingStreams: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen("127.0.0.1:0", tt.tc, tt.cfg)
			if err == nil {
				ln.Close()
				t.Fatal("Listen succeeded")
			}
		})
	}
}

type hookKey struct{}

// TestListenHooks checks the admission hooks on a real listener: Retry
// requested by VerifySourceAddress shows as a verified address in
// ConnContext, a value ConnContext stores reaches the accepted Conn's
// Context, a ConnContext error refuses the attempt, and the listener's own
// transport keeps established connections after Close and stops after the
// last of them.
func TestListenHooks(t *testing.T) {
	var retry atomic.Bool
	infos := make(chan ClientInfo, 4)
	var refuse atomic.Bool
	ln := listen(t, Config{
		VerifySourceAddress: func(net.Addr) bool { return retry.Load() },
		ConnContext: func(ctx context.Context, info ClientInfo) (context.Context, error) {
			infos <- info
			if refuse.Load() {
				return ctx, errors.New("refused by hook")
			}
			return context.WithValue(ctx, hookKey{}, info.RemoteAddr.String()), nil
		},
	})
	if ln.own == nil {
		t.Fatal("listener with hooks has no transport of its own")
	}
	next := func() ClientInfo {
		t.Helper()
		select {
		case info := <-infos:
			return info
		case <-time.After(10 * time.Second):
			t.Fatal("ConnContext not called")
			return ClientInfo{}
		}
	}

	client, server := dialAccept(t, ln, Config{})
	if info := next(); info.AddrVerified || info.RemoteAddr.String() != server.RemoteAddr().String() {
		t.Fatalf("first attempt: %+v (client %v), want unverified", info, server.RemoteAddr())
	}
	if v, _ := server.Context().Value(hookKey{}).(string); v != server.RemoteAddr().String() {
		t.Fatalf("accepted Conn's context holds %q, want the ConnContext value", v)
	}

	retry.Store(true)
	_, server2 := dialAccept(t, ln, Config{})
	if info := next(); !info.AddrVerified {
		t.Fatal("attempt after Retry not verified")
	}
	server2.CloseWithError(jsperr.NoError, "")

	retry.Store(false)
	refuse.Store(true)
	if _, err := Dial(testCtx(t, 10*time.Second), ln.Addr().String(), clientTLS, Config{}); err == nil {
		t.Fatal("Dial succeeded although ConnContext refused")
	}
	next()

	// Close keeps the first connection; the transport stops once the
	// connections are gone.
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 5*time.Second)
	cs, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	cs.Write([]byte("x"))
	if _, err := server.AcceptStream(ctx); err != nil {
		t.Fatalf("connection died with the listener: %v", err)
	}
	ln.own.mu.Lock()
	done := ln.own.done
	ln.own.mu.Unlock()
	if done {
		t.Fatal("transport closed while connections were open")
	}
	server.CloseWithError(jsperr.NoError, "")
	waitFor := time.Now().Add(10 * time.Second)
	for {
		ln.own.mu.Lock()
		done = ln.own.done && ln.own.live == 0
		ln.own.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(waitFor) {
			t.Fatal("transport not closed after the last connection")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
