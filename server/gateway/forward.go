package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/wire"
)

// Core services, zero trust and membership removal (bus mode only).
//
//   - A COMMAND for a service the gateway does not serve itself is
//     forwarded to the core (OpCommand) with the session's identity; the
//     envelope header HeaderRouteKey picks the core shard, so commands
//     about one conversation stay in order. The core authorizes it and
//     answers with the body or an error code, which becomes the REPLY.
//   - Every core request of a session carries the session's identity: the
//     host attaches it to the session's context (core.WithIdentity), and
//     core.Client adds it to each request.
//   - SUBSCRIBE asks the core first (OpSubscribe): the core's
//     authorization hook decides, so a non-member cannot subscribe to a
//     private conversation.
//   - A control event on a channel subject (core.Event.Drop) ends the
//     local subscriptions of the listed users on that channel, so a member
//     removed from a conversation stops receiving its events at once. The
//     bus subscription of the channel stays while the session lives (the
//     host's joined set belongs to its receive loop); only the hub stops
//     delivering.

// HeaderRouteKey is the COMMAND header that routes a forwarded command to
// a core shard.
const HeaderRouteKey = "key"

// coreIdentity is the identity the session's core requests carry.
func (h *host) coreIdentity() core.Identity {
	return core.Identity{User: h.auth.User, Device: h.auth.Device, Session: h.id, Scopes: h.auth.Scopes}
}

// forwardCommand runs a COMMAND on a core service and replies.
func (h *host) forwardCommand(ctx context.Context, env *wire.Envelope, reply func(body []byte, code jsperr.Code, reason string)) {
	select {
	case h.inflight <- struct{}{}:
	default:
		reply(nil, jsperr.QueueFull, "too many commands in progress")
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		release := sync.OnceFunc(func() { <-h.inflight })
		defer release()
		timeout := h.g.cfg.CoreTimeout
		if env.TTL > 0 {
			// The sender stops waiting after the TTL (JSP §4).
			timeout = min(timeout, time.Duration(env.TTL)*time.Millisecond)
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		key := env.Headers[HeaderRouteKey]
		if key == "" {
			key = env.Route.Name
		}
		body, err := h.g.cluster.client.Command(cctx, key, env.Route.Name, env.Body)
		release()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			code, reason := errorReply(err)
			if code == jsperr.Internal {
				h.log.Warn("forwarded command failed", "service", env.Route.Name, "err", err)
			}
			reply(nil, code, reason)
			return
		}
		reply(body, jsperr.NoError, "")
	}()
}

// authorizeSubscribe asks the core whether the session may subscribe.
func (h *host) authorizeSubscribe(ctx context.Context, channel string) error {
	rctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	return h.g.cluster.client.Authorize(rctx, channel)
}

// dropUsers ends the local subscriptions of users on channel.
func (g *Gateway) dropUsers(channel string, users []string) {
	g.mu.Lock()
	var hosts []*host
	for h := range g.hosts {
		if h.user != "" && slices.Contains(users, h.user) {
			hosts = append(hosts, h)
		}
	}
	g.mu.Unlock()
	for _, h := range hosts {
		h.forgetLive(channel)
		h.endCatchup(channel)
		if err := h.sub.Unsubscribe(channel); err == nil {
			h.log.Debug("subscription dropped by the core", "channel", channel)
		}
		h.mediaDropped(channel)
	}
}
