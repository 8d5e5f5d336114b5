package client

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/wire"
)

// Message signatures in the SDK (JSP §4.3):
//
//   - Options.SigningKey signs every Publish with the device key: the
//     envelope gets a timestamp, a fresh nonce, the jsp-signer header and
//     an Ed25519 signature. The server verifies it on ingress and forwards
//     it unchanged.
//   - Options.Verify checks the signature of each incoming EVENT before its
//     handler sees it, against the sender's device key, which the client
//     fetches from the server's keys service (msgsig.KeyCommand) and keeps
//     in a bounded cache. The result is in Event.Verified, Event.Signer
//     and Event.VerifyErr; with DropUnverified an event that is not
//     verified never reaches the handler (Stats.Unverified counts it).
//
// The key the service returns is checked against the device id in the
// envelope (the id is the hash of the key), so a server cannot substitute
// a key of its own; what the client takes on trust is the owner the
// service names. Verification runs on the subscription's own goroutine, so
// a key fetch delays that subscription only. Events replayed from history
// are checked the same way: the signature does not expire, but a device
// revoked before an envelope's timestamp fails it with SIGNER_REVOKED.

// Defaults for zero VerifyOptions fields.
const (
	// DefaultKeyCacheSize caps the device keys a client keeps.
	DefaultKeyCacheSize = 1024
	// DefaultKeyCacheTTL is how long a fetched key is used before it is
	// fetched again (revocations reach the client within it).
	DefaultKeyCacheTTL = 10 * time.Minute
	// DefaultKeyMissTTL is how long an unknown device stays unknown
	// before it is asked for again.
	DefaultKeyMissTTL = 30 * time.Second
	// DefaultKeyFetchTimeout bounds one key fetch.
	DefaultKeyFetchTimeout = 10 * time.Second
)

// VerifyOptions configure the verification of incoming signed events.
type VerifyOptions struct {
	// Enabled turns verification on. Default false: Event.Verified stays
	// false and signatures are left to the application.
	Enabled bool
	// DropUnverified drops events that are not verified, unsigned ones
	// included, instead of handing them over with VerifyErr set.
	DropUnverified bool
	// KeyCacheSize caps the cached device keys (and unknown devices).
	// Default DefaultKeyCacheSize; the least recently used is evicted.
	KeyCacheSize int
	// KeyCacheTTL is how long a fetched key is used. Default
	// DefaultKeyCacheTTL.
	KeyCacheTTL time.Duration
	// KeyMissTTL is how long a device the server does not know is not
	// asked for again. Default DefaultKeyMissTTL.
	KeyMissTTL time.Duration
	// KeyFetchTimeout bounds one key fetch. Default
	// DefaultKeyFetchTimeout.
	KeyFetchTimeout time.Duration
	// Keys, when set, replaces the server's keys service as the source of
	// device keys (a local registry, a pinned set). The cache still
	// applies.
	Keys msgsig.KeySource
}

func (v *VerifyOptions) setDefaults() {
	if v.KeyCacheSize == 0 {
		v.KeyCacheSize = DefaultKeyCacheSize
	}
	if v.KeyCacheTTL == 0 {
		v.KeyCacheTTL = DefaultKeyCacheTTL
	}
	if v.KeyMissTTL == 0 {
		v.KeyMissTTL = DefaultKeyMissTTL
	}
	if v.KeyFetchTimeout == 0 {
		v.KeyFetchTimeout = DefaultKeyFetchTimeout
	}
}

func (v *VerifyOptions) validate() error {
	if v.KeyCacheSize < 0 || v.KeyCacheTTL < 0 || v.KeyMissTTL < 0 || v.KeyFetchTimeout < 0 {
		return errors.New("client: negative value in VerifyOptions")
	}
	return nil
}

// Signer identifies the device that signed an event.
type Signer struct {
	// Device is the signing device's id.
	Device devicekey.ID
	// Owner is the user the server registered the device for.
	Owner string
}

// signatures is a Client's signing and verifying state.
type signatures struct {
	signer     *msgsig.Signer // nil: Publish does not sign
	verify     bool
	drop       bool
	keys       *keyCache // nil unless verify
	unverified atomic.Uint64
}

// newSignatures prepares o's signing key and key cache; attach names the
// client whose keys service the cache asks.
func newSignatures(o *Options) (*signatures, error) {
	s := &signatures{verify: o.Verify.Enabled, drop: o.Verify.DropUnverified}
	if !o.SigningKey.IsZero() {
		var err error
		if s.signer, err = msgsig.NewSigner(o.SigningKey, msgsig.SignerOptions{Now: o.Now, Rand: o.Session.Rand}); err != nil {
			return nil, fmt.Errorf("client: %w", err)
		}
	}
	if s.verify {
		src := o.Verify.Keys
		if src == nil {
			src = &serviceKeys{}
		}
		s.keys = newKeyCache(src, &o.Verify, o.Now)
	}
	return s, nil
}

// attach makes the key cache ask c's server, unless VerifyOptions.Keys
// replaced it.
func (s *signatures) attach(c *Client) {
	if s.keys == nil {
		return
	}
	if sk, ok := s.keys.src.(*serviceKeys); ok {
		sk.c = c
	}
}

// sign signs env when a signing key is configured.
func (s *signatures) sign(env *wire.Envelope) error {
	if s == nil || s.signer == nil {
		return nil
	}
	return s.signer.Sign(env)
}

// wrap returns handler with verification in front of it, or handler
// itself when verification is off.
func (s *signatures) wrap(handler func(Event), timeout time.Duration) func(Event) {
	if s == nil || !s.verify {
		return handler
	}
	return func(ev Event) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		s.check(ctx, &ev)
		cancel()
		if !ev.Verified {
			s.unverified.Add(1)
			if s.drop {
				return
			}
		}
		handler(ev)
	}
}

// check fills ev's verification fields.
func (s *signatures) check(ctx context.Context, ev *Event) {
	env := ev.Envelope
	if env == nil || len(env.Signature) == 0 {
		ev.VerifyErr = ErrUnsigned
		return
	}
	id, err := msgsig.SignerOf(env)
	if err != nil {
		ev.VerifyErr = err
		return
	}
	d, err := s.keys.Lookup(ctx, id)
	if errors.Is(err, devicekey.ErrNotFound) {
		ev.VerifyErr = fmt.Errorf("client: device %s: %w", id, msgsig.ErrUnknownSigner)
		return
	}
	if err != nil {
		ev.VerifyErr = fmt.Errorf("client: key of device %s: %w", id, err)
		return
	}
	if err := msgsig.VerifySignature(env, d.Key); err != nil {
		ev.VerifyErr = err
		return
	}
	if err := msgsig.CheckDevice(d, env.Timestamp); err != nil {
		ev.VerifyErr = err
		return
	}
	ev.Verified, ev.Signer = true, &Signer{Device: d.ID, Owner: d.Owner}
}

// ErrUnsigned is Event.VerifyErr of an event without a signature when
// verification is on.
var ErrUnsigned = errors.New("client: event is not signed")

// serviceKeys asks the server's keys service.
type serviceKeys struct{ c *Client }

func (k *serviceKeys) Lookup(ctx context.Context, id devicekey.ID) (devicekey.Device, error) {
	body, err := k.c.Command(ctx, msgsig.KeyCommand, (&msgsig.KeyRequest{Device: id}).Append(nil))
	if jsperr.CodeOf(err) == jsperr.NotFound {
		return devicekey.Device{}, fmt.Errorf("%w: %s (%w)", devicekey.ErrNotFound, id, err)
	}
	if err != nil {
		return devicekey.Device{}, err
	}
	rep, err := msgsig.ParseKeyReply(body)
	if err != nil {
		return devicekey.Device{}, fmt.Errorf("client: keys service: %w", err)
	}
	// ParseKeyReply checked that the key hashes to the id it names; it
	// must also be the id asked for.
	if rep.Device != id {
		return devicekey.Device{}, fmt.Errorf("client: keys service answered for device %s, asked %s: %w", rep.Device, id, msgsig.ErrBadKeyMessage)
	}
	return rep.DeviceRecord(), nil
}

// keyCache is a bounded LRU cache of device keys in front of a KeySource,
// with a shorter life for "not found". Transient failures are not cached.
// It is safe for concurrent use.
type keyCache struct {
	src     msgsig.KeySource
	size    int
	ttl     time.Duration
	missTTL time.Duration
	now     func() time.Time

	mu      sync.Mutex
	entries map[devicekey.ID]*list.Element // guarded by mu; values are *keyEntry
	lru     list.List                      // guarded by mu; front = most recent
	fetches atomic.Uint64
}

type keyEntry struct {
	id      devicekey.ID
	dev     devicekey.Device
	missing bool
	expires time.Time
}

func newKeyCache(src msgsig.KeySource, o *VerifyOptions, now func() time.Time) *keyCache {
	return &keyCache{src: src, size: o.KeyCacheSize, ttl: o.KeyCacheTTL, missTTL: o.KeyMissTTL, now: now,
		entries: map[devicekey.ID]*list.Element{}}
}

// Lookup implements msgsig.KeySource.
func (k *keyCache) Lookup(ctx context.Context, id devicekey.ID) (devicekey.Device, error) {
	now := k.now()
	k.mu.Lock()
	if el := k.entries[id]; el != nil {
		e := el.Value.(*keyEntry)
		if now.Before(e.expires) {
			k.lru.MoveToFront(el)
			k.mu.Unlock()
			if e.missing {
				return devicekey.Device{}, fmt.Errorf("%w: %s (cached)", devicekey.ErrNotFound, id)
			}
			return e.dev, nil
		}
	}
	k.mu.Unlock()
	// Fetched without the lock: a fetch is a round trip, and other
	// subscriptions' lookups must not wait for it.
	k.fetches.Add(1)
	d, err := k.src.Lookup(ctx, id)
	missing := errors.Is(err, devicekey.ErrNotFound)
	if err != nil && !missing {
		return devicekey.Device{}, err
	}
	ttl := k.ttl
	if missing {
		ttl = k.missTTL
	}
	k.put(&keyEntry{id: id, dev: d, missing: missing, expires: now.Add(ttl)})
	return d, err
}

func (k *keyCache) put(e *keyEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el := k.entries[e.id]; el != nil {
		el.Value = e
		k.lru.MoveToFront(el)
		return
	}
	for k.lru.Len() >= k.size && k.lru.Len() > 0 {
		old := k.lru.Back()
		k.lru.Remove(old)
		delete(k.entries, old.Value.(*keyEntry).id)
	}
	k.entries[e.id] = k.lru.PushFront(e)
}

// len returns the number of cached entries.
func (k *keyCache) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lru.Len()
}

func (s *signatures) unverifiedCount() uint64 {
	if s == nil {
		return 0
	}
	return s.unverified.Load()
}
