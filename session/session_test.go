package session

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// establish runs a handshake over a fresh in-memory transport pair and
// registers cleanup.
func establish(t *testing.T, ccfg, scfg Config, info ClientInfo) (cli, srv *Session) {
	t.Helper()
	return establishOn(t, newPair, ccfg, scfg, info)
}

// establishOn is establish over the transport pairs that factory makes.
func establishOn(t *testing.T, factory func(*testing.T) (transport.Conn, transport.Conn), ccfg, scfg Config, info ClientInfo) (cli, srv *Session) {
	t.Helper()
	cc, sc := factory(t)
	ccfg.Logger, scfg.Logger = quietLogger(), quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Accept(ctx, sc, scfg, ServerOptions{})
		ch <- res{s, err}
	}()
	cli, err := Dial(ctx, cc, info, ccfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("Accept: %v", r.err)
	}
	t.Cleanup(func() {
		cli.Close()
		r.s.Close()
	})
	return cli, r.s
}

func TestHandshake(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{Name: "test", Version: "1.0"})
	if cli.Version() != protocol.Version1 || srv.Version() != protocol.Version1 {
		t.Fatalf("versions %d/%d, want 1", cli.Version(), srv.Version())
	}
	if !bytes.Equal(cli.ID(), srv.ID()) || len(cli.ID()) == 0 {
		t.Fatalf("session ids differ: %x vs %x", cli.ID(), srv.ID())
	}
	if !cli.zstd || !srv.zstd {
		t.Fatal("zstd not negotiated")
	}
	if srv.Hello().ClientName != "test" {
		t.Fatalf("server saw client name %q", srv.Hello().ClientName)
	}
}

func TestHandshakeVersionNegotiation(t *testing.T) {
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Accept(ctx, sc, Config{Logger: quietLogger()}, ServerOptions{})
		errc <- err
	}()
	_, err := Dial(ctx, cc, ClientInfo{Versions: []protocol.Version{7, 9}}, Config{Logger: quietLogger()})
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.UnsupportedVersion || !je.Remote {
		t.Fatalf("Dial error = %v, want remote UNSUPPORTED_VERSION", err)
	}
	if len(je.Supported) != 1 || je.Supported[0] != 1 {
		t.Fatalf("supported = %v, want [1]", je.Supported)
	}
	if err := <-errc; jsperr.CodeOf(err) != jsperr.UnsupportedVersion {
		t.Fatalf("Accept error = %v, want UNSUPPORTED_VERSION", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	_, sc := newPair(t)
	ctx := context.Background()
	_, err := Accept(ctx, sc, Config{Logger: quietLogger(), HandshakeTimeout: 100 * time.Millisecond}, ServerOptions{})
	if jsperr.CodeOf(err) != jsperr.HandshakeTimeout {
		t.Fatalf("Accept error = %v, want HANDSHAKE_TIMEOUT", err)
	}
}

// TestHandshakeRefusesNonHello: a first frame other than HELLO is a
// protocol violation.
func TestHandshakeRefusesNonHello(t *testing.T) {
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := Accept(ctx, sc, Config{Logger: quietLogger()}, ServerOptions{})
		errc <- err
	}()
	st, err := cc.OpenStream(ctx, protocol.ClassSystem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(wire.AppendFrame(nil, wire.FramePing, 0, 0, (&wire.Ping{ID: 1}).Append(nil))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; jsperr.CodeOf(err) != jsperr.ProtocolViolation {
		t.Fatalf("Accept error = %v, want PROTOCOL_VIOLATION", err)
	}
}

func TestAuthenticatorRefuses(t *testing.T) {
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() {
		_, _ = Accept(ctx, sc, Config{Logger: quietLogger()}, ServerOptions{
			Authenticate: func(ctx context.Context, h *wire.Hello, c transport.Conn) (Identity, error) {
				if string(h.Auth) != "secret" {
					return Identity{}, jsperr.New(jsperr.Unauthenticated, "bad token")
				}
				return Identity{User: "alice"}, nil
			},
		})
	}()
	_, err := Dial(ctx, cc, ClientInfo{Auth: []byte("wrong")}, Config{Logger: quietLogger()})
	if jsperr.CodeOf(err) != jsperr.Unauthenticated {
		t.Fatalf("Dial error = %v, want UNAUTHENTICATED", err)
	}
}

// serveEcho answers COMMANDs with their body until the session ends, and
// returns everything else on out.
func serveEcho(s *Session, out chan<- Incoming) {
	for {
		in, err := s.Recv(context.Background())
		if err != nil {
			return
		}
		if in.Type == wire.FrameCommand {
			if string(in.Envelope.Body) == "silence" {
				continue
			}
			_ = s.Reply(in.Envelope, in.Envelope.Body, jsperr.NoError, "")
			continue
		}
		if out != nil {
			out <- in
		}
	}
}

func TestRequestReply(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	go serveEcho(srv, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := cli.Request(ctx, &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Class: protocol.ClassChat, Body: []byte("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if string(rep.Body) != "hi" {
		t.Fatalf("reply body %q", rep.Body)
	}
	// A command nobody answers times out with TIMEOUT.
	tctx, tcancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer tcancel()
	_, err = cli.Request(tctx, &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Body: []byte("silence")})
	if jsperr.CodeOf(err) != jsperr.Timeout {
		t.Fatalf("unanswered command error = %v, want TIMEOUT", err)
	}
}

func TestPingRTT(t *testing.T) {
	cli, _ := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 5; i++ {
		rtt, err := cli.Ping(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rtt <= 0 {
			t.Fatalf("rtt = %v", rtt)
		}
	}
	if srtt, _ := cli.RTT(); srtt <= 0 {
		t.Fatalf("smoothed rtt = %v", srtt)
	}
}

// TestIdleTimeout: a client that stops sending heartbeats is closed by the
// server with IDLE_TIMEOUT, and the client learns the code.
func TestIdleTimeout(t *testing.T) {
	cli, srv := establish(t, Config{HeartbeatInterval: time.Hour, BatteryHeartbeatInterval: time.Hour, IdleTimeout: time.Hour},
		Config{IdleTimeout: 200 * time.Millisecond}, ClientInfo{})
	err := srv.Wait()
	if jsperr.CodeOf(err) != jsperr.IdleTimeout {
		t.Fatalf("server ended with %v, want IDLE_TIMEOUT", err)
	}
	err = cli.Wait()
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.IdleTimeout || !je.Remote {
		t.Fatalf("client ended with %v, want remote IDLE_TIMEOUT", err)
	}
}

// TestHeartbeatKeepsAlive: with heartbeats shorter than the idle timeout
// the session survives several idle periods.
func TestHeartbeatKeepsAlive(t *testing.T) {
	cli, srv := establish(t, Config{HeartbeatInterval: 20 * time.Millisecond, IdleTimeout: time.Hour},
		Config{HeartbeatInterval: 20 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}, ClientInfo{})
	time.Sleep(time.Second)
	if err := srv.Err(); err != nil {
		t.Fatalf("server session ended: %v", err)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("client session ended: %v", err)
	}
	if srtt, _ := cli.RTT(); srtt <= 0 {
		t.Fatal("heartbeats produced no RTT sample")
	}
}

// TestHeartbeatSkippedWhileBusy: a client whose control stream carries
// frames both ways between two ticks sends no heartbeat PING; once idle it
// pings at every tick again.
func TestHeartbeatSkippedWhileBusy(t *testing.T) {
	const interval = 25 * time.Millisecond
	cli, srv := establish(t, Config{HeartbeatInterval: interval, IdleTimeout: time.Hour},
		Config{HeartbeatInterval: interval, IdleTimeout: time.Hour}, ClientInfo{})
	go serveEcho(srv, nil)
	pings := func() uint64 {
		cli.pendingMu.Lock()
		defer cli.pendingMu.Unlock()
		return cli.pingID
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	echo := wire.Route{Kind: wire.RouteService, Name: "echo"}
	start := pings()
	for end := time.Now().Add(20 * interval); time.Now().Before(end); {
		if _, err := cli.Request(ctx, &wire.Envelope{Route: echo, Body: []byte("busy")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval / 10)
	}
	busy := pings() - start
	start = pings()
	time.Sleep(20 * interval)
	idle := pings() - start
	t.Logf("heartbeat PINGs over 20 intervals: %d busy, %d idle", busy, idle)
	if busy > 3 {
		t.Fatalf("%d heartbeat PINGs while requests went both ways, want at most 3", busy)
	}
	if idle < 3 {
		t.Fatalf("%d heartbeat PINGs while idle, want one per interval", idle)
	}
}

func TestCompressionRoundTrip(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	out := make(chan Incoming, 4)
	go serveEcho(srv, out)
	body := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 400))
	if err := cli.SendEnvelope(wire.FramePublish, &wire.Envelope{ID: []byte("m1"), Route: wire.Route{Kind: wire.RouteChannel, Name: "general"}, Class: protocol.ClassChat, Body: body}); err != nil {
		t.Fatal(err)
	}
	in := <-out
	if !bytes.Equal(in.Envelope.Body, body) {
		t.Fatal("body changed in transit")
	}
	if !in.Flags.Has(wire.FlagCompressed) {
		t.Fatal("large text was not compressed")
	}
	if w := cli.Stats().BytesWritten; w > uint64(len(body))/4 {
		t.Fatalf("wrote %d bytes for a %d-byte repetitive body", w, len(body))
	}
}

func TestMessageTooLarge(t *testing.T) {
	cli, _ := establish(t, Config{MaxMessageSize: 1024}, Config{}, ClientInfo{})
	err := cli.SendEnvelope(wire.FramePublish, &wire.Envelope{ID: []byte("x"), Route: wire.Route{Name: "c"}, Body: make([]byte, 1025)})
	if jsperr.CodeOf(err) != jsperr.MessageTooLarge {
		t.Fatalf("error = %v, want MESSAGE_TOO_LARGE", err)
	}
}

func TestStreamAPI(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	payload := make([]byte, 1<<20)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	errc := make(chan error, 1)
	go func() {
		st, err := srv.AcceptStream(ctx)
		if err != nil {
			errc <- err
			return
		}
		if st.Label() != "upload" || st.Metadata()["name"] != "a.bin" {
			errc <- errors.New("wrong label or metadata")
			return
		}
		h := sha256.New()
		if _, err := io.Copy(h, st); err != nil {
			errc <- err
			return
		}
		_, err = st.Write(h.Sum(nil))
		if err == nil {
			err = st.Close()
		}
		errc <- err
	}()
	st, err := cli.OpenStream(ctx, protocol.ClassBulk, "upload", map[string]string{"name": "a.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write(payload); err != nil {
		t.Fatal(err)
	}
	st.Close()
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:]) {
		t.Fatal("server hash differs")
	}
}

func TestDatagramFragmentation(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, n := range []int{1, 500, 20_000} {
		b := make([]byte, n)
		rand.Read(b)
		if err := cli.SendDatagram(b, protocol.ClassMedia); err != nil {
			t.Fatalf("send %d bytes: %v", n, err)
		}
		got, err := srv.ReceiveDatagram(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%d-byte datagram changed in transit (got %d bytes)", n, len(got))
		}
	}
	err := cli.SendDatagram(make([]byte, protocol.DefaultMaxDatagramMessage+1), protocol.ClassMedia)
	if jsperr.CodeOf(err) != jsperr.DatagramTooLarge {
		t.Fatalf("oversize datagram error = %v, want DATAGRAM_TOO_LARGE", err)
	}
}

func TestMixedAPIDeliveryModes(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	out := make(chan Incoming, 16)
	go serveEcho(srv, out)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, mode := range []Delivery{DeliveryOrdered, DeliveryUnordered, DeliveryUnreliable, DeliveryPartial} {
		env := &wire.Envelope{Route: wire.Route{Kind: wire.RouteUser, Name: "bob"}, Class: protocol.ClassChat,
			Body: []byte("hello " + mode.String())}
		if mode == DeliveryPartial {
			env.TTL = 5000
		}
		if err := cli.SendMessage(ctx, env, mode); err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		select {
		case in := <-out:
			if in.Type != wire.FrameMessage || string(in.Envelope.Body) != "hello "+mode.String() || in.Delivery != mode {
				t.Fatalf("%s: got %s %q via %s", mode, in.Type, in.Envelope.Body, in.Delivery)
			}
		case <-ctx.Done():
			t.Fatalf("%s: message not delivered", mode)
		}
	}
	if err := cli.SendMessage(ctx, &wire.Envelope{Route: wire.Route{Name: "x"}, Body: []byte("x")}, DeliveryPartial); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("partial without TTL: %v, want BAD_REQUEST", err)
	}
}

func TestGoAway(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.GoAway(ctx, "maintenance", []string{"jsp://other:7400"}, 100*time.Millisecond) }()
	select {
	case <-cli.GoingAway():
	case <-ctx.Done():
		t.Fatal("no GOAWAY")
	}
	g := cli.GoAwayInfo()
	if g.Reason != "maintenance" || len(g.Alternatives) != 1 || g.Alternatives[0] != "jsp://other:7400" {
		t.Fatalf("goaway = %+v", g)
	}
	<-done
	if err := cli.Wait(); jsperr.CodeOf(err) != jsperr.GoingAway {
		t.Fatalf("client ended with %v, want GOING_AWAY", err)
	}
}

// TestMalformedControlFrame: garbage on the control stream closes the
// session with the decoder's error code; the process and other sessions go
// on.
func TestMalformedControlFrame(t *testing.T) {
	cases := []struct {
		name  string
		bytes []byte
		code  jsperr.Code
	}{
		{"non-minimal varint", []byte{0x40, 0x13, 0, 0, 0}, jsperr.NonMinimalVarint},
		{"frame too large", wire.AppendHeader(nil, wire.Header{Type: wire.FramePublish, Length: 1 << 40}), jsperr.FrameTooLarge},
		{"bad cbor", wire.AppendFrame(nil, wire.FramePublish, 0, 0, []byte{0xff, 0xff}), jsperr.InvalidCbor},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
			other, _ := establish(t, Config{}, Config{}, ClientInfo{})
			// Write raw bytes on the client's control stream; its sender is
			// idle, so nothing interleaves.
			if _, err := cli.ctl.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			err := srv.Wait()
			if jsperr.CodeOf(err) != tc.code {
				t.Fatalf("server ended with %v, want %s", err, tc.code)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := other.Ping(ctx); err != nil {
				t.Fatalf("unrelated session broken: %v", err)
			}
		})
	}
}

func TestMediaFlows(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{MaxFlows: 2}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cli.SendFlow(wire.FlowMixedUnreliable, []byte("x"), protocol.ClassMedia); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("reserved flow: %v, want BAD_REQUEST", err)
	}
	// Flows 2 and 3 fit the server's limit of two media flows; flow 4 is
	// dropped, so only the marker on flow 2 follows it.
	for _, f := range []wire.FlowID{2, 3, 4, 2} {
		if err := cli.SendFlow(f, []byte{byte(f)}, protocol.ClassMedia); err != nil {
			t.Fatal(err)
		}
	}
	var got []wire.FlowID
	for len(got) < 3 {
		d, err := srv.ReceiveFlow(ctx)
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		if len(d.Data) != 1 || wire.FlowID(d.Data[0]) != d.Flow {
			t.Fatalf("flow %d carried %v", d.Flow, d.Data)
		}
		got = append(got, d.Flow)
	}
	if got[0] != 2 || got[1] != 3 || got[2] != 2 {
		t.Fatalf("flows received %v, want [2 3 2]", got)
	}
}

func TestNackPaths(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	small := &wire.Nack{Flow: 3, Seqs: []uint64{7, 8, 9}}
	big := &wire.Nack{Flow: 4}
	for i := uint64(0); i < 1000; i++ { // too large for one datagram: control stream
		big.Seqs = append(big.Seqs, i*1000)
	}
	for _, n := range []*wire.Nack{small, big} {
		if err := cli.SendNack(n); err != nil {
			t.Fatal(err)
		}
		got, err := srv.ReceiveNack(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got.Flow != n.Flow || len(got.Seqs) != len(n.Seqs) || got.Seqs[len(got.Seqs)-1] != n.Seqs[len(n.Seqs)-1] {
			t.Fatalf("got NACK flow %d with %d seqs, want flow %d with %d", got.Flow, len(got.Seqs), n.Flow, len(n.Seqs))
		}
	}
}

func TestCapabilityNegotiation(t *testing.T) {
	cli, srv := establish(t, Config{Capabilities: []string{"fec", "x-client-only"}},
		Config{Capabilities: []string{"fec", "x-server-only"}}, ClientInfo{})
	for _, s := range []*Session{cli, srv} {
		if !s.HasCapability("fec") || !s.HasCapability(CapZstd) {
			t.Fatalf("common capabilities missing: %v", s.Welcome().Caps)
		}
		if s.HasCapability("x-client-only") || s.HasCapability("x-server-only") {
			t.Fatalf("one-sided capability in effect: %v", s.Welcome().Caps)
		}
	}
}

// TestSignedFlag: an envelope with a signature travels with the SIGNED flag;
// a frame whose flag disagrees with its envelope is a protocol violation.
func TestSignedFlag(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	out := make(chan Incoming, 1)
	go serveEcho(srv, out)
	sig := bytes.Repeat([]byte{7}, 64)
	if err := cli.SendEnvelope(wire.FramePublish, &wire.Envelope{ID: []byte("s1"), Route: wire.Route{Name: "c"}, Signature: sig, Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	in := <-out
	if !in.Flags.Has(wire.FlagSigned) || !bytes.Equal(in.Envelope.Signature, sig) {
		t.Fatalf("flags %x, signature %x", in.Flags, in.Envelope.Signature)
	}
	// Now a hand-made frame: SIGNED set, no signature.
	env := &wire.Envelope{ID: []byte("s2"), Route: wire.Route{Name: "c"}, Body: []byte("x")}
	frame := wire.AppendFrame(nil, wire.FramePublish, wire.FlagSigned, 0, (&wire.EnvelopeFrame{Type: wire.FramePublish, Envelope: *env}).Append(nil))
	if _, err := cli.ctl.Write(frame); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); jsperr.CodeOf(err) != jsperr.ProtocolViolation {
		t.Fatalf("server ended with %v, want PROTOCOL_VIOLATION", err)
	}
}

// TestRecvAfterPeerClose: messages that arrived before the peer closed are
// still returned by Recv, then Recv reports the end with its cause.
func TestRecvAfterPeerClose(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	for i := 0; i < 3; i++ {
		if err := cli.SendEnvelope(wire.FramePublish, &wire.Envelope{ID: []byte{byte(i)}, Route: wire.Route{Name: "c"}, Class: protocol.ClassChat, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil { // the publishes are ahead of the PONG
		t.Fatal(err)
	}
	cli.Close()
	if err := srv.Wait(); jsperr.CodeOf(err) != jsperr.NoError {
		t.Fatalf("server ended with %v", err)
	}
	for i := 0; i < 3; i++ {
		in, err := srv.Recv(ctx)
		if err != nil || in.Envelope.Body[0] != byte(i) {
			t.Fatalf("message %d: %v %v", i, in, err)
		}
	}
	if _, err := srv.Recv(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Recv after the end = %v, want ErrClosed", err)
	}
}

// TestErrorWithRef: an ERROR naming a message fails only that message (a
// pending command gets it as its error; others go to Recv); an ERROR
// without a reference ends the session.
func TestErrorWithRef(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		in, err := srv.Recv(ctx)
		if err != nil {
			return
		}
		srv.Send(&wire.ErrorMessage{Code: jsperr.RateLimited, Reason: "slow down", RetryAfterMS: 1500, Ref: in.Envelope.ID})
		srv.Send(&wire.ErrorMessage{Code: jsperr.LimitExceeded, Reason: "too many", Ref: []byte("sub-1")})
	}()
	_, err := cli.Request(ctx, &wire.Envelope{ID: []byte("cmd-1"), Route: wire.Route{Kind: wire.RouteService, Name: "x"}})
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.RateLimited || !je.Remote || je.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("request error = %#v, want remote RATE_LIMITED retrying after 1.5 s", err)
	}
	in, err := cli.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	em, ok := in.Message.(*wire.ErrorMessage)
	if !ok || em.Code != jsperr.LimitExceeded || string(em.Ref) != "sub-1" {
		t.Fatalf("Recv = %+v, want the referenced ERROR", in)
	}
	if err := cli.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
	srv.Send(&wire.ErrorMessage{Code: jsperr.Internal, Reason: "boom"})
	if err := cli.Wait(); jsperr.CodeOf(err) != jsperr.Internal {
		t.Fatalf("client ended with %v, want INTERNAL", err)
	}
}

func TestAuthenticatorIdentity(t *testing.T) {
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Accept(ctx, sc, Config{Logger: quietLogger()}, ServerOptions{
			Authenticate: func(ctx context.Context, h *wire.Hello, c transport.Conn) (Identity, error) {
				return Identity{User: "alice", Device: "d1", Scopes: []string{"chat"}}, nil
			},
		})
		ch <- res{s, err}
	}()
	cli, err := Dial(ctx, cc, ClientInfo{Auth: []byte("token")}, Config{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	if id := r.s.Identity(); id.User != "alice" || id.Device != "d1" || len(id.Scopes) != 1 {
		t.Fatalf("identity = %+v", id)
	}
}
