package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// testCert returns a self-signed certificate for 127.0.0.1 and localhost.
func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jsp test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// handshake runs a TLS handshake over loopback TCP (buffered, unlike
// net.Pipe, so an alert and the server's flight can cross) and returns the
// client's error.
func handshake(t *testing.T, cert tls.Certificate, cli *tls.Config) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		a, err := ln.Accept()
		if err != nil {
			return
		}
		defer a.Close()
		_ = tls.Server(a, tlsconf.Server(cert)).HandshakeContext(context.Background())
	}()
	b, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	err = tls.Client(b, cli).HandshakeContext(context.Background())
	_ = b.Close()
	<-done
	return err
}

func TestBuildTLS(t *testing.T) {
	cert := testCert(t)
	fp := tlsconf.SPKIFingerprint(cert.Leaf)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(badFile, []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		opts         Options
		wantInsecure bool
		wantRoots    bool
		wantErr      string
	}{
		{name: "system roots", opts: Options{}},
		{name: "CA file", opts: Options{RootCAsFile: caFile}, wantRoots: true},
		{name: "pin only trusts the pin", opts: Options{Pins: []tlsconf.Fingerprint{fp}}, wantInsecure: true},
		{name: "pin with CA verifies the chain too", opts: Options{Pins: []tlsconf.Fingerprint{fp}, RootCAsFile: caFile}, wantRoots: true},
		{name: "insecure", opts: Options{InsecureSkipVerify: true}, wantInsecure: true},
		{name: "missing CA file", opts: Options{RootCAsFile: filepath.Join(dir, "none.pem")}, wantErr: "read CA file"},
		{name: "CA file without PEM", opts: Options{RootCAsFile: badFile}, wantErr: "no PEM certificate"},
		{name: "TLS 1.2 cap refused", opts: Options{TLS: &tls.Config{MaxVersion: tls.VersionTLS12}}, wantErr: "below TLS 1.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := buildTLS(&tt.opts, "127.0.0.1")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("buildTLS error = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("buildTLS: %v", err)
			}
			if c.MinVersion != tls.VersionTLS13 || len(c.NextProtos) != 1 || c.NextProtos[0] != protocol.ALPN {
				t.Fatalf("config not raised to JSP requirements: min %x, ALPN %v", c.MinVersion, c.NextProtos)
			}
			if c.ServerName != "127.0.0.1" {
				t.Fatalf("ServerName = %q, want the URL host", c.ServerName)
			}
			if c.InsecureSkipVerify != tt.wantInsecure {
				t.Fatalf("InsecureSkipVerify = %v, want %v", c.InsecureSkipVerify, tt.wantInsecure)
			}
			if (c.RootCAs != nil) != tt.wantRoots {
				t.Fatalf("RootCAs set = %v, want %v", c.RootCAs != nil, tt.wantRoots)
			}
		})
	}
}

func TestPinVerifier(t *testing.T) {
	cert := testCert(t)
	other := testCert(t)
	good := tlsconf.SPKIFingerprint(cert.Leaf)
	bad := tlsconf.SPKIFingerprint(other.Leaf)
	tests := []struct {
		name     string
		pins     []tlsconf.Fingerprint
		mismatch bool
	}{
		{name: "matching pin", pins: []tlsconf.Fingerprint{good}},
		{name: "one of several pins", pins: []tlsconf.Fingerprint{bad, good}},
		{name: "wrong pin", pins: []tlsconf.Fingerprint{bad}, mismatch: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Pins: tt.pins}
			base, err := buildTLS(&o, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			pv := &pinVerifier{pins: tt.pins, host: "127.0.0.1"}
			err = handshake(t, cert, pv.install(base))
			if !tt.mismatch {
				if err != nil || pv.mismatch() != nil {
					t.Fatalf("handshake: %v (recorded %v)", err, pv.mismatch())
				}
				return
			}
			if !errors.Is(err, ErrPinMismatch) {
				t.Fatalf("handshake error = %v, want ErrPinMismatch", err)
			}
			m := pv.mismatch()
			if !errors.Is(m, ErrPinMismatch) || !isFatal(m) {
				t.Fatalf("recorded %v, want a fatal pin mismatch", m)
			}
			if !strings.Contains(m.Error(), good.String()) || !strings.Contains(m.Error(), bad.String()) {
				t.Fatalf("mismatch error %q does not name the presented and pinned keys", m)
			}
		})
	}
}

func TestPinVerifierKeepsCallerCheck(t *testing.T) {
	cert := testCert(t)
	errCaller := errors.New("caller says no")
	o := Options{TLS: &tls.Config{VerifyConnection: func(tls.ConnectionState) error { return errCaller }},
		Pins: []tlsconf.Fingerprint{tlsconf.SPKIFingerprint(cert.Leaf)}}
	base, err := buildTLS(&o, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	pv := &pinVerifier{pins: o.Pins, host: "127.0.0.1"}
	if err := handshake(t, cert, pv.install(base)); !errors.Is(err, errCaller) {
		t.Fatalf("handshake error = %v, want the caller's VerifyConnection error", err)
	}
}
