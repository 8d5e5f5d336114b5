package core

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/membus"
)

// TestPresenceStatus checks online, away and offline from the entries'
// activity, and the change events of Watch.
func TestPresenceStatus(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Unix(10_000, 0)
	var clock sync.Mutex
	p, err := OpenPresence(context.Background(), PresenceConfig{Bus: b, AwayAfter: time.Minute, Now: func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		return now
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var mu sync.Mutex
	var changes []PresenceChange
	w, err := p.Watch(ctx, func(c PresenceChange) {
		mu.Lock()
		changes = append(changes, c)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	query := func(user string) PresenceStatus {
		t.Helper()
		up, err := p.Query(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return up.Status
	}
	if st := query("alice"); st != StatusOffline {
		t.Fatalf("no sessions: %s", st)
	}
	active := SessionEntry{Session: "s1", User: "alice", Gateway: "gw", LastActive: now.Add(-10 * time.Second)}
	idle := SessionEntry{Session: "s2", User: "alice", Gateway: "gw", LastActive: now.Add(-2 * time.Minute)}
	for _, e := range []SessionEntry{idle, active} {
		if err := p.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if st := query("alice"); st != StatusOnline {
		t.Fatalf("one active session: %s", st)
	}
	if err := p.Remove(ctx, "alice", "s1"); err != nil {
		t.Fatal(err)
	}
	if st := query("alice"); st != StatusAway {
		t.Fatalf("only an idle session: %s", st)
	}
	if err := p.Remove(ctx, "alice", "s2"); err != nil {
		t.Fatal(err)
	}
	if st := query("alice"); st != StatusOffline {
		t.Fatalf("all gone: %s", st)
	}
	// Removing again is not an error.
	if err := p.Remove(ctx, "alice", "s2"); err != nil {
		t.Fatal(err)
	}
	want := []PresenceChange{
		{User: "alice", Status: StatusAway, Previous: StatusOffline},
		{User: "alice", Status: StatusOnline, Previous: StatusAway},
		{User: "alice", Status: StatusAway, Previous: StatusOnline},
		{User: "alice", Status: StatusOffline, Previous: StatusAway},
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := append([]PresenceChange(nil), changes...)
		mu.Unlock()
		if len(got) >= len(want) {
			for i := range want {
				// Rev names the update behind the change: it grows.
				if got[i].Rev == 0 || i > 0 && got[i].Rev <= got[i-1].Rev {
					t.Fatalf("change %d revision %d after %+v", i, got[i].Rev, got)
				}
				got[i].Rev = 0
				if got[i] != want[i] {
					t.Fatalf("changes %+v, want %+v", got, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("changes %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The gateway registry.
	if err := p.PutGateway(ctx, GatewayEntry{Node: "gw-1", URLs: []string{"jsp+tcp://a:1"}}); err != nil {
		t.Fatal(err)
	}
	got := make(chan map[string]GatewayEntry, 4)
	gw, err := p.WatchGateways(ctx, func(m map[string]GatewayEntry) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Stop()
	if m := <-got; len(m) != 1 || m["gw-1"].URLs[0] != "jsp+tcp://a:1" {
		t.Fatalf("gateways %+v", m)
	}
	if err := p.RemoveGateway(ctx, "gw-1"); err != nil {
		t.Fatal(err)
	}
	if m := <-got; len(m) != 0 {
		t.Fatalf("gateways after removal %+v", m)
	}
}

// TestPresenceStatusOf checks that the watch's status over a session map
// and StatusOfSeq agree with status over the same sessions as a slice.
func TestPresenceStatusOf(t *testing.T) {
	now := time.Unix(10_000, 0)
	p := &Presence{cfg: PresenceConfig{AwayAfter: time.Minute, Now: func() time.Time { return now }}}
	active := SessionEntry{Session: "a", LastActive: now.Add(-time.Second)}
	idle := SessionEntry{Session: "i", LastActive: now.Add(-2 * time.Minute)}
	for _, tt := range []struct {
		name string
		ss   []SessionEntry
		want PresenceStatus
	}{
		{"none", nil, StatusOffline},
		{"active", []SessionEntry{active}, StatusOnline},
		{"idle", []SessionEntry{idle}, StatusAway},
		{"both", []SessionEntry{idle, active}, StatusOnline},
	} {
		m := map[string]SessionEntry{}
		for _, s := range tt.ss {
			m[s.Session] = s
		}
		if got, slice := p.statusOf(m), p.status(tt.ss); got != tt.want || slice != tt.want {
			t.Fatalf("%s: statusOf %s, status %s, want %s", tt.name, got, slice, tt.want)
		}
		if got := p.StatusOfSeq(maps.Values(m)); got != tt.want {
			t.Fatalf("%s: StatusOfSeq %s, want %s", tt.name, got, tt.want)
		}
	}
}
