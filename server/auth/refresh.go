package auth

import (
	"context"
	"slices"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/session"
)

// Refresh checks a token a live session sends to extend its identity (JSP
// §5.9.1) and returns the refreshed identity. The token must verify like
// one in HELLO (same audience, key set and codes), name the session's
// user (TOKEN_SUBJECT_MISMATCH), and grant no scope the session lacks
// (TOKEN_SCOPE_WIDENED): a refresh may narrow scopes, never widen them.
// Anonymous sessions, sessions that authenticated without a token and
// servers without a key set cannot refresh (REFRESH_UNSUPPORTED). The
// device stays as proven on the connection.
func (a *Authenticator) Refresh(_ context.Context, cur session.Identity, tokenText string) (session.Identity, error) {
	id, err := a.refresh(cur, tokenText)
	if err != nil {
		a.log.Info("auth: refresh refused", "code", jsperr.CodeOf(err).String(), "reason", reasonOf(err), "user", cur.User)
		return session.Identity{}, err
	}
	a.log.Debug("auth: refreshed", "user", id.User, "expires", id.Expires)
	return id, nil
}

func (a *Authenticator) refresh(cur session.Identity, tokenText string) (session.Identity, error) {
	switch {
	case a.cfg.Tokens == nil:
		return session.Identity{}, jsperr.New(jsperr.RefreshUnsupported, "this server does not accept tokens")
	case cur.User == "":
		return session.Identity{}, jsperr.New(jsperr.RefreshUnsupported, "an anonymous session cannot refresh; reconnect with a token")
	case cur.Expires.IsZero():
		return session.Identity{}, jsperr.New(jsperr.RefreshUnsupported, "the session's credential does not expire; it authenticated without a token")
	}
	tok, err := a.cfg.Tokens.Verify(tokenText, a.cfg.Audience)
	if err != nil {
		return session.Identity{}, err
	}
	if tok.Subject != cur.User {
		return session.Identity{}, jsperr.Newf(jsperr.TokenSubjectMismatch, "token for %q cannot refresh the session of %q", tok.Subject, cur.User)
	}
	for _, s := range tok.Scopes {
		if !slices.Contains(cur.Scopes, s) {
			return session.Identity{}, jsperr.Newf(jsperr.TokenScopeWidened, "scope %q was not granted to the session", s)
		}
	}
	return session.Identity{
		User:    cur.User,
		Device:  cur.Device,
		Scopes:  slices.Clone(tok.Scopes),
		Expires: tok.Expiry.Add(a.cfg.Leeway),
	}, nil
}
