package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/mux"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
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

// bannerTarget reads the address of a transport (scheme "jsp+quic" or
// "jsp+tcp") and the SPKI pin from a server banner, and returns the address
// with a client TLS configuration that trusts only that pin.
func bannerTarget(t *testing.T, banner, scheme string) (string, *tls.Config) {
	t.Helper()
	addr := regexp.MustCompile(regexp.QuoteMeta(scheme) + `://(127\.0\.0\.1:\d+)`).FindStringSubmatch(banner)
	pin := regexp.MustCompile(`SPKI pin +(\S+)`).FindStringSubmatch(banner)
	if addr == nil || pin == nil {
		t.Fatalf("banner:\n%s", banner)
	}
	fp, err := tlsconf.ParseFingerprint(pin[1])
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := tlsconf.Client(tlsconf.ClientConfig{Pins: []tlsconf.Fingerprint{fp}, TrustPinsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return addr[1], tlsConf
}

func waitOutput(t *testing.T, out *syncBuffer, substr string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), substr) {
		if time.Now().After(deadline) {
			t.Fatalf("output never contained %q:\n%s", substr, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return out.String()
}

func TestServerCommandRegistered(t *testing.T) {
	cmd, _, err := rootCmd.Find([]string{"server"})
	if err != nil || cmd.Name() != "server" {
		t.Fatalf("server command not registered: %v", err)
	}
	for flag, def := range map[string]string{
		"data-dir": ".jsp-data", "quic": ":7400", "tcp": ":7400", "ws": ":7401", "cert": "", "key": "", "drain-grace": "10s",
		"auth": "anonymous", "token-keys": "[]", "audience": "jsp", "devices": "", "block": "[]", "allow": "[]",
		"rate-conn-attempts": "20", "rate-conn": "1000", "max-handshakes-per-ip": "8",
	} {
		f := cmd.Flags().Lookup(flag)
		if f == nil || f.DefValue != def {
			t.Errorf("flag --%s: %+v, want default %q", flag, f, def)
		}
	}
}

func TestServerFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeTokenKey(t, dir)
	devFile := filepath.Join(dir, "devices")
	dk, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(devFile, []byte("# devices\n"+dk.Public().String()+" alice phone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := serverFlags{dataDir: "d", quic: ":1", tcp: ":2", ws: ":3", wsPath: "/jsp", drainGrace: time.Second,
		maxSessions: 1, maxConnsPerIP: 1, logLevel: "info", authMode: "anonymous", audience: "jsp", maxHandshakesPerIP: 8}
	tests := []struct {
		name string
		edit func(*serverFlags)
		ok   bool
	}{
		{"defaults", func(*serverFlags) {}, true},
		{"debug", func(f *serverFlags) { f.logLevel = "debug" }, true},
		{"bad log level", func(f *serverFlags) { f.logLevel = "loud" }, false},
		{"cert without key", func(f *serverFlags) { f.cert = "c.pem" }, false},
		{"zero grace", func(f *serverFlags) { f.drainGrace = 0 }, false},
		{"zero sessions", func(f *serverFlags) { f.maxSessions = 0 }, false},
		{"zero handshakes per ip", func(f *serverFlags) { f.maxHandshakesPerIP = 0 }, false},
		{"unknown auth mode", func(f *serverFlags) { f.authMode = "open" }, false},
		{"token mode without keys", func(f *serverFlags) { f.authMode = "token" }, false},
		{"token mode", func(f *serverFlags) { f.authMode = "token"; f.tokenKeys = []string{keyFile} }, true},
		{"token keys without audience", func(f *serverFlags) { f.tokenKeys = []string{keyFile}; f.audience = "" }, false},
		{"missing key file", func(f *serverFlags) { f.authMode = "token"; f.tokenKeys = []string{filepath.Join(dir, "none")} }, false},
		{"key file without keys", func(f *serverFlags) { f.authMode = "token"; f.tokenKeys = []string{devFile} }, false},
		{"device mode without devices", func(f *serverFlags) { f.authMode = "device" }, false},
		{"device mode", func(f *serverFlags) { f.authMode = "device"; f.devices = devFile }, true},
		{"bad device list", func(f *serverFlags) { f.authMode = "device"; f.devices = keyFile }, false},
		{"any with both", func(f *serverFlags) { f.authMode = "any"; f.devices = devFile; f.tokenKeys = []string{keyFile} }, true},
		{"block and allow", func(f *serverFlags) { f.block = []string{"10.0.0.0/8", "192.0.2.1"}; f.allow = []string{"10.1.0.0/16"} }, true},
		{"bad block", func(f *serverFlags) { f.block = []string{"10.0.0.0/33"} }, false},
		{"bad allow", func(f *serverFlags) { f.allow = []string{"nope"} }, false},
		{"rates", func(f *serverFlags) { f.rates = rateFlags{connAttempts: 1, conn: -1, user: 5, channel: 6, command: 7} }, true},
	}
	for _, tt := range tests {
		f := base
		tt.edit(&f)
		cfg, err := f.config(io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err == nil && (cfg.QUICAddr != ":1" || cfg.TCPAddr != ":2" || cfg.WSAddr != ":3" || cfg.DataDir != "d" || cfg.Logger == nil ||
			cfg.Authenticate == nil || len(cfg.DDoS.Block) != len(f.block) || len(cfg.DDoS.Allow) != len(f.allow) ||
			cfg.RateLimits.Conn.PerSecond != f.rates.conn || (f.devices != "") != (cfg.Devices != nil)) {
			t.Errorf("%s: config %+v", tt.name, cfg)
		}
	}
}

// writeTokenKey creates a token signing key and writes its public half to
// dir; it returns the public key's file and the private key.
func writeTokenKey(t *testing.T, dir string) (string, token.PrivateKey) {
	t.Helper()
	k, err := token.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := token.MarshalPublicKeyPEM(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "token.pub")
	if err := os.WriteFile(file, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	return file, k
}

// TestServerTokenAuth runs the server with --auth token: a client without
// a token is refused with UNAUTHENTICATED, and one with a token issued for
// the audience is served.
func TestServerTokenAuth(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	keyFile, key := writeTokenKey(t, dir)
	f := serverFlags{dataDir: dir, quic: "off", tcp: "127.0.0.1:0", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "token", tokenKeys: []string{keyFile}, audience: "cluster-x", maxHandshakesPerIP: 8}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, out, nil) }()
	banner := waitOutput(t, out, "SPKI pin")
	addr, tlsConf := bannerTarget(t, banner, "jsp+tcp")
	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	hello := func(authBytes []byte) (*session.Session, error) {
		conn, err := tcptls.Dial(dctx, addr, tlsConf, mux.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := session.Dial(dctx, conn, session.ClientInfo{Name: "cmd-test", Auth: authBytes}, session.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			_ = conn.CloseWithError(0, "")
		}
		return s, err
	}
	if _, err := hello(nil); jsperr.CodeOf(err) != jsperr.Unauthenticated {
		t.Fatalf("client without a token: %v, want UNAUTHENTICATED", err)
	}
	tok, err := token.Sign(key, token.Claims{Audience: "cluster-x", Subject: "alice", NotBefore: time.Now(), Expiry: time.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := hello([]byte(tok))
	if err != nil {
		t.Fatalf("client with a token: %v", err)
	}
	rep, err := s.Request(dctx, &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Class: protocol.ClassChat, Body: []byte("hi")})
	if err != nil || string(rep.Body) != "hi" {
		t.Fatalf("echo: %v", err)
	}
	_ = s.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runServer = %v", err)
	}
}

// TestRunServer starts the server as `jsp server` does, checks the banner
// against the certificate on disk, talks to it with the printed pin and
// drains it by cancelling, as SIGINT does.
func TestRunServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	f := serverFlags{dataDir: dir, quic: "127.0.0.1:0", tcp: "127.0.0.1:0", ws: "127.0.0.1:0", wsPath: "/jsp",
		drainGrace: 200 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "anonymous", maxHandshakesPerIP: 8}
	cfg, err := f.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := 0
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, out, func() { stopped++ }) }()
	banner := waitOutput(t, out, "SPKI pin")

	quicURL := regexp.MustCompile(`QUIC +jsp\+quic://(127\.0\.0\.1:\d+)\n`).FindStringSubmatch(banner)
	for _, re := range []string{
		`TCP +jsp\+tcp://127\.0\.0\.1:\d+\n`,
		`WebSocket +wss://127\.0\.0\.1:\d+/jsp\n`,
		`health +https://127\.0\.0\.1:\d+/healthz\n`,
		`metrics +https://127\.0\.0\.1:\d+/metrics\n`,
	} {
		if !regexp.MustCompile(re).MatchString(banner) {
			t.Errorf("banner lacks %s:\n%s", re, banner)
		}
	}
	if quicURL == nil {
		t.Fatalf("no QUIC address in banner:\n%s", banner)
	}
	certPath := filepath.Join(dir, tlsconf.DevCertFile)
	if !strings.Contains(banner, certPath+" (development, self-signed") {
		t.Fatalf("banner does not name %s:\n%s", certPath, banner)
	}
	pemBytes, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pin := tlsconf.SPKIFingerprint(cert)
	if !strings.Contains(banner, "SPKI pin     "+pin.String()+"\n") {
		t.Fatalf("banner pin differs from %s:\n%s", pin, banner)
	}

	// A client trusting only the printed pin gets served.
	tlsConf, err := tlsconf.Client(tlsconf.ClientConfig{Pins: []tlsconf.Fingerprint{pin}, TrustPinsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	conn, err := jspquic.Dial(dctx, quicURL[1], tlsConf, jspquic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Dial(dctx, conn, session.ClientInfo{Name: "cmd-test"}, session.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rep, err := s.Request(dctx, &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Class: protocol.ClassChat, Body: []byte("hi")})
	if err != nil || string(rep.Body) != "hi" {
		t.Fatalf("echo: %v", err)
	}

	cancel() // as SIGINT
	select {
	case <-s.GoingAway():
	case <-dctx.Done():
		t.Fatal("client not told to go away")
	}
	if err := <-done; err != nil {
		t.Fatalf("runServer = %v", err)
	}
	if stopped != 1 {
		t.Fatalf("signal handling restored %d times", stopped)
	}
	final := out.String()
	if !strings.Contains(final, "shutting down: clients have 200ms to leave\n") || !strings.HasSuffix(final, "stopped\n") {
		t.Fatalf("shutdown output:\n%s", final)
	}
}
