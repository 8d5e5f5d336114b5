package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/server/config"
)

// TestConfigKeysMatchFlags checks that every configuration key names a
// flag of jsp server whose default is the key's default, so that the file,
// the environment and the flags mean the same.
func TestConfigKeysMatchFlags(t *testing.T) {
	cmd := newServerCmd()
	def := config.Default()
	for _, k := range config.Keys() {
		if k.Flag == "" {
			continue
		}
		f := cmd.Flags().Lookup(k.Flag)
		if f == nil {
			t.Errorf("%s: no flag --%s", k.Name, k.Flag)
			continue
		}
		want, _ := def.Text(k.Name)
		if got := flagText(f); got != want {
			t.Errorf("%s: flag --%s default %q, config default %q", k.Name, k.Flag, got, want)
		}
	}
}

func TestApplyConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "jsp.toml")
	src := "[server]\ncluster = \"from-file\"\nrole = \"core\"\n[gateway]\ndrain_grace = \"3s\"\nmax_sessions = 7\n[log]\nlevel = \"warn\"\n"
	if err := os.WriteFile(file, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newServerCmd()
	if err := cmd.ParseFlags([]string{"--config", file, "--max-sessions", "9"}); err != nil {
		t.Fatal(err)
	}
	env := []string{"JSP_GATEWAY_DRAIN_GRACE=4s", "JSP_BUS_NATS=nats://a:1,nats://b:2"}
	l, err := applyConfig(cmd, env)
	if err != nil {
		t.Fatal(err)
	}
	fl := cmd.Flags()
	for flag, want := range map[string]string{
		"cluster":      "from-file", // file over default
		"role":         "core",
		"drain-grace":  "4s", // env over file
		"max-sessions": "9",  // flag over file
		"log-level":    "warn",
		"quic":         ":7400", // default
		"nats":         "nats://a:1,nats://b:2",
	} {
		if got := flagText(fl.Lookup(flag)); got != want {
			t.Errorf("--%s = %q, want %q", flag, got, want)
		}
	}
	for key, want := range map[string]string{
		"server.cluster": "file:2", "gateway.drain_grace": "env JSP_GATEWAY_DRAIN_GRACE",
		"gateway.max_sessions": "flag --max-sessions", "listen.quic": "default",
	} {
		if got := l.Origins[key]; got != want {
			t.Errorf("origin of %s = %q, want %q", key, got, want)
		}
	}
	// JSP_CONFIG names the file when --config is absent.
	cmd = newServerCmd()
	if _, err := applyConfig(cmd, []string{config.EnvFile + "=" + file}); err != nil {
		t.Fatal(err)
	}
	if got := flagText(cmd.Flags().Lookup("cluster")); got != "from-file" {
		t.Errorf("JSP_CONFIG: cluster = %q", got)
	}
}

// TestPrintConfig runs jsp server --print-config and reads its output back
// as a configuration file.
func TestPrintConfig(t *testing.T) {
	cmd := newServerCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--print-config", "--cluster", "c1", "--nats", "nats://x:4222"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, `cluster = "c1"  # flag --cluster`) || !strings.Contains(s, `nats = ["nats://x:4222"]`) ||
		!strings.Contains(s, `drain_grace = "10s"  # default`) {
		t.Fatalf("print-config:\n%s", s)
	}
	l := config.NewLoaded()
	if err := l.Parse("printed", out.Bytes()); err != nil {
		t.Fatalf("printed config does not parse: %v", err)
	}
}

// TestConfigErrorsNameKeyAndLine runs jsp server with a malformed file.
func TestConfigErrorsNameKeyAndLine(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ src, want string }{
		{"[gateway]\n\nmax_sessions = \"many\"\n", "jsp.toml:3: gateway.max_sessions: want a number"},
		{"[storage]\ndatabase = \"x\"\n", "jsp.toml:2: unknown key storage.database"},
		{"[log]\nformat = \"xml\"\n", "jsp.toml:2: log.format: want one of text, json"},
	} {
		file := filepath.Join(dir, "jsp.toml")
		if err := os.WriteFile(file, []byte(tc.src), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := newServerCmd()
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		cmd.SetArgs([]string{"--config", file})
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want %q", err, tc.want)
		}
	}
}

// TestStartupUnreachable checks that an unreachable bus or database at
// start-up fails with an error naming what was tried.
func TestStartupUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String() // nothing listens once closed
	ln.Close()
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"nats", []string{"--role", "core", "--nats", "nats://" + dead}, []string{"--nats nats://" + dead, "connect to nats://" + dead}},
		{"nats list", []string{"--role", "core", "--nats", "nats://" + dead + ",nats://" + dead}, []string{"nats://" + dead}},
		{"database", []string{"--data-dir", dir, "--quic", "127.0.0.1:0", "--tcp", "off", "--ws", "off", "--db", "postgres://jsp:secret@" + dead + "/jsp"},
			[]string{"--db", "postgres://jsp:xxxxx@" + dead + "/jsp", dead}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := newServerCmd()
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			cmd.SetArgs(append(tc.args, "--log-level", "error"))
			err := cmd.Execute()
			if err == nil {
				t.Fatal("started")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to name %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("err shows the password: %v", err)
			}
		})
	}
}

// TestOpsListenerAndStatus runs the default deployment with the
// operations listener and reads /healthz, /readyz, /metrics and /status
// (through jsp status's code).
func TestOpsListenerAndStatus(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	cmd := newServerCmd()
	out := &syncBuffer{}
	cmd.SetOut(out)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"--data-dir", dir, "--quic", "127.0.0.1:0", "--tcp", "off", "--ws", "off", "--ops-addr", "127.0.0.1:0",
		"--log-level", "error", "--log-format", "json", "--node-id", "gw-test", "--drain-grace", "100ms"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	waitOutput(t, out, "SPKI pin")
	m := regexp.MustCompile(`operations on http://(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no operations address:\n%s", out.String())
	}
	addr := m[1]
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("/healthz %d %s", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"jsp_sessions{transport=\"quic\"} 0", "jsp_messages_total{class=\"chat\",direction=\"in\"} 0",
		"jsp_handshake_seconds_bucket{le=\"+Inf\"}", "jsp_delivery_seconds_count", "jsp_queue_depth{queue=\"send\"}",
		"jsp_drops_total{reason=\"slow_consumer\"}", "jsp_core_requests_total", "jsp_nats_reconnects_total", "jsp_store_errors_total 0",
		"jsp_bus_errors_total{op=\"registry\"}", "jsp_registry_gateways"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	st, _, err := fetchStatus(sctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	printStatus(&b, st)
	for _, want := range []string{"role      all", "node      gw-test", "ready     ready", "gateway   ok, 0 sessions", "core      0 requests"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestReadyChecksThroughBreakers checks that /readyz probes the bus and
// the database through the circuit breakers' wrappers, and reports a
// database that is gone.
func TestReadyChecksThroughBreakers(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dir := t.TempDir()
	n := nodeFlags{role: roleAll, cluster: "jsp", db: defaultDSN(dir)}
	nd, err := openNode(context.Background(), n, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nd.close()
	st := &nodeState{flags: n, nd: nd}
	checks := st.readyChecks()
	if len(checks) != 2 || checks["bus"] == nil || checks["storage"] == nil {
		t.Fatalf("checks %v, want bus and storage", checks)
	}
	// Without a gateway, as a core-only process answers.
	st.flags.role = roleCore
	r := httptest.NewRequest(http.MethodGet, "/readyz", nil)
	if err := st.ready(r); err != nil {
		t.Fatalf("ready: %v", err)
	}
	_ = nd.store.Close()
	if err := st.ready(r); err == nil || !strings.Contains(err.Error(), "storage") {
		t.Fatalf("ready with the store closed: %v", err)
	}
}
