package gateway

import (
	"context"
	"encoding/hex"
	"io"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/core"
)

// The sessions' side of the registry (D39). A session's entry is written
// when the session starts, removed when it ends, and rewritten only when
// something a reader sees changes: its activity, when readers would
// otherwise turn it away. Its liveness follows the gateway's own entry,
// which run refreshes every heartbeat; an idle session costs nothing.
//
// The writer goroutine (owned by the gateway's bg group, ended by g.ctx)
// makes every write that is not on a session's own start or end: the
// session pass after each heartbeat (entries not written yet, activity,
// removals that failed) and the sweep of sessions whose gateway is gone.
// It is apart from run so that a pass with many writes never delays the
// gateway's own entry past its TTL.

// sessionRegs are the local sessions' registry states.
type sessionRegs struct {
	mu sync.Mutex
	m  map[*host]*sessionReg // guarded by mu
}

// sessionReg is one session's registry state. Its mutex orders the
// session's writes: a rewrite never lands after the removal.
type sessionReg struct {
	mu      sync.Mutex
	tried   bool  // guarded by mu: a put was sent (it may have landed)
	written bool  // guarded by mu: the entry is current as of active
	active  int64 // guarded by mu: LastActive (Unix ns) of the last write
	closed  bool  // guarded by mu: the session ended
}

// newIncarnation returns a random name for this run of the gateway,
// from r (Config.Rand); the start time names it if r fails.
func newIncarnation(r io.Reader, now time.Time) string {
	var b [8]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return strconv.FormatInt(now.UnixNano(), 16)
	}
	return hex.EncodeToString(b[:])
}

// rewriteAfter is how old the stored LastActive of a session that was
// active since may grow before the writer rewrites it: late enough that
// an active session is rewritten about once per AwayAfter, early enough
// (two heartbeats before readers would turn it away) that readers never
// see an active session away. At least AwayAfter/2.
func (r *registry) rewriteAfter() time.Duration {
	c := r.g.cfg
	return max(c.AwayAfter-2*c.RegistryHeartbeat, c.AwayAfter/2)
}

// registryEntry is the session's registry and presence record, with
// LastActive as of active.
func (r *registry) registryEntry(h *host, active int64) core.SessionEntry {
	return core.SessionEntry{
		Session:     h.id,
		User:        h.presenceUser(),
		Device:      h.auth.Device,
		Gateway:     h.g.cfg.NodeID,
		Incarnation: r.incarnation,
		Transport:   string(h.kind),
		RemoteAddr:  h.ident.RemoteAddr,
		Since:       h.since,
		LastSeen:    h.g.cfg.Now(),
		LastActive:  time.Unix(0, active),
	}
}

// registryOpen and registryClose keep the session in the shared state
// cache; failures are counted and logged, never fatal to the session: the
// writer retries them.
func (h *host) registryOpen() {
	r := h.g.reg
	if r == nil {
		return
	}
	sr := &sessionReg{}
	r.sessions.mu.Lock()
	r.sessions.m[h] = sr
	r.sessions.mu.Unlock()
	r.putSession(h.g.ctx, h, sr, false)
}

func (h *host) registryClose() {
	r := h.g.reg
	if r == nil {
		return
	}
	r.sessions.mu.Lock()
	sr := r.sessions.m[h]
	r.sessions.mu.Unlock()
	if sr == nil {
		return
	}
	sr.mu.Lock()
	sr.closed = true
	sr.mu.Unlock()
	r.removeSession(h, sr)
}

// putSession writes h's entry when it was not written yet or, with
// activity, when its stored LastActive is older than rewriteAfter and the
// session was active since.
func (r *registry) putSession(ctx context.Context, h *host, sr *sessionReg, activity bool) {
	p := r.presence.Load()
	if p == nil {
		return // the writer's pass after the buckets open writes it
	}
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.closed {
		return
	}
	active := h.lastActive.Load()
	if sr.written {
		if !activity || active <= sr.active || r.g.cfg.Now().Sub(time.Unix(0, sr.active)) < r.rewriteAfter() {
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, registryOpTimeout)
	defer cancel()
	sr.tried = true
	if err := p.Put(ctx, r.registryEntry(h, active)); err != nil {
		r.failed("put session entry", err)
		sr.written = false
		return
	}
	sr.written, sr.active = true, active
}

// removeSession removes an ended session's entries; on failure the
// session stays in sessions and the writer retries.
func (r *registry) removeSession(h *host, sr *sessionReg) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	if sr.tried {
		p := r.presence.Load()
		if p == nil {
			return
		}
		// The gateway's context may be over (Close); the entry still goes.
		ctx, cancel := context.WithTimeout(context.Background(), registryOpTimeout)
		defer cancel()
		if err := p.Remove(ctx, h.presenceUser(), h.id); err != nil {
			r.failed("remove session entry", err)
			return
		}
	}
	r.sessions.mu.Lock()
	delete(r.sessions.m, h)
	r.sessions.mu.Unlock()
}

// wake asks the writer for a session pass, and a sweep first with sweep.
func (r *registry) wake(sweep bool) {
	if sweep {
		r.sweep.Store(true)
	}
	select {
	case r.work <- struct{}{}:
	default:
	}
}

// writer runs the session passes and sweeps until the gateway closes.
func (r *registry) writer() {
	for {
		select {
		case <-r.g.ctx.Done():
			return
		case <-r.work:
		}
		if r.presence.Load() == nil {
			continue
		}
		if r.sweep.Swap(false) {
			r.sweepSessions(r.g.ctx)
		}
		r.pass(r.g.ctx)
	}
}

// pass writes the local sessions' entries that need it and retries
// failed removals. It reads memory only for a session that needs nothing.
func (r *registry) pass(ctx context.Context) {
	r.sessions.mu.Lock()
	hs := make([]*host, 0, len(r.sessions.m))
	srs := make([]*sessionReg, 0, len(r.sessions.m))
	for h, sr := range r.sessions.m {
		hs = append(hs, h)
		srs = append(srs, sr)
	}
	r.sessions.mu.Unlock()
	for i, h := range hs {
		if ctx.Err() != nil {
			return
		}
		sr := srs[i]
		sr.mu.Lock()
		closed := sr.closed
		sr.mu.Unlock()
		if closed {
			r.removeSession(h, sr)
			continue
		}
		r.putSession(ctx, h, sr, true)
	}
}

// sweepSessions removes the entries of sessions whose gateway is gone.
func (r *registry) sweepSessions(ctx context.Context) {
	p := r.presence.Load()
	if p == nil {
		return
	}
	n, err := p.SweepSessions(ctx, core.GatewayEntry{Node: r.g.cfg.NodeID, Incarnation: r.incarnation})
	if err != nil {
		r.failed("sweep sessions of gone gateways", err)
		r.sweep.Store(true) // again after the next heartbeat
	}
	if n > 0 {
		r.g.log.Info("gateway: registry: removed sessions of gone gateways", "count", n)
	}
}

// track follows the set of live gateways (on the watch's goroutine): a
// gateway that left or restarted has its sessions swept by the live
// gateway with the lowest node id (several may do it: the sweep is
// idempotent). When this gateway's own entry is gone while it runs (it
// missed its TTL), it writes its entry and every session's again, since
// another gateway may have swept them.
func (r *registry) track(all map[string]core.GatewayEntry) {
	now := r.g.cfg.Now()
	self := r.g.cfg.NodeID
	r.mu.Lock()
	lost := false
	for node, old := range r.gws {
		if node == self {
			continue
		}
		if e, ok := all[node]; !ok || e.Incarnation != old.Incarnation {
			lost = true
		}
	}
	for node, e := range all {
		if old, ok := r.gws[node]; !ok || !old.Updated.Equal(e.Updated) || old.Incarnation != e.Incarnation {
			r.seen[node] = now
		}
	}
	for node := range r.seen {
		if _, ok := all[node]; !ok {
			delete(r.seen, node)
		}
	}
	own, ok := all[self]
	ownLost := r.ownSeen && (!ok || own.Incarnation != r.incarnation) && r.g.ctx.Err() == nil
	r.ownSeen = ok && own.Incarnation == r.incarnation
	r.gws = maps.Clone(all)
	sweep := lost && r.lowestLocked()
	r.mu.Unlock()
	if ownLost {
		r.g.log.Warn("gateway: registry: own entry expired; writing it and every session's again")
		r.sessions.mu.Lock()
		for _, sr := range r.sessions.m {
			sr.mu.Lock()
			sr.written = false
			sr.mu.Unlock()
		}
		r.sessions.mu.Unlock()
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
	if sweep || ownLost {
		r.wake(sweep)
	}
}

// checkStale treats a gateway whose entry has not changed for its TTL
// plus a heartbeat as gone, for a bus that reports no expiry (the entry
// stays in the watch's set); each lost incarnation is swept once.
func (r *registry) checkStale() {
	p := r.presence.Load()
	if p == nil {
		return
	}
	cutoff := r.g.cfg.Now().Add(-p.GatewayTTL() - r.g.cfg.RegistryHeartbeat)
	r.mu.Lock()
	stale := false
	for node, t := range r.seen {
		e := r.gws[node]
		if node == r.g.cfg.NodeID || !t.Before(cutoff) || r.swept[node] == e.Incarnation {
			continue
		}
		r.swept[node] = e.Incarnation
		delete(r.gws, node)
		stale = true
	}
	sweep := stale && r.lowestLocked()
	r.mu.Unlock()
	if sweep {
		r.wake(true)
	}
}

// lowestLocked reports whether this gateway has the lowest node id among
// the live gateways it knows.
func (r *registry) lowestLocked() bool {
	nodes := slices.Collect(maps.Keys(r.gws))
	nodes = append(nodes, r.g.cfg.NodeID)
	return slices.Min(nodes) == r.g.cfg.NodeID
}
