package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

func TestDevCertCreateAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	cert, err := LoadOrCreateDevCert(dir, []string{"jsp.test", "192.0.2.7", "jsp.test"}, fixedClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not populated")
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Fatalf("key = %T, want ECDSA P-256", leaf.PublicKey)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "jsp.test", "192.0.2.7"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("cert does not name %s: %v", h, err)
		}
	}
	if len(leaf.DNSNames) != 2 || len(leaf.IPAddresses) != 3 {
		t.Errorf("SANs DNS %v IP %v: want duplicates removed", leaf.DNSNames, leaf.IPAddresses)
	}
	if !leaf.NotBefore.Before(t0) || !leaf.NotAfter.Equal(t0.Add(DevCertValidity)) {
		t.Errorf("validity %v..%v", leaf.NotBefore, leaf.NotAfter)
	}

	st, err := os.Stat(filepath.Join(dir, DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", st.Mode().Perm())
	}
	dst, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", dst.Mode().Perm())
	}

	// A later start with a subset of the hosts reloads the same certificate.
	again, err := LoadOrCreateDevCert(dir, []string{"jsp.test"}, fixedClock(t0.Add(30*24*time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
		t.Fatal("certificate regenerated although still valid")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("dir holds %d entries, want cert and key only (temporary files left behind?)", len(entries))
	}
}

func TestDevCertRegenerates(t *testing.T) {
	tests := []struct {
		name  string
		now   time.Time
		hosts []string
		prep  func(t *testing.T, dir string)
	}{
		{"expired", t0.Add(DevCertValidity + time.Hour), nil, nil},
		{"inside renewal window", t0.Add(DevCertValidity - DevCertRenewBefore/2), nil, nil},
		{"clock before NotBefore", t0.Add(-48 * time.Hour), nil, nil},
		{"new host", t0.Add(time.Hour), []string{"new.jsp.test"}, nil},
		{"corrupt cert", t0.Add(time.Hour), nil, func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, DevCertFile), "garbage", 0o644)
		}},
		{"key missing", t0.Add(time.Hour), nil, func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, DevKeyFile)); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			first, err := LoadOrCreateDevCert(dir, nil, fixedClock(t0))
			if err != nil {
				t.Fatal(err)
			}
			if tt.prep != nil {
				tt.prep(t, dir)
			}
			second, err := LoadOrCreateDevCert(dir, tt.hosts, fixedClock(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			if second.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
				t.Fatal("certificate not regenerated")
			}
			if SPKIFingerprint(second.Leaf) == SPKIFingerprint(first.Leaf) {
				t.Fatal("regenerated certificate reuses the old key")
			}
			if !second.Leaf.NotAfter.Equal(tt.now.Add(DevCertValidity)) {
				t.Fatalf("regenerated NotAfter %v", second.Leaf.NotAfter)
			}
			third, err := LoadOrCreateDevCert(dir, tt.hosts, fixedClock(tt.now))
			if err != nil {
				t.Fatal(err)
			}
			if third.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) != 0 {
				t.Fatal("regenerated certificate was not stored")
			}
		})
	}
}

func TestDevCertTightensKeyMode(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateDevCert(dir, nil, fixedClock(t0)); err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(dir, DevKeyFile)
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDevCert(dir, nil, fixedClock(t0)); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v after reload, want 0600", st.Mode().Perm())
	}
}

func TestDevCertRejectsBadHosts(t *testing.T) {
	for _, h := range []string{"", "  ", "a b", "a/b", "x\x00"} {
		if _, err := LoadOrCreateDevCert(t.TempDir(), []string{h}, fixedClock(t0)); err == nil {
			t.Errorf("host %q accepted", h)
		}
	}
}

func TestDevCertUnreadableDir(t *testing.T) {
	// A path below a regular file can never be a directory.
	f := filepath.Join(t.TempDir(), "file")
	writeFile(t, f, "x", 0o600)
	if _, err := LoadOrCreateDevCert(filepath.Join(f, "certs"), nil, fixedClock(t0)); err == nil {
		t.Fatal("LoadOrCreateDevCert succeeded below a regular file")
	}
}

func TestLoadKeyPair(t *testing.T) {
	dir := t.TempDir()
	cert, err := LoadOrCreateDevCert(dir, nil, fixedClock(t0))
	if err != nil {
		t.Fatal(err)
	}
	got, err := LoadKeyPair(filepath.Join(dir, DevCertFile), filepath.Join(dir, DevKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got.Leaf == nil || got.Leaf.SerialNumber.Cmp(cert.Leaf.SerialNumber) != 0 {
		t.Fatal("LoadKeyPair returned a different certificate")
	}

	other := t.TempDir()
	if _, err := LoadOrCreateDevCert(other, nil, fixedClock(t0)); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, cert, key string
	}{
		{"missing cert", filepath.Join(dir, "nope.pem"), filepath.Join(dir, DevKeyFile)},
		{"missing key", filepath.Join(dir, DevCertFile), filepath.Join(dir, "nope.pem")},
		{"mismatched key", filepath.Join(dir, DevCertFile), filepath.Join(other, DevKeyFile)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := LoadKeyPair(tt.cert, tt.key); err == nil {
				t.Fatal("LoadKeyPair succeeded")
			}
		})
	}
}

func writeFile(t *testing.T, path, data string, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), perm); err != nil {
		t.Fatal(err)
	}
}
