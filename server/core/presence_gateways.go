package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// GatewayEntry is one gateway's entry in the gateway registry: where
// clients reach it, how loaded it is, and which run of the gateway it is.
// It lives in jsp_presence under GatewayKey(node) with a per-key TTL; its
// presence is what keeps the gateway's session entries live (D39).
type GatewayEntry struct {
	Node        string   `json:"node"`
	URLs        []string `json:"urls"`
	Sessions    int      `json:"sessions"`
	MaxSessions int      `json:"max_sessions"`
	Draining    bool     `json:"draining,omitempty"`
	// Incarnation names this run of the gateway; its session entries
	// carry it (SessionEntry.Incarnation), so that a gateway restarted
	// under the same node id does not keep its old run's sessions alive,
	// and a sweep of the old run's sessions does not touch the new run's.
	Incarnation string    `json:"incarnation,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Updated     time.Time `json:"updated"`
}

// GatewayPrefix is the first token of the gateway entries' keys in
// jsp_presence. "_gw" is no token EncodeToken produces ('_' always starts
// a two-digit escape), so it never collides with a user's presence key.
const GatewayPrefix = "_gw"

// gatewayPattern matches every gateway entry.
const gatewayPattern = GatewayPrefix + ".*"

// GatewayKey is the jsp_presence key of a gateway's registry entry.
func GatewayKey(node string) (string, error) {
	tok, err := bus.EncodeToken(node)
	if err != nil {
		return "", fmt.Errorf("gateway node %q: %w", node, err)
	}
	return GatewayPrefix + "." + tok, nil
}

// isGatewayKey reports whether key is a gateway entry's key.
func isGatewayKey(key string) bool { return strings.HasPrefix(key, GatewayPrefix+".") }

// minKeyTTL is the shortest per-key TTL NATS accepts.
const minKeyTTL = time.Second

// GatewayTTL is the per-key TTL PutGateway writes: TTL, at least a second.
func (p *Presence) GatewayTTL() time.Duration { return max(p.cfg.TTL, minKeyTTL) }

// PutGateway records or refreshes a gateway's entry; it expires
// GatewayTTL after the last refresh.
func (p *Presence) PutGateway(ctx context.Context, e GatewayEntry) error {
	k, err := GatewayKey(e.Node)
	if err != nil {
		return fmt.Errorf("core: gateway key: %w", err)
	}
	data, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("core: gateway registry: %w", err)
	}
	if _, err := p.presence.Put(ctx, k, data, bus.WithTTL(p.GatewayTTL())); err != nil {
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
	if err := p.presence.Delete(ctx, k, 0); err != nil && !errors.Is(err, bus.ErrKeyNotFound) {
		return fmt.Errorf("core: gateway registry: remove %s: %w", node, err)
	}
	return nil
}

// Gateways lists the live gateways' entries, keyed by node.
func (p *Presence) Gateways(ctx context.Context) (map[string]GatewayEntry, error) {
	es, err := list(ctx, p.presence, gatewayPattern)
	if err != nil {
		return nil, fmt.Errorf("core: gateway registry: %w", err)
	}
	out := make(map[string]GatewayEntry, len(es))
	for _, e := range es {
		var g GatewayEntry
		if json.Unmarshal(e.Value, &g) == nil && g.Node != "" {
			out[g.Node] = g
		}
	}
	return out, nil
}

// gatewaysFor returns the entries of the gateways that sessions name,
// keyed by node, read one key each: a user's sessions name one or two
// gateways, and a read per key costs less than a listing of them all.
func (p *Presence) gatewaysFor(ctx context.Context, sessions map[string]SessionEntry) (map[string]GatewayEntry, error) {
	out := map[string]GatewayEntry{}
	tried := map[string]bool{}
	for _, s := range sessions {
		if s.Incarnation == "" || tried[s.Gateway] {
			continue
		}
		tried[s.Gateway] = true
		k, err := GatewayKey(s.Gateway)
		if err != nil {
			continue // no gateway has that entry: its sessions do not count
		}
		e, err := p.presence.Get(ctx, k)
		switch {
		case errors.Is(err, bus.ErrKeyNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("gateway %s: %w", s.Gateway, err)
		}
		var g GatewayEntry
		if json.Unmarshal(e.Value, &g) == nil && g.Node == s.Gateway {
			out[g.Node] = g
		}
	}
	return out, nil
}

// WatchGateways calls fn with the full set of live gateways, keyed by
// node, after the initial listing and after every change, on the
// watcher's goroutine.
func (p *Presence) WatchGateways(ctx context.Context, fn func(map[string]GatewayEntry)) (bus.Watcher, error) {
	live := map[string]GatewayEntry{}
	return p.presence.Watch(ctx, gatewayPattern, func(e bus.KVEntry) {
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

// list returns the latest entry of every live key of kv matching
// pattern: a watch's initial listing.
func list(ctx context.Context, kv bus.KV, pattern string) ([]bus.KVEntry, error) {
	var (
		mu  sync.Mutex
		out = map[string]bus.KVEntry{}
	)
	w, err := kv.Watch(ctx, pattern, func(e bus.KVEntry) {
		mu.Lock()
		defer mu.Unlock()
		if e.Op == bus.KVPut {
			out[e.Key] = e
		} else {
			delete(out, e.Key)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", pattern, err)
	}
	w.Stop()
	mu.Lock()
	defer mu.Unlock()
	es := make([]bus.KVEntry, 0, len(out))
	for _, e := range out {
		es = append(es, e)
	}
	return es, nil
}
