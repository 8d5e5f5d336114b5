package chatevents

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/services/events"
)

// TestRecordPresence checks that presence changes reach the event log in
// the envelope every consumer decodes, once per change however many
// cores record it, and that a consumer of every type handles them
// instead of skipping them as malformed.
func TestRecordPresence(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	subj, _ := bus.NewSubjects("c1")
	elog, err := b.EventLog(ctx, subj.EventLog())
	if err != nil {
		t.Fatal(err)
	}
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: b, AwayAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	// Two cores record the same changes.
	for range 2 {
		w, err := RecordPresence(ctx, p, events.NewPublisher(elog, events.PublisherConfig{}), log)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
	}
	var mu sync.Mutex
	var got []events.Event
	cons, err := events.Consume(ctx, elog, events.ConsumerConfig{
		Name: "all", Filters: []string{"*"}, Cursors: &events.MemCursors{}, Logger: log,
		Handler: func(_ context.Context, d events.Delivered) error {
			mu.Lock()
			got = append(got, d.Event)
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Stop()

	now := time.Now()
	if err := p.Put(ctx, core.SessionEntry{Session: "s1", User: "alice", Gateway: "gw", LastActive: now}); err != nil {
		t.Fatal(err)
	}
	if err := p.Put(ctx, core.SessionEntry{Session: "s1", User: "alice", Gateway: "gw", LastActive: now.Add(-2 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	want := []PresenceLogPayload{{"alice", "online", "offline"}, {"alice", "away", "online"}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
	mu.Lock()
	defer mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d: %+v", len(got), len(want), got)
	}
	for i, ev := range got {
		if ev.Type != string(PresenceChanged) || ev.Actor != "alice" || ev.Conversation != "" || ev.ID == "" {
			t.Errorf("event %d: %+v", i, ev)
		}
		var pl PresenceLogPayload
		if err := json.Unmarshal(ev.Payload, &pl); err != nil || pl != want[i] {
			t.Errorf("event %d payload %s (%v), want %+v", i, ev.Payload, err, want[i])
		}
	}
	if handled, skipped := cons.Stats(); skipped != 0 || handled != uint64(len(want)) {
		t.Errorf("consumer handled %d, skipped %d", handled, skipped)
	}
}
