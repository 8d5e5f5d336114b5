package tlsconf

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
)

// Fingerprint is the SHA-256 digest of a certificate's DER-encoded
// SubjectPublicKeyInfo. Pinning the key rather than the certificate keeps a
// pin valid when the same key is re-certified.
type Fingerprint [sha256.Size]byte

// fingerprintPrefix names the hash in the text form, as HTTP public key
// pinning did, so that a later hash can be told apart.
const fingerprintPrefix = "sha256/"

// SPKIFingerprint returns the SPKI SHA-256 fingerprint of cert.
func SPKIFingerprint(cert *x509.Certificate) Fingerprint {
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

// String returns the text form "sha256/" + standard base64.
func (f Fingerprint) String() string {
	return fingerprintPrefix + base64.StdEncoding.EncodeToString(f[:])
}

// ParseFingerprint parses the text form written by [Fingerprint.String], or
// 64 hexadecimal digits (colons allowed, as openssl prints them).
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if b64, ok := strings.CutPrefix(s, fingerprintPrefix); ok {
		// Decode into a buffer with room for one extra byte so that an
		// over-long input is detected rather than silently truncated.
		var buf [sha256.Size + 3]byte
		if base64.StdEncoding.DecodedLen(len(b64)) > len(buf) {
			return f, fmt.Errorf("tlsconf: fingerprint %q: too long", s)
		}
		n, err := base64.StdEncoding.Decode(buf[:], []byte(b64))
		if err != nil {
			return f, fmt.Errorf("tlsconf: fingerprint %q: %w", s, err)
		}
		if n != len(f) {
			return f, fmt.Errorf("tlsconf: fingerprint %q: %d bytes, want %d", s, n, len(f))
		}
		copy(f[:], buf[:n])
		return f, nil
	}
	h := strings.ReplaceAll(s, ":", "")
	if len(h) != 2*len(f) {
		return f, fmt.Errorf("tlsconf: fingerprint %q: want %q+base64 or %d hex digits", s, fingerprintPrefix, 2*len(f))
	}
	if _, err := hex.Decode(f[:], []byte(h)); err != nil {
		return f, fmt.Errorf("tlsconf: fingerprint %q: %w", s, err)
	}
	return f, nil
}
