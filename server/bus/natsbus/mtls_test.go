package natsbus_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jetstreamproto/jsp/security/ca"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// mtlsEnv is an embedded NATS server that requires client certificates
// from one cluster CA and maps them to role permissions.
type mtlsEnv struct {
	authority *ca.CA
	srv       *natsbus.Server
	subjects  bus.Subjects
	peer      *ca.Verifier // how services verify the NATS server
}

func newMTLSEnv(t *testing.T) *mtlsEnv {
	t.Helper()
	authority, err := ca.Init(t.TempDir(), ca.Config{Cluster: "prod", MinLifetime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s, err := bus.NewSubjects("prod")
	if err != nil {
		t.Fatal(err)
	}
	natsCert, err := authority.Issue(ca.Identity{Cluster: "prod", Role: "nats", Name: "n1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clients, err := ca.NewVerifier(authority.Trust(), ca.Policy{Cluster: "prod", Roles: []string{"gateway", "core"}})
	if err != nil {
		t.Fatal(err)
	}
	stc, err := ca.ServerConfig(ca.Static(natsCert), clients)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartServer(natsbus.ServerConfig{
		DataDir:   t.TempDir(),
		Listen:    "127.0.0.1:0",
		TLS:       stc,
		Authorize: natsbus.IdentityAuthorizer(clients, s),
		Logger:    quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	peer, err := ca.NewVerifier(authority.Trust(), ca.Policy{Cluster: "prod", Roles: []string{"nats"}})
	if err != nil {
		t.Fatal(err)
	}
	return &mtlsEnv{authority: authority, srv: srv, subjects: s, peer: peer}
}

// connect logs in to the server as role/name with the certificate src
// presents.
func (e *mtlsEnv) connect(role bus.Role, name string, src ca.CertificateSource, errs *asyncErrs) (*natsbus.Bus, error) {
	tc, err := ca.ClientConfig(src, e.peer)
	if err != nil {
		return nil, err
	}
	cfg, err := natsbus.MTLSClient(tc, e.subjects, role, name)
	if err != nil {
		return nil, err
	}
	cfg.Logger = quiet
	cfg.NoReconnect = errs == nil
	cfg.ConnectTimeout = 2 * time.Second
	cfg.ReconnectWait = 50 * time.Millisecond
	if errs != nil {
		cfg.OnAsyncError = errs.add
	}
	return natsbus.Connect([]string{e.srv.ClientURL()}, cfg)
}

func (e *mtlsEnv) static(t *testing.T, role, name string, life time.Duration) ca.CertificateSource {
	t.Helper()
	c, err := e.authority.Issue(ca.Identity{Cluster: "prod", Role: role, Name: name}, life)
	if err != nil {
		t.Fatal(err)
	}
	return ca.Static(c)
}

func closeBus(t *testing.T, b *natsbus.Bus) {
	t.Helper()
	t.Cleanup(func() { _ = b.Close() })
}

func TestMTLSGatewayCannotPublishCoreSubjects(t *testing.T) {
	e := newMTLSEnv(t)
	errs := newAsyncErrs()
	gw, err := e.connect(bus.RoleGateway, "gw-1", e.static(t, "gateway", "gw-1", time.Hour), errs)
	if err != nil {
		t.Fatal(err)
	}
	closeBus(t, gw)
	core, err := e.connect(bus.RoleCore, "core-1", e.static(t, "core", "core-1", time.Hour), newAsyncErrs())
	if err != nil {
		t.Fatal(err)
	}
	closeBus(t, core)

	// Channel subjects are published by cores only (docs/bus.md).
	ch, _ := e.subjects.Channel("room.1")
	if err := gw.Publish(ch, bus.Msg{Data: []byte("forged")}); err != nil {
		t.Fatal(err)
	}
	if err := errs.wait(t); !errors.Is(err, bus.ErrPermission) {
		t.Fatalf("gateway publish to %s: async error %v, want a permissions violation", ch, err)
	}
	// The gateway's own route works: a command to the core is answered.
	if _, err := core.QueueSubscribe(e.subjects.CoreCmds(), bus.CoreQueue, func(m *bus.Msg) {
		_ = core.Publish(m.Reply, bus.Msg{Data: []byte("ok")})
	}); err != nil {
		t.Fatal(err)
	}
	if err := core.Conn().Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rep, err := gw.Request(ctx, e.subjects.CoreCmd(3), bus.Msg{Data: []byte("cmd")})
	if err != nil || string(rep.Data) != "ok" {
		t.Fatalf("gateway command: %v %v", rep, err)
	}
}

func TestMTLSRefusals(t *testing.T) {
	e := newMTLSEnv(t)
	other, err := ca.Init(t.TempDir(), ca.Config{Cluster: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Issue(ca.Identity{Cluster: "prod", Role: "gateway", Name: "gw-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A CA whose clock is two hours behind issues a certificate that has
	// expired by now.
	past, err := ca.Open(e.authority.Dir(), ca.Config{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := past.Issue(ca.Identity{Cluster: "prod", Role: "gateway", Name: "gw-1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		src  ca.CertificateSource
	}{
		{"another CA", ca.Static(foreign)},
		{"expired", ca.Static(expired)},
		{"wrong role", e.static(t, "nats", "gw-1", time.Hour)},
		{"no certificate", ca.Static(&tls.Certificate{})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := e.connect(bus.RoleGateway, "gw-1", tt.src, nil)
			if err == nil {
				_ = b.Close()
				t.Fatal("connection admitted")
			}
		})
	}
}

func TestMTLSRenewalKeepsConnection(t *testing.T) {
	e := newMTLSEnv(t)
	const life = 1500 * time.Millisecond
	r, err := ca.NewRenewer(ca.RenewerConfig{
		Issuer:   e.authority,
		Identity: ca.Identity{Cluster: "prod", Role: "gateway", Name: "gw-1"},
		Lifetime: life,
		Logger:   quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	first, _ := r.Certificate()
	gw, err := e.connect(bus.RoleGateway, "gw-1", r, newAsyncErrs())
	if err != nil {
		t.Fatal(err)
	}
	closeBus(t, gw)
	core, err := e.connect(bus.RoleCore, "core-1", e.static(t, "core", "core-1", time.Hour), newAsyncErrs())
	if err != nil {
		t.Fatal(err)
	}
	closeBus(t, core)
	if _, err := core.QueueSubscribe(e.subjects.CoreCmds(), bus.CoreQueue, func(m *bus.Msg) {
		_ = core.Publish(m.Reply, bus.Msg{Data: m.Data})
	}); err != nil {
		t.Fatal(err)
	}
	if err := core.Conn().Flush(); err != nil { // the server has the subscription
		t.Fatal(err)
	}
	roundTrip := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := gw.Request(ctx, e.subjects.CoreCmd(0), bus.Msg{Data: []byte(what)}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	roundTrip("before renewal")
	// Wait until the first certificate has expired and the renewer has
	// replaced it.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(first.Leaf.NotAfter.Add(200*time.Millisecond)) || r.Stats().Renewals < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("renewals: %+v", r.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	roundTrip("after the first certificate expired")
	if d := gw.Stats().Disconnects; d != 0 {
		t.Fatalf("%d disconnects during renewal", d)
	}
	// A new connection (after a network failure) presents the renewed
	// certificate, and the server accepts it.
	if err := gw.Conn().ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	for gw.Stats().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no reconnect with the renewed certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
	roundTrip("after reconnecting")
}

func TestMTLSInProcessConnection(t *testing.T) {
	e := newMTLSEnv(t)
	b, err := e.srv.Connect(natsbus.ClientConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	closeBus(t, b)
	ch, _ := e.subjects.Channel("room.1")
	got := make(chan *bus.Msg, 1)
	if _, err := b.Subscribe(ch, func(m *bus.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ch, bus.Msg{Data: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("in-process connection cannot use the bus")
	}
	// Guessing the internal user's secret over TCP does not work.
	_, err = natsbus.Connect([]string{e.srv.ClientURL()}, natsbus.ClientConfig{
		User: natsbus.InternalUser, Password: "guess", NoReconnect: true, Logger: quiet,
		TLS: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13},
	})
	if err == nil {
		t.Fatal("password login admitted over TCP")
	}
}

func TestMTLSServerConfigErrors(t *testing.T) {
	auth := natsbus.Authorizer(func(tls.ConnectionState) (string, bus.Permissions, error) { return "", bus.Permissions{}, nil })
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  natsbus.ServerConfig
	}{
		{"no TLS", natsbus.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0", Authorize: auth}},
		{"no client certs", natsbus.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0", TLS: &tls.Config{}, Authorize: auth}},
		{"with users", natsbus.ServerConfig{DataDir: dir, Listen: "127.0.0.1:0", TLS: &tls.Config{ClientAuth: tls.RequireAnyClientCert},
			Authorize: auth, Users: []*server.User{{Username: "u"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if srv, err := natsbus.StartServer(tt.cfg); err == nil {
				srv.Shutdown()
				t.Fatal("accepted")
			}
		})
	}
}
