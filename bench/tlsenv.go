package bench

import (
	"crypto/tls"
	"fmt"
	"os"
	"time"

	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// TLS is the TLS configuration pair every stack under test uses, JSP and
// raw alike: the project's TLS 1.3 server configuration presenting a
// development certificate, and a client configuration that trusts that
// certificate by its SPKI pin (JSP §7.4). Both offer ALPN "jsp/1" and Go's
// default key exchange (X25519MLKEM768 first), and the client keeps no
// session cache, so every handshake is a full one.
type TLS struct {
	Server *tls.Config
	Client *tls.Config
}

// NewTLS creates a development certificate in a temporary directory, which
// it removes again, and returns the configurations that use it.
func NewTLS() (TLS, error) {
	dir, err := os.MkdirTemp("", "jsp-bench-cert")
	if err != nil {
		return TLS{}, fmt.Errorf("bench: certificate directory: %w", err)
	}
	defer os.RemoveAll(dir)
	cert, err := tlsconf.LoadOrCreateDevCert(dir, nil, time.Now)
	if err != nil {
		return TLS{}, fmt.Errorf("bench: development certificate: %w", err)
	}
	client, err := tlsconf.Client(tlsconf.ClientConfig{
		Pins:          []tlsconf.Fingerprint{tlsconf.SPKIFingerprint(cert.Leaf)},
		TrustPinsOnly: true,
	})
	if err != nil {
		return TLS{}, fmt.Errorf("bench: client TLS configuration: %w", err)
	}
	return TLS{Server: tlsconf.Server(cert), Client: client}, nil
}
