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
// (ARCHITECTURE §1, docs/bus.md, decision D39). NATS KV bucket
// jsp_presence holds one entry per live session under
// bus.PresenceKey(user, session) and each gateway's own entry under
// GatewayKey(node); jsp_sessions holds the same session record under
// bus.SessionKey(session).
//
// A session's entry is written when the session starts, rewritten only
// when something a reader sees changes, and removed when it ends: an idle
// session costs no write. Its liveness follows its gateway's: the gateway
// rewrites its own entry every heartbeat with a per-key TTL, and a session
// entry counts only while the entry of the gateway and incarnation it
// names is there. When a gateway's entry expires or is removed, every
// reader treats its sessions as gone at once, and a live gateway removes
// them (SweepSessions), so a killed gateway's sessions go offline within
// the TTL without a write per session per heartbeat.
//
// A user is online when one of their live sessions sent something within
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
	Session string `json:"session"`
	User    string `json:"user"`
	Device  string `json:"device,omitempty"`
	Gateway string `json:"gateway"`
	// Incarnation names the run of the gateway that holds the session:
	// the entry is live while that gateway's entry (GatewayEntry) carries
	// the same incarnation. Empty: the entry is not tied to a gateway's
	// liveness (a writer that removes what it writes).
	Incarnation string    `json:"incarnation,omitempty"`
	Transport   string    `json:"transport"`
	RemoteAddr  string    `json:"remote_addr"`
	Since       time.Time `json:"since"`
	// LastSeen is when the entry was written; Query reports the later of
	// it and the gateway's last heartbeat.
	LastSeen   time.Time `json:"last_seen"`
	LastActive time.Time `json:"last_active"` // the last message from the client, as of the last write
}

// liveIn reports whether s counts given the live gateways, keyed by node.
func (s *SessionEntry) liveIn(gws map[string]GatewayEntry) bool {
	if s.Incarnation == "" {
		return true
	}
	g, ok := gws[s.Gateway]
	return ok && g.Incarnation == s.Incarnation
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
	// change (for a gateway that died, of its last heartbeat; for idling
	// into away, of the user's newest entry): every watcher sees the same
	// change with the same Rev, so it can name the change (an event id)
	// the same way on every node.
	Rev uint64 `json:"-"`
}

// Presence defaults; each is what a zero PresenceConfig field means.
const (
	// DefaultPresenceTTL drops a gateway's entry not refreshed within it
	// (and with it the gateway's sessions).
	DefaultPresenceTTL = 30 * time.Second
	// DefaultAwayAfter is the idle time after which a session is away.
	DefaultAwayAfter = 5 * time.Minute
)

// PresenceConfig configures Presence.
type PresenceConfig struct {
	// Bus holds the buckets. Required.
	Bus bus.Bus
	// TTL is the time to live of a gateway's entry: gateways refresh
	// theirs more often (a third of it). NATS needs at least a second, so
	// PutGateway writes at least that. Session entries have no TTL: they
	// live as long as their gateway's entry. Default: DefaultPresenceTTL.
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
	// No bucket TTL: an idle session is never rewritten, so a bucket TTL
	// would drop it (D39). KeyTTL gives gateway entries their per-key
	// TTL and keeps limit markers, so that watchers learn about a
	// gateway entry that expired, not only about one that was removed.
	if p.presence, err = cfg.Bus.KV(ctx, bus.KVConfig{Bucket: bus.BucketPresence, KeyTTL: true, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("core: presence bucket %s: %w", bus.BucketPresence, err)
	}
	if p.sessions, err = cfg.Bus.KV(ctx, bus.KVConfig{Bucket: bus.BucketSessions, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("core: session registry bucket %s: %w", bus.BucketSessions, err)
	}
	return p, nil
}

// Sessions returns the jsp_sessions bucket (session registry).
func (p *Presence) Sessions() bus.KV { return p.sessions }

// Put records a live session, or a change of it, in both buckets.
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
	gws, err := p.gatewaysFor(ctx, live)
	if err != nil {
		return UserPresence{}, fmt.Errorf("core: presence of %q: %w", user, err)
	}
	up := UserPresence{User: user}
	for _, s := range live {
		if !s.liveIn(gws) {
			continue // its gateway is gone or restarted
		}
		if g, ok := gws[s.Gateway]; ok && g.Updated.After(s.LastSeen) {
			s.LastSeen = g.Updated
		}
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

// userOfKey decodes the user of a presence key "<user token>.<session>".
func userOfKey(key string) (string, error) {
	tok, _, ok := strings.Cut(key, ".")
	if !ok {
		return "", fmt.Errorf("presence key %q without a session", key)
	}
	return bus.DecodeToken(tok)
}
