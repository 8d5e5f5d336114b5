package client_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/credential"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/server/auth"
)

// tokenEnv is a gateway that takes tokens of one signing key, without
// leeway, so that tokens of a few seconds expire on time.
type tokenEnv struct {
	srv  *server
	key  token.PrivateKey
	auth *auth.Authenticator
}

func newTokenEnv(t *testing.T) *tokenEnv {
	t.Helper()
	key, err := token.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := token.NewKeySet(token.KeySetConfig{Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.AddVerifyKey(key.Public(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Mode: auth.ModeToken, Audience: "jsp", Tokens: ks, Leeway: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverOpts{noWS: true, auth: a.Authenticate, refresh: a.Refresh})
	return &tokenEnv{srv: srv, key: key, auth: a}
}

// issue signs a token for sub valid for life (second precision: the
// expiry is rounded up to a whole second).
func (e *tokenEnv) issue(t *testing.T, sub string, life time.Duration) client.Token {
	now := time.Now()
	exp := now.Add(life).Truncate(time.Second).Add(time.Second)
	text, err := token.Sign(e.key, token.Claims{Audience: "jsp", Subject: sub, NotBefore: now.Add(-time.Minute), Expiry: exp, Scopes: []string{"chat"}})
	if err != nil {
		t.Error(err)
	}
	return client.Token{Text: text, Expires: exp}
}

// TestTokenRefreshKeepsSession: a session on tokens of about two seconds
// outlives several of them by refreshing in place; no reconnect happens.
func TestTokenRefreshKeepsSession(t *testing.T) {
	e := newTokenEnv(t)
	var issued atomic.Int32
	c := e.srv.dial(t, client.SchemeTCP, func(o *client.Options) {
		o.TokenSource = func(context.Context) (client.Token, error) {
			issued.Add(1)
			return e.issue(t, "alice", time.Second), nil
		}
	})
	first := c.Info().SessionID
	deadline := time.Now().Add(4500 * time.Millisecond)
	for time.Now().Before(deadline) {
		select {
		case <-c.Done():
			t.Fatalf("session ended: %v", c.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("ping after the first tokens expired: %v", err)
	}
	if n := issued.Load(); n < 3 {
		t.Fatalf("%d tokens issued, want the HELLO one and at least two refreshes", n)
	}
	if string(c.Info().SessionID) != string(first) || c.Stats().Reconnects != 0 {
		t.Fatal("the session was replaced")
	}
}

// TestTokenExpiresWithoutRefresh: a session whose token is not refreshed
// is closed with TOKEN_EXPIRED.
func TestTokenExpiresWithoutRefresh(t *testing.T) {
	e := newTokenEnv(t)
	tok := e.issue(t, "alice", time.Second)
	c := e.srv.dial(t, client.SchemeQUIC, func(o *client.Options) {
		o.Credentials = func(_ context.Context, cs tls.ConnectionState) ([]byte, error) {
			return credential.ForConnection(tok.Text, devicekey.PrivateKey{}, cs)
		}
	})
	select {
	case <-c.Done():
		if jsperr.CodeOf(c.Err()) != jsperr.TokenExpired {
			t.Fatalf("session ended with %v, want TOKEN_EXPIRED", c.Err())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session outlived its token")
	}
}

// TestTokenRefreshRefusals: a token for another user or with more scopes
// is refused in place with its code, and the session keeps its old
// credential.
func TestTokenRefreshRefusals(t *testing.T) {
	e := newTokenEnv(t)
	var next atomic.Value
	next.Store(e.issue(t, "alice", time.Minute))
	c := e.srv.dial(t, client.SchemeTCP, func(o *client.Options) {
		o.TokenSource = func(context.Context) (client.Token, error) { return next.Load().(client.Token), nil }
	})
	next.Store(e.issue(t, "bob", time.Minute))
	if _, err := c.RefreshToken(ctxT(t)); jsperr.CodeOf(err) != jsperr.TokenSubjectMismatch {
		t.Fatalf("refresh as bob: %v, want TOKEN_SUBJECT_MISMATCH", err)
	}
	wide, err := token.Sign(e.key, token.Claims{Audience: "jsp", Subject: "alice", NotBefore: time.Now().Add(-time.Minute),
		Expiry: time.Now().Add(time.Minute), Scopes: []string{"chat", "admin"}})
	if err != nil {
		t.Fatal(err)
	}
	next.Store(client.Token{Text: wide})
	if _, err := c.RefreshToken(ctxT(t)); jsperr.CodeOf(err) != jsperr.TokenScopeWidened {
		t.Fatalf("refresh with admin: %v, want TOKEN_SCOPE_WIDENED", err)
	}
	good := e.issue(t, "alice", 2*time.Minute)
	next.Store(good)
	exp, err := c.RefreshToken(ctxT(t))
	if err != nil || !exp.Equal(good.Expires) {
		t.Fatalf("refresh: %v %v, want expiry %v", exp, err, good.Expires)
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}
