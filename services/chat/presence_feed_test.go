package chat

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/wire"
)

// recordingHost records what the service publishes live.
type recordingHost struct {
	mu  sync.Mutex
	evs []chatevents.Event
	sig chan struct{}
}

func (h *recordingHost) Commit(context.Context, string, storage.Message) (storage.AppendResult, error) {
	return storage.AppendResult{}, nil
}

func (h *recordingHost) Drop(string, ...string) error { return nil }

func (h *recordingHost) PublishCommitted(string, storage.Message) error { return nil }

func (h *recordingHost) Ephemeral(_ string, m storage.Message) error {
	env, _, err := wire.ParseEnvelope(m.Body)
	if err != nil {
		return err
	}
	ev, err := chatevents.Decode(env.Body)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.evs = append(h.evs, ev)
	h.mu.Unlock()
	select {
	case h.sig <- struct{}{}:
	default:
	}
	return nil
}

// waitFor waits until n events were published and returns them.
func (h *recordingHost) waitFor(t *testing.T, n int) []chatevents.Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		h.mu.Lock()
		evs := slices.Clone(h.evs)
		h.mu.Unlock()
		if len(evs) >= n {
			return evs
		}
		select {
		case <-h.sig:
		case <-deadline:
			t.Fatalf("timed out waiting for %d events; have %d: %+v", n, len(evs), evs)
		}
	}
}

// TestPresenceFeedSweep drives the feed with a bus that reports no
// expiry (membus) and a fake clock: a session whose gateway stopped
// refreshing its entry goes offline after TTL + Grace, with no write of
// the session's own entry (D39), a session idle longer than
// AwayAfter turns away, and the changes go to direct chats and groups but
// not to public channels or archived conversations.
func TestPresenceFeedSweep(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	b, err := membus.New(membus.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var clockMu sync.Mutex
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		clockMu.Lock()
		now = now.Add(d)
		clockMu.Unlock()
	}
	const ttl = time.Hour // membus expires by its own clock: keep it out of the way
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: b, TTL: ttl, AwayAfter: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	host := &recordingHost{sig: make(chan struct{}, 1)}
	s, err := New(ctx, Config{Host: host, Store: st, Logger: log, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id, kind string
		archived bool
	}{{"dm", "direct", false}, {"grp", "group", false}, {"pub", "channel", false}, {"old", "group", true}} {
		if _, err := st.CreateConversation(ctx, storage.Conversation{ID: c.id, Kind: c.kind, Archived: c.archived, Creator: "bob"},
			[]storage.ChatMember{{User: "bob", Role: "owner"}, {User: "alice", Role: "member"}}); err != nil {
			t.Fatal(err)
		}
	}
	// Sweeps run when the test says so (SweepInterval far away).
	f, err := s.StartPresenceFeed(ctx, PresenceFeedConfig{Presence: p, SweepInterval: time.Hour, Grace: time.Minute, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	if err := p.PutGateway(ctx, core.GatewayEntry{Node: "gw", Incarnation: "run-1", Updated: clock()}); err != nil {
		t.Fatal(err)
	}
	put := func(active time.Time) {
		t.Helper()
		if err := p.Put(ctx, core.SessionEntry{Session: "s1", User: "bob", Gateway: "gw", Incarnation: "run-1", LastSeen: clock(), LastActive: active}); err != nil {
			t.Fatal(err)
		}
	}
	put(clock())
	evs := host.waitFor(t, 2)
	check := func(evs []chatevents.Event, prev, status string) {
		t.Helper()
		var convs []string
		for _, e := range evs {
			if e.Type != chatevents.PresenceChanged || e.Actor != "bob" || e.Presence == nil ||
				e.Presence.User != "bob" || e.Presence.Status != status || e.Presence.Previous != prev {
				t.Fatalf("event %+v, want bob %s>%s", e, prev, status)
			}
			if e.ID != evs[0].ID {
				t.Fatalf("one change has ids %s and %s", evs[0].ID, e.ID)
			}
			convs = append(convs, e.Conversation)
		}
		slices.Sort(convs)
		if !slices.Equal(convs, []string{"dm", "grp"}) {
			t.Fatalf("pushed to %v, want the direct chat and the group only", convs)
		}
	}
	check(evs, "offline", "online")

	// Idle past AwayAfter: the next sweep turns bob away.
	advance(2 * time.Minute)
	f.sweepOnce()
	evs = host.waitFor(t, 4)
	check(evs[2:], "online", "away")

	// His gateway stopped refreshing its entry and the bus reported
	// nothing: the sweep drops the session after TTL + Grace.
	advance(ttl - 90*time.Second) // ttl+30s after the last write
	f.sweepOnce()
	if got := f.Stats(); got.Users != 1 {
		t.Fatalf("session dropped before TTL+Grace: %+v", got)
	}
	advance(time.Minute) // ttl+90s: past TTL + Grace
	f.sweepOnce()
	evs = host.waitFor(t, 6)
	check(evs[4:], "away", "offline")
	// The counter moves after the last publish returns.
	for deadline := time.Now().Add(30 * time.Second); f.Stats().Pushed != 6 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.Stats(); got.Users != 0 || got.Pushed != 6 || got.Dropped != 0 {
		t.Fatalf("stats %+v", got)
	}
	var m strings.Builder
	if err := f.WriteMetrics(&m); err != nil || !strings.Contains(m.String(), "\njsp_chat_presence_events_total 6\n") {
		t.Fatalf("metrics %v:\n%s", err, m.String())
	}
}

// TestPresenceFeedConfig checks the validation of the config.
func TestPresenceFeedConfig(t *testing.T) {
	s := testService(t)
	for name, cfg := range map[string]PresenceFeedConfig{
		"no presence": {},
		"negative":    {Presence: &core.Presence{}, Grace: -1},
	} {
		if _, err := s.StartPresenceFeed(context.Background(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestPresenceFeedQueue checks the Queue limit: with the worker not
// running, a change beyond the limit drops the oldest waiting one, and a
// second change of a waiting user does not take another place.
func TestPresenceFeedQueue(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	p, err := core.OpenPresence(context.Background(), core.PresenceConfig{Bus: b, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	cfg := PresenceFeedConfig{Presence: p, Queue: 2, Now: func() time.Time { return now }}
	cfg.setDefaults()
	f := &PresenceFeed{cfg: cfg, live: true, wake: make(chan struct{}, 1),
		sessions: core.SessionsByUser{}, status: map[string]core.PresenceStatus{},
		published: map[string]core.PresenceStatus{}, pending: map[string]uint64{}}
	for i, u := range []string{"a", "b", "a", "c"} {
		f.onChange(core.SessionChange{User: u, Key: u + ".s", Revision: uint64(i + 1),
			Entry: core.SessionEntry{Session: "s", User: u, LastActive: now}})
	}
	if !slices.Equal(f.order, []string{"b", "c"}) || f.dropped != 1 || f.pending["b"] != 2 {
		t.Fatalf("queue %v pending %v dropped %d; want [b c], one dropped", f.order, f.pending, f.dropped)
	}
}

// TestPresenceFeedMaxConversations checks that a change goes to at most
// MaxConversations conversations.
func TestPresenceFeedMaxConversations(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	st, err := storage.Open(ctx, "sqlite::memory:", storage.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(ctx, Config{Host: &recordingHost{sig: make(chan struct{}, 1)}, Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"g1", "g2", "g3"} {
		if _, err := st.CreateConversation(ctx, storage.Conversation{ID: id, Kind: "group", Creator: "bob"},
			[]storage.ChatMember{{User: "bob", Role: "owner"}}); err != nil {
			t.Fatal(err)
		}
	}
	for limit, want := range map[int][]string{2: {"g1", "g2"}, DefaultPresenceMaxConversations: {"g1", "g2", "g3"}} {
		f := &PresenceFeed{s: s, cfg: PresenceFeedConfig{MaxConversations: limit}}
		got, err := f.conversations(ctx, "bob")
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("limit %d: %v, %v; want %v", limit, got, err, want)
		}
	}
}
