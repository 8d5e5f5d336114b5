package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"github.com/jetstreamproto/jsp/security/credential"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/auth"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/wire"
)

// logBuffer collects log output; safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of subs.
func (l *logBuffer) lines(subs ...string) []string {
	var out []string
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

func bufferLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelInfo})), b
}

// dialInfo opens a session to g with the given client info; mkAuth, when
// set, builds HELLO auth from the connection's TLS state.
func (g *testGateway) dialInfo(t *testing.T, kind transport.Kind, name string, mkAuth func(tls.ConnectionState) []byte) (*session.Session, error) {
	t.Helper()
	conn := g.dialConn(t, kind)
	info := session.ClientInfo{Name: name}
	if mkAuth != nil {
		info.Auth = mkAuth(conn.TLS())
	}
	s, err := session.Dial(ctxT(t), conn, info, session.Config{Logger: testLogger()})
	if err != nil {
		_ = conn.CloseWithError(jsperr.NoError, "")
		return nil, err
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, nil
}

// nameAsUser authenticates every client as the user named in HELLO's
// client name, for tests of per-user behaviour.
func nameAsUser(expires time.Duration) session.Authenticator {
	return func(ctx context.Context, hello *wire.Hello, conn transport.Conn) (session.Identity, error) {
		id := session.Identity{User: hello.ClientName}
		if expires != 0 {
			id.Expires = time.Now().Add(expires)
		}
		return id, nil
	}
}

// waitClosed waits for s to end and returns its cause.
func waitClosed(t *testing.T, s *session.Session) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(testTimeout):
		t.Fatal("session not closed")
		return nil
	}
}

func TestIdentityExpiryClosesSession(t *testing.T) {
	tests := []struct {
		name    string
		expires time.Duration
	}{
		{"expires while live", 100 * time.Millisecond},
		{"expired at the handshake", -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := bufferLogger()
			g := startGateway(t, Config{Authenticate: nameAsUser(tt.expires), Logger: log})
			s, err := g.dialInfo(t, transport.KindMem, "carol", nil)
			if err == nil {
				err = waitClosed(t, s)
			}
			// An identity expired at the handshake may close the
			// connection before the client has read WELCOME.
			var je *jsperr.Error
			if !errors.As(err, &je) || je.Code != jsperr.TokenExpired || !je.Remote {
				t.Fatalf("session ended with %v, want remote TOKEN_EXPIRED", err)
			}
			waitFor(t, "log line", func() bool {
				return len(buf.lines("closing session", "code=TOKEN_EXPIRED", "user=carol", "remote=mem-client")) == 1
			})
		})
	}
	// A session without an expiry stays.
	g := startGateway(t, Config{Authenticate: nameAsUser(0)})
	s, err := g.dialInfo(t, transport.KindMem, "dave", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
}

// deviceGateway runs a gateway on TLS over TCP whose clients prove device
// keys from reg.
func deviceGateway(t *testing.T, reg devicekey.Registry, cfg Config) *testGateway {
	t.Helper()
	a, err := auth.New(auth.Config{Mode: auth.ModeDevice, Devices: reg, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Authenticate = a.Authenticate
	cfg.Devices = reg
	cfg.TCPAddr = "127.0.0.1:0"
	return startGateway(t, cfg)
}

func newDevice(t *testing.T, reg devicekey.Registry, owner string) devicekey.PrivateKey {
	t.Helper()
	k, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(context.Background(), devicekey.Device{ID: k.Public().ID(), Key: k.Public(), Owner: owner}); err != nil {
		t.Fatal(err)
	}
	return k
}

func proveWith(t *testing.T, k devicekey.PrivateKey) func(tls.ConnectionState) []byte {
	return func(cs tls.ConnectionState) []byte {
		b, err := credential.ForConnection("", k, cs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// TestRevokedDeviceDisconnected: revoking a device in the registry closes
// its live sessions with DEVICE_REVOKED at the next check, which runs every
// heartbeat interval; the session of another device stays.
func TestRevokedDeviceDisconnected(t *testing.T) {
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	g := deviceGateway(t, reg, Config{Session: session.Config{HeartbeatInterval: 50 * time.Millisecond, Logger: testLogger()}})
	if g.cfg.DeviceCheckInterval != 50*time.Millisecond {
		t.Fatalf("device check every %v, want the heartbeat interval", g.cfg.DeviceCheckInterval)
	}
	phone, laptop := newDevice(t, reg, "erin"), newDevice(t, reg, "erin")
	ps, err := g.dialInfo(t, transport.KindTCP, "phone", proveWith(t, phone))
	if err != nil {
		t.Fatal(err)
	}
	ls, err := g.dialInfo(t, transport.KindTCP, "laptop", proveWith(t, laptop))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Revoke(context.Background(), phone.Public().ID()); err != nil {
		t.Fatal(err)
	}
	if err := waitClosed(t, ps); closeCode(err) != jsperr.DeviceRevoked {
		t.Fatalf("revoked device's session ended with %v, want DEVICE_REVOKED", err)
	}
	if _, err := command(t, ls, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatalf("other device's session: %v", err)
	}
	// The revoked device cannot come back.
	if _, err := g.dialInfo(t, transport.KindTCP, "phone", proveWith(t, phone)); closeCode(err) != jsperr.DeviceRevoked {
		t.Fatalf("revoked device reconnecting: %v", err)
	}
}

// TestDeviceRevokedNotification: DeviceRevoked closes the device's sessions
// at once, without waiting for the periodic check.
func TestDeviceRevokedNotification(t *testing.T) {
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	g := deviceGateway(t, reg, Config{DeviceCheckInterval: time.Hour})
	k := newDevice(t, reg, "frank")
	s, err := g.dialInfo(t, transport.KindTCP, "f", proveWith(t, k))
	if err != nil {
		t.Fatal(err)
	}
	// A reply comes from the session's host, so the gateway knows the
	// session by now.
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
	if n := g.DeviceRevoked(k.Public().ID()); n != 1 {
		t.Fatalf("DeviceRevoked closed %d sessions, want 1", n)
	}
	if err := waitClosed(t, s); closeCode(err) != jsperr.DeviceRevoked {
		t.Fatalf("session ended with %v", err)
	}
	if n := g.DeviceRevoked(k.Public().ID()); n != 0 {
		t.Fatalf("second DeviceRevoked closed %d sessions", n)
	}
}

// slow is a rate that does not refill within a test.
func slow(burst int) Rate { return Rate{PerSecond: 0.001, Burst: burst} }

// unlimited switches every message limit off, so a test can turn on one.
func unlimited() RateLimits {
	off := Rate{PerSecond: -1}
	return RateLimits{Conn: off, User: off, Channel: off, Command: off}
}

// nextError returns the next ERROR the session receives, skipping ACKs.
func nextError(t *testing.T, s *session.Session) *wire.ErrorMessage {
	t.Helper()
	for {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if m, ok := in.Message.(*wire.ErrorMessage); ok {
			return m
		}
	}
}

func sendPublish(t *testing.T, s *session.Session, channel, id string) {
	t.Helper()
	env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel}, Class: protocol.ClassChat, Body: []byte("b")}
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
}

// TestMessageRateLimits: a message over a limit is answered with ERROR
// {RATE_LIMITED, retry_after_ms, ref = its id}, and the session goes on.
func TestMessageRateLimits(t *testing.T) {
	echo := wire.Route{Kind: wire.RouteService, Name: "echo"}
	tests := []struct {
		name   string
		limits func(*RateLimits)
		// run sends messages from two sessions of users a and b (a2 is a
		// second session of a) and returns the session that gets the
		// refusal and the refused message's id.
		run func(t *testing.T, a, a2, b *session.Session) (*session.Session, string)
	}{
		{"per connection", func(r *RateLimits) { r.Conn = slow(2) }, func(t *testing.T, a, a2, b *session.Session) (*session.Session, string) {
			sendPublish(t, a, "c1", "m1")
			sendPublish(t, a, "c1", "m2")
			// Another connection of the same user has its own bucket.
			sendPublish(t, a2, "c1", "x1")
			sendPublish(t, a, "c1", "m3")
			return a, "m3"
		}},
		{"per user", func(r *RateLimits) { r.User = slow(2) }, func(t *testing.T, a, a2, b *session.Session) (*session.Session, string) {
			// Commands wait for their replies, which orders the sessions.
			for _, s := range []*session.Session{a, b, a2} {
				if _, err := command(t, s, echo, "m"); err != nil {
					t.Fatal(err)
				}
			}
			sendPublish(t, a2, "c1", "m3")
			return a2, "m3"
		}},
		{"per channel", func(r *RateLimits) { r.Channel = slow(2) }, func(t *testing.T, a, a2, b *session.Session) (*session.Session, string) {
			subscribe(t, a, "hot")
			sendPublish(t, a, "hot", "m1")
			// a's EVENT shows the hub took m1 before b publishes.
			if in := recvType(t, a, wire.FrameEvent); string(in.Envelope.ID) != "m1" {
				t.Fatalf("event %q", in.Envelope.ID)
			}
			sendPublish(t, a, "cold", "m2")
			sendPublish(t, b, "hot", "y1")
			sendPublish(t, b, "hot", "y2")
			return b, "y2"
		}},
		{"per command", func(r *RateLimits) { r.Command = slow(1) }, func(t *testing.T, a, a2, b *session.Session) (*session.Session, string) {
			if _, err := command(t, a, echo, "1"); err != nil {
				t.Fatal(err)
			}
			// Publishing is not a command.
			sendPublish(t, a2, "c1", "m1")
			_, err := command(t, a2, echo, "2")
			if closeCode(err) != jsperr.RateLimited {
				t.Fatalf("second command of the user: %v, want RATE_LIMITED", err)
			}
			// Another user's bucket is full.
			if _, err := command(t, b, echo, "3"); err != nil {
				t.Fatal(err)
			}
			return nil, ""
		}},
		{"message", func(r *RateLimits) { r.Conn = slow(1) }, func(t *testing.T, a, a2, b *session.Session) (*session.Session, string) {
			for i, id := range []string{"e1", "e2"} {
				env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteUser, Name: "me"}, Class: protocol.ClassChat, Body: []byte(id)}
				if err := a.SendMessage(ctxT(t), env, session.DeliveryOrdered); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					if in := recvType(t, a, wire.FrameMessage); string(in.Envelope.ID) != "e1" {
						t.Fatalf("echo of %q", in.Envelope.ID)
					}
				}
			}
			return a, "e2"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log, buf := bufferLogger()
			cfg := Config{Authenticate: nameAsUser(0), RateLimits: unlimited(), Logger: log, RefusalLogRate: -1}
			tt.limits(&cfg.RateLimits)
			g := startGateway(t, cfg)
			var ss [3]*session.Session
			for i, name := range []string{"a", "a", "b"} {
				s, err := g.dialInfo(t, transport.KindMem, name, nil)
				if err != nil {
					t.Fatal(err)
				}
				ss[i] = s
			}
			refused, id := tt.run(t, ss[0], ss[1], ss[2])
			if refused == nil {
				return
			}
			e := nextError(t, refused)
			if e.Code != jsperr.RateLimited || string(e.Ref) != id || e.RetryAfterMS == 0 {
				t.Fatalf("ERROR %+v, want RATE_LIMITED with retry_after_ms and ref %q", e, id)
			}
			// The session goes on.
			if _, err := command(t, ss[2], echo, "still"); err != nil && closeCode(err) != jsperr.RateLimited {
				t.Fatalf("after the refusal: %v", err)
			}
			if refused.Err() != nil {
				t.Fatalf("refused session ended: %v", refused.Err())
			}
			if lines := buf.lines("message rate limited", "RATE_LIMITED"); len(lines) == 0 {
				t.Fatalf("no log line for the refusal:\n%s", buf)
			}
		})
	}
}

// refusedWith waits for conn to be closed and checks its code.
func refusedWith(t *testing.T, conn transport.Conn, code jsperr.Code) {
	t.Helper()
	select {
	case <-conn.Context().Done():
	case <-time.After(testTimeout):
		t.Fatal("connection not refused")
	}
	if got := closeCode(context.Cause(conn.Context())); got != code {
		t.Fatalf("closed with %v, want %s", context.Cause(conn.Context()), code)
	}
}

var loopback = netip.MustParsePrefix("127.0.0.0/8")

// TestBlockedOnEveryTransport: a client in a blocked CIDR is refused with
// BLOCKED on QUIC, TCP and WebSocket, learns it from the close code, and
// each refusal is logged with the reason and the address.
func TestBlockedOnEveryTransport(t *testing.T) {
	log, buf := bufferLogger()
	g := startGateway(t, allListeners(Config{DDoS: ddos.Config{Block: []netip.Prefix{loopback}}, Logger: log, RefusalLogRate: -1}))
	for _, kind := range realKinds {
		t.Run(string(kind), func(t *testing.T) {
			conn := g.dialConn(t, kind)
			t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
			refusedWith(t, conn, jsperr.Blocked)
			lines := buf.lines("connection refused", "code=BLOCKED", "transport="+string(kind), "remote=127.0.0.1:")
			if len(lines) != 1 {
				t.Fatalf("%d log lines for the refusal:\n%s", len(lines), buf)
			}
		})
	}
	if n := g.metrics.refused.value("blocked"); n != 3 {
		t.Fatalf("refusals counted: %d", n)
	}
	// HTTP requests on a blocked connection are refused too.
	code, body := get(t, g.httpClient(t), "https://"+g.Addrs().WebSocket.String()+"/healthz")
	if code != http.StatusForbidden || !strings.Contains(body, "BLOCKED") {
		t.Fatalf("/healthz from a blocked address: %d %q", code, body)
	}
	// Nothing stays counted.
	waitFor(t, "filter empty", func() bool {
		st := g.adm.filter.Stats()
		return st.Conns == 0 && st.Handshakes == 0 && len(g.adm.refusals) == 0
	})
}

// TestRefusalWithoutHandshake: with no handshakes to spare for refusals,
// a refused client is dropped before TLS and learns no code.
func TestRefusalWithoutHandshake(t *testing.T) {
	g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", DDoS: ddos.Config{Block: []netip.Prefix{loopback}}, MaxRefusalHandshakes: -1})
	if _, err := dialOther(ctxT(t), t, g, transport.KindTCP); err == nil {
		t.Fatal("blocked client completed its handshake")
	}
	if n := g.metrics.refused.value("blocked"); n != 1 {
		t.Fatalf("refusals counted: %d", n)
	}
}

// TestAllowListOverridesBlock: the longer prefix wins.
func TestAllowListOverridesBlock(t *testing.T) {
	g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", DDoS: ddos.Config{
		Block: []netip.Prefix{loopback}, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	s := g.dial(t, transport.KindTCP)
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestConnsPerIPOnEveryTransport: one connection more than MaxConnsPerIP
// is refused with TOO_MANY_CONNECTIONS on each transport.
func TestConnsPerIPOnEveryTransport(t *testing.T) {
	for _, kind := range realKinds {
		t.Run(string(kind), func(t *testing.T) {
			g := startGateway(t, allListeners(Config{MaxConnsPerIP: 1}))
			first := g.dial(t, kind)
			conn := g.dialConn(t, kind)
			t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
			refusedWith(t, conn, jsperr.TooManyConnections)
			if _, err := command(t, first, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestConnectionAttemptRate: connection attempts over the per-address
// rate are refused with RATE_LIMITED; allow-listed addresses are exempt.
func TestConnectionAttemptRate(t *testing.T) {
	limits := unlimited()
	limits.ConnAttemptsPerIP = slow(2)
	g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", RateLimits: limits})
	for range 2 {
		s := g.dial(t, transport.KindTCP)
		_ = s.Close()
	}
	conn := g.dialConn(t, transport.KindTCP)
	defer conn.CloseWithError(jsperr.NoError, "")
	refusedWith(t, conn, jsperr.RateLimited)

	allowed := startGateway(t, Config{TCPAddr: "127.0.0.1:0", RateLimits: limits,
		DDoS: ddos.Config{Allow: []netip.Prefix{loopback}}})
	for range 3 {
		s := allowed.dial(t, transport.KindTCP)
		_ = s.Close()
	}
}

// TestQUICRetryUnderLoad: an idle gateway lets QUIC clients in without
// Retry; with handshakes in flight at the filter's Retry threshold, a new
// QUIC client must validate its address first, and is then served.
func TestQUICRetryUnderLoad(t *testing.T) {
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0",
		DDoS: ddos.Config{RetryHandshakes: 2, MaxHandshakesPerIP: 16, RetryAttemptRate: -1}})
	s := g.dial(t, transport.KindQUIC)
	_ = s.Close()
	if r, v := g.metrics.quicRetries.value("required"), g.metrics.quicRetries.value("validated"); r != 0 || v != 0 {
		t.Fatalf("idle gateway: %d Retry required, %d validated", r, v)
	}
	// Load: two TCP clients that never start their TLS handshake hold
	// handshake slots.
	for range 2 {
		c, err := net.Dial("tcp", g.Addrs().TCP.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "handshakes in flight", func() bool { return g.adm.filter.Stats().Handshakes >= 2 })
	s = g.dial(t, transport.KindQUIC)
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
	if r, v := g.metrics.quicRetries.value("required"), g.metrics.quicRetries.value("validated"); r < 1 || v != 1 {
		t.Fatalf("loaded gateway: %d Retry required, %d validated; want Retry", r, v)
	}
	if g.adm.filter.Stats().RetryRequired < 1 {
		t.Fatal("filter counted no Retry")
	}
}

func TestSecurityConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"quic hook", Config{QUIC: quicHooked()}, false},
		{"negative burst", Config{RateLimits: RateLimits{Conn: Rate{PerSecond: 1, Burst: -1}}}, false},
		{"negative max keys", Config{RateLimits: RateLimits{MaxKeys: -1}}, false},
		{"negative device interval", Config{DeviceCheckInterval: -time.Second}, false},
		{"unlimited", Config{RateLimits: unlimited()}, true},
	}
	for _, tt := range tests {
		if err := tt.cfg.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	var c Config
	c.Session.HeartbeatInterval = time.Second
	c.setDefaults()
	r := c.RateLimits
	if r.ConnAttemptsPerIP != (Rate{DefaultConnAttemptsPerSecond, 2 * DefaultConnAttemptsPerSecond}) ||
		r.Conn != (Rate{DefaultConnMessagesPerSecond, 2 * DefaultConnMessagesPerSecond}) ||
		r.User != (Rate{DefaultUserMessagesPerSecond, 2 * DefaultUserMessagesPerSecond}) ||
		r.Channel != (Rate{DefaultChannelPublishesPerSecond, 2 * DefaultChannelPublishesPerSecond}) ||
		r.Command != (Rate{DefaultCommandsPerSecond, 2 * DefaultCommandsPerSecond}) {
		t.Fatalf("rate defaults %+v", r)
	}
	if c.DeviceCheckInterval != time.Second || c.MaxRefusalHandshakes != DefaultMaxRefusalHandshakes ||
		c.RefusalLogRate != DefaultRefusalLogRate || c.DDoS.MaxConnsPerIP != DefaultMaxConnsPerIP ||
		c.DDoS.MaxConns != DefaultMaxSessions {
		t.Fatalf("security defaults %+v", c)
	}
	var d Config
	d.setDefaults()
	if d.DeviceCheckInterval != DefaultDeviceCheckInterval {
		t.Fatalf("device check interval %v without a heartbeat", d.DeviceCheckInterval)
	}
}

// TestSampledLog: refusal lines beyond the rate are left out and counted
// in the next line.
func TestSampledLog(t *testing.T) {
	log, buf := bufferLogger()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := newSampledLog(log, 1, clock)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.log("refused")
	}
	if n := len(buf.lines("refused")); n != 1 {
		t.Fatalf("%d lines within one second, want 1", n)
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	s.log("refused")
	if lines := buf.lines("refused", "suppressed=2"); len(lines) != 1 {
		t.Fatalf("no line counting the suppressed ones:\n%s", buf)
	}
	all, _ := newSampledLog(log, -1, clock)
	for range 5 {
		all.log("every")
	}
	if n := len(buf.lines("every")); n != 5 {
		t.Fatalf("unlimited log wrote %d of 5 lines", n)
	}
}

var _ io.Writer = (*logBuffer)(nil)

func quicHooked() jspquic.Config {
	return jspquic.Config{VerifySourceAddress: func(net.Addr) bool { return false }}
}
