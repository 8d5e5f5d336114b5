package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/jetstreamproto/jsp/security/credential"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/transporttest"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

const (
	testTimeout = 15 * time.Second
	audience    = "cluster-a"
)

// now is the fixed time the token verifier lives at.
var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fixture holds the keys, tokens and devices of the tests.
type fixture struct {
	signer, stranger, revokedKey token.PrivateKey
	tokens                       *token.KeySet
	devices                      *devicekey.MemoryRegistry
	alice, bob, revokedDev, lost devicekey.PrivateKey
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	var err error
	for _, k := range []*token.PrivateKey{&f.signer, &f.stranger, &f.revokedKey} {
		if *k, err = token.GenerateKey(nil); err != nil {
			t.Fatal(err)
		}
	}
	if f.tokens, err = token.NewKeySet(token.KeySetConfig{Now: func() time.Time { return now }, Leeway: -1}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []token.PrivateKey{f.signer, f.revokedKey} {
		if err := f.tokens.AddVerifyKey(k.Public(), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	f.tokens.Revoke(f.revokedKey.KeyID())
	if f.devices, err = devicekey.NewMemoryRegistry(devicekey.MemoryConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []*devicekey.PrivateKey{&f.alice, &f.bob, &f.revokedDev, &f.lost} {
		if *k, err = devicekey.GenerateKey(nil); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	for _, d := range []struct {
		k     devicekey.PrivateKey
		owner string
	}{{f.alice, "alice"}, {f.bob, "bob"}, {f.revokedDev, "alice"}} {
		if err := f.devices.Register(ctx, devicekey.Device{ID: d.k.Public().ID(), Key: d.k.Public(), Owner: d.owner}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.devices.Revoke(ctx, f.revokedDev.Public().ID()); err != nil {
		t.Fatal(err)
	}
	return f
}

// token signs claims for subject with k; the zero fields get a valid
// window around now and the test audience.
func (f *fixture) token(t *testing.T, k token.PrivateKey, c token.Claims) string {
	t.Helper()
	if c.Audience == "" {
		c.Audience = audience
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = now.Add(-time.Minute)
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(10 * time.Minute)
	}
	text, err := token.Sign(k, c)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// tamper flips one bit in the signature of a token.
func tamper(t *testing.T, text string) string {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(text, token.TextPrefix))
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-10] ^= 1
	return token.TextPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// server runs session.Accept with an Authenticator on a real listener and
// reports each handshake's outcome.
type server struct {
	auth    *Authenticator
	log     *syncBuffer
	results chan result
}

type result struct {
	id     session.Identity
	err    error
	remote string
}

func newAuthenticator(t *testing.T, cfg Config) (*Authenticator, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a, buf
}

// serve accepts connections on ln until the test ends.
func serve(t *testing.T, ln transport.Listener, a *Authenticator, log *syncBuffer) *server {
	t.Helper()
	s := &server{auth: a, log: log, results: make(chan result, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() {
				sess, err := session.Accept(ctx, conn, session.Config{Logger: discard()}, session.ServerOptions{Authenticate: a.Authenticate})
				r := result{err: err, remote: conn.RemoteAddr().String()}
				if err == nil {
					r.id = sess.Identity()
				}
				s.results <- r
				if err == nil {
					// The client closes; wait for it so nothing outlives
					// the test.
					_ = sess.Wait()
				}
				_ = conn.CloseWithError(jsperr.NoError, "")
			})
		}
	})
	return s
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// tcpServer serves over TLS on TCP on loopback.
func tcpServer(t *testing.T, a *Authenticator, log *syncBuffer) (*server, func(context.Context) (transport.Conn, error)) {
	t.Helper()
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	ln, err := tcptls.Listen("127.0.0.1:0", serverTLS, mux.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	return serve(t, ln, a, log), func(ctx context.Context) (transport.Conn, error) {
		return tcptls.Dial(ctx, addr, clientTLS, mux.Config{})
	}
}

// dial connects, builds HELLO auth from the connection's TLS state with
// mkAuth, and runs the client handshake.
func dial(t *testing.T, dialConn func(context.Context) (transport.Conn, error), mkAuth func(tls.ConnectionState) []byte) (*session.Session, transport.Conn, error) {
	t.Helper()
	conn, err := dialConn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var authBytes []byte
	if mkAuth != nil {
		authBytes = mkAuth(conn.TLS())
	}
	s, err := session.Dial(ctxT(t), conn, session.ClientInfo{Name: "auth-test", Auth: authBytes}, session.Config{Logger: discard()})
	if err != nil {
		_ = conn.CloseWithError(jsperr.NoError, "")
		return nil, conn, err
	}
	return s, conn, nil
}

func (s *server) next(t *testing.T) result {
	t.Helper()
	select {
	case r := <-s.results:
		return r
	case <-time.After(testTimeout):
		t.Fatal("no handshake result")
		return result{}
	}
}

// creds builds an mkAuth function from a token and a device key.
func creds(t *testing.T, tok string, dev devicekey.PrivateKey) func(tls.ConnectionState) []byte {
	return func(cs tls.ConnectionState) []byte {
		b, err := credential.ForConnection(tok, dev, cs)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func raw(b string) func(tls.ConnectionState) []byte {
	return func(tls.ConnectionState) []byte { return []byte(b) }
}

// TestAuthenticateOverTCP runs real handshakes on loopback TLS over TCP for
// every refusal code and the accepted cases: the client sees the code in
// ERROR, the server logs one line with the reason and the client's address.
func TestAuthenticateOverTCP(t *testing.T) {
	f := newFixture(t)
	var none devicekey.PrivateKey
	valid := f.token(t, f.signer, token.Claims{Subject: "alice", Scopes: []string{"chat:write"}})
	expiry := now.Add(10 * time.Minute).Truncate(time.Second)
	badBinding := func(cs tls.ConnectionState) []byte {
		// A proof by a registered key over a value that is not this
		// connection's exporter.
		p := devicekey.ProveBinding(f.alice, bytes.Repeat([]byte{7}, devicekey.ExporterLength))
		return credential.Credentials{Proof: &p}.Append(nil)
	}
	tests := []struct {
		name   string
		mode   Mode
		noDev  bool // configure no device registry
		auth   func(tls.ConnectionState) []byte
		code   jsperr.Code // NoError: accepted
		want   session.Identity
		reason string // in the refusal's log line
	}{
		{name: "anonymous allowed", mode: ModeAnonymous},
		{name: "anonymous refused", mode: ModeAny, code: jsperr.Unauthenticated, reason: "no credentials"},
		{name: "token", mode: ModeAny, auth: creds(t, valid, none),
			want: session.Identity{User: "alice", Scopes: []string{"chat:write"}, Expires: expiry}},
		{name: "token in anonymous mode", mode: ModeAnonymous, auth: creds(t, valid, none),
			want: session.Identity{User: "alice", Scopes: []string{"chat:write"}, Expires: expiry}},
		{name: "expired", mode: ModeToken, code: jsperr.TokenExpired, reason: "expired",
			auth: creds(t, f.token(t, f.signer, token.Claims{Subject: "alice", NotBefore: now.Add(-time.Hour), Expiry: now.Add(-time.Second)}), none)},
		{name: "not yet valid", mode: ModeToken, code: jsperr.TokenNotYetValid, reason: "valid from",
			auth: creds(t, f.token(t, f.signer, token.Claims{Subject: "alice", NotBefore: now.Add(time.Hour), Expiry: now.Add(2 * time.Hour)}), none)},
		{name: "wrong audience", mode: ModeToken, code: jsperr.TokenWrongAudience, reason: "cluster-b",
			auth: creds(t, f.token(t, f.signer, token.Claims{Subject: "alice", Audience: "cluster-b"}), none)},
		{name: "unknown key", mode: ModeToken, code: jsperr.TokenUnknownKey, reason: "unknown key",
			auth: creds(t, f.token(t, f.stranger, token.Claims{Subject: "alice"}), none)},
		{name: "bad signature", mode: ModeToken, code: jsperr.TokenBadSignature, reason: "does not verify",
			auth: creds(t, tamper(t, valid), none)},
		{name: "revoked key", mode: ModeToken, code: jsperr.TokenKeyRevoked, reason: "revoked key",
			auth: creds(t, f.token(t, f.revokedKey, token.Claims{Subject: "alice"}), none)},
		{name: "malformed token", mode: ModeToken, code: jsperr.TokenMalformed, reason: "base64", auth: raw("jspt.!!!")},
		{name: "device", mode: ModeDevice, auth: creds(t, "", f.alice),
			want: session.Identity{User: "alice", Device: f.alice.Public().ID().String()}},
		{name: "device unknown", mode: ModeDevice, code: jsperr.DeviceUnknown, reason: "not registered", auth: creds(t, "", f.lost)},
		{name: "device revoked", mode: ModeDevice, code: jsperr.DeviceRevoked, reason: "was revoked", auth: creds(t, "", f.revokedDev)},
		{name: "binding failed", mode: ModeDevice, code: jsperr.ChannelBindingFailed, reason: "does not verify for this connection", auth: badBinding},
		{name: "malformed proof", mode: ModeDevice, code: jsperr.ChannelBindingFailed, reason: "device credential", auth: raw("jspd.AAAA")},
		{name: "both", mode: ModeBoth, auth: creds(t, valid, f.alice),
			want: session.Identity{User: "alice", Device: f.alice.Public().ID().String(), Scopes: []string{"chat:write"}, Expires: expiry}},
		{name: "both, device of another user", mode: ModeAny, code: jsperr.Unauthenticated, reason: "not the owner", auth: creds(t, valid, f.bob)},
		{name: "both required, token only", mode: ModeBoth, code: jsperr.Unauthenticated, reason: "no device proof", auth: creds(t, valid, none)},
		{name: "token required, device only", mode: ModeToken, code: jsperr.Unauthenticated, reason: "no token", auth: creds(t, "", f.alice)},
		{name: "devices not accepted", mode: ModeToken, noDev: true, code: jsperr.Unauthenticated, reason: "does not accept device keys", auth: creds(t, valid, f.alice)},
		{name: "unknown kind", mode: ModeAnonymous, code: jsperr.Unauthenticated, reason: "unknown kind", auth: raw("Bearer xyz")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Mode: tt.mode, Tokens: f.tokens, Audience: audience, Devices: f.devices, Leeway: -1}
			if tt.noDev {
				cfg.Devices = nil
			}
			a, log := newAuthenticator(t, cfg)
			srv, dialConn := tcpServer(t, a, log)
			s, conn, err := dial(t, dialConn, tt.auth)
			r := srv.next(t)
			if tt.code == jsperr.NoError {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = s.Close()
				if r.err != nil {
					t.Fatalf("server: %v", r.err)
				}
				if !identityEqual(r.id, tt.want) {
					t.Fatalf("identity %+v, want %+v", r.id, tt.want)
				}
				if log.String() != "" {
					t.Fatalf("acceptance logged at info: %s", log)
				}
				return
			}
			var je *jsperr.Error
			if !errors.As(err, &je) || je.Code != tt.code || !je.Remote {
				t.Fatalf("client got %v, want remote %s", err, tt.code)
			}
			if jsperr.CodeOf(r.err) != tt.code {
				t.Fatalf("server got %v, want %s", r.err, tt.code)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1:\n%s", len(lines), log)
			}
			for _, want := range []string{"code=" + tt.code.String(), "remote=" + conn.LocalAddr().String(), tt.reason} {
				if !strings.Contains(lines[0], want) {
					t.Fatalf("log line lacks %q: %s", want, lines[0])
				}
			}
			if st := a.Stats(); st.Refused != 1 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func identityEqual(a, b session.Identity) bool {
	return a.User == b.User && a.Device == b.Device && slices.Equal(a.Scopes, b.Scopes) && a.Expires.Equal(b.Expires)
}

// TestProofBoundToConnection makes a proof on one connection and presents
// it on another: refused, although the key is registered and active.
func TestProofBoundToConnection(t *testing.T) {
	f := newFixture(t)
	a, log := newAuthenticator(t, Config{Mode: ModeDevice, Devices: f.devices})
	srv, dialConn := tcpServer(t, a, log)

	first, err := dialConn(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	defer first.CloseWithError(jsperr.NoError, "")
	stolen, err := credential.ForConnection("", f.alice, first.TLS())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = dial(t, dialConn, raw(string(stolen)))
	if code := jsperr.CodeOf(err); code != jsperr.ChannelBindingFailed {
		t.Fatalf("proof from another connection: %v, want CHANNEL_BINDING_FAILED", err)
	}
	if r := srv.next(t); jsperr.CodeOf(r.err) != jsperr.ChannelBindingFailed {
		t.Fatalf("server: %v", r.err)
	}
	// The same key proves itself on its own connection.
	s, _, err := dial(t, dialConn, creds(t, "", f.alice))
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if r := srv.next(t); r.err != nil || r.id.Device != f.alice.Public().ID().String() {
		t.Fatalf("own connection: %+v", r)
	}
	// The first connection's HELLO-less handshake is abandoned when it
	// closes.
	_ = first.CloseWithError(jsperr.NoError, "")
	srv.next(t)
}

// TestDeviceProofOtherTransports checks that both ends of a QUIC and of a
// WebSocket connection compute the same exporter value, so device proofs
// work there as on TCP.
func TestDeviceProofOtherTransports(t *testing.T) {
	f := newFixture(t)
	serverTLS, clientTLS := transporttest.TLSConfigs(t)
	tests := []struct {
		name   string
		listen func() (transport.Listener, func(context.Context) (transport.Conn, error))
	}{
		{"quic", func() (transport.Listener, func(context.Context) (transport.Conn, error)) {
			ln, err := jspquic.Listen("127.0.0.1:0", serverTLS, jspquic.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return ln, func(ctx context.Context) (transport.Conn, error) {
				return jspquic.Dial(ctx, ln.Addr().String(), clientTLS, jspquic.Config{})
			}
		}},
		{"websocket", func() (transport.Listener, func(context.Context) (transport.Conn, error)) {
			ln, err := websocket.Listen("127.0.0.1:0", serverTLS, mux.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return ln, func(ctx context.Context) (transport.Conn, error) {
				return websocket.Dial(ctx, fmt.Sprintf("wss://%s/jsp", ln.Addr()), clientTLS, mux.Config{})
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, log := newAuthenticator(t, Config{Mode: ModeDevice, Devices: f.devices})
			ln, dialConn := tt.listen()
			srv := serve(t, ln, a, log)
			s, _, err := dial(t, dialConn, creds(t, "", f.bob))
			if err != nil {
				t.Fatalf("device proof over %s: %v", tt.name, err)
			}
			_ = s.Close()
			if r := srv.next(t); r.err != nil || r.id.User != "bob" {
				t.Fatalf("server: %+v", r)
			}
		})
	}
}

// TestExpiresWithLeeway: a session may live as long as the verifier would
// accept its token, expiry plus the leeway.
func TestExpiresWithLeeway(t *testing.T) {
	f := newFixture(t)
	tok := f.token(t, f.signer, token.Claims{Subject: "alice"})
	for _, tt := range []struct {
		leeway, want time.Duration
	}{{0, token.DefaultLeeway}, {5 * time.Second, 5 * time.Second}, {-1, 0}} {
		a, log := newAuthenticator(t, Config{Mode: ModeToken, Tokens: f.tokens, Audience: audience, Leeway: tt.leeway})
		srv, dialConn := tcpServer(t, a, log)
		s, _, err := dial(t, dialConn, creds(t, tok, devicekey.PrivateKey{}))
		if err != nil {
			t.Fatal(err)
		}
		_ = s.Close()
		if r := srv.next(t); !r.id.Expires.Equal(now.Add(10*time.Minute + tt.want)) {
			t.Fatalf("leeway %v: expires %v", tt.leeway, r.id.Expires)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, false},
		{"anonymous", Config{Mode: ModeAnonymous}, true},
		{"any with tokens", Config{Tokens: f.tokens, Audience: "a"}, true},
		{"any with devices", Config{Devices: f.devices}, true},
		{"tokens without audience", Config{Tokens: f.tokens}, false},
		{"token mode without tokens", Config{Mode: ModeToken, Devices: f.devices}, false},
		{"device mode without devices", Config{Mode: ModeDevice, Tokens: f.tokens, Audience: "a"}, false},
		{"both with both", Config{Mode: ModeBoth, Tokens: f.tokens, Audience: "a", Devices: f.devices}, true},
		{"unknown mode", Config{Mode: numModes}, false},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestParseMode(t *testing.T) {
	for m := range numModes {
		got, err := ParseMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
	if _, err := ParseMode("open"); err == nil {
		t.Error("ParseMode accepted an unknown mode")
	}
	if Mode(99).String() != "Mode(99)" {
		t.Error(Mode(99).String())
	}
}

var _ io.Writer = (*syncBuffer)(nil)
