package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/security/ca"
	"github.com/jetstreamproto/jsp/session"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/wire"
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

	// A split gateway on the bus with its gateway identity: a PUBLISH is
	// committed by the host's core and comes back as an EVENT, all within
	// the gateway role's bus permissions.
	gwDir := t.TempDir()
	gf := serverFlags{dataDir: gwDir, quic: "127.0.0.1:0", tcp: "off", ws: "off", wsPath: "/jsp",
		drainGrace: 100 * time.Millisecond, maxSessions: 10, maxConnsPerIP: 10, logLevel: "error",
		authMode: "anonymous", maxHandshakesPerIP: 8,
		node: nodeFlags{role: roleGateway, nats: []string{"tls://" + listen}, cluster: "jsp", db: defaultDSN(hostDir), dbSet: true,
			mtls: mtlsFlags{caDir: caDir, name: "gw-1", lifetime: time.Hour}}}
	gcfg, err := gf.config(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	gctx, gcancel := context.WithCancel(ctx)
	defer gcancel()
	gdone := make(chan error, 1)
	go func() { gdone <- runNode(gctx, gf.node, gcfg, out, nil) }()
	banner := waitOutput(t, out, "SPKI pin")
	if !strings.Contains(banner, "mTLS") {
		t.Fatalf("banner:\n%s", banner)
	}
	publishThrough(t, banner, "hi")
	gcancel()
	if err := <-gdone; err != nil {
		t.Fatalf("split gateway: %v", err)
	}

	coreDir := t.TempDir()
	core := nodeFlags{role: roleCore, nats: []string{"tls://" + listen}, cluster: "jsp", db: defaultDSN(coreDir),
		mtls: mtlsFlags{caDir: caDir, name: "core-1", lifetime: time.Hour}}
	cn, err := openNode(ctx, core, coreDir, log)
	if err != nil {
		t.Fatalf("core with a certificate of the cluster CA: %v", err)
	}
	cn.close()

	// A core whose certificate was issued elsewhere (jsp ca issue) and
	// handed over as files, with the CA's trust anchors only.
	authority, err := ca.Open(caDir, ca.Config{})
	if err != nil {
		t.Fatal(err)
	}
	filesDir := t.TempDir()
	issueFiles := func(role, name string) (string, string) {
		c, err := authority.Issue(ca.Identity{Cluster: "prod", Role: role, Name: name}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		cert, key := filepath.Join(filesDir, name+".crt"), filepath.Join(filesDir, name+".key")
		if err := ca.WriteFiles(cert, key, c); err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	cert, key := issueFiles("core", "core-2")
	fileCore := nodeFlags{role: roleCore, nats: []string{"tls://" + listen}, cluster: "jsp", db: defaultDSN(t.TempDir()),
		mtls: mtlsFlags{certFile: cert, keyFile: key, trustDir: caDir}}
	if err := fileCore.validate(); err != nil {
		t.Fatal(err)
	}
	cn, err = openNode(ctx, fileCore, t.TempDir(), log)
	if err != nil {
		t.Fatalf("core with --service-cert: %v", err)
	}
	cn.close()
	fileCore.mtls.certFile, fileCore.mtls.keyFile = issueFiles("gateway", "gw-9")
	if cn, err := openNode(ctx, fileCore, t.TempDir(), log); err == nil || !strings.Contains(err.Error(), "needs a core certificate") {
		if cn != nil {
			cn.close()
		}
		t.Fatalf("core with a gateway certificate: %v", err)
	}

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
		{"ca and files", nodeFlags{role: roleGateway, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{caDir: "x", certFile: "c", keyFile: "k"}}, "does not go with"},
		{"cert without key", nodeFlags{role: roleGateway, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{certFile: "c", trustDir: "t"}}, "go together"},
		{"cert without trust", nodeFlags{role: roleGateway, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{certFile: "c", keyFile: "k"}}, "--trust-dir"},
		{"files", nodeFlags{role: roleCore, nats: []string{"nats://h:1"}, cluster: "jsp", mtls: mtlsFlags{certFile: "c", keyFile: "k", trustDir: "t"}}, ""},
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

// publishThrough subscribes and publishes body through the gateway in
// banner and waits for the ACK and the EVENT with sequence number 1 and
// that body.
func publishThrough(t *testing.T, banner, body string) {
	t.Helper()
	addr, tlsConf := bannerTarget(t, banner, "jsp+quic")
	dctx, dcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer dcancel()
	conn, err := jspquic.Dial(dctx, addr, tlsConf, jspquic.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.Dial(dctx, conn, session.ClientInfo{Name: "cmd-test"}, session.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Send(&wire.Subscribe{Channel: "lobby", ReqID: []byte("s")}); err != nil {
		t.Fatal(err)
	}
	if in, err := s.Recv(dctx); err != nil || in.Type != wire.FrameAck {
		t.Fatalf("subscribe: %v %v", in.Type, err)
	}
	env := &wire.Envelope{ID: []byte("p1"), Route: wire.Route{Kind: wire.RouteChannel, Name: "lobby"}, Class: protocol.ClassChat, Body: []byte(body)}
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
	var acked, evented bool
	for !acked || !evented {
		in, err := s.Recv(dctx)
		if err != nil {
			t.Fatal(err)
		}
		switch in.Type {
		case wire.FrameAck:
			acked = true
		case wire.FrameEvent:
			if in.Envelope.Seq != 1 || string(in.Envelope.Body) != body {
				t.Fatalf("event seq %d body %q", in.Envelope.Seq, in.Envelope.Body)
			}
			evented = true
		case wire.FrameError:
			t.Fatalf("publish through the gateway: %v", in.Message)
		}
	}
}
