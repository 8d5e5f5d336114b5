package main

import (
	"bytes"
	"context"
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
	"github.com/jetstreamproto/jsp/session"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
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
	} {
		f := cmd.Flags().Lookup(flag)
		if f == nil || f.DefValue != def {
			t.Errorf("flag --%s: %+v, want default %q", flag, f, def)
		}
	}
}

func TestServerFlags(t *testing.T) {
	base := serverFlags{dataDir: "d", quic: ":1", tcp: ":2", ws: ":3", wsPath: "/jsp", drainGrace: time.Second,
		maxSessions: 1, maxConnsPerIP: 1, logLevel: "info"}
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
	}
	for _, tt := range tests {
		f := base
		tt.edit(&f)
		cfg, err := f.config(io.Discard)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v", tt.name, err)
		}
		if err == nil && (cfg.QUICAddr != ":1" || cfg.TCPAddr != ":2" || cfg.WSAddr != ":3" || cfg.DataDir != "d" || cfg.Logger == nil) {
			t.Errorf("%s: config %+v", tt.name, cfg)
		}
	}
}

// TestRunServer starts the server as `jsp server` does, checks the banner
// against the certificate on disk, talks to it with the printed pin and
// drains it by cancelling, as SIGINT does.
func TestRunServer(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	f := serverFlags{dataDir: dir, quic: "127.0.0.1:0", tcp: "127.0.0.1:0", ws: "127.0.0.1:0", wsPath: "/jsp",
		drainGrace: 200 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error"}
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
