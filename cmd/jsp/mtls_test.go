package main

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/security/ca"
)

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestSplitRolesMTLS runs the bus host (role all with --nats-listen) and a
// split core against it over mTLS from one CA directory; a core issued by
// another CA is refused.
func TestSplitRolesMTLS(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	caDir := t.TempDir()
	if _, err := ca.Init(caDir, ca.Config{Cluster: "prod"}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	listen := freeTCPPort(t)
	hostDir := t.TempDir()
	host := nodeFlags{role: roleAll, natsListen: listen, cluster: "jsp", db: defaultDSN(hostDir),
		mtls: mtlsFlags{caDir: caDir, name: "host-1", lifetime: time.Hour}}
	if err := host.validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hn, err := openNode(ctx, host, hostDir, log)
	if err != nil {
		t.Fatal(err)
	}
	defer hn.close()
	if s := busSummary(host); !strings.Contains(s, "mTLS") {
		t.Fatalf("bus summary %q", s)
	}

	coreDir := t.TempDir()
	core := nodeFlags{role: roleCore, nats: []string{"tls://" + listen}, cluster: "jsp", db: defaultDSN(coreDir),
		mtls: mtlsFlags{caDir: caDir, name: "core-1", lifetime: time.Hour}}
	cn, err := openNode(ctx, core, coreDir, log)
	if err != nil {
		t.Fatalf("core with a certificate of the cluster CA: %v", err)
	}
	cn.close()

	otherDir := t.TempDir()
	if _, err := ca.Init(otherDir, ca.Config{Cluster: "prod"}); err != nil {
		t.Fatal(err)
	}
	core.mtls.caDir = otherDir
	if cn, err := openNode(ctx, core, t.TempDir(), log); err == nil {
		cn.close()
		t.Fatal("core with a certificate of another CA was admitted")
	}
	core.mtls.caDir = ""
	if cn, err := openNode(ctx, core, t.TempDir(), log); err == nil {
		cn.close()
		t.Fatal("core without a certificate was admitted")
	}
}

func TestMTLSFlagsValidate(t *testing.T) {
	tests := []struct {
		name string
		n    nodeFlags
		want string
	}{
		{"all with nats", nodeFlags{role: roleAll, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{caDir: "x"}}, "--role gateway or core"},
		{"all in-process", nodeFlags{role: roleAll, cluster: "jsp", mtls: mtlsFlags{caDir: "x"}}, "--nats-listen"},
		{"gateway", nodeFlags{role: roleGateway, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{caDir: "x"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.n.validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("validate = %v, want %q", err, tt.want)
			}
		})
	}
}
