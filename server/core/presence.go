package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// Presence is the shared state cache of who is connected where
// (ARCHITECTURE §1, docs/bus.md): NATS KV bucket jsp_presence holds one
// entry per live session under bus.PresenceKey(user, session), written by
// the session's gateway when the session starts and refreshed every
// heartbeat; jsp_sessions holds the same record under
// bus.SessionKey(session) and each gateway's own entry under
// GatewayKey(node). Both buckets drop an entry that was not refreshed
// within their TTL, so the sessions of a gateway that died go offline
// without anyone cleaning up after it.
//
// A user is online when one of their sessions sent something within
// AwayAfter, away when every live session has been idle longer, and
// offline when there is none.
type Presence struct {
	cfg      PresenceConfig
	presence bus.KV
	sessions bus.KV
}

// PresenceStatus is a user's presence.
type PresenceStatus string

// Presence states.
const (
	StatusOnline  PresenceStatus = "online"
	StatusAway    PresenceStatus = "away"
	StatusOffline PresenceStatus = "offline"
)

// SessionEntry is the registry and presence record of one live session.
type SessionEntry struct {
	Session    string    `json:"session"`
	User       string    `json:"user"`
	Device     string    `json:"device,omitempty"`
	Gateway    string    `json:"gateway"`
	Transport  string    `json:"transport"`
	RemoteAddr string    `json:"remote_addr"`
	Since      time.Time `json:"since"`
	LastSeen   time.Time `json:"last_seen"`   // the last refresh
	LastActive time.Time `json:"last_active"` // the last message from the client
}

// UserPresence is the answer to a presence query.
type UserPresence struct {
	User     string         `json:"user"`
	Status   PresenceStatus `json:"status"`
	Sessions []SessionEntry `json:"sessions,omitempty"`
}

// PresenceChange is a user's change of status.
type PresenceChange struct {
	User     string         `json:"user"`
	Status   PresenceStatus `json:"status"`
	Previous PresenceStatus `json:"previous"`
	// Rev is the presence bucket's revision of the update that made the
	// change: every watcher sees the same change with the same Rev, so it
	// can name the change (an event id) the same way on every node.
	Rev uint64 `json:"-"`
}

// Presence defaults; each is what a zero PresenceConfig field means.
const (
	// DefaultPresenceTTL drops an entry not refreshed within it.
	DefaultPresenceTTL = 30 * time.Second
	// DefaultAwayAfter is the idle time after which a session is away.
	DefaultAwayAfter = 5 * time.Minute
)

// PresenceConfig configures Presence.
type PresenceConfig struct {
	// Bus holds the buckets. Required.
	Bus bus.Bus
	// TTL is the buckets' time to live: writers refresh their entries
	// more often (a third of it). Default: DefaultPresenceTTL.
	TTL time.Duration
	// AwayAfter is the idle time after which a session counts as away.
	// Default: DefaultAwayAfter.
	AwayAfter time.Duration
	// Replicas is the buckets' replica count in a clustered JetStream.
	// Default: 1.
	Replicas int
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// OpenPresence creates or opens the jsp_presence and jsp_sessions buckets.
func OpenPresence(ctx context.Context, cfg PresenceConfig) (*Presence, error) {
	if cfg.Bus == nil {
		return nil, errors.New("core: presence: Bus is required")
	}
	if cfg.TTL < 0 || cfg.AwayAfter < 0 {
		return nil, errors.New("core: presence: negative TTL or AwayAfter")
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultPresenceTTL
	}
	if cfg.AwayAfter == 0 {
		cfg.AwayAfter = DefaultAwayAfter
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Presence{cfg: cfg}
	var err error
	// KeyTTL keeps limit markers: watchers (WatchSessions) learn about
	// entries that expired, not only about those a gateway removed.
	if p.presence, err = cfg.Bus.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence, TTL: cfg.TTL, KeyTTL: true, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("core: presence bucket %s: %w", bus.BucketPresence, err)
	}
	if p.sessions, err = cfg.Bus.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions, TTL: cfg.TTL, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("core: session registry bucket %s: %w", bus.BucketSessions, err)
	}
	return p, nil
}

// Sessions returns the jsp_sessions bucket (session registry and gateway
// registry).
func (p *Presence) Sessions() bus.KV { return p.sessions }

// Put records or refreshes a live session in both buckets.
func (p *Presence) Put(ctx context.Context, e SessionEntry) error {
	data, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("core: presence: %w", err)
	}
	pk, err := bus.PresenceKey(e.User, e.Session)
	if err != nil {
		return fmt.Errorf("core: presence key: %w", err)
	}
	sk, err := bus.SessionKey(e.Session)
	if err != nil {
		return fmt.Errorf("core: session key: %w", err)
	}
	if _, err := p.sessions.Put(ctx, sk, data); err != nil {
		return fmt.Errorf("core: session registry: put %s: %w", e.Session, err)
	}
	if _, err := p.presence.Put(ctx, pk, data); err != nil {
		return fmt.Errorf("core: presence: put %s/%s: %w", e.User, e.Session, err)
	}
	return nil
}

// Remove deletes a session that ended from both buckets.
func (p *Presence) Remove(ctx context.Context, user, session string) error {
	pk, err := bus.PresenceKey(user, session)
	if err != nil {
		return fmt.Errorf("core: presence key: %w", err)
	}
	sk, err := bus.SessionKey(session)
	if err != nil {
		return fmt.Errorf("core: session key: %w", err)
	}
	err1 := p.presence.Delete(ctx, pk, 0)
	err2 := p.sessions.Delete(ctx, sk, 0)
	if err := errors.Join(err1, err2); err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		return fmt.Errorf("core: presence: remove %s/%s: %w", user, session, err)
	}
	return nil
}

// Query returns a user's status and live sessions, ordered by session id.
func (p *Presence) Query(ctx context.Context, user string) (UserPresence, error) {
	pat, err := bus.PresencePattern(user)
	if err != nil {
		return UserPresence{}, fmt.Errorf("core: presence of %q: %w", user, err)
	}
	var (
		mu   sync.Mutex
		live = map[string]SessionEntry{}
	)
	// Watch delivers the latest entry of every matching key before it
	// returns: that is the listing.
	w, err := p.presence.Watch(ctx, pat, func(e bus.KVEntry) {
		mu.Lock()
		defer mu.Unlock()
		if e.Op != bus.KVPut {
			delete(live, e.Key)
			return
		}
		var s SessionEntry
		if json.Unmarshal(e.Value, &s) == nil {
			live[e.Key] = s
		}
	})
	if err != nil {
		return UserPresence{}, fmt.Errorf("core: presence of %q: %w", user, err)
	}
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	up := UserPresence{User: user}
	for _, s := range live {
		up.Sessions = append(up.Sessions, s)
	}
	slices.SortFunc(up.Sessions, func(a, b SessionEntry) int { return strings.Compare(a.Session, b.Session) })
	up.Status = p.status(up.Sessions)
	return up, nil
}

// status derives a user's status from their live sessions.
func (p *Presence) status(ss []SessionEntry) PresenceStatus {
	return p.StatusOfSeq(slices.Values(ss))
}

// statusOf is status over a user's session map, without copying it: with
// many sessions under one user (anonymous clients), a copy per KV update
// made the watch quadratic in the user's sessions (D26).
func (p *Presence) statusOf(m map[string]SessionEntry) PresenceStatus {
	return p.StatusOfSeq(maps.Values(m))
}

// Watch calls fn for every change of a user's status, on the watcher's
// goroutine, until the returned watcher is stopped. The users present when
// the watch starts are reported as changes from offline.
func (p *Presence) Watch(ctx context.Context, fn func(PresenceChange)) (bus.Watcher, error) {
	users := map[string]map[string]SessionEntry{} // user → key → entry; owned by the watch goroutine
	statuses := map[string]PresenceStatus{}
	return p.presence.Watch(ctx, ">", func(e bus.KVEntry) {
		user, err := userOfKey(e.Key)
		if err != nil {
			return
		}
		m := users[user]
		if e.Op == bus.KVPut {
			var s SessionEntry
			if json.Unmarshal(e.Value, &s) != nil {
				return
			}
			if m == nil {
				m = map[string]SessionEntry{}
				users[user] = m
			}
			m[e.Key] = s
		} else {
			delete(m, e.Key)
		}
		st := p.statusOf(m)
		prev, ok := statuses[user]
		if !ok {
			prev = StatusOffline
		}
		if len(m) == 0 {
			delete(users, user)
			delete(statuses, user)
		} else {
			statuses[user] = st
		}
		if st != prev {
			fn(PresenceChange{User: user, Status: st, Previous: prev, Rev: e.Revision})
		}
	})
}

// userOfKey decodes the user of a presence key "<user token>.<session>".
func userOfKey(key string) (string, error) {
	tok, _, ok := strings.Cut(key, ".")
	if !ok {
		return "", fmt.Errorf("presence key %q without a session", key)
	}
	return bus.DecodeToken(tok)
}

// GatewayEntry is one gateway's entry in the gateway registry: where
// clients reach it and how loaded it is.
type GatewayEntry struct {
	Node        string    `json:"node"`
	URLs        []string  `json:"urls"`
	Sessions    int       `json:"sessions"`
	MaxSessions int       `json:"max_sessions"`
	Draining    bool      `json:"draining,omitempty"`
	Updated     time.Time `json:"updated"`
}

// GatewayPrefix starts the keys of the gateway registry in jsp_sessions;
// session keys are a single token, so they never collide.
const GatewayPrefix = "gw"

// GatewayKey is the jsp_sessions key of a gateway's registry entry.
func GatewayKey(node string) (string, error) { return bus.KeyOf(GatewayPrefix, node) }

// PutGateway records or refreshes a gateway's entry.
func (p *Presence) PutGateway(ctx context.Context, e GatewayEntry) error {
	k, err := GatewayKey(e.Node)
	if err != nil {
		return fmt.Errorf("core: gateway key: %w", err)
	}
	data, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	if _, err := p.sessions.Put(ctx, k, data); err != nil {
		return fmt.Errorf("core: gateway registry: put %s: %w", e.Node, err)
	}
	return nil
}

// RemoveGateway deletes a gateway's entry, as a gateway does on shutdown.
func (p *Presence) RemoveGateway(ctx context.Context, node string) error {
	k, err := GatewayKey(node)
	if err != nil {
		return fmt.Errorf("core: gateway key: %w", err)
	}
	if err := p.sessions.Delete(ctx, k, 0); err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		return fmt.Errorf("core: gateway registry: remove %s: %w", node, err)
	}
	return nil
}

// WatchGateways calls fn with the full set of live gateways, keyed by
// node, after the initial listing and after every change, on the
// watcher's goroutine.
func (p *Presence) WatchGateways(ctx context.Context, fn func(map[string]GatewayEntry)) (bus.Watcher, error) {
	live := map[string]GatewayEntry{}
	return p.sessions.Watch(ctx, GatewayPrefix+".>", func(e bus.KVEntry) {
		if e.Op == bus.KVPut {
			var g GatewayEntry
			if json.Unmarshal(e.Value, &g) != nil {
				return
			}
			live[e.Key] = g
		} else {
			delete(live, e.Key)
		}
		out := make(map[string]GatewayEntry, len(live))
		for _, g := range live {
			out[g.Node] = g
		}
		fn(out)
	})
}
