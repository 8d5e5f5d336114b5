package token

import (
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func newTestKeySet(t *testing.T, clk *testClock) *KeySet {
	t.Helper()
	ks, err := NewKeySet(KeySetConfig{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestVerify(t *testing.T) {
	clk := &testClock{now: t0}
	ks := newTestKeySet(t, clk)
	old, cur, stranger, revoked := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	if err := ks.Rotate(old, 0); err != nil {
		t.Fatal(err)
	}
	oldTok, err := ks.Issue(baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(cur, 0); err != nil {
		t.Fatal(err)
	}
	good, err := ks.Issue(baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	strangerTok, err := Sign(stranger, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	if err := ks.AddVerifyKey(revoked.Public(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	revokedTok, err := Sign(revoked, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	ks.Revoke(revoked.KeyID())
	// Same key id and claims, signed by another key: only the signature
	// tells them apart.
	forged := func() string {
		raw := rawOf(t, good)
		raw[len(raw)-1] ^= 1
		return textOf(raw)
	}()
	tampered := func() string {
		raw := rawOf(t, good)
		raw[len(raw)-sigLen-1] ^= 1 // last scope byte
		return textOf(raw)
	}()
	c := baseClaims()
	overlapEnd := t0.Add(DefaultMaxLifetime + DefaultLeeway)

	tests := []struct {
		name     string
		token    string
		audience string
		now      time.Time
		want     jsperr.Code
	}{
		{"valid", good, "gateway.prod", t0, jsperr.NoError},
		{"valid at not-before minus leeway", good, "gateway.prod", c.NotBefore.Add(-DefaultLeeway), jsperr.NoError},
		{"valid just before expiry plus leeway", good, "gateway.prod", c.Expiry.Add(DefaultLeeway - time.Second), jsperr.NoError},
		{"expired", good, "gateway.prod", c.Expiry.Add(DefaultLeeway), jsperr.TokenExpired},
		{"not yet valid", good, "gateway.prod", c.NotBefore.Add(-DefaultLeeway - time.Second), jsperr.TokenNotYetValid},
		{"wrong audience", good, "core.prod", t0, jsperr.TokenWrongAudience},
		{"unknown key", strangerTok, "gateway.prod", t0, jsperr.TokenUnknownKey},
		{"bad signature", forged, "gateway.prod", t0, jsperr.TokenBadSignature},
		{"tampered claims", tampered, "gateway.prod", t0, jsperr.TokenBadSignature},
		{"revoked key", revokedTok, "gateway.prod", t0, jsperr.TokenKeyRevoked},
		{"malformed", "jspt.AAAA", "gateway.prod", t0, jsperr.TokenMalformed},
		{"previous key in overlap", oldTok, "gateway.prod", t0.Add(time.Minute), jsperr.NoError},
		{"previous key after overlap", oldTok, "gateway.prod", overlapEnd.Add(time.Second), jsperr.TokenUnknownKey},
		// Signature before claims: a forged, expired token is a bad signature.
		{"forged and expired", forged, "gateway.prod", c.Expiry.Add(time.Hour), jsperr.TokenBadSignature},
		// Revocation before everything else that needs the key.
		{"revoked and expired", revokedTok, "gateway.prod", c.Expiry.Add(time.Hour), jsperr.TokenKeyRevoked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Set(tt.now)
			tok, err := ks.Verify(tt.token, tt.audience)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("Verify: %v (code %s), want %s", err, got, tt.want)
			}
			if err == nil && tok.Subject != "user-42" {
				t.Fatalf("subject %q", tok.Subject)
			}
		})
	}
	if s := ks.Stats(); s.Issued != 2 || s.Verified+s.Refused != uint64(len(tests)) {
		t.Fatalf("stats %+v", s)
	}
}

func TestKeySetRotation(t *testing.T) {
	clk := &testClock{now: t0}
	ks := newTestKeySet(t, clk)
	if _, err := ks.Issue(baseClaims()); err == nil {
		t.Fatal("issued without a signing key")
	}
	k1, k2 := mustKey(t), mustKey(t)
	if err := ks.Rotate(k1, 0); err != nil {
		t.Fatal(err)
	}
	if err := ks.Rotate(k2, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	keys := ks.Keys()
	if len(keys) != 2 {
		t.Fatalf("%d keys", len(keys))
	}
	for _, k := range keys {
		switch k.ID {
		case k1.KeyID():
			if k.Signing || !k.Until.Equal(t0.Add(10*time.Minute)) {
				t.Fatalf("previous key %+v", k)
			}
		case k2.KeyID():
			if !k.Signing || !k.Until.IsZero() {
				t.Fatalf("signing key %+v", k)
			}
		}
	}
	clk.Set(t0.Add(11 * time.Minute))
	if n := len(ks.Keys()); n != 1 {
		t.Fatalf("%d keys after overlap", n)
	}

	// Lifetime cap.
	c := baseClaims()
	c.NotBefore, c.Expiry = time.Time{}, clk.Now().Add(DefaultMaxLifetime+time.Second)
	if _, err := ks.Issue(c); err == nil {
		t.Fatal("issued a token above MaxLifetime")
	}
	c.Expiry = clk.Now().Add(DefaultMaxLifetime)
	text, err := ks.Issue(c)
	if err != nil {
		t.Fatal(err)
	}
	if tok, _ := Parse(text); !tok.NotBefore.Equal(clk.Now()) {
		t.Fatalf("zero NotBefore became %v, want now", tok.NotBefore)
	}

	// Revoking the signing key stops issuing; a revoked key cannot return.
	ks.Revoke(k2.KeyID())
	if _, err := ks.Issue(baseClaims()); err == nil {
		t.Fatal("issued with a revoked key")
	}
	if err := ks.Rotate(k2, 0); err == nil {
		t.Fatal("rotated back to a revoked key")
	}
	if err := ks.AddVerifyKey(k2.Public(), time.Time{}); err == nil {
		t.Fatal("added a revoked verify key")
	}
	if err := ks.Rotate(PrivateKey{}, 0); err == nil {
		t.Fatal("rotated to no key")
	}
	if err := ks.Rotate(mustKey(t), -time.Second); err == nil {
		t.Fatal("negative overlap accepted")
	}
}

func TestKeySetLimits(t *testing.T) {
	clk := &testClock{now: t0}
	ks, err := NewKeySet(KeySetConfig{Now: clk.Now, MaxKeys: 2, MaxRevoked: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := mustKey(t), mustKey(t), mustKey(t)
	if err := ks.AddVerifyKey(a.Public(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddVerifyKey(b.Public(), t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := ks.AddVerifyKey(c.Public(), time.Time{}); err == nil {
		t.Fatal("MaxKeys exceeded")
	}
	// Once b's window has passed, its slot is free again.
	clk.Set(t0.Add(2 * time.Minute))
	if err := ks.AddVerifyKey(c.Public(), time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Revocations beyond MaxRevoked forget the oldest: its tokens are then
	// refused as signed by an unknown key.
	ks.Revoke(a.KeyID())
	ks.Revoke(b.KeyID())
	ks.Revoke(c.KeyID())
	tok, err := Sign(a, baseClaims())
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(t0)
	if _, err := ks.Verify(tok, "gateway.prod"); jsperr.CodeOf(err) != jsperr.TokenUnknownKey {
		t.Fatalf("forgotten revocation: %v", err)
	}
	tok, _ = Sign(c, baseClaims())
	if _, err := ks.Verify(tok, "gateway.prod"); jsperr.CodeOf(err) != jsperr.TokenKeyRevoked {
		t.Fatalf("recent revocation: %v", err)
	}
	if _, err := NewKeySet(KeySetConfig{MaxKeys: -1}); err == nil {
		t.Fatal("negative MaxKeys accepted")
	}
}

func TestKeySetConcurrent(t *testing.T) {
	clk := &testClock{now: t0}
	ks := newTestKeySet(t, clk)
	if err := ks.Rotate(mustKey(t), 0); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for range 50 {
				if i == 0 {
					if len(ks.Keys()) >= DefaultMaxKeys {
						continue // the cap is tested elsewhere
					}
					if err := ks.Rotate(mustKey(t), time.Minute); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				text, err := ks.Issue(baseClaims())
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ks.Verify(text, "gateway.prod"); err != nil && jsperr.CodeOf(err) != jsperr.TokenUnknownKey {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}
