package core

import (
	"context"
	"errors"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Identity is who a request is made for: the authenticated user, device
// and session the gateway took from the session's handshake (zero trust,
// ARCHITECTURE §5: every request that reaches a core carries it, and the
// core decides, never the gateway's network position).
type Identity struct {
	// User is the authenticated user id; empty for anonymous sessions.
	User string `json:"user,omitempty"`
	// Device is the device id when a device key was proven.
	Device string `json:"device,omitempty"`
	// Session is the session id, lower-case hex.
	Session string `json:"session,omitempty"`
	// Scopes are the permissions the credential grants.
	Scopes []string `json:"scopes,omitempty"`
}

// Anonymous reports whether no user authenticated.
func (id Identity) Anonymous() bool { return id.User == "" }

// Action is what a request asks to do, as the authorization hook sees it.
type Action struct {
	// Op is the operation: publish, history, recover, subscribe or
	// command.
	Op Op
	// Channel is the channel the request is about (for a command, its
	// routing key).
	Channel string
	// Service is the command's service (OpCommand).
	Service string
}

// Authorizer is the core's authorization hook: it is called for every
// request before the core acts on it, and returns nil to allow or an error
// (ideally a *jsperr.Error with FORBIDDEN or NOT_A_MEMBER) to refuse.
// Services make finer decisions themselves (a command's body says what it
// does); the hook guards the generic operations on their channels.
type Authorizer interface {
	Authorize(ctx context.Context, id Identity, a Action) error
}

// AuthorizerFunc adapts a function to Authorizer.
type AuthorizerFunc func(ctx context.Context, id Identity, a Action) error

// Authorize calls f.
func (f AuthorizerFunc) Authorize(ctx context.Context, id Identity, a Action) error {
	return f(ctx, id, a)
}

// AllowAll is the default hook: it allows every action.
var AllowAll Authorizer = AuthorizerFunc(func(context.Context, Identity, Action) error { return nil })

// Chain returns a hook that asks each of hs in turn and refuses at the
// first refusal.
func Chain(hs ...Authorizer) Authorizer {
	return AuthorizerFunc(func(ctx context.Context, id Identity, a Action) error {
		for _, h := range hs {
			if err := h.Authorize(ctx, id, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// authorize runs the hook and turns a refusal without a registry code into
// FORBIDDEN, so that the reason reaches the client.
func (c *Core) authorize(ctx context.Context, req *Request) error {
	id := Identity{}
	if req.Identity != nil {
		id = *req.Identity
	}
	a := Action{Op: req.Op, Channel: req.Channel}
	if a.Op == OpLive {
		// A live publish is a publish to the hook: the same rules hold
		// whether or not the channel keeps its messages.
		a.Op = OpPublish
	}
	if req.Command != nil {
		a.Service = req.Command.Service
	}
	err := c.cfg.Authorizer.Authorize(ctx, id, a)
	if err == nil {
		return nil
	}
	var je *jsperr.Error
	if errors.As(err, &je) {
		return err
	}
	return jsperr.Wrap(jsperr.Forbidden, err)
}

type identityKey struct{}

// WithIdentity returns ctx carrying id: a Client request made with it
// carries id unless the request sets its own. Gateways attach their
// session's identity to the session's context once, so every core request
// of the session carries it (zero trust).
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the identity WithIdentity attached to ctx.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}
