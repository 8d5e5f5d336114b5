// Package tlsconf builds the TLS configuration every JSP transport uses
// (JSP §7.4): TLS 1.3 only, ALPN "jsp/1" (JSP §8.1), and Go's default key
// exchange preferences, which put the post-quantum hybrid X25519MLKEM768
// first. It also manages development certificates and SPKI pins.
//
// A server uses
//
//	cert, err := tlsconf.LoadOrCreateDevCert(dataDir, nil, time.Now) // or LoadKeyPair
//	srv := tlsconf.Server(cert)
//
// and a client either trusts the system roots (the zero ClientConfig plus a
// ServerName), a private pool, or, for a self-signed development server, the
// server's SPKI fingerprint alone:
//
//	cli, err := tlsconf.Client(tlsconf.ClientConfig{
//		Pins: []tlsconf.Fingerprint{fp}, TrustPinsOnly: true,
//	})
//
// Transports that accept a caller-built *tls.Config pass it through
// [Enforce], which raises it to the JSP requirements rather than trusting it.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// ErrPinMismatch is returned (wrapped) by the handshake when the server's
// public key matches none of the configured pins.
var ErrPinMismatch = errors.New("tlsconf: server public key matches no pinned fingerprint")

// Server returns a server configuration presenting cert. The caller may add
// client authentication (ClientAuth, ClientCAs) to the result; it must not
// lower MinVersion or replace NextProtos.
func Server(cert tls.Certificate) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		// JSP §7.4: TLS 1.3 only. Lower versions lack the handshake
		// encryption and the fixed, AEAD-only cipher suites the spec relies on.
		MinVersion: tls.VersionTLS13,
		// JSP §8.1: the ALPN value carries the major protocol version.
		NextProtos: []string{protocol.ALPN},
		// CurvePreferences stays nil on purpose: Go's default order offers
		// and prefers X25519MLKEM768 (JSP §7.4), and a fixed list here would
		// freeze out whatever Go adds next.
	}
}

// ClientConfig describes how a client authenticates the server. The zero
// value verifies the server against the system roots; ServerName is then
// required unless the caller dials by a name the TLS stack fills in itself
// (quic-go and crypto/tls take it from the dialed host).
type ClientConfig struct {
	// ServerName is the name checked against the certificate. Empty means
	// the transport fills it in from the dialed address.
	ServerName string
	// RootCAs verifies the server's chain. Nil means the system roots.
	RootCAs *x509.CertPool
	// Pins, when non-empty, additionally requires the server leaf's SPKI
	// SHA-256 fingerprint to be one of these.
	Pins []Fingerprint
	// TrustPinsOnly skips chain and name verification and trusts the pins
	// alone, as for a self-signed development certificate. It requires at
	// least one pin. TLS 1.3 still proves that the server holds the pinned
	// key, because crypto/tls checks CertificateVerify against the leaf key
	// whatever the verification mode.
	TrustPinsOnly bool
	// Certificates are presented for client authentication (mTLS) when the
	// server asks for them.
	Certificates []tls.Certificate
}

// Client returns a client configuration for cfg. It fails when cfg is
// inconsistent (TrustPinsOnly without pins).
func Client(cfg ClientConfig) (*tls.Config, error) {
	if cfg.TrustPinsOnly && len(cfg.Pins) == 0 {
		return nil, errors.New("tlsconf: TrustPinsOnly needs at least one pin")
	}
	c := &tls.Config{
		ServerName:   cfg.ServerName,
		RootCAs:      cfg.RootCAs,
		Certificates: cfg.Certificates,
		MinVersion:   tls.VersionTLS13, // JSP §7.4
		NextProtos:   []string{protocol.ALPN},
	}
	if len(cfg.Pins) > 0 {
		pins := slices.Clone(cfg.Pins)
		// Checking in VerifyConnection rather than VerifyPeerCertificate
		// runs the pin check on resumed sessions too.
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("tlsconf: server sent no certificate: %w", ErrPinMismatch)
			}
			got := SPKIFingerprint(cs.PeerCertificates[0])
			if !slices.Contains(pins, got) {
				return fmt.Errorf("tlsconf: server key %s: %w", got, ErrPinMismatch)
			}
			return nil
		}
		// Without a chain to verify, the pin is the whole trust decision.
		c.InsecureSkipVerify = cfg.TrustPinsOnly
	}
	return c, nil
}

// Enforce returns a copy of c raised to the JSP requirements (JSP §7.4,
// §8.1): MinVersion TLS 1.3 and NextProtos exactly ["jsp/1"]. It fails when
// c is nil or caps the version below TLS 1.3. Key exchange preferences are
// left as the caller set them.
func Enforce(c *tls.Config) (*tls.Config, error) {
	if c == nil {
		return nil, errors.New("tlsconf: nil tls.Config")
	}
	if c.MaxVersion != 0 && c.MaxVersion < tls.VersionTLS13 {
		return nil, fmt.Errorf("tlsconf: MaxVersion 0x%04x is below TLS 1.3 (JSP §7.4)", c.MaxVersion)
	}
	c = c.Clone()
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	// Only the JSP/1 protocol may be negotiated: a connection that agreed
	// on anything else would carry frames the peer does not expect.
	c.NextProtos = []string{protocol.ALPN}
	return c, nil
}

// CheckState verifies a completed handshake against JSP §7.4 and §8.1: TLS
// 1.3 and ALPN "jsp/1". Transports call it after the handshake as a guard
// independent of how the configuration was built.
func CheckState(cs tls.ConnectionState) error {
	if !cs.HandshakeComplete {
		return errors.New("tlsconf: handshake not complete")
	}
	if cs.Version != tls.VersionTLS13 {
		return fmt.Errorf("tlsconf: negotiated %s, need TLS 1.3 (JSP §7.4)", tls.VersionName(cs.Version))
	}
	if cs.NegotiatedProtocol != protocol.ALPN {
		return fmt.Errorf("tlsconf: negotiated ALPN %q, need %q (JSP §8.1)", cs.NegotiatedProtocol, protocol.ALPN)
	}
	return nil
}
