package gateway

import (
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Session resumption (JSP §11.1 item 4, docs/decisions.md D15).
//
// In bus mode every WELCOME carries a resume token. When a session's
// transport drops, its host detaches: the gateway keeps the session's
// identity, the hash of its last token and, per subscribed channel, the
// cursor to replay from (the client's last ACK cursor, JSP §5.6, or the
// channel's position when the subscription started), for the resume
// window. A HELLO with a matching `resume` from the same identity claims
// that state, once: the new session keeps the id, gets a new token, and
// each channel is subscribed again and replayed from storage after its
// cursor before live delivery continues (the catch-up path of
// subscribeCluster, which sends every number once and in order). A
// channel whose missed events were trimmed gets ERROR RECOVERY_IMPOSSIBLE
// with the channel's name and continues live.
//
//	transport drops ─► host.run ends ─► detach(cursors) ──┐
//	                                                      │ kept ≤ Window,
//	HELLO resume{id, token} ─► claim (token, identity) ◄──┘ MaxDetached,
//	  ─► WELCOME resumed, new token ─► resubscribe + replay   MaxBytes
//
// The state lives in the gateway's memory: a gateway restart forgets it,
// and a client whose resume is refused with SESSION_NOT_FOUND starts a
// new session and subscribes again with Since (client package).

// Defaults of ResumeConfig.
const (
	// DefaultResumeWindow is how long a detached session can be resumed.
	// Two minutes cover a phone changing networks or a laptop waking up,
	// without holding state for clients that are gone.
	DefaultResumeWindow = 2 * time.Minute
	// DefaultMaxDetached caps the detached sessions kept; the oldest is
	// dropped to make room.
	DefaultMaxDetached = 10000
	// DefaultMaxDetachedBytes caps the memory of all detached state
	// (channel names, cursors and fixed overhead, see entrySize); the
	// oldest sessions are dropped to stay under it.
	DefaultMaxDetachedBytes = 64 << 20
	// resumeTakeover bounds how long a resume of a session whose old
	// transport the gateway still serves waits for that host to detach
	// after closing it.
	resumeTakeover = 2 * time.Second
	// detachedEntryOverhead approximates the fixed memory of one detached
	// session (entry, map slots, list element) for the MaxBytes budget.
	detachedEntryOverhead = 256
	// detachedChannelOverhead approximates one cursor's memory besides its
	// name.
	detachedChannelOverhead = 48
)

// ResumeConfig configures session resumption. The zero value means the
// defaults; resumption needs a bus (Config.Bus), since replay reads
// storage through the core.
type ResumeConfig struct {
	// Disabled turns resumption off: WELCOME carries no resume token and
	// a HELLO with `resume` starts a new session.
	Disabled bool
	// Window is how long a session stays resumable after its transport
	// dropped. Default: DefaultResumeWindow.
	Window time.Duration
	// MaxDetached caps the detached sessions kept. Default:
	// DefaultMaxDetached.
	MaxDetached int
	// MaxBytes caps the approximate memory of all detached state.
	// Default: DefaultMaxDetachedBytes.
	MaxBytes int
}

func (c *ResumeConfig) setDefaults() {
	if c.Window == 0 {
		c.Window = DefaultResumeWindow
	}
	if c.MaxDetached == 0 {
		c.MaxDetached = DefaultMaxDetached
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxDetachedBytes
	}
}

func (c *ResumeConfig) validate() error {
	if c.Window < 0 || c.MaxDetached < 0 || c.MaxBytes < 0 {
		return errors.New("gateway: negative Resume.Window, MaxDetached or MaxBytes")
	}
	return nil
}

// resumeState is what a claimed session continues with: the cursor of each
// channel it was subscribed to.
type resumeState struct {
	cursors map[string]cursor
}

// cursor is where a resumed subscription replays from: the events with
// seq > seq. A subscription whose position was never known (no event, no
// ACK, start not learned yet) resumes live.
type cursor struct {
	seq   uint64
	known bool
}

// resumeEntry is one resumable session: live (a host serves it) or
// detached (waiting for a resume until its window ends).
type resumeEntry struct {
	id     string
	token  [sha256.Size]byte // hash of the current token: memory holds no usable token
	user   string
	device string
	live   *host         // nil when detached
	gone   chan struct{} // closed when the live host detaches
	// Detached entries only.
	at      time.Time
	cursors map[string]cursor
	size    int
	elem    *list.Element // in resumeStore.order
}

// resumeStore holds the gateway's resumable sessions.
type resumeStore struct {
	cfg ResumeConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*resumeEntry // guarded by mu: by session id (hex)
	order   *list.List              // guarded by mu: detached entries, oldest first
	bytes   int                     // guarded by mu: size of the detached entries

	resumed    atomic.Int64 // sessions resumed
	refused    atomic.Int64 // resumes refused with SESSION_NOT_FOUND
	expired    atomic.Int64 // detached sessions dropped at the end of their window
	evicted    atomic.Int64 // detached sessions dropped for MaxDetached or MaxBytes
	impossible atomic.Int64 // channels answered RECOVERY_IMPOSSIBLE
}

func newResumeStore(cfg ResumeConfig, now func() time.Time) *resumeStore {
	return &resumeStore{cfg: cfg, now: now, entries: map[string]*resumeEntry{}, order: list.New()}
}

func tokenHash(tok []byte) [sha256.Size]byte { return sha256.Sum256(tok) }

// attach registers h's session as live with the token of its WELCOME.
func (s *resumeStore) attach(h *host) {
	tok := h.sess.ResumeToken()
	if len(tok) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[h.id]; old != nil {
		// A claimed id is removed before its new host attaches; an entry
		// left here is a stale one of the same id.
		s.removeLocked(old)
	}
	s.entries[h.id] = &resumeEntry{id: h.id, token: tokenHash(tok), user: h.auth.User, device: h.auth.Device,
		live: h, gone: make(chan struct{})}
}

// detach turns h's live entry into a detached one holding cursors, or
// drops it when keep is false (the gateway is closing, or the client
// closed the session on purpose).
func (s *resumeStore) detach(h *host, cursors map[string]cursor, keep bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[h.id]
	if e == nil || e.live != h {
		return
	}
	close(e.gone)
	e.live = nil
	if !keep {
		delete(s.entries, e.id)
		return
	}
	e.at = s.now()
	e.cursors = cursors
	e.size = detachedEntryOverhead
	for name := range cursors {
		e.size += len(name) + detachedChannelOverhead
	}
	e.elem = s.order.PushBack(e)
	s.bytes += e.size
	s.sweepLocked()
}

// removeLocked forgets e. s.mu must be held.
func (s *resumeStore) removeLocked(e *resumeEntry) {
	delete(s.entries, e.id)
	if e.elem != nil {
		s.order.Remove(e.elem)
		s.bytes -= e.size
		e.elem = nil
	}
}

// sweep drops the detached sessions whose window has ended.
func (s *resumeStore) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked()
}

// sweepLocked drops expired detached sessions, then the oldest ones while
// over MaxDetached or MaxBytes. Entries are in detach order and share one
// window, so the expired ones are at the front. s.mu must be held.
func (s *resumeStore) sweepLocked() {
	now := s.now()
	for f := s.order.Front(); f != nil; f = s.order.Front() {
		e := f.Value.(*resumeEntry)
		switch {
		case now.Sub(e.at) >= s.cfg.Window:
			s.expired.Add(1)
		case s.order.Len() > s.cfg.MaxDetached, s.bytes > s.cfg.MaxBytes:
			s.evicted.Add(1)
		default:
			return
		}
		s.removeLocked(e)
	}
}

// detachedCount returns the number of detached sessions kept.
func (s *resumeStore) detachedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// errNoSession is the one answer to every failed resume: unknown id,
// wrong token, other identity or expired window look the same, so that a
// guesser learns nothing (JSP §11.1 item 4).
var errNoSession = jsperr.New(jsperr.SessionNotFound, "no resumable session with this id and token")

// claim is the session layer's resume hook (session.ServerOptions.Resume):
// it checks r's token and the identity against the session's entry, and
// takes the detached state, which makes the token single-use. A session
// whose old transport is still served (the client noticed the drop first)
// is closed here, and its state taken once its host has detached.
func (s *resumeStore) claim(ctx context.Context, r *wire.Resume, ident session.Identity) (any, error) {
	id := hex.EncodeToString(r.SessionID)
	want := tokenHash(r.Token)
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		e := s.entries[id]
		if e == nil || subtle.ConstantTimeCompare(e.token[:], want[:]) != 1 || e.user != ident.User || e.device != ident.Device {
			s.mu.Unlock()
			s.refused.Add(1)
			return nil, errNoSession
		}
		if e.live == nil {
			if s.now().Sub(e.at) >= s.cfg.Window {
				s.removeLocked(e)
				s.expired.Add(1)
				s.mu.Unlock()
				s.refused.Add(1)
				return nil, errNoSession
			}
			s.removeLocked(e)
			s.mu.Unlock()
			s.resumed.Add(1)
			return &resumeState{cursors: e.cursors}, nil
		}
		live, gone := e.live, e.gone
		s.mu.Unlock()
		if attempt > 0 {
			s.refused.Add(1)
			return nil, errNoSession
		}
		// The client resumes on a new transport while the gateway still
		// serves the old one: the old one is dead to the client.
		live.log.Info("session resumed on another connection; closing the old one")
		_ = live.sess.CloseWithError(jsperr.TransportClosed, "session resumed on another connection")
		t := time.NewTimer(resumeTakeover)
		select {
		case <-gone:
			t.Stop()
		case <-t.C:
			s.refused.Add(1)
			return nil, errNoSession
		case <-ctx.Done():
			t.Stop()
			s.refused.Add(1)
			return nil, errNoSession
		}
	}
}

// ---------------------------------------------------------------------------
// The host's side.

// ackCursors records the client's cumulative cursors (JSP §5.6): what it
// has processed, so what a resume replays after. A cursor only moves
// forward, and only for channels the session is subscribed to, so a
// client cannot make the gateway hold state for arbitrary names.
func (h *host) ackCursors(m *wire.Ack) {
	if h.g.cluster == nil || len(m.Cursors) == 0 {
		return
	}
	h.cmu.Lock()
	defer h.cmu.Unlock()
	for _, c := range m.Cursors {
		if _, ok := h.subscribed[c.Channel]; !ok {
			continue
		}
		// JSP §11.1: a cursor beyond what was sent is the client's error;
		// it is clamped to the last number sent, never trusted further.
		seq := min(c.Seq, h.last[c.Channel])
		if seq > h.acked[c.Channel] {
			h.acked[c.Channel] = seq
		}
	}
}

// noteSubscribed records the cursor a channel's subscription starts from:
// since for a SUBSCRIBE with Since, otherwise the channel's last number
// when the subscription took effect (asked from the core after the hub
// subscription, so every later event is either delivered live or
// replayed).
func (h *host) noteSubscribed(name string, since uint64, hasSince bool) {
	h.cmu.Lock()
	h.subscribed[name] = struct{}{}
	if hasSince {
		h.base[name] = since
		h.cmu.Unlock()
		return
	}
	delete(h.base, name)
	h.cmu.Unlock()
	if h.g.live.match(name) {
		// A live channel stores nothing a resume could replay (D43): it
		// resumes live, and its position is not worth a core request per
		// SUBSCRIBE, which a reconnecting crowd pays all at once.
		return
	}
	h.wg.Go(func() {
		// Not the session's context: a transport that drops right after
		// the SUBSCRIBE must not cancel the query, since run waits for it
		// before detaching, and the detached state needs the position.
		rctx, cancel := context.WithTimeout(h.g.ctx, h.g.cfg.CoreTimeout)
		rep, err := h.g.cluster.client.Recover(rctx, name, storage.Seq(math.MaxInt64), 1)
		cancel()
		if err != nil || rep.Info == nil {
			h.log.Debug("gateway: channel position not known", "channel", name, "err", err)
			return
		}
		h.cmu.Lock()
		if _, ok := h.subscribed[name]; ok {
			if _, ok := h.base[name]; !ok {
				h.base[name] = uint64(rep.Info.Last)
			}
		}
		h.cmu.Unlock()
	})
}

// noteUnsubscribed forgets a channel's cursors.
func (h *host) noteUnsubscribed(name string) {
	h.cmu.Lock()
	delete(h.subscribed, name)
	delete(h.base, name)
	delete(h.acked, name)
	h.cmu.Unlock()
}

// cursors returns, per subscribed channel, where a resume replays from:
// the client's ACK cursor, else the subscription's start, else the last
// number sent. A channel with none of these resumes live.
func (h *host) cursors() map[string]cursor {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	out := make(map[string]cursor, len(h.subscribed))
	for name := range h.subscribed {
		var c cursor
		if a, ok := h.acked[name]; ok {
			c = cursor{seq: max(a, h.base[name]), known: true}
		} else if b, ok := h.base[name]; ok {
			c = cursor{seq: b, known: true}
		} else if l, ok := h.last[name]; ok {
			c = cursor{seq: l, known: true}
		}
		out[name] = c
	}
	return out
}

// resumeSubscriptions restores a resumed session's subscriptions: each is
// subscribed again with Since = its cursor, so the missed events are
// replayed from storage in order before live delivery continues (or, when
// they were trimmed, RECOVERY_IMPOSSIBLE). No request id: the client did
// not ask, so nothing is ACKed.
//
// Each channel's cursor is kept before the subscribe is tried: when the
// subscribe fails (a core that does not answer its authorization), the
// channel still goes into the next detached state with its cursor, and a
// later resume tries again instead of dropping a subscription the client
// believes it has.
func (h *host) resumeSubscriptions(ctx context.Context, st *resumeState) {
	for name, cur := range st.cursors {
		h.cmu.Lock()
		h.subscribed[name] = struct{}{}
		if cur.known {
			h.base[name] = cur.seq
		}
		h.cmu.Unlock()
		h.subscribeCluster(ctx, &wire.Subscribe{Channel: name, Since: cur.seq, HasSince: cur.known})
	}
}

// recoveryImpossible tells the client that the events of name after since
// are no longer retained (JSP §5.7, §11.1 item 4): ERROR
// RECOVERY_IMPOSSIBLE naming the channel. The subscription continues live.
func (h *host) recoveryImpossible(name string, since, oldest storage.Seq) {
	h.g.resumes.impossible.Add(1)
	m := &wire.ErrorMessage{Code: jsperr.RecoveryImpossible, Channel: name,
		Reason: truncateReason("events after " + strconv.FormatUint(uint64(since), 10) + " trimmed; oldest retained " + strconv.FormatUint(uint64(oldest), 10))}
	if err := h.sess.Send(m); err == nil {
		h.g.metrics.messagesOut.add(wire.FrameError.String(), 1)
	}
}

func truncateReason(s string) string {
	if len(s) > wire.MaxReasonLen {
		return s[:wire.MaxReasonLen]
	}
	return s
}

// resumeGauges are the resumption metrics for /metrics.
func (s *resumeStore) gauges() []gauge {
	return []gauge{
		{"jsp_resume_detached_sessions", "gauge", "Detached sessions kept for a resume.", int64(s.detachedCount())},
		{"jsp_resume_resumed_total", "counter", "Sessions resumed (JSP §11.1).", s.resumed.Load()},
		{"jsp_resume_refused_total", "counter", "Resumes refused with SESSION_NOT_FOUND.", s.refused.Load()},
		{"jsp_resume_expired_total", "counter", "Detached sessions dropped at the end of the resume window.", s.expired.Load()},
		{"jsp_resume_evicted_total", "counter", "Detached sessions dropped to stay under MaxDetached or MaxBytes.", s.evicted.Load()},
		{"jsp_resume_recovery_impossible_total", "counter", "Subscriptions answered RECOVERY_IMPOSSIBLE.", s.impossible.Load()},
	}
}

// resumeHook returns the session layer's resume hook, or nil when the
// gateway does not resume sessions (then no token is issued either).
func (g *Gateway) resumeHook() func(context.Context, *wire.Resume, session.Identity) (any, error) {
	if g.resumes == nil {
		return nil
	}
	return g.resumes.claim
}
