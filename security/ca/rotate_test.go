package ca

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestRotateOverlap(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	oldCA := c.Certificate()
	oldLeaf := mustIssue(t, c, "core", "c1", 24*time.Hour).Leaf

	clk.Advance(time.Hour)
	if err := c.Rotate(RotateOptions{Overlap: 30 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	if c.Certificate().Equal(oldCA) {
		t.Fatal("Rotate kept the CA certificate")
	}
	newLeaf := mustIssue(t, c, "core", "c2", 24*time.Hour).Leaf
	if err := newLeaf.CheckSignatureFrom(c.Certificate()); err != nil {
		t.Fatalf("new leaf not from new CA: %v", err)
	}

	// A service reloading the directory sees the same anchors.
	loaded, err := LoadTrust(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	for _, trust := range []*Trust{c.Trust(), loaded} {
		anchors := trust.Anchors()
		if len(anchors) != 2 || !anchors[0].Cert.Equal(c.Certificate()) || !anchors[1].Cert.Equal(oldCA) {
			t.Fatalf("anchors after rotation: %d", len(anchors))
		}
		if want := t0.Add(31 * time.Hour); !anchors[1].Until.Equal(want) {
			t.Fatalf("old CA trusted until %v, want %v", anchors[1].Until, want)
		}
	}

	tests := []struct {
		name string
		at   time.Duration
		leaf string
		want jsperr.Code
	}{
		{"old leaf during overlap", 2 * time.Hour, "old", jsperr.NoError},
		{"new leaf during overlap", 2 * time.Hour, "new", jsperr.NoError},
		{"old leaf expired", 24*time.Hour + time.Second, "old", jsperr.CertExpired},
		{"new leaf after overlap", 24 * time.Hour, "new", jsperr.NoError},
		{"old leaf after overlap", 32 * time.Hour, "old", jsperr.CertUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vclk := newFakeClock()
			vclk.Advance(tt.at)
			v, err := NewVerifier(loaded, Policy{Cluster: "prod", Now: vclk.Now})
			if err != nil {
				t.Fatal(err)
			}
			leaf := newLeaf
			if tt.leaf == "old" {
				leaf = oldLeaf
			}
			_, err = v.Verify([]*x509.Certificate{leaf})
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("code %s (%v), want %s", got, err, tt.want)
			}
		})
	}

	// The next rotation after the overlap drops the old CA.
	clk.Advance(40 * time.Hour)
	if err := c.Rotate(RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	anchors := c.Trust().Anchors()
	if len(anchors) != 2 || anchors[1].Cert.Equal(oldCA) {
		t.Fatalf("expired overlap not pruned: %d anchors", len(anchors))
	}
	if want := clk.Now().Add(DefaultMaxLifetime); !anchors[1].Until.Equal(want) {
		t.Fatalf("default overlap until %v, want %v", anchors[1].Until, want)
	}
}

func TestRotateImmediate(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	oldLeaf := mustIssue(t, c, "core", "c1", time.Hour).Leaf
	if err := c.Rotate(RotateOptions{Immediate: true, Algorithm: Ed25519}); err != nil {
		t.Fatal(err)
	}
	if n := len(c.Trust().Anchors()); n != 1 {
		t.Fatalf("%d anchors after immediate rotation", n)
	}
	v, err := NewVerifier(c.Trust(), Policy{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify([]*x509.Certificate{oldLeaf}); jsperr.CodeOf(err) != jsperr.CertUntrusted {
		t.Fatalf("old leaf after immediate rotation: %v", err)
	}
	newLeaf := mustIssue(t, c, "core", "c2", time.Hour).Leaf
	if _, err := v.Verify([]*x509.Certificate{newLeaf}); err != nil {
		t.Fatalf("new Ed25519 leaf: %v", err)
	}
	// The algorithm change persists.
	o, err := Open(c.Dir(), Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Algorithm != Ed25519 {
		t.Fatalf("reopened algorithm %s", o.cfg.Algorithm)
	}
}

// TestRotateInterrupted simulates a crash after the trust files were
// written but before the new key: Open must carry on with the old key.
func TestRotateInterrupted(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	oldKey, err := os.ReadFile(filepath.Join(c.Dir(), KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	oldCA := c.Certificate()
	if err := c.Rotate(RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir(), KeyFile), oldKey, 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := Open(c.Dir(), Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !o.Certificate().Equal(oldCA) {
		t.Fatal("Open did not pick the certificate matching the key")
	}
	if !o.Trust().Anchors()[0].Until.IsZero() {
		t.Fatal("current CA carries an overlap end")
	}
	leaf := mustIssue(t, o, "core", "c1", time.Hour).Leaf
	v, err := NewVerifier(o.Trust(), Policy{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify([]*x509.Certificate{leaf}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(c.Dir(), CertFile))
	if !bytesEqualPEMCert(raw, oldCA) {
		t.Fatal("ca.crt not repaired to the key's certificate")
	}
}

func TestInspect(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	if err := c.Rotate(RotateOptions{Overlap: time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := Inspect(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if s.Cluster != "prod" || s.KeyMode != 0o600 || len(s.Authorities) != 2 ||
		!s.Authorities[0].Current || s.Authorities[1].Current || s.Authorities[1].TrustUntil.IsZero() {
		t.Fatalf("summary %+v", s)
	}
	var b bytes.Buffer
	if err := s.WriteText(&b, clk.Now()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cluster:      prod", "[current] JSP CA prod", "[retired]", "trusted to:", "1h0m0s left", "sha256/"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}

	leaf := mustIssue(t, c, "gateway", "gw-1", time.Hour)
	b.Reset()
	if err := InspectCertificate(leaf.Leaf).WriteText(&b, clk.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"identity:  jsp://prod/gateway/gw-1", "expired 1h0m0s ago"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("certificate summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestParseTrustPEM(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	leaf := mustIssue(t, c, "core", "c", time.Hour)
	certPEM, keyPEM, err := MarshalPEM(leaf)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"bundle", c.Trust().PEM(), true},
		{"empty", nil, false},
		{"leaf is not a CA", certPEM, false},
		{"key block", keyPEM, false},
		{"too many", bytes.Repeat(c.Trust().PEM(), MaxAnchors+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrustPEM(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseTrustPEM: %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestVerifierSetTrust(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	v, err := NewVerifier(c.Trust(), Policy{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Rotate(RotateOptions{}); err != nil {
		t.Fatal(err)
	}
	leaf := mustIssue(t, c, "core", "c1", time.Hour).Leaf
	if _, err := v.Verify([]*x509.Certificate{leaf}); jsperr.CodeOf(err) != jsperr.CertUntrusted {
		t.Fatalf("new CA's leaf before SetTrust: %v", err)
	}
	v.SetTrust(c.Trust())
	if _, err := v.Verify([]*x509.Certificate{leaf}); err != nil {
		t.Fatalf("after SetTrust: %v", err)
	}
}
