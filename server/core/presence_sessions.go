package core

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// SessionChange is one change of the live sessions as WatchSessions
// reports it: a session's entry was written, or its session went away
// (removed by its gateway, or its gateway's entry expired, was removed or
// was replaced by a restarted gateway's).
type SessionChange struct {
	// User is the session's user, decoded from the key.
	User string
	// Key is the entry's key in jsp_presence.
	Key string
	// Revision is the bucket's revision of the change: the same on every
	// watcher, so consumers in several cores can derive the same event
	// id from it.
	Revision uint64
	// Gone is set when the session went away; Entry is then zero.
	Gone bool
	// Entry is the session's record.
	Entry SessionEntry
}

// WatchSessions calls fn for every session that appears, changes or goes
// away in the presence bucket, on the watcher's goroutine (or Sweep's
// caller), until the returned watch is stopped. The sessions live when
// the watch starts are delivered first, as writes, before WatchSessions
// returns. Entries that do not decode are skipped.
//
// A session counts while the gateway entry it names (node and
// incarnation) is there (D39): when that entry expires, is removed or
// is replaced by a restarted gateway's, the gateway's sessions go away
// here at once, with the revision of its last heartbeat; the live
// gateways' removal of their entries that follows reports nothing more.
// Expiries arrive because the bucket keeps limit markers (OpenPresence
// sets KVConfig.KeyTTL); Sweep covers a bus that reports none.
func (p *Presence) WatchSessions(ctx context.Context, fn func(SessionChange)) (*SessionWatch, error) {
	sw := &SessionWatch{p: p, v: newLiveView(p.cfg.Now), fn: fn}
	w, err := p.presence.Watch(ctx, ">", func(e bus.KVEntry) {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		sw.v.apply(e, sw.fn)
	})
	if err != nil {
		return nil, err
	}
	sw.w = w
	return sw, nil
}

// SessionWatch is a running WatchSessions.
type SessionWatch struct {
	p  *Presence
	w  bus.Watcher
	fn func(SessionChange)

	mu sync.Mutex // serialises the watch's handler and Sweep, and so fn
	v  *liveView  // guarded by mu
}

// Stop ends the watch and waits for a running fn to return. Safe to call
// more than once, but not from inside fn.
func (sw *SessionWatch) Stop() { sw.w.Stop() }

// Sweep reports gone the sessions of every gateway whose entry was
// neither refreshed nor reported expired within GatewayTTL + grace, for
// a bus without expiry markers (or a lost marker). It calls fn on the
// caller's goroutine; not from inside fn.
func (sw *SessionWatch) Sweep(grace time.Duration) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.v.sweep(sw.p.GatewayTTL(), grace, sw.fn)
}

// Watch calls fn for every change of a user's status, on the watcher's
// goroutines, one at a time, until the returned watcher is stopped. The
// users present when the watch starts are reported as changes from
// offline. Besides the changes writes make, a ticker (a third of the
// TTL) turns users away whose sessions idled past AwayAfter, since no
// write marks that (D39), and sweeps stale gateways (SessionWatch.Sweep,
// grace = TTL).
func (p *Presence) Watch(ctx context.Context, fn func(PresenceChange)) (bus.Watcher, error) {
	pw := &presenceWatch{p: p, fn: fn, users: SessionsByUser{}, statuses: map[string]PresenceStatus{},
		stop: make(chan struct{}), done: make(chan struct{})}
	sw, err := p.WatchSessions(ctx, pw.onChange)
	if err != nil {
		return nil, err
	}
	pw.sw = sw
	go pw.tick(max(p.cfg.TTL/3, 10*time.Millisecond))
	return pw, nil
}

// presenceWatch derives users' statuses from a SessionWatch.
//
// Goroutines: the session watch's (owned by the bus) and tick (owned by
// the watch, joined by Stop). Lock order: SessionWatch.mu, then mu.
type presenceWatch struct {
	p    *Presence
	fn   func(PresenceChange)
	sw   *SessionWatch
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu       sync.Mutex
	users    SessionsByUser            // guarded by mu: user → key → live session
	statuses map[string]PresenceStatus // guarded by mu: derived status of users with sessions
}

// WatchedSession is one live session as a watcher of the registry keeps
// it: its record and the bucket revision of its latest write.
type WatchedSession struct {
	Entry SessionEntry
	Rev   uint64
}

// SessionsByUser is a watcher's live sessions: user → key → session.
type SessionsByUser map[string]map[string]WatchedSession

// Apply records c: the session is added, replaced or, when gone, removed.
func (u SessionsByUser) Apply(c SessionChange) {
	m := u[c.User]
	if c.Gone {
		delete(m, c.Key)
		return
	}
	if m == nil {
		m = map[string]WatchedSession{}
		u[c.User] = m
	}
	m[c.Key] = WatchedSession{Entry: c.Entry, Rev: c.Revision}
}

func (pw *presenceWatch) onChange(c SessionChange) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.users.Apply(c)
	pw.deriveLocked(c.User, c.Revision)
}

// deriveLocked re-derives user's status and reports a change.
func (pw *presenceWatch) deriveLocked(user string, rev uint64) {
	m := pw.users[user]
	// Without copying the user's sessions (D26, D36).
	st := pw.p.StatusOfSeq(func(yield func(SessionEntry) bool) {
		for _, s := range m {
			if !yield(s.Entry) {
				return
			}
		}
	})
	prev, ok := pw.statuses[user]
	if !ok {
		prev = StatusOffline
	}
	if len(m) == 0 {
		delete(pw.users, user)
		delete(pw.statuses, user)
	} else {
		pw.statuses[user] = st
	}
	if st != prev {
		pw.fn(PresenceChange{User: user, Status: st, Previous: prev, Rev: rev})
	}
}

// tick sweeps stale gateways and re-derives every online user's status
// every interval until Stop.
func (pw *presenceWatch) tick(interval time.Duration) {
	defer close(pw.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-pw.stop:
			return
		case <-t.C:
		}
		pw.sw.Sweep(pw.p.cfg.TTL)
		pw.mu.Lock()
		for user, st := range pw.statuses {
			if st != StatusOnline {
				continue // only the passing of time turns online into away
			}
			// The newest write the status derives from: the same on
			// every watcher, so their event ids agree.
			var rev uint64
			for _, s := range pw.users[user] {
				rev = max(rev, s.Rev)
			}
			pw.deriveLocked(user, rev)
		}
		pw.mu.Unlock()
	}
}

// Stop ends the ticker, then the session watch.
func (pw *presenceWatch) Stop() {
	pw.once.Do(func() {
		close(pw.stop)
		<-pw.done
		pw.sw.Stop()
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

// TTL is the configured time to live of a gateway's entry (see
// GatewayTTL for what is written).
func (p *Presence) TTL() time.Duration { return p.cfg.TTL }
