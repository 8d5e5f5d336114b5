package core

import (
	"context"
	"encoding/json"
	"iter"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// SessionChange is one change of the presence bucket as WatchSessions
// reports it: a session's entry was written (refresh included) or it went
// away (removed by its gateway, or expired because its gateway stopped
// refreshing it).
type SessionChange struct {
	// User is the session's user, decoded from the key.
	User string
	// Key is the entry's key in jsp_presence.
	Key string
	// Revision is the bucket's revision of the change: the same on every
	// watcher, so consumers in several cores can derive the same event
	// id from it.
	Revision uint64
	// Gone is set when the entry was deleted or expired; Entry is then
	// zero.
	Gone bool
	// Entry is the session's record.
	Entry SessionEntry
}

// WatchSessions calls fn for every write and every removal or expiry of a
// session's presence entry, on the watcher's goroutine, until the returned
// watcher is stopped. The entries present when the watch starts are
// delivered first, as writes, before WatchSessions returns. Entries that
// do not decode are skipped.
//
// Expiries arrive because the bucket keeps limit markers (OpenPresence
// sets KVConfig.KeyTTL): the bus writes a delete marker when it drops an
// entry nobody refreshed, so the sessions of a gateway that died go away
// here without anyone cleaning up after it.
func (p *Presence) WatchSessions(ctx context.Context, fn func(SessionChange)) (bus.Watcher, error) {
	return p.presence.Watch(ctx, ">", func(e bus.KVEntry) {
		user, err := userOfKey(e.Key)
		if err != nil {
			return
		}
		c := SessionChange{User: user, Key: e.Key, Revision: e.Revision, Gone: e.Op != bus.KVPut}
		if !c.Gone && json.Unmarshal(e.Value, &c.Entry) != nil {
			return
		}
		fn(c)
	})
}

// StatusOf derives a user's status from their live sessions: offline with
// none, online when one was active within AwayAfter, else away.
func (p *Presence) StatusOf(sessions []SessionEntry) PresenceStatus { return p.status(sessions) }

// StatusOfSeq is StatusOf over sessions handed over one at a time, so that
// a caller keeping a user's sessions in a map does not copy them into a
// slice for every presence update: with many sessions under one user (the
// benchmark's anonymous clients), a copy per update is quadratic in the
// user's sessions (D26, D36).
func (p *Presence) StatusOfSeq(sessions iter.Seq[SessionEntry]) PresenceStatus {
	now := p.cfg.Now()
	some := false
	for s := range sessions {
		if now.Sub(s.LastActive) < p.cfg.AwayAfter {
			return StatusOnline
		}
		some = true
	}
	if !some {
		return StatusOffline
	}
	return StatusAway
}

// TTL is the buckets' time to live: an entry not refreshed within it
// expires.
func (p *Presence) TTL() time.Duration { return p.cfg.TTL }
