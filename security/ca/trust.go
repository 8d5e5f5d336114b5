package ca

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// MaxAnchors caps the CA certificates a trust file may hold. Each rotation
// adds one for the overlap and drops those whose overlap ended, so a
// healthy directory holds two or three.
const MaxAnchors = 16

// Anchor is one trusted CA certificate.
type Anchor struct {
	// Cert is the CA certificate.
	Cert *x509.Certificate
	// Until ends trust before Cert expires: it is set on a retired CA to
	// the end of its rotation overlap. Zero means until Cert.NotAfter.
	Until time.Time
}

// activeAt reports whether the anchor still vouches for certificates at
// now. An expired CA stays in the pool until its Until (or forever, for
// zero Until) so that its leaves are reported as expired, not untrusted.
func (a Anchor) activeAt(now time.Time) bool {
	return a.Until.IsZero() || !now.After(a.Until)
}

// Trust is an immutable set of trust anchors: the current CA first, then
// retired CAs in their overlap.
type Trust struct {
	anchors []Anchor
}

// NewTrust returns a Trust of the given anchors. Each must be a CA
// certificate.
func NewTrust(anchors ...Anchor) (*Trust, error) {
	if len(anchors) == 0 {
		return nil, errors.New("ca: trust needs at least one anchor")
	}
	if len(anchors) > MaxAnchors {
		return nil, fmt.Errorf("ca: %d trust anchors, at most %d", len(anchors), MaxAnchors)
	}
	for _, a := range anchors {
		if a.Cert == nil || !a.Cert.IsCA {
			return nil, errors.New("ca: trust anchor is not a CA certificate")
		}
	}
	return &Trust{anchors: append([]Anchor(nil), anchors...)}, nil
}

// Anchors returns a copy of the anchors, current CA first.
func (t *Trust) Anchors() []Anchor { return append([]Anchor(nil), t.anchors...) }

// Pool returns the CA certificates trusted at now.
func (t *Trust) Pool(now time.Time) *x509.CertPool {
	pool := x509.NewCertPool()
	for _, a := range t.anchors {
		if a.activeAt(now) {
			pool.AddCert(a.Cert)
		}
	}
	return pool
}

// PEM returns the anchors as a plain certificate bundle, usable by any TLS
// stack as its CA file. Overlap ends live in state.json.
func (t *Trust) PEM() []byte {
	var out []byte
	for _, a := range t.anchors {
		out = append(out, pemCert(a.Cert)...)
	}
	return out
}

// trustState is state.json: when retired CAs stop being trusted, keyed by
// the SHA-256 of the CA certificate (hex).
type trustState struct {
	TrustUntil map[string]time.Time `json:"trust_until"`
}

func certFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

func (t *Trust) marshalState() ([]byte, error) {
	st := trustState{TrustUntil: map[string]time.Time{}}
	for _, a := range t.anchors {
		if !a.Until.IsZero() {
			st.TrustUntil[certFingerprint(a.Cert)] = a.Until.UTC()
		}
	}
	out, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", StateFile, err)
	}
	return append(out, '\n'), nil
}

// ParseTrustPEM parses a bundle of CA certificates, with no overlap ends.
func ParseTrustPEM(raw []byte) (*Trust, error) {
	var anchors []Anchor
	for len(raw) > 0 {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca: trust bundle holds a %q PEM block", block.Type)
		}
		if len(anchors) == MaxAnchors {
			return nil, fmt.Errorf("ca: trust bundle holds more than %d certificates", MaxAnchors)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca: trust bundle: %w", err)
		}
		anchors = append(anchors, Anchor{Cert: cert})
	}
	return NewTrust(anchors...)
}

// LoadTrust reads trust.pem and, if present, state.json from dir. A service
// needs only these two files, never the CA key.
func LoadTrust(dir string) (*Trust, error) {
	raw, err := os.ReadFile(filepath.Join(dir, TrustFile))
	if err != nil {
		return nil, fmt.Errorf("ca: load trust: %w", err)
	}
	t, err := ParseTrustPEM(raw)
	if err != nil {
		return nil, fmt.Errorf("ca: load trust from %s: %w", dir, err)
	}
	rawState, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ca: load trust: %w", err)
	}
	var st trustState
	if err := json.Unmarshal(rawState, &st); err != nil {
		return nil, fmt.Errorf("ca: load trust: parse %s: %w", StateFile, err)
	}
	for i := range t.anchors {
		t.anchors[i].Until = st.TrustUntil[certFingerprint(t.anchors[i].Cert)]
	}
	return t, nil
}
