package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/wire"
)

// Live channels (decision D43). A PUBLISH to a channel named by
// Config.LiveChannels skips the core's commit: the gateway checks the
// session's permission (asked from a core once per LiveAuthTTL), puts the
// event on the channel's bus subject, where every other gateway with
// subscribers of the channel takes it as it takes committed events, hands
// it to its own subscribers directly (D44, liverun.go), and acknowledges
// the PUBLISH. The event has no sequence number,
// so it takes no place in the channel's order, is never replayed and is
// not in history (JSP §5.8: an EVENT without seq), and a resent PUBLISH is
// delivered again: at most once per attempt.

const (
	// DefaultLiveAuthTTL is how long a live-channel publish permission is
	// reused (Config.LiveAuthTTL).
	DefaultLiveAuthTTL = 30 * time.Second
	// MaxLiveAuthChannels caps the live channels whose permission one
	// session keeps; past it the expired ones are dropped, then one
	// other, so a session publishing to more channels than this asks a
	// core again only for the ones it lost.
	MaxLiveAuthChannels = 1024
)

// liveChannels matches channel names against Config.LiveChannels.
type liveChannels struct {
	exact    map[string]struct{}
	prefixes []string
}

// newLiveChannels compiles patterns, which validateLiveChannels accepted.
func newLiveChannels(patterns []string) liveChannels {
	var l liveChannels
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			l.prefixes = append(l.prefixes, prefix)
			continue
		}
		if l.exact == nil {
			l.exact = map[string]struct{}{}
		}
		l.exact[p] = struct{}{}
	}
	return l
}

// match reports whether channel is live.
func (l liveChannels) match(channel string) bool {
	if _, ok := l.exact[channel]; ok {
		return true
	}
	for _, p := range l.prefixes {
		if strings.HasPrefix(channel, p) {
			return true
		}
	}
	return false
}

// validateLiveChannels checks Config.LiveChannels: each entry is a name or
// a prefix and "*", and "*" appears nowhere else.
func validateLiveChannels(patterns []string) error {
	for _, p := range patterns {
		body := strings.TrimSuffix(p, "*")
		switch {
		case p == "":
			return errors.New("gateway: empty entry in LiveChannels")
		case strings.Contains(body, "*"):
			return fmt.Errorf("gateway: LiveChannels entry %q: \"*\" may only end an entry", p)
		case len(p) > wire.MaxRouteNameLen+1:
			return fmt.Errorf("gateway: LiveChannels entry %q longer than a channel name", p)
		}
	}
	return nil
}

// liveAuth is a session's live-channel publish permissions: until when
// each channel's is good, and the PUBLISHes of channels whose permission is
// being asked, in order of arrival.
type liveAuth struct {
	mu      sync.Mutex
	until   map[string]time.Time        // guarded by mu
	waiting map[string][]*wire.Envelope // guarded by mu: asked, not answered
}

// publishLive fans env out on a live channel and acknowledges it. With the
// permission at hand it queues env for liveLoop at once; otherwise the
// permission is asked on a goroutine of the session (one per channel,
// within MaxInflight), so that a session publishing to many new channels
// does not wait for one core round trip after another, and the channel's
// later PUBLISHes wait behind it in order.
func (h *host) publishLive(ctx context.Context, env *wire.Envelope) {
	channel := env.Route.Name
	la := h.live.Load()
	if la == nil {
		// Only the session's hand-off goroutine publishes, one message
		// at a time, so the pointer and the queue are set once, before
		// any goroutine that uses them starts.
		la = &liveAuth{until: map[string]time.Time{}, waiting: map[string][]*wire.Envelope{}}
		h.live.Store(la)
		h.startLive(ctx)
	}
	now := h.g.cfg.Now()
	la.mu.Lock()
	if q, ok := la.waiting[channel]; ok {
		la.waiting[channel] = append(q, env)
		la.mu.Unlock()
		return
	}
	if until, ok := la.until[channel]; ok && now.Before(until) {
		la.mu.Unlock()
		h.queueLive(ctx, env)
		return
	}
	la.waiting[channel] = []*wire.Envelope{env}
	la.mu.Unlock()
	select {
	case h.inflight <- struct{}{}:
	case <-ctx.Done():
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer func() { <-h.inflight }()
		rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
		err := h.g.cluster.client.AuthorizeLive(rctx, channel)
		cancel()
		// Under mu, so that a PUBLISH arriving meanwhile either joins
		// the queue or, once the permission is kept, follows it. The
		// lock order is la.mu, then the live queue: liveLoop takes no
		// la.mu, so a full queue here only waits for it.
		la.mu.Lock()
		defer la.mu.Unlock()
		q := la.waiting[channel]
		delete(la.waiting, channel)
		if err == nil {
			now := h.g.cfg.Now()
			la.putLocked(channel, now, now.Add(h.g.cfg.LiveAuthTTL))
		}
		for _, e := range q {
			if err != nil {
				h.refuse(e.ID, err)
				continue
			}
			h.queueLive(ctx, e)
		}
	}()
}

// putLocked keeps channel's permission until until, making room under
// MaxLiveAuthChannels: the expired ones go first, then arbitrary others.
// la.mu must be held.
func (la *liveAuth) putLocked(channel string, now, until time.Time) {
	if _, ok := la.until[channel]; !ok && len(la.until) >= MaxLiveAuthChannels {
		for name, t := range la.until {
			if !now.Before(t) {
				delete(la.until, name)
			}
		}
		for name := range la.until {
			if len(la.until) < MaxLiveAuthChannels {
				break
			}
			delete(la.until, name) // the map's order: an arbitrary one
		}
	}
	la.until[channel] = until
}

// forgetLive drops the session's permission for channel: a core's control
// event dropped the user from it.
func (h *host) forgetLive(channel string) {
	if la := h.live.Load(); la != nil {
		la.mu.Lock()
		delete(la.until, channel)
		la.mu.Unlock()
	}
}
