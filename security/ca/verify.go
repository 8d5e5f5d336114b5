package ca

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Pin is the SHA-256 of a certificate's SubjectPublicKeyInfo. Pinning a CA
// key makes a client refuse any other CA, even one its trust store
// accepts.
type Pin [sha256.Size]byte

// PinOf returns cert's public-key pin.
func PinOf(cert *x509.Certificate) Pin { return pinOfSPKI(cert.RawSubjectPublicKeyInfo) }

func pinOfSPKI(spki []byte) Pin { return sha256.Sum256(spki) }

const pinPrefix = "sha256/"

// String returns "sha256/<base64>", the form HPKP and curl use.
func (p Pin) String() string { return pinPrefix + base64.StdEncoding.EncodeToString(p[:]) }

// ParsePin parses the String form.
func ParsePin(s string) (Pin, error) {
	rest, ok := strings.CutPrefix(s, pinPrefix)
	if !ok {
		return Pin{}, fmt.Errorf("ca: pin %q does not start with %s", s, pinPrefix)
	}
	raw, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return Pin{}, fmt.Errorf("ca: pin %q: %w", s, err)
	}
	var p Pin
	if len(raw) != len(p) {
		return Pin{}, fmt.Errorf("ca: pin %q is %d bytes, want %d", s, len(raw), len(p))
	}
	copy(p[:], raw)
	return p, nil
}

// Policy says which peers a Verifier accepts.
type Policy struct {
	// Cluster the peer must belong to. Required.
	Cluster string
	// Roles the peer may have. Empty means any role.
	Roles []string
	// Names the peer may have. Empty means any name.
	Names []string
	// Pins, when set, require some certificate in the verified chain (the
	// leaf or its CA) to have one of these public-key pins.
	Pins []Pin
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

// Verifier checks peer certificates against the cluster's trust anchors
// and a Policy. It is safe for concurrent use; SetTrust swaps the anchors
// for live listeners after a CA rotation.
type Verifier struct {
	policy Policy
	trust  atomic.Pointer[Trust]
}

// NewVerifier returns a Verifier over trust.
func NewVerifier(trust *Trust, p Policy) (*Verifier, error) {
	if trust == nil {
		return nil, errors.New("ca: verifier needs trust anchors")
	}
	if err := ValidateCluster(p.Cluster); err != nil {
		return nil, fmt.Errorf("ca: verifier policy: %w", err)
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	p.Roles, p.Names, p.Pins = slices.Clone(p.Roles), slices.Clone(p.Names), slices.Clone(p.Pins)
	v := &Verifier{policy: p}
	v.trust.Store(trust)
	return v, nil
}

// SetTrust replaces the trust anchors; handshakes after the call use them.
func (v *Verifier) SetTrust(t *Trust) {
	if t != nil {
		v.trust.Store(t)
	}
}

// Verify checks a peer's chain (leaf first; further certificates are
// treated as intermediates) and returns the peer's identity. Refusals are
// *jsperr.Error with codes UNAUTHENTICATED (no certificate),
// CERT_UNTRUSTED, CERT_EXPIRED, CERT_NOT_YET_VALID, CERT_BAD_IDENTITY,
// CERT_WRONG_ROLE and PIN_MISMATCH (JSP §7.4).
func (v *Verifier) Verify(certs []*x509.Certificate) (Identity, error) {
	if len(certs) == 0 {
		return Identity{}, jsperr.New(jsperr.Unauthenticated, "peer presented no certificate")
	}
	leaf := certs[0]
	now := v.policy.Now()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	// Check the chain at a moment inside the leaf's own validity, so that a
	// certificate from another CA is reported as untrusted even when it has
	// also expired; validity at now is checked below.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         v.trust.Load().Pool(now),
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return Identity{}, jsperr.Wrap(jsperr.CertExpired, fmt.Errorf("certificate %q: its CA is not valid: %w", leaf.Subject.CommonName, err))
		}
		return Identity{}, jsperr.Wrap(jsperr.CertUntrusted, fmt.Errorf("certificate %q: %w", leaf.Subject.CommonName, err))
	}
	if now.After(leaf.NotAfter) {
		return Identity{}, jsperr.Newf(jsperr.CertExpired, "certificate %q expired at %s (now %s)",
			leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return Identity{}, jsperr.Newf(jsperr.CertNotYetValid, "certificate %q is valid from %s (now %s)",
			leaf.Subject.CommonName, leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	chain := validChain(chains, now)
	if chain == nil {
		return Identity{}, jsperr.Newf(jsperr.CertExpired, "certificate %q: every chain has a CA that expired before %s",
			leaf.Subject.CommonName, now.UTC().Format(time.RFC3339))
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return Identity{}, jsperr.Wrap(jsperr.CertBadIdentity, err)
	}
	if id.Cluster != v.policy.Cluster {
		return Identity{}, jsperr.Newf(jsperr.CertBadIdentity, "peer %s belongs to cluster %q, want %q", id, id.Cluster, v.policy.Cluster)
	}
	if len(v.policy.Roles) > 0 && !slices.Contains(v.policy.Roles, id.Role) {
		return Identity{}, jsperr.Newf(jsperr.CertWrongRole, "peer %s has role %q, want one of %q", id, id.Role, v.policy.Roles)
	}
	if len(v.policy.Names) > 0 && !slices.Contains(v.policy.Names, id.Name) {
		return Identity{}, jsperr.Newf(jsperr.CertWrongRole, "peer %s has name %q, want one of %q", id, id.Name, v.policy.Names)
	}
	if len(v.policy.Pins) > 0 && !slices.ContainsFunc(chain, func(c *x509.Certificate) bool {
		return slices.Contains(v.policy.Pins, PinOf(c))
	}) {
		return Identity{}, jsperr.Newf(jsperr.PinMismatch, "peer %s: no key in its chain matches the %d pinned keys", id, len(v.policy.Pins))
	}
	return id, nil
}

// validChain returns the first chain whose certificates are all valid at
// now.
func validChain(chains [][]*x509.Certificate, now time.Time) []*x509.Certificate {
	for _, ch := range chains {
		if !slices.ContainsFunc(ch, func(c *x509.Certificate) bool {
			return now.After(c.NotAfter) || now.Before(c.NotBefore)
		}) {
			return ch
		}
	}
	return nil
}

// VerifyConnection is a tls.Config.VerifyConnection hook. It refuses
// anything but TLS 1.3 (JSP §7.4) and then verifies the peer's chain. It
// runs on resumed sessions too, so an expired peer certificate is refused
// even when the session ticket is still good.
func (v *Verifier) VerifyConnection(cs tls.ConnectionState) error {
	if cs.Version != tls.VersionTLS13 {
		return jsperr.Newf(jsperr.TlsRequired, "negotiated %s, JSP requires TLS 1.3", tls.VersionName(cs.Version))
	}
	_, err := v.Verify(cs.PeerCertificates)
	return err
}

// VerifyPeerCertificate is a tls.Config.VerifyPeerCertificate hook, for
// stacks that hand over raw certificates.
func (v *Verifier) VerifyPeerCertificate(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	certs := make([]*x509.Certificate, 0, len(rawCerts))
	for _, raw := range rawCerts {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return jsperr.Wrap(jsperr.CertUntrusted, fmt.Errorf("parse peer certificate: %w", err))
		}
		certs = append(certs, c)
	}
	_, err := v.Verify(certs)
	return err
}

// PeerIdentity returns the identity of a peer whose certificate was
// verified during the handshake.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.PeerCertificates) == 0 {
		return Identity{}, jsperr.New(jsperr.Unauthenticated, "peer presented no certificate")
	}
	id, err := IdentityOf(cs.PeerCertificates[0])
	if err != nil {
		return Identity{}, jsperr.Wrap(jsperr.CertBadIdentity, err)
	}
	return id, nil
}
