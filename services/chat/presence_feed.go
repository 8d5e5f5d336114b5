package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/chatevents"
)

// The presence feed pushes presence changes to the people who see a user:
// the members of the user's direct chats and private groups (spec
// /JSP-chat.md §4.3, decision D28). The flow:
//
//	gateway ─session start / change / end─► NATS KV jsp_presence
//	        (an entry per live session, live while its gateway's entry
//	         is there; a dead gateway's entry expires, and the bucket's
//	         limit markers report the expiry: D39)
//	  ─► core.Presence.WatchSessions ─► PresenceFeed (per-user sessions,
//	     status online / away / offline) ─► changed? ─► queue (latest
//	     status per user) ─► worker: the user's conversations ─►
//	     Host.Ephemeral(presence.changed) on each ─► gateways ─► members
//
// The feed also sweeps: every SweepInterval it drops the sessions of
// gateways whose entry has not been refreshed for the registry's TTL plus
// Grace (a bus that reports no expiry, or a lost marker:
// core.SessionWatch.Sweep) and re-derives each user's status, since
// "away" follows from the passing of time, not from a write.

// Presence feed defaults; each is what a zero PresenceFeedConfig field
// means.
const (
	// DefaultPresenceMaxConversations caps the conversations one change is
	// pushed to.
	DefaultPresenceMaxConversations = 1000
	// DefaultPresenceQueue caps the users whose change waits for the
	// worker; when it is full the oldest waiting user's change is dropped
	// (members still query it with presence.get).
	DefaultPresenceQueue = 10000
)

// PresenceFeedConfig configures a PresenceFeed.
type PresenceFeedConfig struct {
	// Presence is the cluster's session registry. Required.
	Presence *core.Presence
	// SweepInterval is how often stale sessions are dropped and statuses
	// re-derived. Default: a third of the registry's TTL.
	SweepInterval time.Duration
	// Grace is how long past the TTL a gateway's entry that was neither
	// refreshed nor reported expired is still trusted, with the sessions
	// it keeps live. Default: the registry's TTL.
	Grace time.Duration
	// Channels also pushes changes to public channels. Default: off;
	// channels are large and open to anyone, direct chats and groups are
	// the people a user works with.
	Channels bool
	// MaxConversations caps the conversations one change is pushed to.
	// Default: DefaultPresenceMaxConversations.
	MaxConversations int
	// Queue caps the users waiting for the worker. Default:
	// DefaultPresenceQueue.
	Queue int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c *PresenceFeedConfig) validate() error {
	switch {
	case c.Presence == nil:
		return errors.New("chat: presence feed: Presence is required")
	case c.SweepInterval < 0, c.Grace < 0, c.MaxConversations < 0, c.Queue < 0:
		return errors.New("chat: presence feed: negative setting")
	}
	return nil
}

func (c *PresenceFeedConfig) setDefaults() {
	ttl := c.Presence.TTL()
	if c.SweepInterval == 0 {
		c.SweepInterval = max(ttl/3, time.Millisecond)
	}
	if c.Grace == 0 {
		c.Grace = ttl
	}
	if c.MaxConversations == 0 {
		c.MaxConversations = DefaultPresenceMaxConversations
	}
	if c.Queue == 0 {
		c.Queue = DefaultPresenceQueue
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// PresenceFeed follows the session registry and pushes presence.changed
// events. Create it with Service.StartPresenceFeed.
//
// Goroutines: the registry watch's (owned by the bus, stopped by Close),
// the sweeper and the worker (owned by the feed, joined by Close). Lock
// order: the session watch's, then mu (the watch calls onChange holding
// its own); mu guards the state, the worker publishes without it.
type PresenceFeed struct {
	s   *Service
	cfg PresenceFeedConfig
	log *slog.Logger

	mu        sync.Mutex
	sessions  core.SessionsByUser            // guarded by mu: user → key → session
	status    map[string]core.PresenceStatus // guarded by mu: derived status of users with sessions
	published map[string]core.PresenceStatus // guarded by mu: last status pushed per user (absent: offline)
	pending   map[string]uint64              // guarded by mu: users to push → revision of the cause
	order     []string                       // guarded by mu: pending users, oldest first
	live      bool                           // guarded by mu: the initial listing is over
	dropped   uint64                         // guarded by mu: changes dropped on a full queue
	pushed    uint64                         // guarded by mu: events published

	wake    chan struct{} // capacity 1: "pending not empty"
	stop    chan struct{}
	ctx     context.Context // ends at Close: bounds the worker's storage reads
	cancel  context.CancelFunc
	done    sync.WaitGroup
	watcher *core.SessionWatch
	once    sync.Once
}

// StartPresenceFeed starts pushing presence changes of the users in the
// registry to their conversations. The users present at start are taken
// as they are, without events (members ask presence.get when they open a
// conversation); every later change is pushed. Close stops it.
func (s *Service) StartPresenceFeed(ctx context.Context, cfg PresenceFeedConfig) (*PresenceFeed, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	f := &PresenceFeed{
		s: s, cfg: cfg, log: s.log.With("part", "presence-feed"),
		sessions:  core.SessionsByUser{},
		status:    map[string]core.PresenceStatus{},
		published: map[string]core.PresenceStatus{},
		pending:   map[string]uint64{},
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	w, err := cfg.Presence.WatchSessions(ctx, f.onChange)
	if err != nil {
		f.cancel()
		return nil, fmt.Errorf("chat: presence feed: %w", err)
	}
	f.watcher = w
	// A change the watch delivers between the end of its listing and
	// this point counts as part of the listing (recorded, not pushed):
	// the bus gives no hook at the boundary. Members still see it with
	// presence.get, and the user's next change is pushed.
	f.mu.Lock()
	f.live = true
	f.mu.Unlock()
	f.done.Add(2)
	go f.sweep()
	go f.work()
	return f, nil
}

// Close stops the watch, then the sweeper and the worker (cancelling a
// push in progress), and waits for them. A change the worker has not
// pushed yet is dropped.
func (f *PresenceFeed) Close() {
	f.once.Do(func() {
		f.watcher.Stop()
		close(f.stop)
		f.cancel()
		f.done.Wait()
	})
}

// PresenceFeedStats are a feed's counters.
type PresenceFeedStats struct {
	// Users is the number of users with live sessions.
	Users int
	// Pushed counts presence.changed events published (one per
	// conversation).
	Pushed uint64
	// Dropped counts changes dropped because the queue was full.
	Dropped uint64
}

// Stats returns the feed's counters.
func (f *PresenceFeed) Stats() PresenceFeedStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return PresenceFeedStats{Users: len(f.sessions), Pushed: f.pushed, Dropped: f.dropped}
}

// onChange applies one registry change, on the watch's goroutine.
func (f *PresenceFeed) onChange(c core.SessionChange) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sessions.Apply(c)
	f.deriveLocked(c.User, c.Revision)
}

// deriveLocked re-derives user's status and queues a push when it
// changed. Before the initial listing is over, the status is recorded as
// already published: nobody is told what they could not have missed.
func (f *PresenceFeed) deriveLocked(user string, rev uint64) {
	m := f.sessions[user]
	// Without copying the user's sessions: a copy per update is quadratic
	// in the sessions of one user (D36), and the status is usually decided
	// by the first active one.
	st := f.cfg.Presence.StatusOfSeq(func(yield func(core.SessionEntry) bool) {
		for _, s := range m {
			if !yield(s.Entry) {
				return
			}
		}
	})
	if len(m) == 0 {
		delete(f.sessions, user)
		delete(f.status, user)
	} else {
		f.status[user] = st
	}
	if !f.live {
		if st == core.StatusOffline {
			delete(f.published, user)
		} else {
			f.published[user] = st
		}
		return
	}
	if _, queued := f.pending[user]; queued {
		f.pending[user] = rev // the worker pushes the status current then
		return
	}
	if f.publishedLocked(user) == st {
		return
	}
	if len(f.order) >= f.cfg.Queue {
		// Drop the oldest waiting change rather than block the watch.
		old := f.order[0]
		f.order = f.order[1:]
		delete(f.pending, old)
		f.dropped++
	}
	f.pending[user] = rev
	f.order = append(f.order, user)
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *PresenceFeed) publishedLocked(user string) core.PresenceStatus {
	if st, ok := f.published[user]; ok {
		return st
	}
	return core.StatusOffline
}

// currentLocked is user's derived status now.
func (f *PresenceFeed) currentLocked(user string) core.PresenceStatus {
	if st, ok := f.status[user]; ok {
		return st
	}
	return core.StatusOffline
}

// sweep drops the sessions of gateways that neither refreshed their entry
// nor were reported gone within TTL+Grace and re-derives every user's
// status (online turns away with time), every SweepInterval until Close.
func (f *PresenceFeed) sweep() {
	defer f.done.Done()
	t := time.NewTicker(f.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		f.sweepOnce()
	}
}

func (f *PresenceFeed) sweepOnce() {
	// Outside mu: the watch reports the sessions it drops through
	// onChange, which takes mu.
	f.watcher.Sweep(f.cfg.Grace)
	f.mu.Lock()
	defer f.mu.Unlock()
	for user, m := range f.sessions {
		var rev uint64
		for _, s := range m {
			rev = max(rev, s.Rev)
		}
		// rev is the newest write the status derives from: the same on
		// every core that sweeps, so their event ids agree.
		f.deriveLocked(user, rev)
	}
}

// work pushes queued changes until Close.
func (f *PresenceFeed) work() {
	defer f.done.Done()
	for {
		select {
		case <-f.stop:
			return
		case <-f.wake:
		}
		for {
			f.mu.Lock()
			if len(f.order) == 0 {
				f.mu.Unlock()
				break
			}
			user := f.order[0]
			f.order = f.order[1:]
			rev := f.pending[user]
			delete(f.pending, user)
			prev, st := f.publishedLocked(user), f.currentLocked(user)
			if st == core.StatusOffline {
				delete(f.published, user)
			} else {
				f.published[user] = st
			}
			f.mu.Unlock()
			if prev == st {
				continue // changed and changed back before its turn
			}
			n := f.push(user, prev, st, rev)
			f.mu.Lock()
			f.pushed += uint64(n)
			f.mu.Unlock()
			select {
			case <-f.stop:
				return
			default:
			}
		}
	}
}

// pushTimeout bounds the storage reads of one push.
const pushTimeout = 10 * time.Second

// push publishes user's change on each of their conversations and returns
// how many it published. Failures are logged: presence is a hint, and
// presence.get answers from the registry itself.
func (f *PresenceFeed) push(user string, prev, st core.PresenceStatus, rev uint64) int {
	ctx, cancel := context.WithTimeout(f.ctx, pushTimeout)
	defer cancel()
	convs, err := f.conversations(ctx, user)
	if err != nil {
		f.log.Warn("chat: presence change not pushed", "user", user, "status", string(st), "err", err)
		return 0
	}
	id := presenceEventID(user, st, rev)
	now := f.s.now()
	n := 0
	for _, conv := range convs {
		ev := &chatevents.Event{
			Type: chatevents.PresenceChanged, ID: id, Time: now, Conversation: conv, Actor: user,
			Presence: &chatevents.Presence{User: user, Status: string(st), Previous: string(prev)},
		}
		if err := f.s.ephemeral(ev); err != nil {
			f.log.Warn("chat: presence change not published", "user", user, "conversation", conv, "err", err)
			continue
		}
		n++
	}
	return n
}

// conversations lists the conversations user's changes go to: direct
// chats and groups (and channels with Config.Channels), not archived, at
// most MaxConversations.
func (f *PresenceFeed) conversations(ctx context.Context, user string) ([]string, error) {
	var out []string
	after := ""
	for len(out) < f.cfg.MaxConversations {
		page, err := f.s.store.ListConversations(ctx, storage.ConversationQuery{Member: user, After: after, Limit: DefaultMaxPageSize})
		if err != nil {
			return nil, fmt.Errorf("conversations of %s: %w", user, err)
		}
		for _, c := range page {
			if c.Archived || c.Kind == string(chatevents.KindChannel) && !f.cfg.Channels {
				continue
			}
			if len(out) < f.cfg.MaxConversations {
				out = append(out, c.ID)
			}
		}
		if len(page) < DefaultMaxPageSize {
			break
		}
		after = page[len(page)-1].ID
	}
	return out, nil
}

// presenceEventID derives the event id from the change itself, so that
// every core running a feed publishes the same id for the same change and
// a client that sees it in several conversations (or from several cores)
// can tell it is one change.
func presenceEventID(user string, st core.PresenceStatus, rev uint64) string {
	return chatevents.PresenceID("presence", user, string(st), rev)
}

// WriteMetrics writes the feed's counters in the Prometheus text format.
func (f *PresenceFeed) WriteMetrics(w io.Writer) error {
	s := f.Stats()
	_, err := fmt.Fprintf(w, `# HELP jsp_chat_presence_users Users with live sessions, as the presence feed sees them.
# TYPE jsp_chat_presence_users gauge
jsp_chat_presence_users %d
# HELP jsp_chat_presence_events_total presence.changed events published (one per conversation).
# TYPE jsp_chat_presence_events_total counter
jsp_chat_presence_events_total %d
# HELP jsp_chat_presence_dropped_total Presence changes dropped because the feed's queue was full.
# TYPE jsp_chat_presence_dropped_total counter
jsp_chat_presence_dropped_total %d
`, s.Users, s.Pushed, s.Dropped)
	return err
}
