package token

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Defaults for a zero [KeySetConfig] field.
const (
	// DefaultLeeway widens every validity window against clock skew
	// between issuer and verifier.
	DefaultLeeway = 30 * time.Second
	// DefaultMaxLifetime is the longest token Issue signs. Tokens are
	// short-lived so that a stolen one is soon useless and no revocation
	// list of tokens is needed.
	DefaultMaxLifetime = time.Hour
	// DefaultMaxKeys caps the keys a KeySet holds (signing key and
	// verify-only keys together).
	DefaultMaxKeys = 16
	// DefaultMaxRevoked caps remembered revocations. When it is exceeded
	// the oldest is forgotten; its key is gone from the set anyway, so its
	// tokens are still refused, as TOKEN_UNKNOWN_KEY.
	DefaultMaxRevoked = 1024
)

// KeySetConfig configures a KeySet.
type KeySetConfig struct {
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
	// Leeway for clock skew on not-before and expiry. Zero means
	// DefaultLeeway (30 s); negative means none.
	Leeway time.Duration
	// MaxLifetime is the longest token Issue signs. Zero means
	// DefaultMaxLifetime (1 h).
	MaxLifetime time.Duration
	// MaxKeys caps the keys held. Zero means DefaultMaxKeys (16).
	MaxKeys int
	// MaxRevoked caps remembered revocations. Zero means
	// DefaultMaxRevoked (1024).
	MaxRevoked int
}

func (c *KeySetConfig) validate() error {
	if c.MaxLifetime < 0 || c.MaxKeys < 0 || c.MaxRevoked < 0 {
		return fmt.Errorf("token: invalid key set config: negative limit (MaxLifetime %v, MaxKeys %d, MaxRevoked %d)",
			c.MaxLifetime, c.MaxKeys, c.MaxRevoked)
	}
	return nil
}

func (c *KeySetConfig) setDefaults() {
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultLeeway
	} else if c.Leeway < 0 {
		c.Leeway = 0
	}
	if c.MaxLifetime == 0 {
		c.MaxLifetime = DefaultMaxLifetime
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.MaxRevoked == 0 {
		c.MaxRevoked = DefaultMaxRevoked
	}
}

// KeyInfo describes one key of a KeySet.
type KeyInfo struct {
	ID     KeyID
	Public PublicKey
	// Signing is true for the key Issue signs with.
	Signing bool
	// Until is when a verify-only key is dropped; zero means never.
	Until time.Time
}

type verifyKey struct {
	pub   PublicKey
	until time.Time // zero: no end
}

// KeySetStats counts a KeySet's work.
type KeySetStats struct {
	Issued   uint64
	Verified uint64
	Refused  uint64
}

// KeySet holds the current signing key and the keys tokens are verified
// with: the signing key, previous signing keys until their overlap ends,
// and keys added for verification only (a gateway holds no signing key).
// It is safe for concurrent use.
type KeySet struct {
	cfg KeySetConfig

	mu           sync.RWMutex
	signing      PrivateKey          // guarded by mu; zero on verify-only sets
	keys         map[KeyID]verifyKey // guarded by mu; includes the signing key
	revoked      map[KeyID]struct{}  // guarded by mu
	revokedOrder []KeyID             // guarded by mu; oldest first, for MaxRevoked

	issued, verified, refused atomic.Uint64
}

// NewKeySet returns an empty KeySet.
func NewKeySet(cfg KeySetConfig) (*KeySet, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &KeySet{cfg: cfg, keys: map[KeyID]verifyKey{}, revoked: map[KeyID]struct{}{}}, nil
}

// Rotate makes next the signing key. The previous signing key stays for
// verification for overlap (zero means MaxLifetime plus Leeway, which
// covers every token it signed), then is dropped.
func (ks *KeySet) Rotate(next PrivateKey, overlap time.Duration) error {
	if next.IsZero() {
		return errors.New("token: rotate: no key")
	}
	if overlap < 0 {
		return fmt.Errorf("token: rotate: negative overlap %v; use Revoke to drop a key at once", overlap)
	}
	if overlap == 0 {
		overlap = ks.cfg.MaxLifetime + ks.cfg.Leeway
	}
	kid := next.KeyID()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if _, ok := ks.revoked[kid]; ok {
		return fmt.Errorf("token: rotate: key %s is revoked", kid)
	}
	now := ks.cfg.Now()
	ks.pruneLocked(now)
	_, known := ks.keys[kid]
	if !known && len(ks.keys) >= ks.cfg.MaxKeys {
		return fmt.Errorf("token: rotate: key set holds %d keys, at most %d", len(ks.keys), ks.cfg.MaxKeys)
	}
	if !ks.signing.IsZero() && ks.signing.KeyID() != kid {
		prev := ks.signing.KeyID()
		ks.keys[prev] = verifyKey{pub: ks.signing.Public(), until: now.Add(overlap)}
	}
	ks.signing = next
	ks.keys[kid] = verifyKey{pub: next.Public()}
	return nil
}

// AddVerifyKey adds a key tokens may be verified with, until the given
// time (zero: until removed or revoked).
func (ks *KeySet) AddVerifyKey(pub PublicKey, until time.Time) error {
	kid := pub.KeyID()
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if _, ok := ks.revoked[kid]; ok {
		return fmt.Errorf("token: add key: key %s is revoked", kid)
	}
	ks.pruneLocked(ks.cfg.Now())
	if _, known := ks.keys[kid]; !known && len(ks.keys) >= ks.cfg.MaxKeys {
		return fmt.Errorf("token: add key: key set holds %d keys, at most %d", len(ks.keys), ks.cfg.MaxKeys)
	}
	ks.keys[kid] = verifyKey{pub: pub, until: until}
	return nil
}

// Revoke drops key kid at once and refuses its tokens with
// TOKEN_KEY_REVOKED. Revoking the signing key stops Issue until the next
// Rotate.
func (ks *KeySet) Revoke(kid KeyID) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	delete(ks.keys, kid)
	if !ks.signing.IsZero() && ks.signing.KeyID() == kid {
		ks.signing = PrivateKey{}
	}
	if _, ok := ks.revoked[kid]; ok {
		return
	}
	ks.revoked[kid] = struct{}{}
	ks.revokedOrder = append(ks.revokedOrder, kid)
	if len(ks.revokedOrder) > ks.cfg.MaxRevoked {
		delete(ks.revoked, ks.revokedOrder[0])
		ks.revokedOrder = slices.Delete(ks.revokedOrder, 0, 1)
	}
}

// Keys lists the keys held.
func (ks *KeySet) Keys() []KeyInfo {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.pruneLocked(ks.cfg.Now())
	out := make([]KeyInfo, 0, len(ks.keys))
	for kid, k := range ks.keys {
		out = append(out, KeyInfo{ID: kid, Public: k.pub, Until: k.until,
			Signing: !ks.signing.IsZero() && ks.signing.KeyID() == kid})
	}
	slices.SortFunc(out, func(a, b KeyInfo) int { return slices.Compare(a.ID[:], b.ID[:]) })
	return out
}

// pruneLocked drops verify-only keys whose overlap has ended.
func (ks *KeySet) pruneLocked(now time.Time) {
	for kid, k := range ks.keys {
		if !k.until.IsZero() && now.After(k.until) {
			delete(ks.keys, kid)
		}
	}
}

// Issue signs c with the signing key. A zero NotBefore means now. The
// lifetime (Expiry - NotBefore) must be positive and at most MaxLifetime.
func (ks *KeySet) Issue(c Claims) (string, error) {
	ks.mu.RLock()
	signing := ks.signing
	ks.mu.RUnlock()
	if signing.IsZero() {
		return "", errors.New("token: issue: key set has no signing key")
	}
	if c.NotBefore.IsZero() {
		c.NotBefore = ks.cfg.Now()
	}
	if life := c.Expiry.Sub(c.NotBefore); life > ks.cfg.MaxLifetime {
		return "", fmt.Errorf("token: issue for %q: lifetime %v above %v", c.Subject, life, ks.cfg.MaxLifetime)
	}
	text, err := Sign(signing, c)
	if err != nil {
		return "", err
	}
	ks.issued.Add(1)
	return text, nil
}

// Verify decodes text and checks it for audience. Refusals are
// *jsperr.Error, checked in this order: TOKEN_MALFORMED,
// TOKEN_KEY_REVOKED, TOKEN_UNKNOWN_KEY, TOKEN_BAD_SIGNATURE, TOKEN_EXPIRED,
// TOKEN_NOT_YET_VALID, TOKEN_WRONG_AUDIENCE.
func (ks *KeySet) Verify(text, audience string) (*Token, error) {
	t, err := ks.verify(text, audience)
	if err != nil {
		ks.refused.Add(1)
		return nil, err
	}
	ks.verified.Add(1)
	return t, nil
}

func (ks *KeySet) verify(text, audience string) (*Token, error) {
	t, err := Parse(text)
	if err != nil {
		return nil, err
	}
	now := ks.cfg.Now()
	ks.mu.RLock()
	_, revoked := ks.revoked[t.KeyID]
	k, known := ks.keys[t.KeyID]
	ks.mu.RUnlock()
	if revoked {
		return nil, jsperr.Newf(jsperr.TokenKeyRevoked, "token signed by revoked key %s", t.KeyID)
	}
	if !known || (!k.until.IsZero() && now.After(k.until)) {
		return nil, jsperr.Newf(jsperr.TokenUnknownKey, "token signed by unknown key %s", t.KeyID)
	}
	if err := t.VerifySignature(k.pub); err != nil {
		return nil, err
	}
	// Expiry is exclusive: at exactly Expiry (plus leeway) the token is dead.
	if !now.Before(t.Expiry.Add(ks.cfg.Leeway)) {
		return nil, jsperr.Newf(jsperr.TokenExpired, "token for %q expired at %s (now %s)",
			t.Subject, t.Expiry.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(t.NotBefore.Add(-ks.cfg.Leeway)) {
		return nil, jsperr.Newf(jsperr.TokenNotYetValid, "token for %q valid from %s (now %s)",
			t.Subject, t.NotBefore.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t.Audience != audience {
		return nil, jsperr.Newf(jsperr.TokenWrongAudience, "token for %q is for audience %q, not %q",
			t.Subject, t.Audience, audience)
	}
	return t, nil
}

// Stats returns the counters.
func (ks *KeySet) Stats() KeySetStats {
	return KeySetStats{Issued: ks.issued.Load(), Verified: ks.verified.Load(), Refused: ks.refused.Load()}
}
