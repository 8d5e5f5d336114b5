package gateway

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// credState is a session's credential as it stands: HELLO set it, each
// token refresh (JSP §5.9.1) moves the expiry and may narrow the scopes.
type credState struct {
	mu      sync.Mutex
	expires time.Time // guarded by mu; zero = never
	scopes  []string  // guarded by mu
	// onMove, when set, is called after each refresh (outside mu): the
	// host re-arms its expiry timer (watch.go).
	onMove func()
}

func newCredState(id session.Identity) *credState {
	return &credState{expires: id.Expires, scopes: slices.Clone(id.Scopes)}
}

func (c *credState) get() (time.Time, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.expires, c.scopes
}

func (c *credState) set(expires time.Time, scopes []string) {
	c.mu.Lock()
	c.expires, c.scopes = expires, slices.Clone(scopes)
	onMove := c.onMove
	c.mu.Unlock()
	if onMove != nil {
		onMove()
	}
}

// hasScope reports whether the session's credential grants scope now.
func (c *credState) hasScope(scope string) bool {
	_, scopes := c.get()
	return slices.Contains(scopes, scope)
}

// replyFunc sends a command's REPLY: a body, or a code and reason.
type replyFunc func(body []byte, code jsperr.Code, reason string)

// gatewayCommand serves the commands the gateway answers itself, because
// they act on the session or need its identity: the token refresh and the
// admin commands. It reports whether env was one of them.
func (h *host) gatewayCommand(ctx context.Context, env *wire.Envelope, reply replyFunc) bool {
	switch {
	case env.Route.Name == session.RefreshService:
		h.refresh(ctx, env, reply)
		return true
	case isAdminCommand(env.Route.Name):
		h.admin(ctx, env, reply)
		return true
	case env.Route.Name == voiceproto.MediaService:
		h.mediaCommand(ctx, env, reply)
		return true
	}
	return false
}

// refresh extends the session's credential with the token in env (JSP
// §5.9.1): Config.Refresh checks it against the current identity; on
// success the expiry moves and the REPLY carries it. A refused token
// leaves the session as it was; it still ends at the old expiry.
func (h *host) refresh(ctx context.Context, env *wire.Envelope, reply replyFunc) {
	if h.g.cfg.Refresh == nil {
		reply(nil, jsperr.RefreshUnsupported, "this server does not refresh credentials")
		return
	}
	tok, err := session.ParseRefreshRequest(env.Body)
	if err != nil {
		reply(nil, jsperr.BadRequest, err.Error())
		return
	}
	cur := h.auth
	cur.Expires, cur.Scopes = h.cred.get()
	id, err := h.g.cfg.Refresh(ctx, cur, tok)
	if err != nil {
		code, reason := errorReply(err)
		h.g.refusalLog.log("gateway: refresh refused", "code", code.String(), "reason", reason,
			"session", h.id, "user", h.user, "remote", h.ident.RemoteAddr)
		reply(nil, code, reason)
		return
	}
	h.cred.set(id.Expires, id.Scopes)
	h.log.Debug("credential refreshed", "expires", id.Expires)
	reply(session.AppendRefreshReply(nil, id.Expires), jsperr.NoError, "")
}
