package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// cliServer is an in-process gateway for the client command tests, with
// QUIC and TCP on one port number so that jsp:// can race them.
type cliServer struct {
	g        *gateway.Gateway
	port     string
	pin      string
	dir      string
	certFile string
}

func startCLIServer(t *testing.T) *cliServer {
	t.Helper()
	dir := t.TempDir()
	var g *gateway.Gateway
	var port string
	var err error
	for range 5 {
		port = cliFreePort(t)
		g, err = gateway.New(gateway.Config{
			QUICAddr: "127.0.0.1:" + port,
			TCPAddr:  "127.0.0.1:" + port,
			WSAddr:   "127.0.0.1:0",
			DataDir:  dir,
			Logger:   slog.New(slog.DiscardHandler),
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = g.Close()
		if err := <-done; !errors.Is(err, gateway.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return &cliServer{g: g, port: port, pin: g.Cert().Pin.String(), dir: dir, certFile: g.Cert().File}
}

func cliFreePort(t *testing.T) string {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ := net.SplitHostPort(l.Addr().String())
		_ = l.Close()
		if u, err := net.ListenPacket("udp", "127.0.0.1:"+port); err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no port free for UDP and TCP")
	return ""
}

func (s *cliServer) url(scheme string) string {
	if scheme == "wss" {
		a := s.g.Addrs()
		_, port, _ := net.SplitHostPort(a.WebSocket.String())
		return "wss://127.0.0.1:" + port + a.WSPath
	}
	return scheme + "://127.0.0.1:" + s.port
}

// checkLeaks fails t if goroutines started during the test outlive it. It
// is registered first so that it runs after every other cleanup (they run
// last-in, first-out), when the test's servers have stopped, and it waits
// up to testutil.LeakGrace for quic-go's asynchronous teardown.
func checkLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		deadline := time.Now().Add(testutil.LeakGrace)
		for {
			err := goleak.Find(ignore)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("goroutines outlived the test: %v", err)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// runCLI runs a fresh command with args and returns its stdout and stderr.
func runCLI(t *testing.T, cmd *cobra.Command, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := cmd.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

func TestDialFlagsOptions(t *testing.T) {
	good := strings.Repeat("0a", 32)
	tests := []struct {
		name    string
		f       dialFlags
		pins    int
		wantErr string
	}{
		{name: "defaults", f: dialFlags{timeout: time.Second, logLevel: "warn"}},
		{name: "hex pin", f: dialFlags{pins: []string{good}, timeout: time.Second, logLevel: "warn"}, pins: 1},
		{name: "colon hex and base64 pins", f: dialFlags{pins: []string{strings.Repeat("0a:", 31) + "0a", "sha256/" + strings.Repeat("A", 43) + "="}, timeout: time.Second, logLevel: "warn"}, pins: 2},
		{name: "bad pin", f: dialFlags{pins: []string{"xyz"}, timeout: time.Second, logLevel: "warn"}, wantErr: "--pin"},
		{name: "insecure with ca", f: dialFlags{insecure: true, ca: "ca.pem", timeout: time.Second, logLevel: "warn"}, wantErr: "contradict"},
		{name: "zero timeout", f: dialFlags{logLevel: "warn"}, wantErr: "--timeout"},
		{name: "bad log level", f: dialFlags{timeout: time.Second, logLevel: "loud"}, wantErr: "--log-level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := tt.f.options(&bytes.Buffer{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("options() error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(o.Pins) != tt.pins {
				t.Fatalf("%d pins, want %d", len(o.Pins), tt.pins)
			}
			if o.DialTimeout != tt.f.timeout || o.InsecureSkipVerify != tt.f.insecure || o.RootCAsFile != tt.f.ca {
				t.Fatalf("options %+v do not follow the flags %+v", o, tt.f)
			}
		})
	}
}

func TestPinMismatchMessage(t *testing.T) {
	checkLeaks(t)
	srv := startCLIServer(t)
	wrong := tlsconf.Fingerprint{1, 2, 3}
	_, _, err := runCLI(t, newPingCmd(), srv.url("jsp+tcp"), "--pin", wrong.String(), "-n", "1")
	if err == nil {
		t.Fatal("ping with a wrong pin succeeded")
	}
	for _, want := range []string{srv.pin, wrong.String(), "check --pin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
