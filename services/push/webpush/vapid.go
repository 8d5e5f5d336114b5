package webpush

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"time"
)

// b64 is the unpadded base64url encoding JWTs and Web Push keys use.
var b64 = base64.RawURLEncoding

// jwtHeader is the fixed JOSE header of a VAPID token (RFC 8292,
// Section 2: ES256).
var jwtHeader = b64.EncodeToString([]byte(`{"typ":"JWT","alg":"ES256"}`))

// Claims are the VAPID JWT claims (RFC 8292, Section 2).
type Claims struct {
	// Aud is the origin of the push resource (scheme://host[:port]).
	Aud string `json:"aud"`
	// Exp is the expiry in Unix seconds, at most 24 hours ahead.
	Exp int64 `json:"exp"`
	// Sub is a contact URI of the application server operator
	// ("mailto:" or "https:").
	Sub string `json:"sub,omitempty"`
}

// MaxTokenTTL is the longest VAPID token lifetime RFC 8292, Section 2
// allows.
const MaxTokenTTL = 24 * time.Hour

// Origin returns the audience of an endpoint URL: its scheme and host.
func Origin(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("webpush: endpoint %q is not an absolute URL", endpoint)
	}
	return u.Scheme + "://" + u.Host, nil
}

// PublicKey returns the VAPID public key as the uncompressed point the
// "k" parameter and the browser's applicationServerKey carry.
func PublicKey(key *ecdsa.PrivateKey) ([]byte, error) {
	b, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("webpush: vapid public key: %w", err)
	}
	return b, nil
}

// GenerateVAPIDKey returns a new P-256 VAPID signing key.
func GenerateVAPIDKey(rand io.Reader) (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, fmt.Errorf("webpush: generate vapid key: %w", err)
	}
	return k, nil
}

// SignToken returns an ES256 JWT of claims signed with key: the JWS
// signature is r || s, each 32 bytes big-endian (RFC 7518, Section 3.4),
// not ASN.1.
func SignToken(rand io.Reader, key *ecdsa.PrivateKey, c Claims) (string, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("webpush: vapid claims: %w", err)
	}
	input := jwtHeader + "." + b64.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand, key, digest[:])
	if err != nil {
		return "", fmt.Errorf("webpush: vapid sign: %w", err)
	}
	var sig [64]byte
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64.EncodeToString(sig[:]), nil
}

// AuthorizationHeader returns the RFC 8292, Section 3 Authorization value:
// "vapid t=<jwt>, k=<base64url public key>".
func AuthorizationHeader(token string, publicKey []byte) string {
	return "vapid t=" + token + ", k=" + b64.EncodeToString(publicKey)
}
