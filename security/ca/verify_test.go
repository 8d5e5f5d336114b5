package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// craft signs a leaf with c's key from a template that mutate may spoil,
// for certificates Issue refuses to make.
func craft(t *testing.T, c *CA, mutate func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := newSerial(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := c.cfg.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "crafted"},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	}
	mutate(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestVerify(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	other := newTestCA(t, "prod", clk.Now) // same cluster name, different key
	gw := mustIssue(t, c, "gateway", "gw-1", time.Hour).Leaf
	core := mustIssue(t, c, "core", "core-1", time.Hour).Leaf
	foreign := mustIssue(t, other, "gateway", "gw-1", time.Hour).Leaf
	noURI := craft(t, c, func(*x509.Certificate) {})
	wrongCluster := craft(t, c, func(x *x509.Certificate) {
		x.URIs = []*url.URL{Identity{"staging", "gateway", "gw-1"}.URI()}
	})
	caPin, otherPin := PinOf(c.Certificate()), PinOf(other.Certificate())

	tests := []struct {
		name   string
		chain  []*x509.Certificate
		at     time.Duration
		policy Policy
		want   jsperr.Code // NoError: accepted
	}{
		{name: "valid", chain: []*x509.Certificate{gw}, want: jsperr.NoError},
		{name: "valid role", chain: []*x509.Certificate{gw}, policy: Policy{Roles: []string{"core", "gateway"}}},
		{name: "valid name", chain: []*x509.Certificate{gw}, policy: Policy{Roles: []string{"gateway"}, Names: []string{"gw-1"}}},
		{name: "just before expiry", chain: []*x509.Certificate{gw}, at: time.Hour},
		{name: "no certificate", chain: nil, want: jsperr.Unauthenticated},
		{name: "another CA", chain: []*x509.Certificate{foreign}, want: jsperr.CertUntrusted},
		{name: "another CA and expired", chain: []*x509.Certificate{foreign}, at: 2 * time.Hour, want: jsperr.CertUntrusted},
		{name: "another CA sent as intermediate", chain: []*x509.Certificate{foreign, other.Certificate()}, want: jsperr.CertUntrusted},
		{name: "expired", chain: []*x509.Certificate{gw}, at: time.Hour + time.Second, want: jsperr.CertExpired},
		{name: "not yet valid", chain: []*x509.Certificate{gw}, at: -2 * time.Minute, want: jsperr.CertNotYetValid},
		{name: "wrong role", chain: []*x509.Certificate{core}, policy: Policy{Roles: []string{"gateway"}}, want: jsperr.CertWrongRole},
		{name: "wrong name", chain: []*x509.Certificate{gw}, policy: Policy{Names: []string{"gw-2"}}, want: jsperr.CertWrongRole},
		{name: "no identity", chain: []*x509.Certificate{noURI}, want: jsperr.CertBadIdentity},
		{name: "wrong cluster", chain: []*x509.Certificate{wrongCluster}, want: jsperr.CertBadIdentity},
		{name: "pin on CA", chain: []*x509.Certificate{gw}, policy: Policy{Pins: []Pin{otherPin, caPin}}},
		{name: "pin on leaf", chain: []*x509.Certificate{gw}, policy: Policy{Pins: []Pin{PinOf(gw)}}},
		{name: "pin mismatch", chain: []*x509.Certificate{gw}, policy: Policy{Pins: []Pin{otherPin}}, want: jsperr.PinMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vclk := newFakeClock()
			vclk.Advance(tt.at)
			p := tt.policy
			p.Cluster, p.Now = "prod", vclk.Now
			v, err := NewVerifier(c.Trust(), p)
			if err != nil {
				t.Fatal(err)
			}
			id, err := v.Verify(tt.chain)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("Verify: code %s (%v), want %s", got, err, tt.want)
			}
			if err == nil && id.Cluster != "prod" {
				t.Fatalf("identity %+v", id)
			}
			var je *jsperr.Error
			if err != nil && !errors.As(err, &je) {
				t.Fatalf("error %T is not a *jsperr.Error", err)
			}
		})
	}
}

func TestVerifyRaw(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	v, err := NewVerifier(c.Trust(), Policy{Cluster: "prod", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	gw := mustIssue(t, c, "gateway", "gw-1", time.Hour)
	if err := v.VerifyPeerCertificate(gw.Certificate, nil); err != nil {
		t.Fatal(err)
	}
	if code := jsperr.CodeOf(v.VerifyPeerCertificate([][]byte{{0x30, 0x03}}, nil)); code != jsperr.CertUntrusted {
		t.Fatalf("garbage certificate: %s", code)
	}
	// VerifyConnection insists on TLS 1.3.
	cs := tls.ConnectionState{Version: tls.VersionTLS12, PeerCertificates: []*x509.Certificate{gw.Leaf}}
	if code := jsperr.CodeOf(v.VerifyConnection(cs)); code != jsperr.TlsRequired {
		t.Fatalf("TLS 1.2: %s", code)
	}
	cs.Version = tls.VersionTLS13
	if err := v.VerifyConnection(cs); err != nil {
		t.Fatal(err)
	}
	id, err := PeerIdentity(cs)
	if err != nil || id != (Identity{"prod", "gateway", "gw-1"}) {
		t.Fatalf("PeerIdentity = %v, %v", id, err)
	}
}

func TestPinString(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	p := PinOf(c.Certificate())
	q, err := ParsePin(p.String())
	if err != nil || q != p {
		t.Fatalf("ParsePin(%s) = %v, %v", p, q, err)
	}
	for _, bad := range []string{"", "sha1/AAAA", "sha256/!!", "sha256/AAAA"} {
		if _, err := ParsePin(bad); err == nil {
			t.Errorf("ParsePin(%q) succeeded", bad)
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	clk := newFakeClock()
	c := newTestCA(t, "prod", clk.Now)
	if _, err := NewVerifier(nil, Policy{Cluster: "prod"}); err == nil {
		t.Error("nil trust accepted")
	}
	if _, err := NewVerifier(c.Trust(), Policy{}); err == nil {
		t.Error("empty cluster accepted")
	}
}
