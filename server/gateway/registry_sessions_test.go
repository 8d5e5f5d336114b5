package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// regBus is a bus whose KV buckets count their writes, split into the
// gateways' own entries and the rest, and whose writes fail once cut (a
// gateway that lost its bus connection, as before a kill -9).
type regBus struct {
	bus.Bus
	gatewayWrites atomic.Int64
	sessionWrites atomic.Int64
	cut           atomic.Bool
}

func (b *regBus) KV(ctx context.Context, cfg bus.KVConfig) (bus.KV, error) {
	kv, err := b.Bus.KV(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &regKV{KV: kv, b: b}, nil
}

type regKV struct {
	bus.KV
	b *regBus
}

var errCut = errors.New("test: bus cut")

func (k *regKV) count(key string) error {
	if k.b.cut.Load() {
		return errCut
	}
	if strings.HasPrefix(key, core.GatewayPrefix+".") {
		k.b.gatewayWrites.Add(1)
	} else {
		k.b.sessionWrites.Add(1)
	}
	return nil
}

func (k *regKV) Put(ctx context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	if err := k.count(key); err != nil {
		return 0, err
	}
	return k.KV.Put(ctx, key, value, opts...)
}

func (k *regKV) Create(ctx context.Context, key string, value []byte, opts ...bus.KVOption) (uint64, error) {
	if err := k.count(key); err != nil {
		return 0, err
	}
	return k.KV.Create(ctx, key, value, opts...)
}

func (k *regKV) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := k.count(key); err != nil {
		return 0, err
	}
	return k.KV.Update(ctx, key, value, rev)
}

func (k *regKV) Delete(ctx context.Context, key string, rev uint64) error {
	if err := k.count(key); err != nil {
		return err
	}
	return k.KV.Delete(ctx, key, rev)
}

// regHeartbeat is the registry heartbeat of these tests: the gateway's
// entry then lives a second (the shortest per-key TTL NATS takes).
const regHeartbeat = 50 * time.Millisecond

// queryUser returns a user's presence as the gateway's registry sees it.
func queryUser(t *testing.T, g *testGateway, user string) core.UserPresence {
	t.Helper()
	up, err := g.reg.presence.Load().Query(ctxT(t), user)
	if err != nil {
		t.Fatal(err)
	}
	return up
}

// TestRegistryIdleSessionsCostNoWrites checks that idle sessions are
// written once, not every heartbeat: with N idle sessions and many
// heartbeats passed, the buckets saw 2N session writes in all (one per
// bucket) while the gateway's own entry was written every heartbeat
// (D39). Before, every heartbeat rewrote every session in both buckets.
// It also checks that an idle session turns away without a write and
// comes back online with one when it acts.
func TestRegistryIdleSessionsCostNoWrites(t *testing.T) {
	b := &regBus{Bus: embeddedBus(t)}
	f := newClusterFixture(t, b)
	const awayAfter = 1500 * time.Millisecond
	g := startGateway(t, Config{Bus: b, Sessions: f.store, NodeID: "gw-idle", RegistryHeartbeat: regHeartbeat, AwayAfter: awayAfter})
	waitFor(t, "registry open", func() bool { return g.reg.presence.Load() != nil })
	const n = 8
	for range n {
		g.dial(t, transport.KindMem)
	}
	waitFor(t, "sessions online", func() bool {
		up := queryUser(t, g, "anonymous")
		return up.Status == core.StatusOnline && len(up.Sessions) == n
	})
	writes := b.sessionWrites.Load()
	if writes != 2*n {
		t.Fatalf("%d session writes for %d new sessions, want %d", writes, n, 2*n)
	}
	beats := b.gatewayWrites.Load()
	waitFor(t, "twenty heartbeats", func() bool { return b.gatewayWrites.Load() >= beats+20 })
	if got := b.sessionWrites.Load(); got != writes {
		t.Fatalf("%d session writes after twenty heartbeats with idle sessions, want %d (none)", got, writes)
	}
	// Idle past AwayAfter: away, from the stored LastActive alone.
	waitFor(t, "sessions away", func() bool { return queryUser(t, g, "anonymous").Status == core.StatusAway })
	if got := b.sessionWrites.Load(); got != writes {
		t.Fatalf("%d session writes while idling into away, want %d", got, writes)
	}
	// One acts: its entry is rewritten (in both buckets) and the user is
	// online again; the others stay as they were.
	s := g.dial(t, transport.KindMem)                                        // a new session is two writes
	_ = publishTo(t, s, wire.Route{Kind: wire.RouteUser, Name: "bob"}, "p1") // refused, but the client acted
	waitFor(t, "online again", func() bool { return queryUser(t, g, "anonymous").Status == core.StatusOnline })
	time.Sleep(10 * regHeartbeat)
	if got := b.sessionWrites.Load(); got > writes+4 {
		t.Fatalf("%d session writes after one new and one active session, want at most %d", got, writes+4)
	}
}

// TestRegistryKilledGatewaySessionsGoOffline checks that the sessions of
// a gateway that can no longer write (its bus is cut, then it stops: a
// kill -9) go offline once its entry expires, and that the live gateway
// removes their entries from both buckets.
func TestRegistryKilledGatewaySessionsGoOffline(t *testing.T) {
	nb := embeddedBus(t)
	f := newClusterFixture(t, nb)
	ba, bb := &regBus{Bus: nb}, &regBus{Bus: nb}
	a := startGateway(t, Config{Bus: ba, Sessions: f.store, NodeID: "gw-a", RegistryHeartbeat: regHeartbeat})
	victim := startGateway(t, Config{Bus: bb, Sessions: f.store, NodeID: "gw-b", RegistryHeartbeat: regHeartbeat})
	waitFor(t, "registries open", func() bool { return a.reg.presence.Load() != nil && victim.reg.presence.Load() != nil })
	s := victim.dial(t, transport.KindMem)
	id := hex.EncodeToString(s.ID())
	waitFor(t, "session online", func() bool { return len(queryUser(t, a, "anonymous").Sessions) == 1 })

	bb.cut.Store(true)
	killed := time.Now()
	_ = victim.Close()
	p := a.reg.presence.Load()
	sk, _ := bus.SessionKey(id)
	pk, _ := bus.PresenceKey("anonymous", id)
	// Its entries are still there: only the gateway's expiry ends them.
	if _, err := p.Sessions().Get(ctxT(t), sk); err != nil || !rawPresence(t, nb, pk) {
		t.Fatalf("the killed gateway's session record is gone before its entry expired: %v", err)
	}
	waitFor(t, "session offline", func() bool { return queryUser(t, a, "anonymous").Status == core.StatusOffline })
	// Within the TTL plus the bus's expiry tick and the polling, with
	// room for a loaded machine.
	if d := time.Since(killed); d > 5*p.GatewayTTL() {
		t.Fatalf("offline %v after the kill, want within about the TTL (%v)", d, p.GatewayTTL())
	}
	waitFor(t, "entries removed by the live gateway", func() bool {
		_, err1 := p.Sessions().Get(ctxT(t), sk)
		up, err2 := p.Query(ctxT(t), "anonymous")
		return errors.Is(err1, bus.ErrKeyNotFound) && err2 == nil && len(up.Sessions) == 0 && !rawPresence(t, nb, pk)
	})
}

// rawPresence reports whether the presence bucket holds key, whatever
// readers make of it.
func rawPresence(t *testing.T, b bus.Bus, key string) bool {
	t.Helper()
	kv, err := b.KV(ctxT(t), bus.KVConfig{Bucket: bus.BucketPresence, KeyTTL: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kv.Get(ctxT(t), key)
	if err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestRegistryRestartSameNodeKeepsNewSessions checks that a gateway that
// restarts under the same node id before its old entry expired removes
// its previous run's sessions and keeps the new run's, which stay online
// through the old entry's expiry and the sweeps.
func TestRegistryRestartSameNodeKeepsNewSessions(t *testing.T) {
	nb := embeddedBus(t)
	f := newClusterFixture(t, nb)
	old := &regBus{Bus: nb}
	g1 := startGateway(t, Config{Bus: old, Sessions: f.store, NodeID: "gw-r", RegistryHeartbeat: regHeartbeat})
	waitFor(t, "registry open", func() bool { return g1.reg.presence.Load() != nil })
	s1 := g1.dial(t, transport.KindMem)
	oldID := hex.EncodeToString(s1.ID())
	waitFor(t, "old session online", func() bool { return len(queryUser(t, g1, "anonymous").Sessions) == 1 })
	old.cut.Store(true)
	_ = g1.Close()

	g2 := startGateway(t, Config{Bus: nb, Sessions: f.store, NodeID: "gw-r", RegistryHeartbeat: regHeartbeat})
	waitFor(t, "registry open again", func() bool { return g2.reg.presence.Load() != nil })
	if g2.reg.incarnation == g1.reg.incarnation {
		t.Fatal("a restarted gateway kept its incarnation")
	}
	s2 := g2.dial(t, transport.KindMem)
	newID := hex.EncodeToString(s2.ID())
	p := g2.reg.presence.Load()
	ids := func() []string {
		var out []string
		for _, e := range queryUser(t, g2, "anonymous").Sessions {
			out = append(out, e.Session)
		}
		return out
	}
	waitFor(t, "only the new session", func() bool { return slices.Equal(ids(), []string{newID}) })
	oldKey, _ := bus.SessionKey(oldID)
	waitFor(t, "the old run's record removed", func() bool {
		_, err := p.Sessions().Get(ctxT(t), oldKey)
		return errors.Is(err, bus.ErrKeyNotFound)
	})
	// Past the old entry's TTL and a few sweeps, the new session is still
	// there.
	time.Sleep(p.GatewayTTL() + 5*regHeartbeat)
	g2.reg.wake(true)
	time.Sleep(5 * regHeartbeat)
	if got := ids(); !slices.Equal(got, []string{newID}) {
		t.Fatalf("sessions after the old entry's TTL %v, want [%s]", got, newID)
	}
	newKey, _ := bus.SessionKey(newID)
	if _, err := p.Sessions().Get(ctxT(t), newKey); err != nil {
		t.Fatalf("the new run's record: %v", err)
	}
}

// TestRewriteAfter checks when an active session's entry is rewritten:
// two heartbeats before readers would turn it away, but never before
// half of AwayAfter.
func TestRewriteAfter(t *testing.T) {
	for _, tt := range []struct {
		away, beat, want time.Duration
	}{
		{DefaultAwayAfter, DefaultRegistryHeartbeat, DefaultAwayAfter - 2*DefaultRegistryHeartbeat},
		{1200 * time.Millisecond, 150 * time.Millisecond, 900 * time.Millisecond},
		{time.Second, time.Second, 500 * time.Millisecond},
	} {
		r := &registry{g: &Gateway{cfg: Config{AwayAfter: tt.away, RegistryHeartbeat: tt.beat}}}
		if got := r.rewriteAfter(); got != tt.want {
			t.Errorf("AwayAfter %v, heartbeat %v: rewrite after %v, want %v", tt.away, tt.beat, got, tt.want)
		}
	}
}

// TestNewIncarnation checks that incarnations come from the randomness
// given, and from the clock when it fails.
func TestNewIncarnation(t *testing.T) {
	now := time.Unix(0, 0xabc)
	if got := newIncarnation(strings.NewReader("01234567"), now); got != hex.EncodeToString([]byte("01234567")) {
		t.Fatalf("incarnation %q", got)
	}
	if got := newIncarnation(strings.NewReader(""), now); got != "abc" {
		t.Fatalf("incarnation without randomness %q, want the clock's", got)
	}
}
