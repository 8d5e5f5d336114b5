package devicekey

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func mustKey(t testing.TB) PrivateKey {
	t.Helper()
	k, err := GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// selfSigned returns a throwaway server certificate; the device binding
// does not depend on how the server is authenticated.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// proofServer accepts TLS connections on loopback, reads one proof per
// connection, authenticates it against reg and answers with the JSP code
// (NO_ERROR on success) as 8 big-endian bytes.
type proofServer struct {
	ln       net.Listener
	wg       sync.WaitGroup
	bindings chan []byte // the server side's binding of each connection
}

func startProofServer(t *testing.T, reg Registry, maxVersion uint16) *proofServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t)},
		MinVersion:   tls.VersionTLS12,
		MaxVersion:   maxVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	s := &proofServer{ln: ln, bindings: make(chan []byte, 8)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				b, _ := Binding(tc.ConnectionState())
				s.bindings <- b
				buf := make([]byte, ProofSize)
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				var code jsperr.Code
				p, _, err := ParseProof(buf)
				if err == nil {
					_, err = Authenticate(context.Background(), reg, tc.ConnectionState(), p)
				}
				code = jsperr.CodeOf(err)
				c.Write(binary.BigEndian.AppendUint64(nil, uint64(code)))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func dialTLS(t *testing.T, addr string, maxVersion uint16) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // test server; the binding is what is under test
		MaxVersion:         maxVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func sendProof(t *testing.T, c *tls.Conn, p Proof) jsperr.Code {
	t.Helper()
	if _, err := c.Write(p.Append(nil)); err != nil {
		t.Fatal(err)
	}
	var buf [8]byte
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		t.Fatal(err)
	}
	return jsperr.Code(binary.BigEndian.Uint64(buf[:]))
}

// TestProofBoundToConnection runs real TLS 1.3 on loopback: a proof made
// on one connection verifies there and is refused on another.
func TestProofBoundToConnection(t *testing.T) {
	ctx := context.Background()
	reg, err := NewMemoryRegistry(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	dev := mustKey(t)
	if err := reg.Register(ctx, Device{ID: dev.Public().ID(), Key: dev.Public(), Owner: "alice"}); err != nil {
		t.Fatal(err)
	}
	srv := startProofServer(t, reg, tls.VersionTLS13)
	addr := srv.ln.Addr().String()

	c1 := dialTLS(t, addr, 0)
	c2 := dialTLS(t, addr, 0)
	b1, err := Binding(c1.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	b2, err := Binding(c2.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b1, b2) {
		t.Fatal("two connections have the same binding")
	}
	// Both ends of a connection agree on its binding.
	srvB := [][]byte{<-srv.bindings, <-srv.bindings}
	if !(bytes.Equal(srvB[0], b1) && bytes.Equal(srvB[1], b2) || bytes.Equal(srvB[0], b2) && bytes.Equal(srvB[1], b1)) {
		t.Fatal("server and client bindings differ")
	}

	p1, err := Prove(dev, c1.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	if code := sendProof(t, c2, p1); code != jsperr.ChannelBindingFailed {
		t.Fatalf("proof from connection 1 on connection 2: %s, want CHANNEL_BINDING_FAILED", code)
	}
	if code := sendProof(t, c1, p1); code != jsperr.NoError {
		t.Fatalf("proof on its own connection: %s", code)
	}

	// A fresh connection with a fresh proof works; after revocation the
	// same kind of proof is refused as DEVICE_REVOKED.
	c3 := dialTLS(t, addr, 0)
	<-srv.bindings
	p3, err := Prove(dev, c3.ConnectionState())
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Revoke(ctx, dev.Public().ID()); err != nil {
		t.Fatal(err)
	}
	if code := sendProof(t, c3, p3); code != jsperr.DeviceRevoked {
		t.Fatalf("revoked device: %s", code)
	}
}

func TestBindingNeedsTLS13(t *testing.T) {
	reg, err := NewMemoryRegistry(MemoryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := startProofServer(t, reg, tls.VersionTLS12)
	c := dialTLS(t, srv.ln.Addr().String(), tls.VersionTLS12)
	if got := <-srv.bindings; got != nil {
		t.Fatal("server computed a TLS 1.2 binding")
	}
	if _, err := Binding(c.ConnectionState()); jsperr.CodeOf(err) != jsperr.TlsRequired {
		t.Fatalf("TLS 1.2 binding: %v", err)
	}
	if _, err := Prove(mustKey(t), c.ConnectionState()); jsperr.CodeOf(err) != jsperr.TlsRequired {
		t.Fatalf("TLS 1.2 proof: %v", err)
	}
	if _, err := Binding(tls.ConnectionState{Version: tls.VersionTLS13}); jsperr.CodeOf(err) != jsperr.ChannelBindingFailed {
		t.Fatalf("incomplete handshake: %v", err)
	}
}

func TestAuthenticateBinding(t *testing.T) {
	ctx := context.Background()
	clk := func() time.Time { return t0 }
	reg, err := NewMemoryRegistry(MemoryConfig{Now: clk})
	if err != nil {
		t.Fatal(err)
	}
	alice, mallory, revoked, unknown := mustKey(t), mustKey(t), mustKey(t), mustKey(t)
	for _, k := range []PrivateKey{alice, mallory, revoked} {
		if err := reg.Register(ctx, Device{ID: k.Public().ID(), Key: k.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	if err := reg.Revoke(ctx, revoked.Public().ID()); err != nil {
		t.Fatal(err)
	}
	binding := bytes.Repeat([]byte{7}, ExporterLength)
	other := bytes.Repeat([]byte{8}, ExporterLength)
	// Mallory's signature under Alice's device id.
	impostor := ProveBinding(mallory, binding)
	impostor.Device = alice.Public().ID()

	tests := []struct {
		name    string
		proof   Proof
		binding []byte
		want    jsperr.Code
	}{
		{"valid", ProveBinding(alice, binding), binding, jsperr.NoError},
		{"other connection", ProveBinding(alice, other), binding, jsperr.ChannelBindingFailed},
		{"impostor key", impostor, binding, jsperr.ChannelBindingFailed},
		{"unknown device", ProveBinding(unknown, binding), binding, jsperr.DeviceUnknown},
		{"revoked device", ProveBinding(revoked, binding), binding, jsperr.DeviceRevoked},
		{"short binding", ProveBinding(alice, binding[:16]), binding[:16], jsperr.ChannelBindingFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := AuthenticateBinding(ctx, reg, tt.binding, tt.proof)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("AuthenticateBinding: %v (code %s), want %s", err, got, tt.want)
			}
			if err == nil && (d.ID != alice.Public().ID() || !d.Registered.Equal(t0)) {
				t.Fatalf("device %+v", d)
			}
		})
	}
}

type failingRegistry struct{ *MemoryRegistry }

func (failingRegistry) Lookup(context.Context, ID) (Device, error) {
	return Device{}, errors.New("storage down")
}

func TestAuthenticateRegistryFailure(t *testing.T) {
	k := mustKey(t)
	b := make([]byte, ExporterLength)
	_, err := AuthenticateBinding(context.Background(), failingRegistry{}, b, ProveBinding(k, b))
	if jsperr.CodeOf(err) != jsperr.Internal || !strings.Contains(err.Error(), "storage down") {
		t.Fatalf("registry failure: %v", err)
	}
}

func TestMemoryRegistry(t *testing.T) {
	ctx := context.Background()
	reg, err := NewMemoryRegistry(MemoryConfig{MaxDevices: 2})
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := mustKey(t), mustKey(t), mustKey(t)
	dev := func(k PrivateKey) Device { return Device{ID: k.Public().ID(), Key: k.Public(), Owner: "alice"} }
	if err := reg.Register(ctx, dev(a)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, dev(a)); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if err := reg.Register(ctx, Device{ID: a.Public().ID(), Key: b.Public()}); err == nil || errors.Is(err, ErrExists) {
		t.Fatalf("mismatched id: %v", err)
	}
	if err := reg.Register(ctx, dev(b)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, dev(c)); !errors.Is(err, ErrFull) {
		t.Fatalf("over MaxDevices: %v", err)
	}
	if _, err := reg.Lookup(ctx, c.Public().ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup unknown: %v", err)
	}
	if err := reg.Revoke(ctx, c.Public().ID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if err := reg.Revoke(ctx, a.Public().ID()); err != nil {
		t.Fatal(err)
	}
	d1, _ := reg.Lookup(ctx, a.Public().ID())
	if err := reg.Revoke(ctx, a.Public().ID()); err != nil {
		t.Fatal(err)
	}
	d2, _ := reg.Lookup(ctx, a.Public().ID())
	if d1.Active() || !d1.Revoked.Equal(d2.Revoked) {
		t.Fatal("second revoke changed the revocation time")
	}
	// A revoked key cannot be registered again.
	if err := reg.Register(ctx, dev(a)); !errors.Is(err, ErrExists) {
		t.Fatalf("re-register revoked: %v", err)
	}
	if reg.Len() != 2 {
		t.Fatalf("Len %d", reg.Len())
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := reg.Lookup(cctx, a.Public().ID()); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled lookup: %v", err)
	}
	if _, err := NewMemoryRegistry(MemoryConfig{MaxDevices: -1}); err == nil {
		t.Fatal("negative MaxDevices accepted")
	}
}

func TestKeys(t *testing.T) {
	k := mustKey(t)
	k2, err := NewPrivateKeyFromSeed(k.Seed())
	if err != nil || k2.Public() != k.Public() {
		t.Fatalf("seed round trip: %v", err)
	}
	if _, err := NewPrivateKeyFromSeed(make([]byte, 31)); err == nil {
		t.Fatal("short seed accepted")
	}
	pub, err := ParsePublicKey(k.Public().String())
	if err != nil || pub != k.Public() {
		t.Fatalf("public key round trip: %v", err)
	}
	if _, err := ParsePublicKey("AAAA"); err == nil {
		t.Fatal("short public key parsed")
	}
	id, err := ParseID(k.Public().ID().String())
	if err != nil || id != k.Public().ID() {
		t.Fatalf("id round trip: %v", err)
	}
	if _, err := ParseID("zz"); err == nil {
		t.Fatal("bad id parsed")
	}
	if s := k.String(); !strings.Contains(s, k.Public().ID().String()) || strings.Contains(s, k.Public().String()) {
		t.Fatalf("String() = %q", s)
	}
	if _, err := Prove(PrivateKey{}, tls.ConnectionState{}); err == nil {
		t.Fatal("proved without a key")
	}
}

func TestParseProof(t *testing.T) {
	k := mustKey(t)
	p := ProveBinding(k, make([]byte, ExporterLength))
	enc := p.Append([]byte{0xAA})[1:]
	if len(enc) != p.Len() {
		t.Fatalf("encoded %d bytes, Len %d", len(enc), p.Len())
	}
	got, n, err := ParseProof(append(enc, 0xBB))
	if err != nil || n != ProofSize || got != p {
		t.Fatalf("ParseProof: %v, n %d", err, n)
	}
	for i := range len(enc) {
		if _, _, err := ParseProof(enc[:i]); jsperr.CodeOf(err) != jsperr.ChannelBindingFailed {
			t.Fatalf("prefix %d parsed: %v", i, err)
		}
	}
	bad := bytes.Clone(enc)
	bad[0] = 2
	if _, _, err := ParseProof(bad); err == nil {
		t.Fatal("version 2 parsed")
	}
}

func FuzzParseProof(f *testing.F) {
	k := mustKey(f)
	f.Add(ProveBinding(k, make([]byte, ExporterLength)).Append(nil))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, n, err := ParseProof(b)
		if err != nil {
			return
		}
		if n != ProofSize || !bytes.Equal(p.Append(nil), b[:n]) {
			t.Fatalf("re-encoding differs")
		}
	})
}
