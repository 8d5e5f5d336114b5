package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jetstreamproto/jsp/server/bus"
)

// legacyGatewayPrefix starts the gateway entries that jsp_sessions held
// before D39 (they expired with its bucket TTL, which is gone).
const legacyGatewayPrefix = "gw."

// SweepSessions removes, from both buckets, the entries of sessions whose
// gateway is gone: no entry for its node, or one of another incarnation
// (the gateway restarted). Entries of self (node and incarnation) are
// never removed, even while self's own entry is missing. An entry that
// names no incarnation (written before D39) goes when no entry of its
// node is there and it was not written within the TTL. It returns how
// many entries it removed.
//
// Each removal names the revision it listed, so a session written again
// meanwhile (its gateway came back) is left alone, and several gateways
// may sweep at once: what one removed, another finds gone. The cost is a
// listing of both buckets, which is why gateways sweep only when the set
// of gateways changes (D39).
func (p *Presence) SweepSessions(ctx context.Context, self GatewayEntry) (int, error) {
	// The session entries are listed before the gateways: a gateway writes
	// its own entry before any of its sessions', so every session listed
	// here has its live gateway in the listing that follows. The other
	// order would remove the sessions of a gateway that started between
	// the two listings.
	kvs := []bus.KV{p.presence, p.sessions}
	listed := make([][]bus.KVEntry, len(kvs))
	for i, kv := range kvs {
		es, err := list(ctx, kv, ">")
		if err != nil {
			return 0, fmt.Errorf("core: sweep sessions: %w", err)
		}
		listed[i] = es
	}
	gws, err := p.Gateways(ctx)
	if err != nil {
		return 0, fmt.Errorf("core: sweep sessions: %w", err)
	}
	now := p.cfg.Now()
	dead := func(s *SessionEntry) bool {
		if s.Gateway == self.Node && (s.Incarnation == self.Incarnation || s.Incarnation == "") {
			return false
		}
		if s.Incarnation == "" {
			_, ok := gws[s.Gateway]
			return !ok && now.Sub(s.LastSeen) > p.GatewayTTL()
		}
		return !s.liveIn(gws)
	}
	removed := 0
	var errs []error
	del := func(kv bus.KV, e bus.KVEntry) {
		err := kv.Delete(ctx, e.Key, e.Revision)
		switch {
		case err == nil:
			removed++
		case errors.Is(err, bus.ErrRevisionMismatch), errors.Is(err, bus.ErrKeyNotFound):
			// Written again or removed by another sweeper meanwhile.
		default:
			errs = append(errs, err)
		}
	}
	for i, kv := range kvs {
		for _, e := range listed[i] {
			if ctx.Err() != nil {
				return removed, fmt.Errorf("core: sweep sessions: %w", context.Cause(ctx))
			}
			switch {
			case isGatewayKey(e.Key):
				continue
			case kv == p.sessions && strings.HasPrefix(e.Key, legacyGatewayPrefix):
				del(kv, e) // nothing reads it, and nothing expires it any more
				continue
			}
			var s SessionEntry
			if json.Unmarshal(e.Value, &s) != nil || !dead(&s) {
				continue
			}
			del(kv, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("core: sweep sessions: %w", err)
	}
	return removed, nil
}
