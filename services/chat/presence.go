package chat

import (
	"context"
	"fmt"
	"sync"

	"github.com/jetstreamproto/jsp/server/bus"
)

// Presence statuses.
const (
	StatusOnline  = "online"
	StatusAway    = "away"
	StatusOffline = "offline"
	StatusUnknown = "unknown"
)

// KVPresence reads presence from the cluster's presence bucket
// (bus.BucketPresence): one key per session, user.session ->
// status, kept alive by the gateway that holds the session and expiring
// with the bucket's TTL, so it is correct across gateways. A user is
// online when any session says online (or any other non-empty value but
// "away"), away when every session says away, offline without sessions.
type KVPresence struct {
	// KV is the presence bucket. Required.
	KV bus.KV
}

var _ Presence = KVPresence{}

// Status implements Presence.
func (p KVPresence) Status(ctx context.Context, user string) (string, error) {
	pattern, err := bus.PresencePattern(user)
	if err != nil {
		return StatusUnknown, fmt.Errorf("chat: presence of %s: %w", user, err)
	}
	var (
		mu              sync.Mutex
		online, away    bool
		deletedOrPurged = func(e bus.KVEntry) bool { return e.Op != bus.KVPut || len(e.Value) == 0 }
	)
	// Watch delivers the current entry of every matching key before it
	// returns; the watch is stopped at once, so this is a snapshot.
	w, err := p.KV.Watch(ctx, pattern, func(e bus.KVEntry) {
		if deletedOrPurged(e) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if string(e.Value) == StatusAway {
			away = true
		} else {
			online = true
		}
	})
	if err != nil {
		return StatusUnknown, fmt.Errorf("chat: presence of %s: %w", user, err)
	}
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	switch {
	case online:
		return StatusOnline, nil
	case away:
		return StatusAway, nil
	}
	return StatusOffline, nil
}
