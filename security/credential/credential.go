// Package credential encodes and parses the credentials a client presents in
// HELLO auth (JSP §5.1): a token, a device proof bound to the connection's
// TLS exporter, or both. Clients build them with ForConnection; the server's
// authenticator (server/auth) parses and verifies them.
package credential

import (
	"bytes"
	"crypto/tls"
	"encoding/base64"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
)

// Credential prefixes in HELLO auth. Each names the credential's kind; the
// rest of the credential is unpadded base64url.
const (
	// TokenPrefix starts a token credential: the token's text form as
	// package token writes it.
	TokenPrefix = token.TextPrefix
	// DevicePrefix starts a device-proof credential: base64url of the
	// devicekey.ProofSize-byte proof (version, device id, signature over
	// the connection's exporter value).
	DevicePrefix = "jspd."
	// Separator separates credentials when HELLO auth carries both.
	Separator = ' '
	// MaxCredentials is the most credentials HELLO auth may carry: one of
	// each kind.
	MaxCredentials = 2
)

// deviceTextLen is the length of a device credential: the prefix and the
// unpadded base64url of a proof.
var deviceTextLen = len(DevicePrefix) + base64.RawURLEncoding.EncodedLen(devicekey.ProofSize)

// Credentials are what a client presents in HELLO auth (JSP §5.1).
type Credentials struct {
	// Token is a token's text form; empty when absent.
	Token string
	// Proof is a device proof; nil when absent.
	Proof *devicekey.Proof
}

// Empty reports whether c holds no credential.
func (c Credentials) Empty() bool { return c.Token == "" && c.Proof == nil }

// Len returns the length of c's encoding.
func (c Credentials) Len() int {
	n := 0
	if c.Token != "" {
		n += len(c.Token)
	}
	if c.Proof != nil {
		if n > 0 {
			n++
		}
		n += deviceTextLen
	}
	return n
}

// Append appends c's encoding to b: the token, then the device proof,
// separated by Separator. An empty c appends nothing.
func (c Credentials) Append(b []byte) []byte {
	if c.Token != "" {
		b = append(b, c.Token...)
	}
	if c.Proof != nil {
		if c.Token != "" {
			b = append(b, Separator)
		}
		b = append(b, DevicePrefix...)
		var raw [devicekey.ProofSize]byte
		b = base64.RawURLEncoding.AppendEncode(b, c.Proof.Append(raw[:0]))
	}
	return b
}

// ForConnection builds the HELLO auth a client sends on the connection
// whose TLS state is cs: tokenText (may be empty) and, when device is not
// zero, a device proof bound to cs's exporter value.
func ForConnection(tokenText string, device devicekey.PrivateKey, cs tls.ConnectionState) ([]byte, error) {
	c := Credentials{Token: tokenText}
	if !device.IsZero() {
		p, err := devicekey.Prove(device, cs)
		if err != nil {
			return nil, err
		}
		c.Proof = &p
	}
	return c.Append(nil), nil
}

// Parse decodes HELLO auth. Errors carry the code of the
// credential at fault: TOKEN_MALFORMED for a token that does not decode,
// CHANNEL_BINDING_FAILED for a device proof that does not decode, and
// UNAUTHENTICATED for an unknown kind, a repeated kind or more than
// MaxCredentials credentials. Empty input is no credentials. A token is
// only decoded here, not verified.
func Parse(b []byte) (Credentials, error) {
	var c Credentials
	if len(b) == 0 {
		return c, nil
	}
	n := 0
	for len(b) > 0 {
		part := b
		if i := bytes.IndexByte(b, Separator); i >= 0 {
			part, b = b[:i], b[i+1:]
			if len(b) == 0 {
				return Credentials{}, jsperr.New(jsperr.Unauthenticated, "auth: trailing separator")
			}
		} else {
			b = nil
		}
		if n++; n > MaxCredentials {
			return Credentials{}, jsperr.Newf(jsperr.Unauthenticated, "auth: more than %d credentials", MaxCredentials)
		}
		switch {
		case bytes.HasPrefix(part, []byte(TokenPrefix)):
			if c.Token != "" {
				return Credentials{}, jsperr.New(jsperr.Unauthenticated, "auth: two tokens")
			}
			// Decoding checks the form (and caps the size) before the
			// verifier does any work.
			if _, err := token.Parse(string(part)); err != nil {
				return Credentials{}, err
			}
			c.Token = string(part)
		case bytes.HasPrefix(part, []byte(DevicePrefix)):
			if c.Proof != nil {
				return Credentials{}, jsperr.New(jsperr.Unauthenticated, "auth: two device proofs")
			}
			p, err := parseDevice(part)
			if err != nil {
				return Credentials{}, err
			}
			c.Proof = &p
		case len(part) == 0:
			return Credentials{}, jsperr.New(jsperr.Unauthenticated, "auth: empty credential")
		default:
			return Credentials{}, jsperr.Newf(jsperr.Unauthenticated, "auth: credential of unknown kind (want %q or %q)", TokenPrefix, DevicePrefix)
		}
	}
	return c, nil
}

// parseDevice decodes one device credential.
func parseDevice(part []byte) (devicekey.Proof, error) {
	// The length is checked before decoding, so nothing is allocated for
	// oversize input.
	if len(part) != deviceTextLen {
		return devicekey.Proof{}, jsperr.Newf(jsperr.ChannelBindingFailed, "auth: device credential is %d bytes, want %d", len(part), deviceTextLen)
	}
	var raw [devicekey.ProofSize]byte
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], part[len(DevicePrefix):])
	if err != nil || n != len(raw) {
		return devicekey.Proof{}, jsperr.Newf(jsperr.ChannelBindingFailed, "auth: device credential is not base64url of %d bytes", len(raw))
	}
	p, _, err := devicekey.ParseProof(raw[:])
	return p, err
}
