package ca

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// AuthorityInfo summarises one trusted CA certificate.
type AuthorityInfo struct {
	Subject   string
	Serial    string // hex
	Algorithm string
	Pin       Pin
	NotBefore time.Time
	NotAfter  time.Time
	// TrustUntil is the end of a retired CA's overlap; zero for the current
	// CA and for anchors trusted until they expire.
	TrustUntil time.Time
	// Current is true for the CA that signs new certificates.
	Current bool
}

// Summary describes a CA directory.
type Summary struct {
	Dir     string
	Cluster string
	// KeyMode is ca.key's permission bits; zero when the key is absent
	// (a directory copied to a service holds only the trust files).
	KeyMode fs.FileMode
	// Authorities lists the trust anchors, current first.
	Authorities []AuthorityInfo
}

// Inspect summarises the CA directory dir. It reads only the trust files
// and the key file's mode, never the key.
func Inspect(dir string) (Summary, error) {
	t, err := LoadTrust(dir)
	if err != nil {
		return Summary{}, err
	}
	s := Summary{Dir: dir}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		s.KeyMode = fi.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Summary{}, fmt.Errorf("ca: inspect %s: %w", dir, err)
	}
	for i, a := range t.anchors {
		info := AuthorityInfo{
			Subject:    a.Cert.Subject.CommonName,
			Serial:     a.Cert.SerialNumber.Text(16),
			Algorithm:  a.Cert.PublicKeyAlgorithm.String(),
			Pin:        PinOf(a.Cert),
			NotBefore:  a.Cert.NotBefore,
			NotAfter:   a.Cert.NotAfter,
			TrustUntil: a.Until,
			// trust.pem lists the current CA first (Init, Rotate).
			Current: i == 0,
		}
		if i == 0 {
			if s.Cluster, err = clusterOf(a.Cert); err != nil {
				return Summary{}, fmt.Errorf("ca: inspect %s: %w", dir, err)
			}
		}
		s.Authorities = append(s.Authorities, info)
	}
	return s, nil
}

// WriteText writes a human-readable summary, with remaining times counted
// from now.
func (s Summary) WriteText(w io.Writer, now time.Time) error {
	var b strings.Builder
	fmt.Fprintf(&b, "CA directory: %s\ncluster:      %s\n", s.Dir, s.Cluster)
	if s.KeyMode == 0 {
		b.WriteString("key:          absent (trust files only)\n")
	} else {
		fmt.Fprintf(&b, "key:          %s (mode %04o)\n", KeyFile, s.KeyMode)
	}
	for _, a := range s.Authorities {
		state := "retired"
		if a.Current {
			state = "current"
		}
		fmt.Fprintf(&b, "\n[%s] %s\n  serial:     %s\n  algorithm:  %s\n  pin:        %s\n  valid:      %s .. %s (%s)\n",
			state, a.Subject, a.Serial, a.Algorithm, a.Pin,
			a.NotBefore.UTC().Format(time.RFC3339), a.NotAfter.UTC().Format(time.RFC3339), remaining(a.NotAfter, now))
		if !a.TrustUntil.IsZero() {
			fmt.Fprintf(&b, "  trusted to: %s (%s)\n", a.TrustUntil.UTC().Format(time.RFC3339), remaining(a.TrustUntil, now))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// CertInfo summarises a leaf certificate.
type CertInfo struct {
	Subject  string
	Issuer   string
	Serial   string // hex
	Identity Identity
	// IdentityErr explains why Identity is empty.
	IdentityErr error
	DNSNames    []string
	IPAddresses []string
	Pin         Pin
	NotBefore   time.Time
	NotAfter    time.Time
}

// InspectCertificate summarises cert.
func InspectCertificate(cert *x509.Certificate) CertInfo {
	info := CertInfo{
		Subject:   cert.Subject.CommonName,
		Issuer:    cert.Issuer.CommonName,
		Serial:    cert.SerialNumber.Text(16),
		DNSNames:  cert.DNSNames,
		Pin:       PinOf(cert),
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
	}
	info.Identity, info.IdentityErr = IdentityOf(cert)
	for _, ip := range cert.IPAddresses {
		info.IPAddresses = append(info.IPAddresses, ip.String())
	}
	return info
}

// WriteText writes a human-readable summary.
func (c CertInfo) WriteText(w io.Writer, now time.Time) error {
	var b strings.Builder
	id := c.Identity.String()
	if c.IdentityErr != nil {
		id = "none: " + c.IdentityErr.Error()
	}
	fmt.Fprintf(&b, "subject:   %s\nidentity:  %s\nissuer:    %s\nserial:    %s\npin:       %s\nvalid:     %s .. %s (%s)\n",
		c.Subject, id, c.Issuer, c.Serial, c.Pin,
		c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), remaining(c.NotAfter, now))
	if len(c.DNSNames) > 0 {
		fmt.Fprintf(&b, "dns:       %s\n", strings.Join(c.DNSNames, ", "))
	}
	if len(c.IPAddresses) > 0 {
		fmt.Fprintf(&b, "ip:        %s\n", strings.Join(c.IPAddresses, ", "))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func remaining(t, now time.Time) string {
	if d := t.Sub(now); d > 0 {
		return d.Round(time.Second).String() + " left"
	}
	return "expired " + now.Sub(t).Round(time.Second).String() + " ago"
}
