package procs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestWriteCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, err := WriteCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("written pair does not load: %v", err)
	}
	if err := c.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatalf("certificate does not name 127.0.0.1: %v", err)
	}
}

func TestCentrifugoConfig(t *testing.T) {
	tests := []struct {
		name    string
		cert    string
		wantTLS bool
	}{{"plain", "", false}, {"tls", "/c.pem", true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := CentrifugoConfig("127.0.0.1:8123", tt.cert, "/k.pem")
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				HTTPServer struct {
					Address string `json:"address"`
					Port    int    `json:"port"`
					TLS     *struct {
						Enabled bool   `json:"enabled"`
						CertPEM string `json:"cert_pem"`
					} `json:"tls"`
				} `json:"http_server"`
				Client struct {
					Insecure bool `json:"insecure"`
				} `json:"client"`
				Channel struct {
					WithoutNamespace map[string]bool `json:"without_namespace"`
				} `json:"channel"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.HTTPServer.Address != "127.0.0.1" || cfg.HTTPServer.Port != 8123 || !cfg.Client.Insecure ||
				!cfg.Channel.WithoutNamespace["allow_publish_for_client"] || !cfg.Channel.WithoutNamespace["allow_subscribe_for_client"] {
				t.Fatalf("config %s", b)
			}
			if (cfg.HTTPServer.TLS != nil && cfg.HTTPServer.TLS.Enabled) != tt.wantTLS {
				t.Fatalf("TLS in %s, want %v", b, tt.wantTLS)
			}
		})
	}
	if _, err := CentrifugoConfig("no-port", "", ""); err == nil {
		t.Fatal("address without a port accepted")
	}
}

func TestStartAndStop(t *testing.T) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	p, err := Start("echoer", sh, []string{"-c", "echo ready; exec sleep 30"}, Printed("ready"), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Log(), "ready") || p.PID() <= 0 {
		t.Fatalf("log %q pid %d", p.Log(), p.PID())
	}
	t0 := time.Now()
	p.Stop(5 * time.Second)
	if time.Since(t0) > 4*time.Second {
		t.Fatal("Stop did not end the process with SIGTERM")
	}
	if _, err := Start("quitter", sh, []string{"-c", "echo bye"}, Printed("never"), 5*time.Second); err == nil {
		t.Fatal("a process that exited before it was ready was reported ready")
	}
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil || p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d, %v", p, err)
	}
}

func TestRunDriverPhases(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	var seen []string
	out, err := RunDriverPhases(context.Background(), "/bin/sh", []string{"-c", "echo one; echo two"}, func(l string) { seen = append(seen, l) })
	if err != nil || out != "one\ntwo\n" || len(seen) != 2 || seen[1] != "two" {
		t.Fatalf("out %q seen %v err %v", out, seen, err)
	}
	if _, err := RunDriverPhases(context.Background(), "/bin/sh", []string{"-c", "echo oops >&2; exit 3"}, func(string) {}); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("failure not reported with stderr: %v", err)
	}
}
