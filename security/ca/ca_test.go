package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestInitFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	clk := newFakeClock()
	c, err := Init(dir, Config{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		mode os.FileMode
	}{
		{".", 0o700}, {KeyFile, 0o600}, {CertFile, 0o644}, {TrustFile, 0o644}, {StateFile, 0o644},
	} {
		fi, err := os.Stat(filepath.Join(dir, f.name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != f.mode {
			t.Errorf("%s: mode %04o, want %04o", f.name, got, f.mode)
		}
	}
	cert := c.Certificate()
	if !cert.IsCA || !cert.MaxPathLenZero {
		t.Errorf("CA certificate: IsCA %v MaxPathLenZero %v", cert.IsCA, cert.MaxPathLenZero)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("default CA key is %T, want ECDSA", cert.PublicKey)
	}
	if got, want := cert.NotAfter, t0.Add(DefaultCALifetime); !got.Equal(want) {
		t.Errorf("CA NotAfter %v, want %v", got, want)
	}
	if !strings.HasPrefix(cert.Subject.CommonName, "JSP CA prod ") {
		t.Errorf("CA subject %q", cert.Subject.CommonName)
	}
	if _, err := Init(dir, Config{Cluster: "prod"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second Init: %v, want ErrExists", err)
	}
}

func TestInitConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no cluster", Config{}},
		{"bad cluster", Config{Cluster: "Prod"}},
		{"bad algorithm", Config{Cluster: "p", Algorithm: "rsa"}},
		{"negative lifetime", Config{Cluster: "p", DefaultLifetime: -time.Hour}},
		{"min below floor", Config{Cluster: "p", MinLifetime: time.Millisecond}},
		{"min above max", Config{Cluster: "p", MinLifetime: time.Hour, MaxLifetime: time.Minute}},
		{"default above max", Config{Cluster: "p", DefaultLifetime: 48 * time.Hour, MaxLifetime: 24 * time.Hour}},
		{"max above CA", Config{Cluster: "p", CALifetime: time.Hour, MaxLifetime: 2 * time.Hour, DefaultLifetime: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Init(t.TempDir(), tt.cfg); err == nil {
				t.Fatal("Init succeeded")
			}
		})
	}
}

func TestOpen(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	dir := c.Dir()

	o, err := Open(dir, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if o.Cluster() != "prod" || !o.Certificate().Equal(c.Certificate()) {
		t.Fatalf("Open: cluster %q, same cert %v", o.Cluster(), o.Certificate().Equal(c.Certificate()))
	}
	if _, err := Open(dir, Config{Cluster: "staging"}); err == nil {
		t.Fatal("Open with another cluster succeeded")
	}
	if _, err := Open(t.TempDir(), Config{}); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Open empty dir: %v, want ErrNoCA", err)
	}

	// A key others can read is refused.
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Config{}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Open with 0644 key: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o600); err != nil {
		t.Fatal(err)
	}

	// A stale or missing ca.crt is repaired from trust.pem.
	if err := os.Remove(filepath.Join(dir, CertFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Config{}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil || !bytesEqualPEMCert(raw, c.Certificate()) {
		t.Fatalf("ca.crt not repaired: %v", err)
	}
}

func TestIssueLifetime(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now, func(cfg *Config) {
		cfg.MinLifetime = time.Minute
		cfg.CALifetime = 30 * 24 * time.Hour
	})
	tests := []struct {
		name     string
		lifetime time.Duration
		at       time.Duration // clock offset from t0
		want     time.Duration // 0: error
	}{
		{"default", 0, 0, DefaultLifetime},
		{"minimum", time.Minute, 0, time.Minute},
		{"five minutes", 5 * time.Minute, 0, 5 * time.Minute},
		{"maximum", DefaultMaxLifetime, 0, DefaultMaxLifetime},
		{"below minimum", 59 * time.Second, 0, 0},
		{"above maximum", DefaultMaxLifetime + time.Second, 0, 0},
		{"past CA expiry", 48 * time.Hour, 29 * 24 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			clk.Advance(tt.at)
			c.cfg.Now = clk.Now // same package: move the CA's clock
			cert, err := c.Issue(Identity{Role: "gateway", Name: "gw-1"}, tt.lifetime)
			if tt.want == 0 {
				if err == nil {
					t.Fatalf("Issue(%v) succeeded", tt.lifetime)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			now := clk.Now()
			if got := cert.Leaf.NotAfter.Sub(now); got != tt.want {
				t.Fatalf("lifetime %v, want %v", got, tt.want)
			}
			if got := now.Sub(cert.Leaf.NotBefore); got != DefaultBackdate {
				t.Fatalf("backdate %v, want %v", got, DefaultBackdate)
			}
		})
	}
}

func TestIssueCertificate(t *testing.T) {
	for _, alg := range []Algorithm{ECDSAP256, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			clk := newFakeClock()
			c := newTestCA(t, "prod", clk.Now, func(cfg *Config) { cfg.Algorithm = alg })
			cert, err := c.Issue(Identity{Cluster: "prod", Role: "nats", Name: "n1"}, time.Hour,
				WithDNSNames("nats.internal"), WithIPAddresses(netip.MustParseAddr("10.0.0.7")))
			if err != nil {
				t.Fatal(err)
			}
			leaf := cert.Leaf
			switch alg {
			case Ed25519:
				if _, ok := leaf.PublicKey.(ed25519.PublicKey); !ok {
					t.Fatalf("leaf key %T", leaf.PublicKey)
				}
			default:
				if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
					t.Fatalf("leaf key %T", leaf.PublicKey)
				}
			}
			if leaf.IsCA || len(leaf.URIs) != 1 || leaf.URIs[0].String() != "jsp://prod/nats/n1" {
				t.Fatalf("leaf IsCA %v URIs %v", leaf.IsCA, leaf.URIs)
			}
			if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "nats.internal" ||
				len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.7" {
				t.Fatalf("SANs %v %v", leaf.DNSNames, leaf.IPAddresses)
			}
			if err := leaf.CheckSignatureFrom(c.Certificate()); err != nil {
				t.Fatalf("leaf not signed by CA: %v", err)
			}
			// The PEM files round-trip through crypto/tls.
			certPEM, keyPEM, err := MarshalPEM(cert)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParsePrivateKeyPEM(keyPEM); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(certPEM), "BEGIN CERTIFICATE") {
				t.Fatal("no certificate PEM")
			}
			// Another cluster and bad identities are refused.
			if _, err := c.Issue(Identity{Cluster: "staging", Role: "nats", Name: "n1"}, time.Hour); err == nil {
				t.Fatal("issued for another cluster")
			}
			if _, err := c.Issue(Identity{Role: "", Name: "n1"}, time.Hour); err == nil {
				t.Fatal("issued without role")
			}
		})
	}
}

func TestSerialsDiffer(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	seen := map[string]bool{}
	for range 20 {
		s := mustIssue(t, c, "core", "c", time.Hour).Leaf.SerialNumber
		if s.Sign() <= 0 || s.BitLen() > 127 {
			t.Fatalf("serial %x out of range", s)
		}
		if seen[s.String()] {
			t.Fatalf("serial %x repeated", s)
		}
		seen[s.String()] = true
	}
}

func TestWriteFiles(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	cert := mustIssue(t, c, "core", "c1", time.Hour)
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	// An existing, too-open key file is replaced with a 0600 one.
	if err := os.WriteFile(keyPath, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteFiles(certPath, keyPath, cert); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(keyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pair.Certificate[0], cert.Certificate[0]) {
		t.Fatal("written certificate differs")
	}
}
