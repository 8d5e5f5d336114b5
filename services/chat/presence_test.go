package chat

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
)

func TestCorePresence(t *testing.T) {
	b, err := membus.New(membus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: b, AwayAfter: time.Minute, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	put := func(user, sess string, idle time.Duration) {
		t.Helper()
		e := core.SessionEntry{Session: sess, User: user, Gateway: "gw1", Transport: "tcp", Since: now.Add(-time.Hour),
			LastSeen: now, LastActive: now.Add(-idle)}
		if err := p.Put(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	put("alice", "s1", 0)
	put("bob", "s2", time.Hour)
	cp := CorePresence{P: p}
	for user, want := range map[string]string{"alice": "online", "bob": "away", "carol": "offline"} {
		got, err := cp.Status(ctx, user)
		if err != nil || got != want {
			t.Errorf("Status(%s) = %q, %v; want %q", user, got, err, want)
		}
	}
}
