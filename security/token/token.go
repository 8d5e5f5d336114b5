// Package token implements JSP's short-lived signed auth tokens (JSP §5.1
// HELLO auth, §7.4): a compact binary structure signed with Ed25519, sent
// as text.
//
// A token names its signing key by id, so verifiers can hold several keys:
// the current signing key and previous ones during a rotation overlap
// ([KeySet]). Verification refuses with a distinct code for each reason:
// TOKEN_MALFORMED, TOKEN_KEY_REVOKED, TOKEN_UNKNOWN_KEY,
// TOKEN_BAD_SIGNATURE, TOKEN_EXPIRED, TOKEN_NOT_YET_VALID and
// TOKEN_WRONG_AUDIENCE, checked in that order, so that nothing but the
// signature is believed before the signature has been checked.
//
// # Encoding (version 1)
//
// All integers are big-endian; strings are UTF-8 with a one-byte length.
//
//	offset  size       field
//	0       1          version = 0x01
//	1       8          key id: first 8 bytes of SHA-256(Ed25519 public key)
//	9       8          not-before, Unix seconds (int64)
//	17      8          expiry, Unix seconds (int64), after not-before
//	25      1+n        issuer   (n = 0..255)
//	        1+n        audience (n = 1..255)
//	        1+n        subject  (n = 0..255)
//	        1          scope count k (0..MaxScopes)
//	        k × (1+n)  scopes (n = 1..255, no duplicates)
//	        64         Ed25519 signature over SignatureContext || bytes 0..here
//
// Nothing may follow the signature; the whole token is at most MaxSize
// bytes. The text form is TextPrefix followed by the unpadded base64url
// encoding of those bytes; the prefix lets secret scanners recognise a
// leaked token.
//
// A token is valid from not-before (inclusive) to expiry (exclusive), each
// widened by the verifier's leeway for clock skew.
package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Format constants.
const (
	// Version is the encoding version this package writes and reads.
	Version = 1
	// TextPrefix starts the text form of every token.
	TextPrefix = "jspt."
	// SignatureContext is prepended to the signed bytes, so that a token
	// signature can never be mistaken for a signature over anything else
	// made with the same key.
	SignatureContext = "JSP-TOKEN-v1\x00"
	// MaxScopes caps the scopes in one token.
	MaxScopes = 32
	// MaxSize caps the binary token. The fields could add up to more
	// (3×256 + 32×256 bytes); a verifier refuses larger input before
	// decoding it, so a peer cannot make it do work for a huge token.
	MaxSize = 1024
	// maxText is the longest text form of a MaxSize token.
	maxText = len(TextPrefix) + (MaxSize*8+5)/6

	fixedLen = 1 + KeyIDSize + 8 + 8
	sigLen   = ed25519.SignatureSize
)

// KeyIDSize is the length of a key id.
const KeyIDSize = 8

// KeyID names a signing key: the first 8 bytes of the SHA-256 of its
// Ed25519 public key. Deriving it from the key means ids never need to be
// assigned or coordinated.
type KeyID [KeyIDSize]byte

// String returns the id in hex.
func (k KeyID) String() string { return hex.EncodeToString(k[:]) }

// ParseKeyID parses the hex form.
func ParseKeyID(s string) (KeyID, error) {
	var k KeyID
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != KeyIDSize {
		return k, fmt.Errorf("token: key id %q is not %d hex bytes", s, KeyIDSize)
	}
	copy(k[:], raw)
	return k, nil
}

// PublicKey verifies tokens.
type PublicKey [ed25519.PublicKeySize]byte

// KeyID returns the key's id.
func (k PublicKey) KeyID() KeyID {
	sum := sha256.Sum256(k[:])
	return KeyID(sum[:KeyIDSize])
}

// PrivateKey signs tokens. Its String method never prints key material.
type PrivateKey struct {
	key ed25519.PrivateKey
}

// GenerateKey returns a new signing key. rand nil means crypto/rand.
func GenerateKey(rand io.Reader) (PrivateKey, error) {
	_, k, err := ed25519.GenerateKey(rand)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("token: generate key: %w", err)
	}
	return PrivateKey{key: k}, nil
}

// IsZero reports whether k holds no key.
func (k PrivateKey) IsZero() bool { return k.key == nil }

// Public returns the verifying half.
func (k PrivateKey) Public() PublicKey { return PublicKey(k.key[ed25519.SeedSize:]) }

// KeyID returns the key's id.
func (k PrivateKey) KeyID() KeyID { return k.Public().KeyID() }

// String names the key by id only.
func (k PrivateKey) String() string {
	if k.IsZero() {
		return "token.PrivateKey(none)"
	}
	return "token.PrivateKey(" + k.KeyID().String() + ")"
}

// MarshalPrivateKeyPEM encodes k as a PKCS#8 "PRIVATE KEY" PEM block.
func MarshalPrivateKeyPEM(k PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.key)
	if err != nil {
		return nil, fmt.Errorf("token: encode private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKeyPEM parses a PKCS#8 Ed25519 "PRIVATE KEY" PEM block.
func ParsePrivateKeyPEM(raw []byte) (PrivateKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PRIVATE KEY" {
		return PrivateKey{}, errors.New("token: no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("token: parse private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return PrivateKey{}, fmt.Errorf("token: private key is %T, want Ed25519", k)
	}
	return PrivateKey{key: ek}, nil
}

// MarshalPublicKeyPEM encodes k as a PKIX "PUBLIC KEY" PEM block.
func MarshalPublicKeyPEM(k PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(ed25519.PublicKey(k[:]))
	if err != nil {
		return nil, fmt.Errorf("token: encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParsePublicKeyPEM parses a PKIX Ed25519 "PUBLIC KEY" PEM block.
func ParsePublicKeyPEM(raw []byte) (PublicKey, error) {
	block, _ := pem.Decode(raw)
	if block == nil || block.Type != "PUBLIC KEY" {
		return PublicKey{}, errors.New("token: no PUBLIC KEY PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return PublicKey{}, fmt.Errorf("token: parse public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return PublicKey{}, fmt.Errorf("token: public key is %T, want Ed25519", k)
	}
	return PublicKey(ek), nil
}

// Claims is what a token asserts.
type Claims struct {
	// Issuer names who issued the token, e.g. "auth.prod".
	Issuer string
	// Audience names the service the token is for; a verifier accepts
	// only its own audience. Required.
	Audience string
	// Subject is the authenticated user or client.
	Subject string
	// NotBefore is when the token becomes valid (second precision).
	NotBefore time.Time
	// Expiry is when the token stops being valid (second precision).
	Expiry time.Time
	// Scopes lists what the subject may do, e.g. "chat:write".
	Scopes []string
}

// Token is a decoded token.
type Token struct {
	// KeyID names the key that signed it.
	KeyID KeyID
	Claims
	signed []byte // bytes covered by the signature, context excluded
	sig    []byte
}

func (c *Claims) check() error {
	switch {
	case c.Audience == "":
		return errors.New("audience is empty")
	case c.Expiry.IsZero():
		return errors.New("expiry is not set")
	case c.Expiry.Unix() <= c.NotBefore.Unix():
		return fmt.Errorf("expiry %v is not after not-before %v", c.Expiry, c.NotBefore)
	case len(c.Scopes) > MaxScopes:
		return fmt.Errorf("%d scopes, at most %d", len(c.Scopes), MaxScopes)
	}
	for _, f := range []struct {
		name string
		v    string
	}{{"issuer", c.Issuer}, {"audience", c.Audience}, {"subject", c.Subject}} {
		if len(f.v) > 255 || !utf8.ValidString(f.v) {
			return fmt.Errorf("%s is not UTF-8 of at most 255 bytes", f.name)
		}
	}
	for i, s := range c.Scopes {
		if s == "" || len(s) > 255 || !utf8.ValidString(s) {
			return fmt.Errorf("scope %q is not non-empty UTF-8 of at most 255 bytes", s)
		}
		if slices.Contains(c.Scopes[:i], s) {
			return fmt.Errorf("scope %q repeated", s)
		}
	}
	return nil
}

// Sign encodes c and signs it with k, returning the text form.
func Sign(k PrivateKey, c Claims) (string, error) {
	if k.IsZero() {
		return "", errors.New("token: sign: no key")
	}
	if c.NotBefore.IsZero() {
		return "", errors.New("token: sign: not-before is not set")
	}
	if err := c.check(); err != nil {
		return "", fmt.Errorf("token: sign: %w", err)
	}
	b := make([]byte, 0, 128)
	b = append(b, Version)
	kid := k.KeyID()
	b = append(b, kid[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.NotBefore.Unix()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Expiry.Unix()))
	for _, s := range []string{c.Issuer, c.Audience, c.Subject} {
		b = appendString(b, s)
	}
	b = append(b, byte(len(c.Scopes)))
	for _, s := range c.Scopes {
		b = appendString(b, s)
	}
	if len(b)+sigLen > MaxSize {
		return "", fmt.Errorf("token: sign: token would be %d bytes, at most %d", len(b)+sigLen, MaxSize)
	}
	b = append(b, ed25519.Sign(k.key, signedMessage(b))...)
	return TextPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func appendString(b []byte, s string) []byte {
	return append(append(b, byte(len(s))), s...)
}

func signedMessage(b []byte) []byte {
	return append([]byte(SignatureContext), b...)
}

// Parse decodes a token's text form without verifying it. Use it only to
// inspect a token; KeySet.Verify decides whether to believe it. Errors
// carry code TOKEN_MALFORMED.
func Parse(text string) (*Token, error) {
	if len(text) > maxText {
		return nil, jsperr.Newf(jsperr.TokenMalformed, "token text is %d bytes, at most %d", len(text), maxText)
	}
	rest, ok := strings.CutPrefix(text, TextPrefix)
	if !ok {
		return nil, jsperr.Newf(jsperr.TokenMalformed, "token does not start with %q", TextPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
	if err != nil {
		return nil, jsperr.Wrap(jsperr.TokenMalformed, fmt.Errorf("token base64: %w", err))
	}
	return Decode(raw)
}

// Decode decodes a token's binary form without verifying it. Errors carry
// code TOKEN_MALFORMED.
func Decode(raw []byte) (*Token, error) {
	malformed := func(format string, args ...any) error {
		return jsperr.Newf(jsperr.TokenMalformed, "token: "+format, args...)
	}
	if len(raw) > MaxSize {
		return nil, malformed("%d bytes, at most %d", len(raw), MaxSize)
	}
	if len(raw) < fixedLen+4+sigLen {
		return nil, malformed("%d bytes, shorter than the smallest token", len(raw))
	}
	if raw[0] != Version {
		return nil, malformed("version %d, want %d", raw[0], Version)
	}
	// Keep a copy: the token must not change when the caller reuses raw.
	raw = bytes.Clone(raw)
	body := raw[:len(raw)-sigLen]
	t := &Token{signed: body, sig: raw[len(raw)-sigLen:]}
	copy(t.KeyID[:], body[1:])
	nbf := int64(binary.BigEndian.Uint64(body[9:]))
	exp := int64(binary.BigEndian.Uint64(body[17:]))
	p := body[fixedLen:]
	var strs [3]string
	for i := range strs {
		var err error
		if strs[i], p, err = readString(p); err != nil {
			return nil, malformed("%s", err)
		}
	}
	if len(p) < 1 {
		return nil, malformed("scope count missing")
	}
	n := int(p[0])
	p = p[1:]
	if n > MaxScopes {
		return nil, malformed("%d scopes, at most %d", n, MaxScopes)
	}
	var scopes []string
	if n > 0 {
		// n ≤ MaxScopes, so this allocation is bounded.
		scopes = make([]string, 0, n)
	}
	for range n {
		s, rest, err := readString(p)
		if err != nil {
			return nil, malformed("scope: %s", err)
		}
		scopes = append(scopes, s)
		p = rest
	}
	if len(p) != 0 {
		return nil, malformed("%d bytes between the last field and the signature", len(p))
	}
	t.Claims = Claims{
		Issuer: strs[0], Audience: strs[1], Subject: strs[2],
		NotBefore: time.Unix(nbf, 0).UTC(), Expiry: time.Unix(exp, 0).UTC(),
		Scopes: scopes,
	}
	if exp <= nbf {
		return nil, malformed("expiry %d not after not-before %d", exp, nbf)
	}
	if err := t.Claims.check(); err != nil {
		return nil, malformed("%s", err)
	}
	return t, nil
}

func readString(p []byte) (string, []byte, error) {
	if len(p) < 1 {
		return "", nil, errors.New("string length missing")
	}
	n := int(p[0])
	if len(p) < 1+n {
		return "", nil, fmt.Errorf("string of %d bytes truncated to %d", n, len(p)-1)
	}
	return string(p[1 : 1+n]), p[1+n:], nil
}

// VerifySignature checks the signature with k; it checks nothing else.
func (t *Token) VerifySignature(k PublicKey) error {
	if k.KeyID() != t.KeyID {
		return jsperr.Newf(jsperr.TokenUnknownKey, "token signed by key %s, not %s", t.KeyID, k.KeyID())
	}
	if !ed25519.Verify(ed25519.PublicKey(k[:]), signedMessage(t.signed), t.sig) {
		return jsperr.Newf(jsperr.TokenBadSignature, "token signature by key %s does not verify", t.KeyID)
	}
	return nil
}

// Encode returns the token's binary form.
func (t *Token) Encode() []byte {
	out := make([]byte, 0, len(t.signed)+len(t.sig))
	return append(append(out, t.signed...), t.sig...)
}

// Text returns the token's text form.
func (t *Token) Text() string { return TextPrefix + base64.RawURLEncoding.EncodeToString(t.Encode()) }
