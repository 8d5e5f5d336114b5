package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// handshake runs a TLS handshake between srv and cli over loopback TCP and
// returns the client's and server's states and errors. TCP rather than
// net.Pipe: a failing client writes an alert while the server is still
// writing its flight, which deadlocks on an unbuffered pipe.
func handshake(t *testing.T, srv, cli *tls.Config) (tls.ConnectionState, tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		st  tls.ConnectionState
		err error
	}
	srvRes := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvRes <- result{err: err}
			return
		}
		defer c.Close()
		sc := tls.Server(c, srv)
		err = sc.HandshakeContext(ctx)
		srvRes <- result{sc.ConnectionState(), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := tls.Client(c, cli)
	cliErr := cc.HandshakeContext(ctx)
	cs := cc.ConnectionState()
	// Closing the client ends a server that still waits for the client's
	// Finished after a failed client handshake.
	c.Close()
	sr := <-srvRes
	return cs, sr.st, cliErr, sr.err
}

func devCert(t *testing.T) tls.Certificate {
	t.Helper()
	cert, err := LoadOrCreateDevCert(t.TempDir(), []string{"jsp.test"}, time.Now)
	if err != nil {
		t.Fatalf("LoadOrCreateDevCert: %v", err)
	}
	return cert
}

func TestHandshakeNegotiatesTLS13ALPNAndPostQuantumKEX(t *testing.T) {
	cert := devCert(t)
	cli, err := Client(ClientConfig{Pins: []Fingerprint{SPKIFingerprint(cert.Leaf)}, TrustPinsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	cs, ss, cErr, sErr := handshake(t, Server(cert), cli)
	if cErr != nil || sErr != nil {
		t.Fatalf("handshake: client %v, server %v", cErr, sErr)
	}
	for _, st := range []tls.ConnectionState{cs, ss} {
		if st.Version != tls.VersionTLS13 {
			t.Errorf("version = %s, want TLS 1.3", tls.VersionName(st.Version))
		}
		if st.NegotiatedProtocol != protocol.ALPN {
			t.Errorf("ALPN = %q, want %q", st.NegotiatedProtocol, protocol.ALPN)
		}
		// JSP §7.4: the default key exchange must be the post-quantum
		// hybrid. This fails if someone pins CurvePreferences or if the
		// toolchain's defaults change.
		if st.CurveID != tls.X25519MLKEM768 {
			t.Errorf("key exchange = %v, want X25519MLKEM768", st.CurveID)
		}
		if err := CheckState(st); err != nil {
			t.Errorf("CheckState: %v", err)
		}
	}
}

func TestServerRefusesOldTLSAndWrongALPN(t *testing.T) {
	cert := devCert(t)
	base := func() *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{protocol.ALPN}}
	}
	tests := []struct {
		name   string
		client func() *tls.Config
	}{
		{"tls12", func() *tls.Config { c := base(); c.MaxVersion = tls.VersionTLS12; return c }},
		{"wrong alpn", func() *tls.Config { c := base(); c.NextProtos = []string{"h2"}; return c }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, cErr, sErr := handshake(t, Server(cert), tt.client())
			if cErr == nil || sErr == nil {
				t.Fatalf("handshake succeeded (client err %v, server err %v), want refusal", cErr, sErr)
			}
		})
	}
}

func TestClientPins(t *testing.T) {
	cert := devCert(t)
	other := devCert(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	good := SPKIFingerprint(cert.Leaf)
	bad := SPKIFingerprint(other.Leaf)
	tests := []struct {
		name    string
		cfg     ClientConfig
		wantErr error // nil = success; errAny = any error
	}{
		{"pin only, match", ClientConfig{Pins: []Fingerprint{bad, good}, TrustPinsOnly: true}, nil},
		{"pin only, mismatch", ClientConfig{Pins: []Fingerprint{bad}, TrustPinsOnly: true}, ErrPinMismatch},
		{"roots and pin", ClientConfig{ServerName: "jsp.test", RootCAs: pool, Pins: []Fingerprint{good}}, nil},
		{"roots ok, pin mismatch", ClientConfig{ServerName: "jsp.test", RootCAs: pool, Pins: []Fingerprint{bad}}, ErrPinMismatch},
		{"roots, no pin", ClientConfig{ServerName: "localhost", RootCAs: pool}, nil},
		{"roots, wrong name", ClientConfig{ServerName: "example.invalid", RootCAs: pool}, errAny},
		{"system roots refuse self-signed", ClientConfig{ServerName: "localhost"}, errAny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cli, err := Client(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, _, cErr, _ := handshake(t, Server(cert), cli)
			switch {
			case tt.wantErr == nil && cErr != nil:
				t.Fatalf("handshake: %v", cErr)
			case tt.wantErr == errAny && cErr == nil:
				t.Fatal("handshake succeeded, want an error")
			case tt.wantErr != nil && tt.wantErr != errAny && !errors.Is(cErr, tt.wantErr):
				t.Fatalf("handshake error %v, want %v", cErr, tt.wantErr)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestClientRejectsPinsOnlyWithoutPins(t *testing.T) {
	if _, err := Client(ClientConfig{TrustPinsOnly: true}); err == nil {
		t.Fatal("Client accepted TrustPinsOnly without pins")
	}
}

func TestClientDefaults(t *testing.T) {
	c, err := Client(ClientConfig{ServerName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.MinVersion != tls.VersionTLS13 || len(c.NextProtos) != 1 || c.NextProtos[0] != protocol.ALPN {
		t.Fatalf("client config MinVersion %x NextProtos %v", c.MinVersion, c.NextProtos)
	}
	if c.InsecureSkipVerify || c.VerifyConnection != nil || c.CurvePreferences != nil {
		t.Fatal("client config without pins must verify chains and keep default curves")
	}
}

func TestEnforce(t *testing.T) {
	tests := []struct {
		name    string
		in      *tls.Config
		wantErr bool
	}{
		{"nil", nil, true},
		{"max tls12", &tls.Config{MaxVersion: tls.VersionTLS12}, true},
		{"min tls12 raised", &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", protocol.ALPN}}, false},
		{"empty", &tls.Config{}, false},
		{"curves kept", &tls.Config{CurvePreferences: []tls.CurveID{tls.X25519}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Enforce(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatal("Enforce accepted a config it must refuse")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == tt.in {
				t.Fatal("Enforce modified the caller's config instead of a copy")
			}
			if got.MinVersion != tls.VersionTLS13 {
				t.Errorf("MinVersion = %x", got.MinVersion)
			}
			if len(got.NextProtos) != 1 || got.NextProtos[0] != protocol.ALPN {
				t.Errorf("NextProtos = %v", got.NextProtos)
			}
			if len(got.CurvePreferences) != len(tt.in.CurvePreferences) {
				t.Errorf("CurvePreferences changed to %v", got.CurvePreferences)
			}
		})
	}
}

func TestCheckState(t *testing.T) {
	ok := tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13, NegotiatedProtocol: protocol.ALPN}
	tests := []struct {
		name   string
		mutate func(*tls.ConnectionState)
		want   string // substring of the error; "" = no error
	}{
		{"ok", func(*tls.ConnectionState) {}, ""},
		{"incomplete", func(s *tls.ConnectionState) { s.HandshakeComplete = false }, "not complete"},
		{"tls12", func(s *tls.ConnectionState) { s.Version = tls.VersionTLS12 }, "TLS 1.3"},
		{"no alpn", func(s *tls.ConnectionState) { s.NegotiatedProtocol = "" }, "ALPN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := ok
			tt.mutate(&st)
			err := CheckState(st)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckState = %v, want error containing %q", err, tt.want)
			}
		})
	}
}
