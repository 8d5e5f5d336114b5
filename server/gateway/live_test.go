package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func TestLiveChannelsMatch(t *testing.T) {
	l := newLiveChannels([]string{"typing.*", "cursor", "*x"})
	for _, tc := range []struct {
		channel string
		want    bool
	}{
		{"typing.room1", true},
		{"typing.", true},
		{"typing", false},
		{"cursor", true},
		{"cursor.a", false},
		{"room", false},
	} {
		if got := l.match(tc.channel); got != tc.want {
			t.Errorf("match(%q) = %v, want %v", tc.channel, got, tc.want)
		}
	}
	if (liveChannels{}).match("anything") {
		t.Error("no live channels matched a channel")
	}
	for _, tc := range []struct {
		patterns []string
		ok       bool
	}{
		{nil, true},
		{[]string{"a", "b.*", "*"}, true},
		{[]string{""}, false},
		{[]string{"a*b"}, false},
		{[]string{"**"}, false},
		{[]string{string(make([]byte, wire.MaxRouteNameLen+2))}, false},
	} {
		if err := validateLiveChannels(tc.patterns); (err == nil) != tc.ok {
			t.Errorf("validateLiveChannels(%q) = %v, want ok %v", tc.patterns, err, tc.ok)
		}
	}
}

// liveFixture is a core that counts the publish authorizations it is asked
// for and refuses channels named "*.secret", and a gateway with live
// channels "typing.*" and a clock the test moves.
type liveFixture struct {
	store   storage.Store
	asked   atomic.Int64
	offset  atomic.Int64 // nanoseconds added to the gateway's clock
	gateway *testGateway
}

func newLiveFixture(t *testing.T) *liveFixture {
	t.Helper()
	f := &liveFixture{}
	authz := core.AuthorizerFunc(func(_ context.Context, _ core.Identity, a core.Action) error {
		if a.Op != core.OpPublish {
			return nil
		}
		f.asked.Add(1)
		if a.Channel == "typing.secret" {
			return jsperr.New(jsperr.Forbidden, "not for you")
		}
		return nil
	})
	cf := newClusterFixture(t, embeddedBus(t), func(c *core.Config) { c.Authorizer = authz })
	f.store = cf.store
	now := func() time.Time { return time.Now().Add(time.Duration(f.offset.Load())) }
	f.gateway = startGateway(t, Config{Bus: cf.bus, Sessions: cf.store, NodeID: "gw-live", LiveChannels: []string{"typing.*"}, Now: now})
	return f
}

// A PUBLISH to a live channel reaches the subscribers at once without a
// sequence number, is acknowledged, is not stored, asks the core for the
// permission once per LiveAuthTTL (and again after a control event drops
// it), and a refused permission fails the PUBLISH with the core's code.
func TestLivePublish(t *testing.T) {
	f := newLiveFixture(t)
	g := f.gateway
	const ch = "typing.room1"
	sub := g.dial(t, transport.KindMem)
	subscribe(t, sub, ch)
	pub := g.dial(t, transport.KindMem)
	for i := range 3 {
		if err := publishAcked(t, pub, ch, fmt.Sprint("t", i), fmt.Sprint("typing ", i)); err != nil {
			t.Fatal(err)
		}
	}
	wantEvents(t, sub, ch, 0, "typing 0")
	wantEvents(t, sub, ch, 0, "typing 1")
	wantEvents(t, sub, ch, 0, "typing 2")
	if n := f.asked.Load(); n != 1 {
		t.Fatalf("core asked %d times for 3 publishes, want 1", n)
	}
	if info, err := f.store.ChannelInfo(ctxT(t), ch); err == nil && info.Last != 0 {
		t.Fatalf("live channel stored: %+v", info)
	}
	// A resend of the same id is delivered again (no de-duplication).
	if err := publishAcked(t, pub, ch, "t1", "typing 1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 0, "typing 1")

	// After LiveAuthTTL the permission is asked again.
	f.offset.Add(int64(DefaultLiveAuthTTL + time.Second))
	if err := publishAcked(t, pub, ch, "t3", "typing 3"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 0, "typing 3")
	if n := f.asked.Load(); n != 2 {
		t.Fatalf("core asked %d times after the TTL, want 2", n)
	}
	// A control event dropping the channel forgets the permission.
	g.mu.Lock()
	for h := range g.hosts {
		h.forgetLive(ch)
	}
	g.mu.Unlock()
	if err := publishAcked(t, pub, ch, "t4", "typing 4"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 0, "typing 4")
	if n := f.asked.Load(); n != 3 {
		t.Fatalf("core asked %d times after the drop, want 3", n)
	}

	// A burst to a new live channel, sent without waiting: the PUBLISHes
	// behind the permission's question wait for it and keep their order.
	const burst = "typing.burst"
	subscribe(t, sub, burst)
	for i := range 5 {
		env := &wire.Envelope{ID: []byte(fmt.Sprint("b", i)), Route: wire.Route{Kind: wire.RouteChannel, Name: burst},
			Class: protocol.ClassChat, Body: []byte(fmt.Sprint("burst ", i))}
		if err := pub.SendEnvelope(wire.FramePublish, env); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		wantEvents(t, sub, burst, 0, fmt.Sprint("burst ", i))
	}
	acked := 0
	for acked < 5 {
		in, err := pub.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if a, ok := in.Message.(*wire.Ack); ok {
			acked += len(a.IDs)
		}
	}

	// Refused by the core: FORBIDDEN, nothing delivered.
	subscribe(t, sub, "typing.secret")
	if err := publishAcked(t, pub, "typing.secret", "s1", "psst"); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Fatalf("publish to a refused live channel: %v, want FORBIDDEN", err)
	}
	noMoreEvents(t, sub)

	// Other channels still commit with a number.
	subscribe(t, sub, "room.durable")
	if err := publishAcked(t, pub, "room.durable", "d1", "kept"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, "room.durable", 1, "kept")
}

func TestLiveConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{LiveChannels: []string{"a*b"}},
		{LiveAuthTTL: -time.Second},
	} {
		c.setDefaults()
		if err := c.validate(); err == nil {
			t.Errorf("validate(%+v) accepted", c.LiveChannels)
		}
	}
}

// The permissions a session keeps stay under MaxLiveAuthChannels, losing
// the expired ones first and then as few others as needed.
func TestLiveAuthCap(t *testing.T) {
	la := &liveAuth{until: map[string]time.Time{}}
	la.mu.Lock()
	defer la.mu.Unlock()
	now := time.Unix(1000, 0)
	la.putLocked("old", now, now.Add(time.Second))
	for i := range MaxLiveAuthChannels - 1 {
		la.putLocked(fmt.Sprint("c", i), now, now.Add(time.Hour))
	}
	if len(la.until) != MaxLiveAuthChannels {
		t.Fatalf("%d permissions, want %d", len(la.until), MaxLiveAuthChannels)
	}
	later := now.Add(time.Minute)
	la.putLocked("new1", later, later.Add(time.Hour))
	if _, ok := la.until["old"]; ok || len(la.until) != MaxLiveAuthChannels {
		t.Fatalf("expired permission kept or size %d", len(la.until))
	}
	la.putLocked("new2", later, later.Add(time.Hour))
	if _, ok := la.until["new2"]; !ok || len(la.until) != MaxLiveAuthChannels {
		t.Fatalf("new permission missing or size %d, want %d", len(la.until), MaxLiveAuthChannels)
	}
	// Renewing a kept channel evicts nothing.
	la.putLocked("new2", later, later.Add(2*time.Hour))
	if len(la.until) != MaxLiveAuthChannels {
		t.Fatalf("renewal changed the size to %d", len(la.until))
	}
}

// TestLiveSlowSubscriberKept: a subscriber that falls behind on a live
// channel loses the live events its full send queue cannot take and keeps
// its session (they are never replayed, D43), while a numbered event
// would give it up (TestSlowConsumer).
func TestLiveSlowSubscriberKept(t *testing.T) {
	cf := newClusterFixture(t, embeddedBus(t))
	g := startGateway(t, Config{Bus: cf.bus, Sessions: cf.store, NodeID: "gw-live-slow", LiveChannels: []string{"typing.*"},
		RateLimits: unlimited(), Session: session.Config{SendQueueLength: 4}})
	const ch = "typing.slow"
	slowSess := g.dial(t, transport.KindMem)
	subscribe(t, slowSess, ch)
	fast := g.dial(t, transport.KindMem)
	subscribe(t, fast, ch)
	pub := g.dial(t, transport.KindMem)
	body := strings.Repeat("x", 16<<10)
	const limit = 20000
	i := 0
	for ; i < limit && g.ops.ephemeralDropped.Load() == 0 && slowSess.Context().Err() == nil; i++ {
		// In step with the fast subscriber, so that only the one that
		// does not read falls behind.
		if err := publishAcked(t, pub, ch, fmt.Sprint("m", i), fmt.Sprint(i, body)); err != nil {
			t.Fatal(err)
		}
		if ev := recvType(t, fast, wire.FrameEvent).Envelope; !strings.HasPrefix(string(ev.Body), fmt.Sprint(i, "x")) {
			t.Fatalf("fast subscriber: event %d is %.10q", i, ev.Body)
		}
	}
	if err := slowSess.Context().Err(); err != nil {
		t.Fatalf("the slow live subscriber was closed after %d events: %v", i, context.Cause(slowSess.Context()))
	}
	if i == limit {
		t.Fatalf("no live event was dropped for a subscriber that never reads, after %d events", limit)
	}
	if d := g.hub.Stats().Dropped; d != 0 {
		t.Fatalf("the hub dropped %d subscribers", d)
	}
	t.Logf("first live event dropped after %d events", i)
}

// recoverCounter is a bus that counts the core requests for a channel's
// stored events (core.OpRecover), which is how a gateway asks a channel's
// position after a SUBSCRIBE.
type recoverCounter struct {
	bus.Bus
	n atomic.Int64
}

func (b *recoverCounter) Request(ctx context.Context, subject string, m bus.Msg) (*bus.Msg, error) {
	if req, err := core.DecodeRequest(m.Data, nil); err == nil && req.Op == core.OpRecover {
		b.n.Add(1)
	}
	return b.Bus.Request(ctx, subject, m)
}

// TestLiveSubscribeAsksNoPosition checks that a SUBSCRIBE to a live
// channel costs no core request for the channel's position (nothing is
// stored to replay on a resume), while one to a stored channel still
// does.
func TestLiveSubscribeAsksNoPosition(t *testing.T) {
	b := &recoverCounter{Bus: embeddedBus(t)}
	cf := newClusterFixture(t, b)
	g := startGateway(t, Config{Bus: b, Sessions: cf.store, NodeID: "gw-live-pos", LiveChannels: []string{"typing.*"}})
	s := g.dial(t, transport.KindMem)
	for i := range 5 {
		subscribe(t, s, fmt.Sprint("typing.room", i))
	}
	subscribe(t, s, "room.stored")
	waitFor(t, "the stored channel's position asked", func() bool { return b.n.Load() >= 1 })
	// The live channels' questions, if any, were started before the
	// stored one's; a moment more lets a late one show.
	time.Sleep(200 * time.Millisecond)
	if n := b.n.Load(); n != 1 {
		t.Fatalf("%d position requests for 5 live and 1 stored channel, want 1", n)
	}
}
