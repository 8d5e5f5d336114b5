package auth

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/session"
)

func TestRefresh(t *testing.T) {
	f := newFixture(t)
	a, _ := newAuthenticator(t, Config{Mode: ModeToken, Audience: audience, Tokens: f.tokens})
	cur := session.Identity{User: "alice", Scopes: []string{"chat", "admin"}, Expires: now.Add(time.Minute), Device: "d1"}
	later := now.Add(time.Hour)
	tests := []struct {
		name string
		cur  session.Identity
		tok  string
		want jsperr.Code
	}{
		{"same scopes", cur, f.token(t, f.signer, token.Claims{Subject: "alice", Scopes: []string{"chat", "admin"}, Expiry: later}), jsperr.NoError},
		{"narrower", cur, f.token(t, f.signer, token.Claims{Subject: "alice", Scopes: []string{"chat"}, Expiry: later}), jsperr.NoError},
		{"other subject", cur, f.token(t, f.signer, token.Claims{Subject: "bob", Expiry: later}), jsperr.TokenSubjectMismatch},
		{"wider", cur, f.token(t, f.signer, token.Claims{Subject: "alice", Scopes: []string{"chat", "root"}, Expiry: later}), jsperr.TokenScopeWidened},
		{"expired", cur, f.token(t, f.signer, token.Claims{Subject: "alice", NotBefore: now.Add(-time.Hour), Expiry: now.Add(-time.Minute)}), jsperr.TokenExpired},
		{"other audience", cur, f.token(t, f.signer, token.Claims{Subject: "alice", Audience: "elsewhere", Expiry: later}), jsperr.TokenWrongAudience},
		{"unknown key", cur, f.token(t, f.stranger, token.Claims{Subject: "alice", Expiry: later}), jsperr.TokenUnknownKey},
		{"anonymous", session.Identity{}, f.token(t, f.signer, token.Claims{Subject: "alice", Expiry: later}), jsperr.RefreshUnsupported},
		{"device only", session.Identity{User: "alice", Device: "d1"}, f.token(t, f.signer, token.Claims{Subject: "alice", Expiry: later}), jsperr.RefreshUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := a.Refresh(context.Background(), tt.cur, tt.tok)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("code %v (%v), want %v", got, err, tt.want)
			}
			if tt.want != jsperr.NoError {
				return
			}
			if id.User != "alice" || id.Device != "d1" || !id.Expires.Equal(later.Add(a.cfg.Leeway)) {
				t.Fatalf("identity %+v", id)
			}
		})
	}
	noTokens, _ := newAuthenticator(t, Config{Mode: ModeDevice, Devices: f.devices})
	if _, err := noTokens.Refresh(context.Background(), cur, "x"); jsperr.CodeOf(err) != jsperr.RefreshUnsupported {
		t.Fatalf("server without tokens: %v", err)
	}
}
