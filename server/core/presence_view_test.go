package core

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
)

// TestLiveView drives the view with a stream of bucket changes and checks
// which sessions count and with which revision they appear and go: a
// session counts while its gateway's entry of the same incarnation is
// there; a gateway that is removed, restarts or goes stale takes its
// sessions with the revision of its last heartbeat; a session without an
// incarnation counts regardless.
func TestLiveView(t *testing.T) {
	now := time.Unix(1000, 0)
	gw := func(node, inc string) []byte {
		b, _ := json.Marshal(GatewayEntry{Node: node, Incarnation: inc})
		return b
	}
	sess := func(id, node, inc string) []byte {
		b, _ := json.Marshal(SessionEntry{Session: id, User: "u", Gateway: node, Incarnation: inc})
		return b
	}
	gk := func(node string) string { k, _ := GatewayKey(node); return k }
	put := func(key string, v []byte, rev uint64) bus.KVEntry {
		return bus.KVEntry{Key: key, Value: v, Revision: rev, Op: bus.KVPut}
	}
	del := func(key string, rev uint64) bus.KVEntry {
		return bus.KVEntry{Key: key, Revision: rev, Op: bus.KVDelete}
	}
	type ev struct {
		key  string
		rev  uint64
		gone bool
	}
	for _, tt := range []struct {
		name  string
		in    []bus.KVEntry
		stale bool // sweep with the clock past TTL + grace at the end
		want  []ev
	}{
		{"session before its gateway", []bus.KVEntry{put("u.s1", sess("s1", "a", "i1"), 1), put(gk("a"), gw("a", "i1"), 2)},
			false, []ev{{"u.s1", 2, false}}},
		{"gateway removed", []bus.KVEntry{put(gk("a"), gw("a", "i1"), 1), put("u.s1", sess("s1", "a", "i1"), 2),
			put(gk("a"), gw("a", "i1"), 3), del(gk("a"), 4), del("u.s1", 5)},
			false, []ev{{"u.s1", 2, false}, {"u.s1", 3, true}}},
		{"restart", []bus.KVEntry{put(gk("a"), gw("a", "i1"), 1), put("u.s1", sess("s1", "a", "i1"), 2),
			put(gk("a"), gw("a", "i2"), 3), put("u.s2", sess("s2", "a", "i2"), 4), del("u.s1", 5)},
			false, []ev{{"u.s1", 2, false}, {"u.s1", 1, true}, {"u.s2", 4, false}}},
		{"stale gateway", []bus.KVEntry{put(gk("a"), gw("a", "i1"), 1), put("u.s1", sess("s1", "a", "i1"), 2), put(gk("a"), gw("a", "i1"), 3)},
			true, []ev{{"u.s1", 2, false}, {"u.s1", 3, true}}},
		{"no incarnation", []bus.KVEntry{put("u.s1", sess("s1", "gone", ""), 1), del("u.s1", 2)},
			true, []ev{{"u.s1", 1, false}, {"u.s1", 2, true}}},
		{"unknown gateway", []bus.KVEntry{put("u.s1", sess("s1", "x", "i1"), 1), del("u.s1", 2)}, false, nil},
	} {
		clock := now
		v := newLiveView(func() time.Time { return clock })
		var got []ev
		emit := func(c SessionChange) { got = append(got, ev{c.Key, c.Revision, c.Gone}) }
		for _, e := range tt.in {
			v.apply(e, emit)
		}
		if tt.stale {
			v.sweep(time.Second, time.Second, emit) // not yet
			clock = clock.Add(3 * time.Second)
			v.sweep(time.Second, time.Second, emit)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s: changes %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestPresenceFollowsGateways checks Query, Watch and SweepSessions
// against the gateway entries on a bus: sessions of a gateway count while
// its entry is there, two watchers report the same changes with the same
// revisions when it goes, and a sweep removes a gone run's entries but
// not the sweeper's own or a live gateway's.
func TestPresenceFollowsGateways(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	now := time.Now()
	p, err := OpenPresence(ctx, PresenceConfig{Bus: b, TTL: time.Hour, AwayAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen [2][]PresenceChange
	for i := range seen {
		w, err := p.Watch(ctx, func(c PresenceChange) {
			mu.Lock()
			seen[i] = append(seen[i], c)
			mu.Unlock()
		})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.PutGateway(ctx, GatewayEntry{Node: "a", Incarnation: "i1", Updated: now}))
	must(p.PutGateway(ctx, GatewayEntry{Node: "b", Incarnation: "j1", Updated: now}))
	must(p.Put(ctx, SessionEntry{Session: "s1", User: "ann", Gateway: "a", Incarnation: "i1", LastActive: now}))
	must(p.Put(ctx, SessionEntry{Session: "s2", User: "bob", Gateway: "b", Incarnation: "j1", LastActive: now}))
	must(p.Put(ctx, SessionEntry{Session: "s3", User: "cat", Gateway: "b", Incarnation: "j0", LastActive: now})) // an old run's
	status := func(user string) PresenceStatus {
		t.Helper()
		up, err := p.Query(ctx, user)
		must(err)
		return up.Status
	}
	if status("ann") != StatusOnline || status("bob") != StatusOnline || status("cat") != StatusOffline {
		t.Fatalf("ann %s bob %s cat %s, want online online offline", status("ann"), status("bob"), status("cat"))
	}
	must(p.RemoveGateway(ctx, "a")) // gateway a is gone
	if status("ann") != StatusOffline {
		t.Fatal("ann online after her gateway's entry went")
	}
	// b sweeps: ann's entry (gone gateway) and cat's (b's old run) go;
	// bob's stays.
	n, err := p.SweepSessions(ctx, GatewayEntry{Node: "b", Incarnation: "j1"})
	if err != nil || n != 4 {
		t.Fatalf("sweep removed %d entries (%v), want 4 (two sessions in two buckets)", n, err)
	}
	for _, id := range []string{"s1", "s3"} {
		k, _ := bus.SessionKey(id)
		if _, err := p.Sessions().Get(ctx, k); err == nil {
			t.Fatalf("%s still in the session registry after the sweep", id)
		}
	}
	if status("bob") != StatusOnline {
		t.Fatal("the sweep removed a live gateway's session")
	}
	want := []PresenceChange{{User: "ann", Status: StatusOnline, Previous: StatusOffline},
		{User: "bob", Status: StatusOnline, Previous: StatusOffline},
		{User: "ann", Status: StatusOffline, Previous: StatusOnline}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		a, c := slices.Clone(seen[0]), slices.Clone(seen[1])
		mu.Unlock()
		if len(a) >= len(want) && len(c) >= len(want) {
			if !slices.Equal(a, c) {
				t.Fatalf("watchers differ: %+v and %+v", a, c)
			}
			for i := range a {
				a[i].Rev = 0
			}
			if !slices.Equal(a, want) {
				t.Fatalf("changes %+v, want %+v", a, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes %+v and %+v, want %+v", a, c, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startingBus is a bus whose presence bucket runs start once, when a
// sweep lists its session entries: a gateway that starts in the middle of
// someone else's sweep.
type startingBus struct {
	bus.Bus
	start func()
	once  sync.Once
}

func (b *startingBus) KV(ctx context.Context, cfg bus.KVConfig) (bus.KV, error) {
	kv, err := b.Bus.KV(ctx, cfg)
	if err != nil || cfg.Bucket != bus.BucketPresence {
		return kv, err
	}
	return &startingKV{KV: kv, b: b}, nil
}

type startingKV struct {
	bus.KV
	b *startingBus
}

func (k *startingKV) Watch(ctx context.Context, pattern string, h func(bus.KVEntry)) (bus.Watcher, error) {
	if pattern == ">" {
		k.b.once.Do(k.b.start)
	}
	return k.KV.Watch(ctx, pattern, h)
}

// TestSweepKeepsGatewayStartedDuringIt checks that a gateway which writes
// its entry and a session's while another gateway sweeps keeps that
// session: the sweep lists the sessions before the gateways, and a
// gateway's own entry is written before its sessions'. With the gateways
// listed first, the new session was taken for one of a gone gateway.
func TestSweepKeepsGatewayStartedDuringIt(t *testing.T) {
	mb, err := membus.New(membus.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	ctx := context.Background()
	now := time.Now()
	other, err := OpenPresence(ctx, PresenceConfig{Bus: mb, TTL: time.Hour, AwayAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var startErr error
	sb := &startingBus{Bus: mb, start: func() {
		startErr = errors.Join(
			other.PutGateway(ctx, GatewayEntry{Node: "b", Incarnation: "j1", Updated: now}),
			other.Put(ctx, SessionEntry{Session: "s1", User: "ann", Gateway: "b", Incarnation: "j1", LastActive: now}))
	}}
	p, err := OpenPresence(ctx, PresenceConfig{Bus: sb, TTL: time.Hour, AwayAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PutGateway(ctx, GatewayEntry{Node: "a", Incarnation: "i1", Updated: now}); err != nil {
		t.Fatal(err)
	}
	n, err := p.SweepSessions(ctx, GatewayEntry{Node: "a", Incarnation: "i1"})
	if err != nil || startErr != nil {
		t.Fatalf("sweep: %v; the starting gateway's writes: %v", err, startErr)
	}
	k, _ := bus.SessionKey("s1")
	if _, err := p.Sessions().Get(ctx, k); err != nil || n != 0 {
		t.Fatalf("the sweep removed %d entries; the new gateway's session: %v", n, err)
	}
}
