package chatevents

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/services/events"
)

// presenceLogTimeout bounds one append of a presence change, so that a
// stopped watch does not wait for an event log that does not answer.
const presenceLogTimeout = 5 * time.Second

// PresenceLogPayload is the payload of a presence.changed event in the
// event log: the user, the new status and the one before ("online",
// "away" or "offline").
type PresenceLogPayload struct {
	User     string `json:"user"`
	Status   string `json:"status"`
	Previous string `json:"previous"`
}

// RecordPresence appends every change of a user's status that p reports
// to the event log as a [PresenceChanged] event in the envelope every
// consumer reads (events.Decode; actor = the user, no conversation,
// payload [PresenceLogPayload]; not a chat event, so DecodeLogged refuses
// it like any system event) until the returned watcher is stopped, so
// that webhooks and other consumers can follow presence without polling.
//
// The event id is derived from the change (user, status and the presence
// bucket's revision), so the cores that all record the same change store
// it once (the log de-duplicates by id), and a restarted core that sees
// the current state again within the log's duplicate window adds
// nothing. A failed append is logged and skipped: the log is a record,
// presence itself lives in KV.
func RecordPresence(ctx context.Context, p *core.Presence, pub *events.Publisher, log *slog.Logger) (bus.Watcher, error) {
	return p.Watch(ctx, func(c core.PresenceChange) {
		ev, err := PresenceLogEvent(c, time.Now())
		if err != nil {
			log.Warn("core: presence change not recorded", "user", c.User, "status", string(c.Status), "err", err)
			return
		}
		actx, cancel := context.WithTimeout(ctx, presenceLogTimeout)
		defer cancel()
		if _, _, err := pub.Publish(actx, ev); err != nil {
			log.Warn("core: presence change not recorded", "user", c.User, "status", string(c.Status), "err", err)
			return
		}
		log.Debug("presence", "user", c.User, "status", string(c.Status), "previous", string(c.Previous))
	})
}

// PresenceLogEvent is the event-log form of change c observed at now.
func PresenceLogEvent(c core.PresenceChange, now time.Time) (events.Event, error) {
	payload, err := json.Marshal(PresenceLogPayload{User: c.User, Status: string(c.Status), Previous: string(c.Previous)})
	if err != nil {
		return events.Event{}, fmt.Errorf("chatevents: presence payload: %w", err)
	}
	return events.Event{
		Type:    string(PresenceChanged),
		ID:      PresenceID("presence-log", c.User, string(c.Status), c.Rev),
		Time:    now,
		Actor:   c.User,
		Payload: payload,
	}, nil
}

// PresenceID derives an event id from a presence change: user, status
// and the revision behind it, under domain (which keeps the ids of
// different event streams about the same change apart). Every node that
// sees the change derives the same id.
func PresenceID(domain, user, status string, rev uint64) string {
	h := sha256.New()
	h.Write([]byte(domain + "\x00" + user + "\x00" + status + "\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], rev)
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:16])
}
