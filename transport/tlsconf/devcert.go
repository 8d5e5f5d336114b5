package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Development certificate files inside the directory given to
// [LoadOrCreateDevCert].
const (
	DevCertFile = "jsp-dev-cert.pem"
	DevKeyFile  = "jsp-dev-key.pem"
)

const (
	// DevCertValidity is how long a generated development certificate is
	// valid.
	DevCertValidity = 90 * 24 * time.Hour
	// DevCertRenewBefore is how long before expiry a development certificate
	// is replaced, so that a server started just before expiry does not run
	// into it.
	DevCertRenewBefore = 24 * time.Hour
	// devCertBackdate absorbs clock skew between the server and its clients.
	devCertBackdate = time.Hour
)

// defaultDevHosts are always in a development certificate.
var defaultDevHosts = []string{"localhost", "127.0.0.1", "::1"}

// LoadKeyPair loads an operator's PEM certificate chain and private key. The
// certificate's Leaf is populated.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: load key pair %s, %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		// Leaf is filled in by LoadX509KeyPair unless GODEBUG turns that
		// off; parse it here so that callers can rely on it.
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsconf: parse certificate %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return cert, nil
}

// LoadOrCreateDevCert returns the self-signed development certificate kept
// in dir, creating dir (mode 0700) and the certificate on first use.
//
// The certificate has an ECDSA P-256 key and names localhost, 127.0.0.1, ::1
// and every entry of hosts (IP addresses become IP SANs, anything else a DNS
// SAN). It is replaced with a new key when it is missing, unreadable as a key
// pair, outside its validity at now() (including the last
// [DevCertRenewBefore]), or does not name every requested host. The key file
// is written with mode 0600 and tightened to 0600 when found looser.
//
// Clients trust such a certificate by pinning its fingerprint
// ([SPKIFingerprint] of the returned Leaf), which changes when it is replaced.
func LoadOrCreateDevCert(dir string, hosts []string, now func() time.Time) (tls.Certificate, error) {
	if now == nil {
		now = time.Now
	}
	names, err := devHosts(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: create dev cert dir: %w", err)
	}
	certPath := filepath.Join(dir, DevCertFile)
	keyPath := filepath.Join(dir, DevKeyFile)

	cert, err := loadDevCert(certPath, keyPath)
	switch {
	case err == nil:
		if devCertUsable(cert.Leaf, names, now()) {
			if err := tightenKeyMode(keyPath); err != nil {
				return tls.Certificate{}, err
			}
			return cert, nil
		}
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, errBadDevCert):
		// Missing or corrupt: a development certificate carries no state
		// worth keeping, so it is regenerated.
	default:
		return tls.Certificate{}, err
	}
	return createDevCert(certPath, keyPath, names, now())
}

// errBadDevCert marks stored files that exist but do not form a usable key
// pair.
var errBadDevCert = errors.New("tlsconf: stored development certificate unusable")

func loadDevCert(certPath, keyPath string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read dev cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read dev key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%w: %w", errBadDevCert, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("%w: %w", errBadDevCert, err)
		}
		cert.Leaf = leaf
	}
	return cert, nil
}

// devHosts returns the default names plus hosts, deduplicated, in order.
func devHosts(hosts []string) ([]string, error) {
	names := slices.Clone(defaultDevHosts)
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" || strings.ContainsAny(h, " /\\\x00") {
			return nil, fmt.Errorf("tlsconf: dev cert host %q is not a host name or IP address", h)
		}
		if ip := net.ParseIP(h); ip != nil {
			h = ip.String() // canonical form, so "::0001" matches "::1"
		} else {
			h = strings.ToLower(h)
		}
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names, nil
}

// devCertUsable reports whether leaf is valid at now, outside the renewal
// window, and names every host.
func devCertUsable(leaf *x509.Certificate, names []string, now time.Time) bool {
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter.Add(-DevCertRenewBefore)) {
		return false
	}
	for _, h := range names {
		if leaf.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func createDevCert(certPath, keyPath string, names []string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: generate dev key: %w", err)
	}
	// RFC 5280 §4.1.2.2: a positive serial of at most 20 octets; 128 random
	// bits keep self-signed certificates from colliding.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: generate dev cert serial: %w", err)
	}
	serial.Add(serial, big.NewInt(1))
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"JSP development"}, CommonName: names[0]},
		NotBefore:             now.Add(-devCertBackdate),
		NotAfter:              now.Add(DevCertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range names {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: create dev cert: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: encode dev key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Key first: if the process dies between the two writes, the old
	// certificate no longer matches the new key and the next start
	// regenerates both instead of serving a mismatched pair.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: write dev key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: write dev cert: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: reload generated dev cert: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(der); err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsconf: parse generated dev cert: %w", err)
		}
	}
	return cert, nil
}

// writeFileAtomic writes data to a temporary file in the same directory and
// renames it over path, so that readers never see a half-written file. The
// temporary file is created with mode 0600 and only then widened to perm, so
// a key is never readable by others, not even briefly.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// tightenKeyMode makes a stored key readable by its owner only.
func tightenKeyMode(keyPath string) error {
	st, err := os.Stat(keyPath)
	if err != nil {
		return fmt.Errorf("tlsconf: stat dev key: %w", err)
	}
	if st.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(keyPath, 0o600); err != nil {
		return fmt.Errorf("tlsconf: restrict dev key mode: %w", err)
	}
	return nil
}
