package ca

import (
	"crypto/tls"
	"errors"
)

// CertificateSource hands out the certificate to present; *Renewer is one,
// Static wraps a fixed certificate.
type CertificateSource interface {
	Certificate() (*tls.Certificate, error)
}

type staticSource struct{ cert *tls.Certificate }

// Certificate implements CertificateSource.
func (s staticSource) Certificate() (*tls.Certificate, error) { return s.cert, nil }

// Static returns a CertificateSource that always presents cert.
func Static(cert *tls.Certificate) CertificateSource { return staticSource{cert: cert} }

// ServerConfig returns a TLS 1.3 server configuration for mTLS among
// services (JSP §7.4): it presents src's current certificate and requires a
// client certificate that v accepts.
//
// Client certificates are requested with RequireAnyClientCert and checked
// in VerifyConnection rather than by crypto/tls's own ClientCAs check, so
// that a refusal carries a specific JSP code, the trust anchors can change
// while the listener runs, and v's clock is used. Callers add NextProtos.
func ServerConfig(src CertificateSource, v *Verifier) (*tls.Config, error) {
	if src == nil || v == nil {
		return nil, errors.New("ca: server config needs a certificate source and a verifier")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: v.VerifyConnection,
	}, nil
}

// ClientConfig returns a TLS 1.3 client configuration for mTLS among
// services: it presents src's current certificate and accepts a server that
// v accepts.
//
// InsecureSkipVerify only turns off crypto/tls's host-name and web-PKI
// check; VerifyConnection, which crypto/tls always runs, verifies the chain
// against the cluster CA, the expiry and the server's role instead. JSP
// services are named by identity URIs, not host names.
func ClientConfig(src CertificateSource, v *Verifier) (*tls.Config, error) {
	if src == nil || v == nil {
		return nil, errors.New("ca: client config needs a certificate source and a verifier")
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return src.Certificate()
		},
		InsecureSkipVerify: true, // verified in VerifyConnection, see above
		VerifyConnection:   v.VerifyConnection,
	}, nil
}
