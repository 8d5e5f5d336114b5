package integrationtests

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/all" // postgres:// DSNs
	"github.com/jetstreamproto/jsp/server/storage/postgres/pgtest"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/tcptls"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
	"github.com/jetstreamproto/jsp/wire"
)

// channel is the channel every message of the test goes to, so that its
// sequence numbers count every commit.
const channel = "room"

// quiet discards logs.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// deployment is the test's cluster: three NATS nodes, two cores, two
// gateways, all processes on loopback, and one PostgreSQL database.
type deployment struct {
	t       *testing.T
	nats    []*proc
	cores   []*proc
	gws     []*proc
	gwAddr  []string // TLS-over-TCP (and QUIC) address of each gateway
	gwOps   []string // operations listener of each gateway
	coreOps []string // operations listener of each core
	dsn     string
	pins    []tlsconf.Fingerprint
	// tokenKey signs the clients' tokens. Authenticated users matter:
	// the de-duplication key of a PUBLISH is its id and its sender, and
	// an anonymous sender is its session, which a reconnect to another
	// gateway changes.
	tokenKey token.PrivateKey
}

func newDeployment(t *testing.T) *deployment {
	start := time.Now()
	dsn := pgtest.DSN(t) // skips (or fails in CI) without PostgreSQL
	t.Logf("PostgreSQL up in %v", time.Since(start).Round(time.Millisecond))
	dir := t.TempDir()
	bin := buildJSP(t, dir)
	d := &deployment{t: t, dsn: dsn}
	key, err := token.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := token.MarshalPublicKeyPEM(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "token.pub")
	if err := os.WriteFile(keyFile, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	d.tokenKey = key
	natsPorts := []int{freePort(t), freePort(t), freePort(t)}
	routePorts := []int{freePort(t), freePort(t), freePort(t)}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, "nats-route://"+addr(p))
	}
	for i := range 3 {
		d.nats = append(d.nats, &proc{
			name: fmt.Sprintf("nats-%d", i+1),
			path: os.Args[0],
			args: []string{"-test.run=^$"},
			env: []string{envHelper + "=nats", envDir + "=" + filepath.Join(dir, fmt.Sprintf("nats-%d", i+1)),
				envName + "=" + fmt.Sprintf("nats-%d", i+1), envListen + "=" + addr(natsPorts[i]),
				envCluster + "=" + addr(routePorts[i]), envRoutes + "=" + strings.Join(routes, ",")},
		})
	}
	nats := natsURLs(natsPorts)
	// Everything JetStream holds has a copy on each of the three nodes,
	// so that losing one loses nothing and a full restart has to elect
	// every leader again (docs/decisions.md D35).
	common := []string{"--nats", nats, "--db", dsn, "--cluster", "it", "--log-level", "warn",
		"--kv-replicas", "3", "--event-log-replicas", "3", "--work-queue-replicas", "3"}
	for i := range 2 {
		ops := addr(freePort(t))
		d.coreOps = append(d.coreOps, ops)
		d.cores = append(d.cores, &proc{
			name: fmt.Sprintf("core-%d", i+1),
			path: bin,
			args: append([]string{"server", "--role", "core", "--node-id", fmt.Sprintf("core-%d", i+1),
				"--ops-addr", ops}, common...),
		})
	}
	for i := range 2 {
		port := freePort(t)
		ops := addr(freePort(t))
		d.gwAddr = append(d.gwAddr, addr(port))
		d.gwOps = append(d.gwOps, ops)
		d.gws = append(d.gws, &proc{
			name: fmt.Sprintf("gw-%d", i+1),
			path: bin,
			args: append([]string{"server", "--role", "gateway", "--node-id", fmt.Sprintf("gw-%d", i+1),
				"--data-dir", filepath.Join(dir, fmt.Sprintf("gw-%d", i+1)),
				"--quic", addr(port), "--tcp", addr(port), "--ws", "off", "--ops-addr", ops,
				"--drain-grace", "1s", "--registry-heartbeat", "1s", "--core-timeout", "2s",
				"--auth", "token", "--token-keys", keyFile, "--audience", "it"}, common...),
		})
	}
	t.Cleanup(func() {
		all := append(append(append([]*proc(nil), d.gws...), d.cores...), d.nats...)
		if t.Failed() {
			for _, p := range all {
				t.Logf("---- %s output:\n%s", p.name, p.output())
			}
		}
		for _, p := range all {
			p.kill(t)
		}
	})
	return d
}

// startNATS starts the NATS nodes together: each waits for a JetStream
// quorum of its peers.
func (d *deployment) startNATS() {
	var wg sync.WaitGroup
	errs := make([]error, len(d.nats))
	for i, p := range d.nats {
		wg.Go(func() { errs[i] = p.startErr("nats node ready") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		d.t.Fatal(err)
	}
}

// startServers starts the cores, then the gateways, and waits until each
// gateway lists the other in its registry.
func (d *deployment) startServers() {
	t := d.t
	// The first core applies the migrations; the rest start together.
	d.cores[0].start(t, "role core")
	d.cores[1].start(t, "role core")
	d.startGateways()
}

// startGateways starts the gateways and waits until each lists the other
// in its registry.
func (d *deployment) startGateways() {
	t := d.t
	var wg sync.WaitGroup
	errs := make([]error, len(d.gws))
	for i, p := range d.gws {
		wg.Go(func() { errs[i] = p.startErr("SPKI pin") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	d.pins = nil
	for _, g := range d.gws {
		d.pins = append(d.pins, pinOf(t, g.output()))
	}
	for i := range d.gws {
		other := d.gwAddr[1-i]
		eventually(t, 30*time.Second, d.gws[i].name+" lists the other gateway", func() bool {
			return slicesContain(d.status(i).Gateway.Gateways, "jsp+tcp://"+other)
		})
		eventually(t, 10*time.Second, d.gws[i].name+" ready", func() bool {
			code, _, err := httpGet(context.Background(), d.gwOps[i], "/readyz")
			return err == nil && code == 200
		})
	}
}

// nodeStatus is the part of /status the test reads.
type nodeStatus struct {
	Ready   string `json:"ready"`
	Gateway struct {
		Gateways []string `json:"gateways"`
		Health   struct {
			Sessions int `json:"sessions"`
		} `json:"health"`
	} `json:"gateway"`
}

func (d *deployment) status(i int) nodeStatus {
	var st nodeStatus
	_, body, err := httpGet(context.Background(), d.gwOps[i], "/status")
	if err == nil {
		_ = json.Unmarshal([]byte(body), &st)
	}
	return st
}

func slicesContain(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// token returns a token of user for the cluster.
func (d *deployment) token(user string) []byte {
	now := time.Now()
	tok, err := token.Sign(d.tokenKey, token.Claims{Audience: "it", Subject: user, NotBefore: now.Add(-time.Minute), Expiry: now.Add(time.Hour)})
	if err != nil {
		d.t.Fatal(err)
	}
	return []byte(tok)
}

func (d *deployment) tlsConfig() *tls.Config {
	c, err := tlsconf.Client(tlsconf.ClientConfig{Pins: d.pins, TrustPinsOnly: true})
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

// publisher publishes with raw sessions and waits for each ACK: on a lost
// session or a retryable error it reconnects, to the next gateway when
// its own is gone, and resends the same envelope, which the core's
// de-duplication commits once (JSP §5.6). This is what "nothing acked is
// lost, nothing is committed twice" rests on.
type publisher struct {
	name  string
	addrs []string
	tls   *tls.Config
	auth  []byte // the user's token
	cur   int
	sess  *session.Session
	n     int
}

func (p *publisher) connect(ctx context.Context) error {
	var errs []error
	for range p.addrs {
		a := p.addrs[p.cur%len(p.addrs)]
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := tcptls.Dial(dctx, a, p.tls, mux.Config{})
		if err == nil {
			var s *session.Session
			s, err = session.Dial(dctx, conn, session.ClientInfo{Name: p.name, Auth: p.auth}, session.Config{Logger: quiet})
			if err == nil {
				cancel()
				p.sess = s
				return nil
			}
			_ = conn.CloseWithError(jsperr.NoError, "")
		}
		cancel()
		errs = append(errs, err)
		p.cur++
	}
	return errors.Join(errs...)
}

func (p *publisher) drop() {
	if p.sess != nil {
		_ = p.sess.Close()
		p.sess = nil
	}
}

// publish commits one message and returns once it is ACKed.
func (p *publisher) publish(t *testing.T, body string) {
	t.Helper()
	p.n++
	id := fmt.Sprintf("%s-%d", p.name, p.n)
	env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel},
		Class: protocol.ClassChat, Timestamp: 1_700_000_000_000, Body: []byte(body)}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	for {
		if ctx.Err() != nil {
			t.Fatalf("%s: %s not acknowledged within 45 s", p.name, id)
		}
		if p.sess == nil {
			if err := p.connect(ctx); err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
		}
		if err := p.sess.SendEnvelope(wire.FramePublish, env); err != nil {
			p.drop()
			continue
		}
		err := p.await(ctx, id)
		if err == nil {
			return
		}
		var je *jsperr.Error
		if errors.As(err, &je) && !je.Code.Retryable() && je.Code != jsperr.Internal {
			t.Fatalf("%s: %s refused: %v", p.name, id, err)
		}
		if !errors.As(err, &je) {
			p.drop() // the session is gone
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// await waits for the ACK or ERROR of id on the current session.
func (p *publisher) await(ctx context.Context, id string) error {
	for {
		in, err := p.sess.Recv(ctx)
		if err != nil {
			return err
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			for _, a := range m.IDs {
				if string(a) == id {
					return nil
				}
			}
		case *wire.ErrorMessage:
			if string(m.Ref) == id {
				return jsperr.New(m.Code, m.Reason)
			}
		}
	}
}

// subscriber is a Go SDK client subscribed to the channel: it reconnects
// by itself, picking among the gateways the server listed in WELCOME, and
// resubscribes with Since its last sequence number.
type subscriber struct {
	c    *client.Client
	mu   sync.Mutex
	got  map[uint64]string // guarded by mu
	dups int               // guarded by mu
}

func (d *deployment) subscribe(t *testing.T, gw int, opts ...client.SubscribeOption) *subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "jsp+tcp://"+d.gwAddr[gw], client.Options{
		Info:      session.ClientInfo{Auth: d.token(fmt.Sprintf("sdk-%d", gw))},
		Pins:      d.pins,
		Logger:    quiet,
		Reconnect: client.ReconnectOptions{Enabled: true, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	s := &subscriber{c: c, got: map[uint64]string{}}
	if _, err := c.Subscribe(ctx, channel, func(ev client.Event) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, dup := s.got[ev.Seq]; dup {
			s.dups++
		}
		s.got[ev.Seq] = string(ev.Body)
	}, opts...); err != nil {
		t.Fatal(err)
	}
	return s
}

// has reports whether the subscriber received every sequence number up
// to n.
func (s *subscriber) has(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i <= n; i++ {
		if _, ok := s.got[uint64(i)]; !ok {
			return false
		}
	}
	return true
}

// TestMultiNode is the multi-node test of docs/operations.md §8.
func TestMultiNode(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-process test; runs without -short")
	}
	started := time.Now()
	d := newDeployment(t)
	t.Logf("built jsp, PostgreSQL up in %v", time.Since(started).Round(time.Millisecond))
	d.startNATS()
	t.Logf("NATS cluster up at %v", time.Since(started).Round(time.Millisecond))
	d.startServers()
	t.Logf("cluster up in %v", time.Since(started).Round(time.Millisecond))

	subA := d.subscribe(t, 0) // on gw-1, no fallback: it has the WELCOME list
	subB := d.subscribe(t, 1)
	pubA := &publisher{name: "pub-a", addrs: []string{d.gwAddr[0], d.gwAddr[1]}, tls: d.tlsConfig(), auth: d.token("alice")}
	pubB := &publisher{name: "pub-b", addrs: []string{d.gwAddr[1], d.gwAddr[0]}, tls: d.tlsConfig(), auth: d.token("bob")}
	defer pubA.drop()
	defer pubB.drop()
	total := 0
	bodies := map[string]bool{}
	publish := func(p *publisher, body string) {
		p.publish(t, body)
		bodies[body] = true
		total++
	}
	// waitAll waits until both subscribers have every committed message.
	// A message published while a gateway's bus subscription was down is
	// replayed from storage when the channel's next event shows the gap
	// (docs/operations.md §1), so a stalled wait publishes a marker.
	waitAll := func(what string, subs ...*subscriber) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		nudge := time.Now().Add(3 * time.Second)
		for {
			done := true
			for _, s := range subs {
				done = done && s.has(total)
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: subscribers miss messages of %d", what, total)
			}
			if time.Now().After(nudge) {
				publish(pubA, fmt.Sprintf("marker-%d", total+1))
				nudge = time.Now().Add(3 * time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// 1. Clients on different gateways exchange messages.
	for i := range 10 {
		publish(pubA, fmt.Sprintf("a-%d", i))
		publish(pubB, fmt.Sprintf("b-%d", i))
	}
	waitAll("exchange", subA, subB)
	t.Logf("exchange: %d messages at %v", total, time.Since(started).Round(time.Millisecond))

	// killDuring kills p while the next publishes are in flight, so that
	// a kill can catch a request in the middle; the returned channel is
	// closed once p is gone.
	killDuring := func(p *proc) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			time.Sleep(5 * time.Millisecond)
			p.kill(t)
		}()
		return done
	}

	// 2. kill -9 of one core: nothing acknowledged is lost, traffic goes on.
	var killed chan struct{}
	for i := range 30 {
		if i == 5 {
			killed = killDuring(d.cores[0])
		}
		publish(pubA, fmt.Sprintf("core-kill-%d", i))
	}
	<-killed
	waitAll("core killed", subA, subB)
	t.Logf("core killed: %d messages at %v", total, time.Since(started).Round(time.Millisecond))

	// 3. kill -9 of one gateway: its clients move to the other one. The
	// Go SDK publisher on it (PublishAcked) resends what was not ACKed on
	// its next session, found in the WELCOME list.
	sdkPub := d.subscribe(t, 0)
	for i := range 30 {
		if i == 5 {
			killed = killDuring(d.gws[0])
		}
		publish(pubA, fmt.Sprintf("gw-kill-a-%d", i))
		publish(pubB, fmt.Sprintf("gw-kill-b-%d", i))
		body := fmt.Sprintf("gw-kill-sdk-%d", i)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := sdkPub.c.PublishAcked(ctx, channel, []byte(body)); err != nil {
			cancel()
			t.Fatalf("SDK publisher across the gateway kill: %v", err)
		}
		cancel()
		bodies[body] = true
		total++
	}
	<-killed
	eventually(t, 20*time.Second, "subscriber of gw-1 reconnected to gw-2", func() bool {
		return strings.HasSuffix(subA.c.Info().URL, d.gwAddr[1]) && subA.c.Info().URL != ""
	})
	waitAll("gateway killed", subA, subB)
	// Presence follows: the killed gateway's sessions went offline with
	// its registry entry and the live gateway removed them, while their
	// clients' new sessions on gw-2 are online (D39).
	eventually(t, 20*time.Second, "sdk-0's sessions are all on gw-2", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		body, err := subB.c.Command(ctx, "presence", []byte("sdk-0"))
		if err != nil {
			return false
		}
		var up struct {
			Status   string `json:"status"`
			Sessions []struct {
				Gateway string `json:"gateway"`
			} `json:"sessions"`
		}
		if json.Unmarshal(body, &up) != nil || up.Status != "online" || len(up.Sessions) == 0 {
			return false
		}
		for _, s := range up.Sessions {
			if s.Gateway != "gw-2" {
				return false
			}
		}
		return true
	})
	t.Logf("gateway killed: %d messages at %v", total, time.Since(started).Round(time.Millisecond))

	// 4. kill -9 of one NATS server.
	for i := range 30 {
		if i == 5 {
			killed = killDuring(d.nats[2])
		}
		publish(pubB, fmt.Sprintf("nats-kill-%d", i))
	}
	<-killed
	waitAll("NATS node killed", subA, subB)
	t.Logf("NATS node killed: %d messages at %v", total, time.Since(started).Round(time.Millisecond))
	for _, s := range []*subscriber{subA, subB} {
		s.mu.Lock()
		if s.dups != 0 {
			t.Errorf("a subscriber received %d duplicates", s.dups)
		}
		s.mu.Unlock()
	}
	_ = subA.c.Close()
	_ = subB.c.Close()
	_ = sdkPub.c.Close()
	pubA.drop()
	pubB.drop()

	// 5. Restart everything: graceful stops (status 0), then the same
	// data on fresh processes; history is intact. One NATS node comes
	// back first: the cores start against a cluster without a quorum,
	// wait (not ready) instead of failing, and open once the other two
	// are back (restart_test.go).
	for _, p := range append(append([]*proc{d.gws[1]}, d.cores[1]), d.nats[0], d.nats[1]) {
		s := time.Now()
		p.stop(t, 20*time.Second)
		t.Logf("%s stopped in %v", p.name, time.Since(s).Round(time.Millisecond))
	}
	t.Logf("stopped at %v", time.Since(started).Round(time.Millisecond))
	d.restartWithoutQuorum()
	t.Logf("NATS and cores restarted at %v", time.Since(started).Round(time.Millisecond))
	d.startGateways()
	subC := d.subscribe(t, 0, client.Since(0))
	waitAll("after restart", subC)
	t.Logf("restarted: %d messages intact at %v", total, time.Since(started).Round(time.Millisecond))

	// 6. Graceful shutdown of a gateway under traffic loses nothing: it
	// drains (GOAWAY with the other gateway, then close after the grace),
	// its subscriber moves, its publisher resends what was not ACKed.
	pubA = &publisher{name: "pub-a2", addrs: []string{d.gwAddr[0], d.gwAddr[1]}, tls: d.tlsConfig(), auth: d.token("alice")}
	defer pubA.drop()
	stopped := make(chan struct{})
	for i := range 30 {
		if i == 5 {
			go func() {
				defer close(stopped)
				d.gws[0].stop(t, 20*time.Second)
			}()
		}
		publish(pubA, fmt.Sprintf("drain-%d", i))
	}
	<-stopped
	eventually(t, 20*time.Second, "subscriber of the drained gateway moved", func() bool {
		return strings.HasSuffix(subC.c.Info().URL, d.gwAddr[1])
	})
	waitAll("gateway drained", subC)
	checkStore(t, d.dsn, total, bodies)
	t.Logf("gateway drained: %d messages intact at %v", total, time.Since(started).Round(time.Millisecond))
}

// checkStore reads the channel's log from PostgreSQL: n messages, numbered
// 1..n, each body once.
func checkStore(t *testing.T, dsn string, n int, bodies map[string]bool) {
	t.Helper()
	st, err := storage.Open(context.Background(), dsn, storage.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	msgs, err := st.MessagesAfter(context.Background(), channel, 0, n+10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != n {
		t.Fatalf("store holds %d messages, want %d", len(msgs), n)
	}
	seen := map[string]bool{}
	for i, m := range msgs {
		if m.Seq != storage.Seq(i+1) {
			t.Fatalf("message %d has seq %d", i, m.Seq)
		}
		env, _, err := wire.ParseEnvelope(m.Body)
		if err != nil {
			t.Fatal(err)
		}
		b := string(env.Body)
		if !bodies[b] || seen[b] {
			t.Fatalf("stored body %q unknown or duplicated", b)
		}
		seen[b] = true
	}
}
