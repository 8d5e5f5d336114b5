// Package msgsig signs and verifies JSP envelopes with device keys (JSP
// §4.3) and rejects replayed signed envelopes.
//
// The flow of one signed message:
//
//	sender device                 gateway (ingress)                recipient SDK
//	Signer.Sign:                  Guard.Check:                     VerifySignature:
//	  ts = now (ms)                 signer header -> device id       fetch key for the device
//	  nonce = 16 random bytes       registry key, not revoked          (id = SHA-256(key)[:16],
//	  header jsp-signer = id        ts within ±MaxSkew                  so a wrong key is seen)
//	  sig = Ed25519(key,            Ed25519 over SigningBytes        Ed25519 over SigningBytes
//	        SigningBytes)           nonce not seen from the device
//	                                forward unchanged; storage keeps
//	                                the whole envelope
//
// What a signature covers: wire.Envelope.SigningBytes, the context string
// "JSP/1 envelope signature" and a zero byte followed by the deterministic
// encoding of the envelope without sender (7), seq (9) and sig (11). That
// includes id, route, kind, class, ts, ttl, reply_to, nonce, headers
// (among them jsp-signer, which names the signing device) and the body
// itself. The server-set sender is bound through jsp-signer: the device id
// is the hash of the public key, and the registry names the device's owner.
//
// Errors carry their own registry codes: SIGNATURE_INVALID (does not
// verify; tampered or wrong key), SIGNATURE_STALE (ts outside the skew
// window), SIGNATURE_REPLAYED (nonce seen before), SIGNER_UNKNOWN,
// SIGNER_REVOKED, SIGNATURE_MALFORMED (ts, nonce or jsp-signer missing or
// out of range) and SIGNATURE_MEMORY_FULL (the bounded replay memory is
// full; retryable).
package msgsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/reliability/replay"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/wire"
)

// SignerHeader is the envelope header that names the signing device: its
// devicekey.ID in lower-case hex, 32 characters (JSP §4.3). The header is
// covered by the signature, so a relay cannot point the signature at
// another device.
const SignerHeader = "jsp-signer"

// Nonce sizes (JSP §4.3).
const (
	// NonceSize is the length of the nonces Signer makes: 128 random bits
	// never collide by chance within any replay window.
	NonceSize = 16
	// MinNonceLen is the shortest nonce a verifier accepts.
	MinNonceLen = replay.MinNonceLen
	// MaxNonceLen is the longest nonce the envelope can carry.
	MaxNonceLen = wire.MaxNonceLen
)

// DefaultMaxSkew is how far a signed envelope's timestamp may lie from the
// verifier's clock, either way, by default (JSP §4.3).
const DefaultMaxSkew = 5 * time.Minute

// Sentinel errors; each carries its registry code, and errors returned by
// this package wrap one of them with context (errors.Is matches the code).
var (
	// ErrInvalid: the signature does not verify with the device's key.
	ErrInvalid = jsperr.New(jsperr.SignatureInvalid, "msgsig: signature does not verify")
	// ErrStale: the timestamp is outside the skew window.
	ErrStale = jsperr.New(jsperr.SignatureStale, "msgsig: timestamp outside the clock-skew window")
	// ErrReplayed: the nonce was seen from the same device before.
	ErrReplayed = jsperr.New(jsperr.SignatureReplayed, "msgsig: nonce already seen")
	// ErrUnknownSigner: the signing device is not registered.
	ErrUnknownSigner = jsperr.New(jsperr.SignerUnknown, "msgsig: signing device unknown")
	// ErrRevokedSigner: the signing device was revoked before the
	// envelope's timestamp.
	ErrRevokedSigner = jsperr.New(jsperr.SignerRevoked, "msgsig: signing device revoked")
	// ErrMalformed: ts, nonce, jsp-signer or sig is missing or out of
	// range.
	ErrMalformed = jsperr.New(jsperr.SignatureMalformed, "msgsig: signed envelope incomplete")
	// ErrMemoryFull: the replay memory is full.
	ErrMemoryFull = jsperr.New(jsperr.SignatureMemoryFull, "msgsig: replay memory full")
)

// Signer signs envelopes with one device key. It is safe for concurrent
// use.
type Signer struct {
	key  ed25519.PrivateKey
	id   devicekey.ID
	hdr  string
	now  func() time.Time
	rand io.Reader
}

// SignerOptions are the clock and randomness of a Signer.
type SignerOptions struct {
	// Now is the clock for timestamps. Default: time.Now.
	Now func() time.Time
	// Rand is the source of nonces. Default: crypto/rand.
	Rand io.Reader
}

// NewSigner returns a signer for the device key k.
func NewSigner(k devicekey.PrivateKey, o SignerOptions) (*Signer, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("msgsig: new signer: no key")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	id := k.Public().ID()
	// The expanded key is derived once here: devicekey keeps its key
	// private, and re-deriving it from the seed per message would double
	// the cost of signing.
	return &Signer{key: ed25519.NewKeyFromSeed(k.Seed()), id: id, hdr: id.String(), now: o.Now, rand: o.Rand}, nil
}

// Device returns the id of the signing device.
func (s *Signer) Device() devicekey.ID { return s.id }

// Sign signs env in place (JSP §4.3): it sets the timestamp to now when it
// is zero, a fresh random nonce, the jsp-signer header and the signature.
// The headers map is copied before it is changed, so a map shared with
// other envelopes is left alone. The caller must not change env
// afterwards, except sender and seq.
func (s *Signer) Sign(env *wire.Envelope) error {
	if env.Timestamp == 0 {
		env.Timestamp = uint64(s.now().UnixMilli())
	}
	nonce := make([]byte, NonceSize)
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return fmt.Errorf("msgsig: sign: nonce: %w", err)
	}
	env.Nonce = nonce
	h := make(map[string]string, len(env.Headers)+1)
	for k, v := range env.Headers {
		h[k] = v
	}
	h[SignerHeader] = s.hdr
	env.Headers = h
	env.Signature = nil
	if err := env.Validate(nil); err != nil {
		return fmt.Errorf("msgsig: sign: %w", err)
	}
	env.Signature = ed25519.Sign(s.key, env.SigningBytes(nil))
	return nil
}

// SignerOf returns the device named by env's jsp-signer header, checking
// that env carries everything a signed envelope must (JSP §4.3): a
// 64-byte signature, a timestamp, a nonce of MinNonceLen..MaxNonceLen
// bytes and the header. It fails with ErrMalformed.
func SignerOf(env *wire.Envelope) (devicekey.ID, error) {
	var id devicekey.ID
	switch {
	case len(env.Signature) != ed25519.SignatureSize:
		return id, fmt.Errorf("msgsig: signature of %d bytes: %w", len(env.Signature), ErrMalformed)
	case env.Timestamp == 0:
		return id, fmt.Errorf("msgsig: no timestamp: %w", ErrMalformed)
	case len(env.Nonce) < MinNonceLen || len(env.Nonce) > MaxNonceLen:
		return id, fmt.Errorf("msgsig: nonce of %d bytes (want %d..%d): %w", len(env.Nonce), MinNonceLen, MaxNonceLen, ErrMalformed)
	}
	h, ok := env.Headers[SignerHeader]
	if !ok {
		return id, fmt.Errorf("msgsig: no %s header: %w", SignerHeader, ErrMalformed)
	}
	// Only the canonical form (lower-case hex) is accepted, so one device
	// has one spelling and signatures compare by bytes.
	if len(h) != 2*devicekey.IDSize {
		return id, fmt.Errorf("msgsig: %s header of %d characters: %w", SignerHeader, len(h), ErrMalformed)
	}
	if _, err := hex.Decode(id[:], []byte(h)); err != nil || hex.EncodeToString(id[:]) != h {
		return devicekey.ID{}, fmt.Errorf("msgsig: %s header %q is not lower-case hex: %w", SignerHeader, h, ErrMalformed)
	}
	return id, nil
}

// VerifySignature checks env's signature with the device key pub, without
// looking at the clock: the check for an envelope from history, whose
// timestamp is old by nature. It fails with ErrMalformed, or ErrInvalid
// when the jsp-signer header names another key or the signature does not
// verify.
func VerifySignature(env *wire.Envelope, pub devicekey.PublicKey) error {
	id, err := SignerOf(env)
	if err != nil {
		return err
	}
	// The device id is the hash of its key: a key fetched for the id
	// that hashes elsewhere is the wrong key, whoever supplied it.
	if pub.ID() != id {
		return fmt.Errorf("msgsig: envelope signed by device %s, key given is of %s: %w", id, pub.ID(), ErrInvalid)
	}
	if !ed25519.Verify(pub[:], env.SigningBytes(nil), env.Signature) {
		return fmt.Errorf("msgsig: envelope %x by device %s: %w", env.ID, id, ErrInvalid)
	}
	return nil
}

// CheckSkew fails with ErrStale when env's timestamp lies more than
// maxSkew from now, either way.
func CheckSkew(env *wire.Envelope, now time.Time, maxSkew time.Duration) error {
	ts := time.UnixMilli(int64(min(env.Timestamp, 1<<62)))
	if d := ts.Sub(now); d > maxSkew || d < -maxSkew {
		return fmt.Errorf("msgsig: timestamp %s is %v from now (max %v): %w", ts.UTC().Format(time.RFC3339Nano), d, maxSkew, ErrStale)
	}
	return nil
}

// Verify checks a live envelope: VerifySignature, then the timestamp
// against now within DefaultMaxSkew. It does not check for replays; that
// needs memory (Guard).
func Verify(env *wire.Envelope, pub devicekey.PublicKey, now time.Time) error {
	if _, err := SignerOf(env); err != nil {
		return err
	}
	// The clock check first: it is cheaper than the signature.
	if err := CheckSkew(env, now, DefaultMaxSkew); err != nil {
		return err
	}
	return VerifySignature(env, pub)
}

// CheckDevice checks that a device may sign an envelope with timestamp ts:
// it must be active, or revoked after ts (an envelope from history signed
// while the key was good). It fails with ErrRevokedSigner.
func CheckDevice(d devicekey.Device, ts uint64) error {
	if d.Active() {
		return nil
	}
	if d.Revoked.UnixMilli() > int64(min(ts, 1<<62)) {
		return nil
	}
	return fmt.Errorf("msgsig: device %s of %q revoked at %s: %w", d.ID, d.Owner, d.Revoked.UTC().Format(time.RFC3339), ErrRevokedSigner)
}
