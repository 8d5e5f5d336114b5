package client

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// ErrPinMismatch is returned (wrapped) by Dial when the server's public key
// matches none of Options.Pins. It is tlsconf.ErrPinMismatch, so either
// sentinel works with errors.Is.
var ErrPinMismatch = tlsconf.ErrPinMismatch

// loadRootCAs reads a PEM file of CA certificates into a new pool.
func loadRootCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("client: read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("client: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// buildTLS returns the base TLS configuration for a server named host, from
// Options (JSP §7.4): the caller's config (or an empty one) raised to TLS 1.3
// with ALPN jsp/1, the CA pool, and InsecureSkipVerify when asked or when
// pins are the only trust anchor. The pin check itself is installed per dial
// attempt by pinVerifier, so that a mismatch is reported as such whatever the
// transport makes of the TLS alert.
func buildTLS(o *Options, host string) (*tls.Config, error) {
	base := o.TLS
	if base == nil {
		base = &tls.Config{}
	}
	c, err := tlsconf.Enforce(base)
	if err != nil {
		return nil, fmt.Errorf("client: TLS config: %w", err)
	}
	if o.RootCAsFile != "" {
		pool, err := loadRootCAs(o.RootCAsFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if o.RootCAs != nil {
		c.RootCAs = o.RootCAs
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	switch {
	case o.InsecureSkipVerify:
		c.InsecureSkipVerify = true
	case len(o.Pins) > 0 && o.RootCAsFile == "" && o.RootCAs == nil && base.RootCAs == nil:
		// A pin with no CA given trusts the pinned key alone, as for a
		// self-signed development certificate. TLS 1.3 still proves that
		// the server holds the pinned key: crypto/tls checks
		// CertificateVerify against the leaf key in every mode.
		c.InsecureSkipVerify = true
	}
	return c, nil
}

// pinVerifier checks the server's SPKI fingerprint against the pins on one
// dial attempt and remembers a mismatch.
type pinVerifier struct {
	pins []tlsconf.Fingerprint
	host string

	mu  sync.Mutex
	err error // guarded by mu; the first mismatch seen
}

// install returns a copy of c that runs the pin check after the caller's
// own VerifyConnection, if any.
func (p *pinVerifier) install(c *tls.Config) *tls.Config {
	c = c.Clone()
	if len(p.pins) == 0 {
		return c
	}
	prev := c.VerifyConnection
	// VerifyConnection rather than VerifyPeerCertificate: it also runs on
	// resumed sessions.
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if prev != nil {
			if err := prev(cs); err != nil {
				return err
			}
		}
		return p.check(cs)
	}
	return c
}

func (p *pinVerifier) check(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return p.record(fmt.Errorf("client: server %s sent no certificate: %w", p.host, ErrPinMismatch))
	}
	got := tlsconf.SPKIFingerprint(cs.PeerCertificates[0])
	if slices.Contains(p.pins, got) {
		return nil
	}
	want := make([]string, len(p.pins))
	for i, f := range p.pins {
		want[i] = f.String()
	}
	return p.record(fmt.Errorf("client: server %s presented key %s, pinned %s: refusing the connection: %w",
		p.host, got, strings.Join(want, ", "), ErrPinMismatch))
}

func (p *pinVerifier) record(err error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
	return err
}

// mismatch returns the recorded pin mismatch, or nil.
func (p *pinVerifier) mismatch() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// isFatal reports dial errors that another transport cannot fix, so a race
// stops at once instead of falling back: a pinned key that does not match
// and a certificate that does not verify.
func isFatal(err error) bool {
	if errors.Is(err, ErrPinMismatch) {
		return true
	}
	var unknownAuth x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownAuth) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}
