package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/websocket"
)

// TestServerWSBehindTLSProxy starts `jsp server --ws-behind-tls-proxy`
// behind a TLS-terminating reverse proxy (TLS 1.3 at the proxy, plain
// HTTP to the server, X-Forwarded-For appended as common proxies do) and
// checks that clients are served through it with the client's address
// taken from the header: a client the proxy names as a blocked address is
// closed with BLOCKED, whatever it claims itself.
func TestServerWSBehindTLSProxy(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	cmd := newServerCmd()
	out := &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--data-dir", t.TempDir(), "--quic", "off", "--tcp", "off", "--ws", "127.0.0.1:0",
		"--ws-behind-tls-proxy", "--block", "203.0.113.9", "--log-level", "error", "--drain-grace", "100ms"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	banner := waitOutput(t, out, "SPKI pin")
	m := regexp.MustCompile(`WebSocket +ws://(127\.0\.0\.1:\d+)/jsp\n`).FindStringSubmatch(banner)
	if m == nil {
		t.Fatalf("no plain WebSocket URL in banner:\n%s", banner)
	}
	backend := &url.URL{Scheme: "http", Host: m[1]}

	// The proxy: TLS 1.3 outside, plain HTTP/1.1 inside; the reverse
	// proxy passes the WebSocket upgrade through and appends the peer's
	// address to X-Forwarded-For.
	proxy := httptest.NewUnstartedServer(httputil.NewSingleHostReverseProxy(backend))
	proxy.TLS = &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"http/1.1"}}
	proxy.StartTLS()
	defer proxy.Close()
	roots := x509.NewCertPool()
	roots.AddCert(proxy.Certificate())
	wssURL := "wss://" + strings.TrimPrefix(proxy.URL, "https://") + "/jsp"

	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	defer dcancel()
	dial := func(claim string) (*session.Session, error) {
		d := websocket.Dialer{Mux: mux.Config{}}
		if claim != "" {
			d.Header = http.Header{"X-Forwarded-For": {claim}}
		}
		conn, err := d.Dial(dctx, wssURL, &tls.Config{RootCAs: roots})
		if err != nil {
			return nil, err
		}
		s, err := session.Dial(dctx, conn, session.ClientInfo{Name: "behind-proxy"}, session.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			_ = conn.CloseWithError(0, "")
			return nil, err
		}
		return s, nil
	}

	// A client without a claim: the proxy names its loopback address.
	s, err := dial("")
	if err != nil {
		t.Fatalf("session through the proxy: %v", err)
	}
	if _, err := s.Ping(dctx); err != nil {
		t.Fatalf("ping through the proxy: %v", err)
	}
	_ = s.Close()

	// dialRefused dials with X-Forwarded-For xff and returns why the
	// session did not stay open: the dial's error or the session's end.
	dialRefused := func(xff string) error {
		s, err := dial(xff)
		if err != nil {
			return err
		}
		defer s.Close()
		select {
		case <-s.Context().Done():
			return s.Err()
		case <-dctx.Done():
			return errors.New("session stayed open")
		}
	}

	// A client the proxy forwards as 203.0.113.9 (the header it sent
	// itself, with the proxy's entry appended) is on the block list.
	err = dialRefused("203.0.113.9")
	if jsperr.CodeOf(err) != jsperr.Blocked {
		t.Fatalf("blocked forwarded client: %v, want BLOCKED", err)
	}

	// A client that claims a blocked address behind an address it does
	// not own gets the right-most untrusted one: still blocked, since
	// only the proxy's own entry is skipped.
	err = dialRefused("198.51.100.1, 203.0.113.9")
	if jsperr.CodeOf(err) != jsperr.Blocked {
		t.Fatalf("claimed chain: %v, want BLOCKED", err)
	}
	// Claiming an innocent address after the blocked one does not help
	// either: the right-most untrusted entry is the claimed one, which is
	// not blocked, so this client is served.
	s, err = dial("203.0.113.9, 198.51.100.1")
	if err != nil {
		t.Fatalf("innocent claim: %v", err)
	}
	if _, err := s.Ping(dctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	_ = s.Close()

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
}

// TestServerPlatformFlagErrors checks the refusals of the proxy and
// replica flags, each naming what to change.
func TestServerPlatformFlagErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"plaintext on every interface", []string{"--ws", ":0", "--ws-behind-tls-proxy"}, nil, "reachable by anyone"},
		{"plaintext on every interface from env", []string{"--ws", ":0"}, []string{"JSP_LISTEN_WS_BEHIND_TLS_PROXY=1"}, "reachable by anyone"},
		{"bad env bool", nil, []string{"JSP_LISTEN_WS_BEHIND_TLS_PROXY=yes"}, "JSP_LISTEN_WS_BEHIND_TLS_PROXY: listen.ws_behind_tls_proxy: want true, false, 1 or 0"},
		{"bad flag bool", []string{"--ws-behind-tls-proxy=T"}, nil, "want true, false, 1 or 0, got \"T\""},
		{"flag bool 1", []string{"--ws", ":0", "--ws-behind-tls-proxy=1"}, nil, "reachable by anyone"},
		{"trusted proxy without the mode", []string{"--ws-trusted-proxy", "10.0.0.0/8"}, nil, "--ws-trusted-proxy goes with --ws-behind-tls-proxy"},
		{"bad trusted proxy", []string{"--ws-behind-tls-proxy", "--ws-trusted-proxy", "10.0.0.0/33"}, nil, "--ws-trusted-proxy"},
		{"zero replicas", []string{"--kv-replicas", "0"}, nil, "--kv-replicas 0: want 1 to 5"},
		{"too many replicas", []string{"--work-queue-replicas", "6"}, nil, "--work-queue-replicas 6: want 1 to 5"},
		{"replicas over the embedded server", []string{"--event-log-replicas", "3"}, nil, "event log replicas 3, but the embedded NATS server has 1"},
		{"zero open wait", []string{"--bus-open-wait", "0s"}, nil, "--bus-open-wait 0s: want a positive duration"},
		{"negative open wait from env", nil, []string{"JSP_BUS_OPEN_WAIT=-1s"}, "JSP_BUS_OPEN_WAIT: bus.open_wait: negative duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			cmd := newServerCmd()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs(append([]string{"--data-dir", t.TempDir(), "--quic", "off", "--tcp", "off", "--log-level", "error"}, tc.args...))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := cmd.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if strings.Contains(tc.want, "embedded NATS") && !errors.Is(err, natsbus.ErrTooManyReplicas) {
				t.Fatalf("err = %v, not ErrTooManyReplicas", err)
			}
		})
	}
}

// TestServerReplicasConfig checks the replica keys from a file and the
// environment in --print-config.
func TestServerReplicasConfig(t *testing.T) {
	t.Setenv("JSP_BUS_EVENT_LOG_REPLICAS", "3")
	cmd := newServerCmd()
	var b strings.Builder
	cmd.SetOut(&b)
	cmd.SetArgs([]string{"--print-config", "--kv-replicas", "3", "--nats", "nats://a:4222,nats://b:4222,nats://c:4222", "--ws-behind-tls-proxy",
		"--bus-open-wait", "45s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"kv_replicas = 3  # flag --kv-replicas",
		"event_log_replicas = 3  # env JSP_BUS_EVENT_LOG_REPLICAS",
		"work_queue_replicas = 1  # default",
		`open_wait = "45s"  # flag --bus-open-wait`,
		"ws_behind_tls_proxy = true  # flag --ws-behind-tls-proxy",
		"ws_trusted_proxies = []  # default",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("print-config lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPlatformAllowsProxies checks that the trusted proxies join the
// allow list, after --allow, and only in proxy mode.
func TestPlatformAllowsProxies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     platformFlags
		ws    string
		allow []string // --allow before
		want  []string
	}{
		{"off", platformFlags{}, "127.0.0.1:7401", []string{"192.0.2.0/24"}, []string{"192.0.2.0/24"}},
		{"loopback", platformFlags{wsBehindProxy: true}, "127.0.0.1:7401", nil, []string{"127.0.0.0/8", "::1/128"}},
		{"listed", platformFlags{wsBehindProxy: true, trustedProxies: []string{"10.0.0.0/24", "10.0.1.7"}}, ":7401",
			[]string{"192.0.2.0/24", "10.0.0.0/24"}, []string{"192.0.2.0/24", "10.0.0.0/24", "10.0.1.7/32"}},
		{"ws off", platformFlags{wsBehindProxy: true}, gateway.Off, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := gateway.Config{WSAddr: tc.ws}
			var err error
			if cfg.DDoS.Allow, err = parsePrefixes("--allow", tc.allow); err != nil {
				t.Fatal(err)
			}
			if err := tc.p.applyGateway(&cfg); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range cfg.DDoS.Allow {
				got = append(got, p.String())
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("allow = %v, want %v", got, tc.want)
			}
			if cfg.WSBehindTLSProxy != tc.p.wsBehindProxy {
				t.Fatalf("WSBehindTLSProxy = %v", cfg.WSBehindTLSProxy)
			}
		})
	}
}
