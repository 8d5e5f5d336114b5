package gateway

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/wire"
)

// registryOpTimeout bounds one registry write: the registry is a cache,
// and a slow bus must not hold up a session's start or end for long.
const registryOpTimeout = 2 * time.Second

// PresenceCommand is the command name of the presence query service: the
// body is a user id, the reply the JSON of core.UserPresence.
const PresenceCommand = "presence"

func (c *Config) setRegistryDefaults() {
	if c.RegistryHeartbeat == 0 {
		c.RegistryHeartbeat = DefaultRegistryHeartbeat
	}
	if c.AwayAfter == 0 {
		c.AwayAfter = DefaultAwayAfter
	}
	if c.SessionRetention == 0 {
		c.SessionRetention = DefaultSessionRetention
	}
}

// registry keeps this gateway's sessions and its own entry in the shared
// state cache (core.Presence, NATS KV) and follows the other gateways'
// entries, whose URLs go to clients in WELCOME and GOAWAY.
//
// Goroutines: run (the heartbeat), owned by the gateway's bg group and
// ended by g.ctx; the gateway watch's goroutine, owned by the bus and
// stopped by close.
type registry struct {
	g *Gateway
	// presence is set once the buckets are open: run opens them, and
	// retries every heartbeat while the bus's JetStream does not answer,
	// so that a gateway starts (and serves) while the shared state cache
	// is still electing its leaders.
	presence atomic.Pointer[core.Presence]

	// peers are the URLs of the other live gateways, least loaded first.
	peers atomic.Pointer[[]string]
	// live is the number of live gateways in the registry, this one
	// included once it has written its entry.
	live atomic.Int64
	// errors counts failed registry writes (bus errors).
	errors atomic.Uint64

	// kick asks run to write the gateway's entry now (drain, or the
	// entry was found gone).
	kick chan struct{}
	// incarnation names this run of the gateway in its entry and its
	// sessions' entries (D39).
	incarnation string
	// since is when this run started, for the gateway's entry.
	since time.Time
	// sessions are the local sessions' registry states (registry_sessions.go).
	sessions sessionRegs
	// work wakes the writer (registry_sessions.go): a session pass, and a
	// sweep when sweep is set.
	work  chan struct{}
	sweep atomic.Bool

	mu       sync.Mutex
	draining bool                         // guarded by mu
	watcher  bus.Watcher                  // guarded by mu; nil until the buckets are open
	closed   bool                         // guarded by mu
	gws      map[string]core.GatewayEntry // guarded by mu: the live gateways as last watched
	seen     map[string]time.Time         // guarded by mu: when each gateway's entry last changed (local clock)
	swept    map[string]string            // guarded by mu: node → incarnation whose loss was swept
	ownSeen  bool                         // guarded by mu: this gateway's entry was in the watch
}

// newRegistry returns the registry of a gateway with Config.Bus; run
// opens the buckets.
func newRegistry(g *Gateway) *registry {
	r := &registry{g: g, kick: make(chan struct{}, 1), work: make(chan struct{}, 1), incarnation: newIncarnation(g.cfg.Rand, g.cfg.Now()),
		since: g.cfg.Now(), sessions: sessionRegs{m: map[*host]*sessionReg{}}, gws: map[string]core.GatewayEntry{},
		seen: map[string]time.Time{}, swept: map[string]string{}}
	empty := []string{}
	r.peers.Store(&empty)
	return r
}

// open opens the buckets and starts following the gateway registry; false
// when the bus did not answer (run retries at the next heartbeat).
func (r *registry) open(ctx context.Context) bool {
	g := r.g
	octx, cancel := context.WithTimeout(ctx, g.cfg.CoreTimeout)
	defer cancel()
	p, err := core.OpenPresence(octx, core.PresenceConfig{
		Bus:       g.cfg.Bus,
		TTL:       RegistryTTLBeats * g.cfg.RegistryHeartbeat,
		AwayAfter: g.cfg.AwayAfter,
		Now:       g.cfg.Now,
	})
	if err != nil {
		r.failed("open the buckets", err)
		return false
	}
	// The gateway's entry goes first: its sessions' entries count only
	// while it is there (D39).
	if !r.putGatewayWith(ctx, p, r.g.Health().Sessions) {
		return false
	}
	w, err := p.WatchGateways(ctx, r.setPeers)
	if err != nil {
		r.failed("watch the gateway registry", err)
		return false
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		w.Stop()
		return false
	}
	r.watcher = w
	r.mu.Unlock()
	r.presence.Store(p)
	return true
}

// setPeers keeps the URLs of the other live gateways that are not
// draining, the least loaded first (sessions over their cap), so that
// clients that take the list in order spread over the cluster.
func (r *registry) setPeers(all map[string]core.GatewayEntry) {
	r.live.Store(int64(len(all)))
	r.track(all)
	var es []core.GatewayEntry
	for node, e := range all {
		if node == r.g.cfg.NodeID || e.Draining || len(e.URLs) == 0 {
			continue
		}
		es = append(es, e)
	}
	load := func(e core.GatewayEntry) float64 {
		if e.MaxSessions <= 0 {
			return 0
		}
		return float64(e.Sessions) / float64(e.MaxSessions)
	}
	slices.SortFunc(es, func(a, b core.GatewayEntry) int {
		if la, lb := load(a), load(b); la != lb {
			if la < lb {
				return -1
			}
			return 1
		}
		if a.Node < b.Node {
			return -1
		}
		return 1
	})
	var urls []string
	for _, e := range es {
		urls = append(urls, e.URLs...)
	}
	r.peers.Store(&urls)
}

// alternatives returns the addresses announced to clients in WELCOME and
// GOAWAY: the configured ones, then the live gateways from the registry,
// without duplicates, at most wire.MaxGateways (JSP §5.2, §5.5).
func (g *Gateway) alternatives() []string {
	out := slices.Clone(g.cfg.Alternatives)
	if g.reg != nil {
		for _, u := range *g.reg.peers.Load() {
			if !slices.Contains(out, u) {
				out = append(out, u)
			}
		}
	}
	if len(out) > wire.MaxGateways {
		out = out[:wire.MaxGateways]
	}
	return out
}

// publicURLs are this gateway's client URLs for the registry:
// Config.PublicURLs, else the bound addresses that name a host. A listener
// bound to an unspecified address (":7400") is left out: "localhost" in
// another gateway's WELCOME would send clients to their own machine, so
// such a gateway needs PublicURLs to be announced.
func (g *Gateway) publicURLs() []string {
	if len(g.cfg.PublicURLs) > 0 {
		return g.cfg.PublicURLs
	}
	a := g.Addrs()
	if g.cfg.WSBehindTLSProxy {
		// Clients reach this listener only through the proxy's wss:// URL,
		// which the gateway cannot know: PublicURLs names it.
		a.WebSocket = nil
	}
	for _, p := range []*net.Addr{&a.QUIC, &a.TCP, &a.WebSocket} {
		if *p == nil {
			continue
		}
		host, _, err := net.SplitHostPort((*p).String())
		if ip := net.ParseIP(host); err != nil || host == "" || ip != nil && ip.IsUnspecified() {
			*p = nil
		}
	}
	return a.URLs()
}

// run writes the gateway's entry every heartbeat until the gateway
// closes, then removes it. The sessions' entries are the writer's
// (registry_sessions.go): no write per session per heartbeat (D39).
func (r *registry) run() {
	t := time.NewTicker(r.g.cfg.RegistryHeartbeat)
	defer t.Stop()
	r.g.bg.Go(r.writer)
	opened := r.open(r.g.ctx)
	if opened {
		r.opened()
	}
	for {
		select {
		case <-r.g.ctx.Done():
			if p := r.presence.Load(); p != nil {
				ctx, cancel := context.WithTimeout(context.Background(), registryOpTimeout)
				defer cancel()
				if err := p.RemoveGateway(ctx, r.g.cfg.NodeID); err != nil {
					r.failed("remove gateway entry", err)
				}
			}
			return
		case <-r.kick:
			if opened {
				r.putGateway(r.g.ctx, r.g.Health().Sessions)
			}
		case <-t.C:
			if !opened {
				if opened = r.open(r.g.ctx); !opened {
					continue
				}
				r.opened()
				continue
			}
			r.putGateway(r.g.ctx, r.g.Health().Sessions)
			r.checkStale()
			r.wake(false)
		}
	}
}

// opened follows the first write of the gateway's entry: the writer
// writes the sessions that started before, and sweeps once, which
// removes a previous run's sessions when this gateway restarted under
// the same node id and nobody else was there to do it.
func (r *registry) opened() { r.wake(true) }

func (r *registry) putGateway(ctx context.Context, sessions int) {
	if p := r.presence.Load(); p != nil {
		r.putGatewayWith(ctx, p, sessions)
	}
}

// putGatewayWith writes the gateway's entry with its per-key TTL.
func (r *registry) putGatewayWith(ctx context.Context, p *core.Presence, sessions int) bool {
	r.mu.Lock()
	draining := r.draining
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, registryOpTimeout)
	defer cancel()
	err := p.PutGateway(ctx, core.GatewayEntry{
		Node:        r.g.cfg.NodeID,
		URLs:        r.g.publicURLs(),
		Sessions:    sessions,
		MaxSessions: r.g.cfg.MaxSessions,
		Draining:    draining,
		Incarnation: r.incarnation,
		Since:       r.since,
		Updated:     r.g.cfg.Now(),
	})
	if err != nil {
		r.failed("put gateway entry", err)
		return false
	}
	return true
}

// drain marks the gateway draining in the registry, so that other
// gateways stop announcing it at once. The write happens on run's
// goroutine: a bus that does not answer must not delay the GOAWAYs.
func (r *registry) drain() {
	r.mu.Lock()
	r.draining = true
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *registry) failed(what string, err error) {
	r.errors.Add(1)
	r.g.log.Debug("gateway: registry: "+what, "err", err)
}

// close stops following the gateway registry.
func (r *registry) close() {
	r.mu.Lock()
	r.closed = true
	w := r.watcher
	r.watcher = nil
	r.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}

// presenceUser is the user a session counts for in presence: the
// authenticated user, or "anonymous".
func (h *host) presenceUser() string {
	if h.user == "" {
		return "anonymous"
	}
	return h.user
}

// presenceService answers PresenceCommand from the shared state cache.
type presenceService struct{ r *registry }

// HandleCommand returns the JSON of the presence of the user named by the
// command's body.
func (s presenceService) HandleCommand(ctx context.Context, _ *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	user := string(cmd.Body)
	if user == "" {
		return nil, jsperr.New(jsperr.BadRequest, "presence: the body names the user")
	}
	p := s.r.presence.Load()
	if p == nil {
		return nil, jsperr.New(jsperr.Unavailable, "presence: the shared state cache is not reachable yet")
	}
	up, err := p.Query(ctx, user)
	if err != nil {
		return nil, jsperr.Wrap(jsperr.Unavailable, err)
	}
	return json.Marshal(&up)
}

// sweepSessions closes the storage records of sessions whose gateway
// stopped touching them and deletes closed records older than
// SessionRetention (the storage side of the janitor).
func (g *Gateway) sweepSessions(ctx context.Context) {
	st := g.cfg.Sessions
	if st == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.CoreTimeout)
	defer cancel()
	now := g.cfg.Now()
	// A live gateway touches every SessionTouchInterval; three missed
	// touches mean the gateway is gone.
	if n, err := st.ExpireSessions(ctx, now.Add(-3*g.cfg.SessionTouchInterval)); err != nil {
		g.storeErrors.Add(1)
		g.log.Debug("gateway: expire session records", "err", err)
	} else if n > 0 {
		g.log.Info("gateway: closed stale session records", "count", n)
	}
	if n, err := st.PurgeSessions(ctx, now.Add(-g.cfg.SessionRetention)); err != nil {
		g.storeErrors.Add(1)
		g.log.Debug("gateway: purge session records", "err", err)
	} else if n > 0 {
		g.log.Info("gateway: deleted old session records", "count", n)
	}
}
