package gateway

import (
	"bytes"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// TestSetListsClosesBlockedSessions: a list reload that blocks loopback
// closes the open sessions from it with BLOCKED, on every transport, and
// refuses new connections; a reload that lifts the block lets clients in
// again.
func TestSetListsClosesBlockedSessions(t *testing.T) {
	g := startGateway(t, allListeners(Config{}))
	var open []*struct {
		kind transport.Kind
		err  chan error
	}
	for _, kind := range realKinds {
		s := g.dial(t, kind)
		if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
			t.Fatal(err)
		}
		o := &struct {
			kind transport.Kind
			err  chan error
		}{kind, make(chan error, 1)}
		go func() { o.err <- s.Wait() }() // s is closed at cleanup at the latest
		open = append(open, o)
	}
	closed, err := g.SetLists(ddos.Lists{Block: []netip.Prefix{loopback}})
	if err != nil {
		t.Fatal(err)
	}
	if closed != len(realKinds) {
		t.Fatalf("SetLists closed %d sessions, want %d", closed, len(realKinds))
	}
	for _, o := range open {
		if code := closeCode(<-o.err); code != jsperr.Blocked {
			t.Fatalf("%s session closed with %s, want BLOCKED", o.kind, code)
		}
	}
	conn := g.dialConn(t, transport.KindTCP)
	t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
	refusedWith(t, conn, jsperr.Blocked)
	if n := g.metrics.refused.value(refusedBlockedOpen); n != int64(len(realKinds)) {
		t.Fatalf("%s counted %d", refusedBlockedOpen, n)
	}

	// An invalid list is refused and the block stays.
	if _, err := g.SetLists(ddos.Lists{Allow: []netip.Prefix{{}}}); err == nil {
		t.Fatal("invalid list accepted")
	}
	if got := g.Lists(); len(got.Block) != 1 || got.Block[0] != loopback {
		t.Fatalf("lists after a refused reload: %+v", got)
	}

	// Lifting the block admits clients again.
	if _, err := g.SetLists(ddos.Lists{}); err != nil {
		t.Fatal(err)
	}
	s := g.dial(t, transport.KindTCP)
	if _, err := command(t, s, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
		t.Fatal(err)
	}
}

// TestRateLimitedMetrics: /metrics counts RATE_LIMITED refusals by key
// kind and lists every kind and refusal reason, also at 0.
func TestRateLimitedMetrics(t *testing.T) {
	limits := unlimited()
	limits.Command = slow(1)
	limits.Channel = slow(1)
	limits.ConnAttemptsPerIP = slow(1)
	g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", RateLimits: limits})
	s := g.dial(t, transport.KindTCP)
	echo := wire.Route{Kind: wire.RouteService, Name: "echo"}
	if _, err := command(t, s, echo, "a"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := command(t, s, echo, "b"); jsperr.CodeOf(err) != jsperr.RateLimited {
			t.Fatalf("second command: %v", err)
		}
	}
	sendPublish(t, s, "c", "p1")
	sendPublish(t, s, "c", "p2")
	if m := nextError(t, s); m.Code != jsperr.RateLimited || string(m.Ref) != "p2" {
		t.Fatalf("publish refusal: %+v", m)
	}
	conn := g.dialConn(t, transport.KindTCP)
	t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
	refusedWith(t, conn, jsperr.RateLimited)
	var b bytes.Buffer
	if err := g.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		`jsp_rate_limited_total{kind="ip"} 1`,
		`jsp_rate_limited_total{kind="connection"} 0`,
		`jsp_rate_limited_total{kind="user"} 0`,
		`jsp_rate_limited_total{kind="channel"} 1`,
		`jsp_rate_limited_total{kind="command"} 2`,
		`jsp_connections_refused_total{reason="blocked"} 0`,
		`jsp_connections_refused_total{reason="attempt_rate"} 1`,
		`jsp_connections_refused_total{reason="blocked_reload"} 0`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestSampledLogPerReason: a flood of one refusal does not hide another:
// each reason (message and code) has its own budget and its own count of
// suppressed lines.
func TestSampledLogPerReason(t *testing.T) {
	log, buf := bufferLogger()
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := newSampledLog(log, 1, clock)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		s.log("gateway: connection refused", "code", "BLOCKED", "remote", "192.0.2.1:1")
	}
	s.log("gateway: connection refused", "code", "RATE_LIMITED", "remote", "192.0.2.2:1")
	s.log("gateway: signed message refused", "code", "REPLAYED", "remote", "192.0.2.3:1")
	for _, want := range [][]string{{"code=BLOCKED"}, {"code=RATE_LIMITED"}, {"signed message refused", "code=REPLAYED"}} {
		if n := len(buf.lines(want...)); n != 1 {
			t.Fatalf("%d lines for %v, want 1:\n%s", n, want, buf)
		}
	}
	mu.Lock()
	now = now.Add(time.Second)
	mu.Unlock()
	s.log("gateway: connection refused", "code", "BLOCKED", "remote", "192.0.2.1:1")
	s.log("gateway: connection refused", "code", "RATE_LIMITED", "remote", "192.0.2.2:1")
	if n := len(buf.lines("code=BLOCKED", "suppressed=99")); n != 1 {
		t.Fatalf("BLOCKED line does not count its 99 suppressed:\n%s", buf)
	}
	if n := len(buf.lines("code=RATE_LIMITED", "suppressed")); n != 0 {
		t.Fatalf("RATE_LIMITED line counts another reason's suppressed lines:\n%s", buf)
	}
}
