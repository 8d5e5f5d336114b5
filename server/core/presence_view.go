package core

import (
	"encoding/json"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// liveView is the set of live sessions as a watcher of jsp_presence
// builds it from the bucket's ordered stream of changes: the session
// entries, the gateway entries, and which sessions count because the
// gateway and incarnation they name is there (D39).
//
// Everything it reports is a function of that stream, so every watcher
// (one per core) reports the same changes with the same revisions: a
// session that stops counting because its gateway's entry expired, was
// removed, or was replaced by a new incarnation goes with the revision of
// that gateway's last heartbeat, however the watcher learnt about it (the
// bus's expiry marker, or sweep when the bus reports no expiry).
//
// Not safe for concurrent use: its owner serialises apply and sweep.
type liveView struct {
	now func() time.Time
	// sessions are every session entry, live or not, by presence key.
	sessions map[string]*viewSession
	// gateways are the gateway entries, by node.
	gateways map[string]*viewGateway
	// byNode are the keys of the sessions naming each node.
	byNode map[string]map[string]struct{}
}

type viewSession struct {
	user  string
	entry SessionEntry
	rev   uint64 // revision of the entry's latest write
	live  bool   // reported as present
}

type viewGateway struct {
	entry GatewayEntry
	rev   uint64    // revision of its latest write (heartbeat)
	seen  time.Time // when the view saw that write (view clock)
	stale bool      // not refreshed within TTL + grace: counts as gone
}

func newLiveView(now func() time.Time) *liveView {
	return &liveView{now: now, sessions: map[string]*viewSession{}, gateways: map[string]*viewGateway{}, byNode: map[string]map[string]struct{}{}}
}

// counts reports whether s counts given the gateways the view knows.
func (v *liveView) counts(s *SessionEntry) bool {
	if s.Incarnation == "" {
		return true
	}
	g := v.gateways[s.Gateway]
	return g != nil && !g.stale && g.entry.Incarnation == s.Incarnation
}

// apply folds one change of the bucket into the view and calls emit for
// every session that appeared, changed or went away because of it.
func (v *liveView) apply(e bus.KVEntry, emit func(SessionChange)) {
	if isGatewayKey(e.Key) {
		v.applyGateway(e, emit)
		return
	}
	user, err := userOfKey(e.Key)
	if err != nil {
		return
	}
	old := v.sessions[e.Key]
	if e.Op != bus.KVPut {
		if old == nil {
			return
		}
		v.forget(e.Key, old)
		if old.live {
			emit(SessionChange{User: user, Key: e.Key, Revision: e.Revision, Gone: true})
		}
		return
	}
	var s SessionEntry
	if json.Unmarshal(e.Value, &s) != nil {
		return
	}
	if old != nil {
		v.forget(e.Key, old)
	}
	vs := &viewSession{user: user, entry: s, rev: e.Revision, live: v.counts(&s)}
	v.sessions[e.Key] = vs
	if s.Gateway != "" {
		keys := v.byNode[s.Gateway]
		if keys == nil {
			keys = map[string]struct{}{}
			v.byNode[s.Gateway] = keys
		}
		keys[e.Key] = struct{}{}
	}
	switch {
	case vs.live:
		emit(SessionChange{User: user, Key: e.Key, Revision: e.Revision, Entry: s})
	case old != nil && old.live:
		emit(SessionChange{User: user, Key: e.Key, Revision: e.Revision, Gone: true})
	}
}

// forget drops a session from the view's maps.
func (v *liveView) forget(key string, s *viewSession) {
	delete(v.sessions, key)
	if keys := v.byNode[s.entry.Gateway]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(v.byNode, s.entry.Gateway)
		}
	}
}

func (v *liveView) applyGateway(e bus.KVEntry, emit func(SessionChange)) {
	var node string
	var prev *viewGateway
	if e.Op == bus.KVPut {
		var g GatewayEntry
		if json.Unmarshal(e.Value, &g) != nil || g.Node == "" {
			return
		}
		node = g.Node
		prev = v.gateways[node]
		v.gateways[node] = &viewGateway{entry: g, rev: e.Revision, seen: v.now()}
	} else {
		for n, g := range v.gateways {
			if k, err := GatewayKey(n); err == nil && k == e.Key {
				node, prev = n, g
				break
			}
		}
		if prev == nil {
			return
		}
		delete(v.gateways, node)
	}
	// The sessions that stop counting go with the revision of the
	// gateway's last heartbeat (see liveView); those that start counting
	// with this write's.
	var goneRev uint64
	if prev != nil {
		goneRev = prev.rev
	}
	v.recount(node, goneRev, e.Revision, emit)
}

// recount re-derives which sessions of node count and reports those that
// changed: the ones that stopped at goneRev, the others at liveRev.
func (v *liveView) recount(node string, goneRev, liveRev uint64, emit func(SessionChange)) {
	for key := range v.byNode[node] {
		s := v.sessions[key]
		live := v.counts(&s.entry)
		if live == s.live {
			continue
		}
		s.live = live
		if live {
			emit(SessionChange{User: s.user, Key: key, Revision: liveRev, Entry: s.entry})
		} else {
			emit(SessionChange{User: s.user, Key: key, Revision: goneRev, Gone: true})
		}
	}
}

// sweep marks stale the gateway entries the view has not seen refreshed
// within ttl + grace (a bus that reports no expiry, or a lost marker) and
// reports their sessions gone.
func (v *liveView) sweep(ttl, grace time.Duration, emit func(SessionChange)) {
	cutoff := v.now().Add(-ttl - grace)
	for node, g := range v.gateways {
		if g.stale || !g.seen.Before(cutoff) {
			continue
		}
		g.stale = true
		v.recount(node, g.rev, g.rev, emit)
	}
}
