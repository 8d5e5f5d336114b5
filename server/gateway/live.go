package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/wire"
)

// Live channels (decision D43). A PUBLISH to a channel named by
// Config.LiveChannels skips the core's commit: the gateway checks the
// session's permission (asked from a core once per LiveAuthTTL), puts the
// event on the channel's bus subject, where every gateway with subscribers
// of the channel (this one included) takes it as it takes committed
// events, and acknowledges the PUBLISH. The event has no sequence number,
// so it takes no place in the channel's order, is never replayed and is
// not in history (JSP §5.8: an EVENT without seq), and a resent PUBLISH is
// delivered again: at most once per attempt.

const (
	// DefaultLiveAuthTTL is how long a live-channel publish permission is
	// reused (Config.LiveAuthTTL).
	DefaultLiveAuthTTL = 30 * time.Second
	// MaxLiveAuthChannels caps the live channels whose permission one
	// session keeps; past it the expired ones are dropped, then all.
	MaxLiveAuthChannels = 256
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
// each channel's is good.
type liveAuth struct {
	mu    sync.Mutex
	until map[string]time.Time // guarded by mu
}

// publishLive fans env out on a live channel and acknowledges it.
func (h *host) publishLive(ctx context.Context, env *wire.Envelope) {
	channel := env.Route.Name
	if err := h.authorizeLive(ctx, channel); err != nil {
		h.refuse(env.ID, err)
		return
	}
	sender := h.user
	if sender == "" {
		sender = h.id
	}
	msg := storedMessage(env, sender)
	msg.Time = h.g.cfg.Now()
	if err := h.g.cluster.publishLive(channel, msg); err != nil {
		h.g.ops.busErrors.Add(1)
		h.refuse(env.ID, err)
		return
	}
	h.ack(env.ID)
}

// authorizeLive returns nil when the session may publish to the live
// channel: from the permissions it holds, else by asking a core.
func (h *host) authorizeLive(ctx context.Context, channel string) error {
	now := h.g.cfg.Now()
	la := h.live.Load()
	if la != nil {
		la.mu.Lock()
		until, ok := la.until[channel]
		la.mu.Unlock()
		if ok && now.Before(until) {
			return nil
		}
	}
	rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	if err := h.g.cluster.client.AuthorizeLive(rctx, channel); err != nil {
		return err
	}
	if la == nil {
		// Only the session's hand-off goroutine publishes, one message
		// at a time, so the pointer is set once.
		la = &liveAuth{until: map[string]time.Time{}}
		h.live.Store(la)
	}
	la.mu.Lock()
	defer la.mu.Unlock()
	if len(la.until) >= MaxLiveAuthChannels {
		for name, t := range la.until {
			if !now.Before(t) {
				delete(la.until, name)
			}
		}
		if len(la.until) >= MaxLiveAuthChannels {
			clear(la.until)
		}
	}
	la.until[channel] = now.Add(h.g.cfg.LiveAuthTTL)
	return nil
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

// publishLive puts msg on channel's subject as an event without a
// sequence number.
func (c *cluster) publishLive(channel string, msg storage.Message) error {
	subj, err := c.subj.Channel(channel)
	if err != nil {
		return jsperr.Wrap(jsperr.BadRequest, err)
	}
	data, err := c.codec.EncodeEvent(&core.Event{Channel: channel, Message: msg, Ephemeral: true})
	if err != nil {
		return fmt.Errorf("gateway: encode live event: %w", err)
	}
	if err := c.bus.Publish(subj, bus.Msg{Data: data}); err != nil {
		return jsperr.Wrap(jsperr.Unavailable, fmt.Errorf("gateway: live publish on %s: %w", subj, err))
	}
	return nil
}
