package ca

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// echoServer is a TLS listener on loopback that echoes each connection and
// reports every handshake result.
type echoServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	errs chan error

	mu    sync.Mutex
	conns []net.Conn
}

func startEchoServer(t *testing.T, cfg *tls.Config) *echoServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln, errs: make(chan error, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				err := c.(*tls.Conn).Handshake()
				s.errs <- err
				if err == nil {
					io.Copy(c, c)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *echoServer) handshakeErr(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.errs:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no server handshake result")
		return nil
	}
}

// dial connects and completes the handshake. In TLS 1.3 the client
// finishes before the server has checked its certificate, so a refusal by
// the server shows up on the first read.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c, nil
}

func echo(c *tls.Conn, msg string) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte(msg)) {
		return errors.New("echo mismatch")
	}
	return nil
}

func testVerifier(t *testing.T, c *CA, now func() time.Time, roles ...string) *Verifier {
	t.Helper()
	v, err := NewVerifier(c.Trust(), Policy{Cluster: c.Cluster(), Roles: roles, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestRotationOverTLS runs real TLS 1.3 connections on loopback while
// server and client certificates, living three seconds, are renewed: a
// connection made before the rotation keeps working after it (and after
// the old certificate has expired), and a new connection sees the new
// certificate.
func TestRotationOverTLS(t *testing.T) {
	c := newTestCA(t, "prod", time.Now)
	serverRenewed := make(chan *tls.Certificate, 8)
	newRenewer := func(role string, ch chan *tls.Certificate) *Renewer {
		r, err := NewRenewer(RenewerConfig{
			Issuer: c, Identity: Identity{Role: role, Name: role + "-1"}, Lifetime: 3 * time.Second,
			Logger: quietLogger(),
			OnRenew: func(cert *tls.Certificate) {
				if ch != nil {
					select {
					case ch <- cert:
					default:
					}
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		if ch != nil {
			<-ch // the first certificate
		}
		return r
	}
	srvRenewer := newRenewer("gateway", serverRenewed)
	cliRenewer := newRenewer("core", nil)
	srvCfg, err := ServerConfig(srvRenewer, testVerifier(t, c, time.Now, "core"))
	if err != nil {
		t.Fatal(err)
	}
	cliCfg, err := ClientConfig(cliRenewer, testVerifier(t, c, time.Now, "gateway"))
	if err != nil {
		t.Fatal(err)
	}
	srv := startEchoServer(t, srvCfg)

	before, err := dial(t, srv.ln.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(before, "before"); err != nil {
		t.Fatal(err)
	}
	if err := srv.handshakeErr(t); err != nil {
		t.Fatal(err)
	}
	oldCert := before.ConnectionState().PeerCertificates[0]
	if before.ConnectionState().Version != tls.VersionTLS13 {
		t.Fatal("not TLS 1.3")
	}

	select {
	case <-serverRenewed:
	case <-time.After(15 * time.Second):
		t.Fatal("server certificate not renewed")
	}

	after, err := dial(t, srv.ln.Addr().String(), cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := echo(after, "after"); err != nil {
		t.Fatal(err)
	}
	if err := srv.handshakeErr(t); err != nil {
		t.Fatal(err)
	}
	newCert := after.ConnectionState().PeerCertificates[0]
	if newCert.SerialNumber.Cmp(oldCert.SerialNumber) == 0 {
		t.Fatal("new connection got the old certificate")
	}
	if !newCert.NotAfter.After(oldCert.NotAfter) {
		t.Fatal("new certificate does not outlive the old one")
	}
	id, err := PeerIdentity(after.ConnectionState())
	if err != nil || id.Role != "gateway" {
		t.Fatalf("server identity %v, %v", id, err)
	}

	// The old connection outlives its certificate.
	time.Sleep(time.Until(oldCert.NotAfter) + 100*time.Millisecond)
	if err := echo(before, "still here"); err != nil {
		t.Fatalf("connection made before rotation: %v", err)
	}
}

// TestRefusalsOverTLS checks that refusals surface as JSP codes on the
// side that refuses.
func TestRefusalsOverTLS(t *testing.T) {
	c := newTestCA(t, "prod", time.Now)
	other := newTestCA(t, "prod", time.Now)
	gateway := mustIssue(t, c, "gateway", "gw-1", time.Hour)
	core := mustIssue(t, c, "core", "c-1", time.Hour)
	admin := mustIssue(t, c, "admin", "a-1", time.Hour)
	foreign := mustIssue(t, other, "core", "c-1", time.Hour)
	later := func() time.Time { return time.Now().Add(2 * time.Hour) }

	tests := []struct {
		name        string
		serverCert  *tls.Certificate
		serverNow   func() time.Time
		clientCert  *tls.Certificate
		clientRoles []string
		serverCode  jsperr.Code // NoError: server accepts
		clientCode  jsperr.Code // NoError: client accepts
	}{
		{name: "ok", serverCert: gateway, clientCert: core},
		{name: "client wrong role", serverCert: gateway, clientCert: admin, serverCode: jsperr.CertWrongRole},
		{name: "client from another CA", serverCert: gateway, clientCert: foreign, serverCode: jsperr.CertUntrusted},
		{name: "client expired", serverCert: gateway, serverNow: later, clientCert: core, serverCode: jsperr.CertExpired},
		{name: "server wrong role", serverCert: core, clientCert: core, clientRoles: []string{"gateway"}, clientCode: jsperr.CertWrongRole},
		{name: "server from another CA", serverCert: foreign, clientCert: core, clientCode: jsperr.CertUntrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.serverNow
			if now == nil {
				now = time.Now
			}
			srvCfg, err := ServerConfig(Static(tt.serverCert), testVerifier(t, c, now, "core"))
			if err != nil {
				t.Fatal(err)
			}
			roles := tt.clientRoles
			if roles == nil {
				roles = []string{"gateway", "core"}
			}
			cliCfg, err := ClientConfig(Static(tt.clientCert), testVerifier(t, c, time.Now, roles...))
			if err != nil {
				t.Fatal(err)
			}
			srv := startEchoServer(t, srvCfg)
			conn, err := dial(t, srv.ln.Addr().String(), cliCfg)
			if tt.clientCode != jsperr.NoError {
				if got := jsperr.CodeOf(err); got != tt.clientCode {
					t.Fatalf("client handshake: %v (code %s), want %s", err, got, tt.clientCode)
				}
				srv.handshakeErr(t) // the server sees the client's alert
				return
			}
			if err != nil {
				t.Fatalf("client handshake: %v", err)
			}
			echoErr := echo(conn, "x")
			serverErr := srv.handshakeErr(t)
			if got := jsperr.CodeOf(serverErr); got != tt.serverCode {
				t.Fatalf("server handshake: %v (code %s), want %s", serverErr, got, tt.serverCode)
			}
			if (echoErr == nil) != (tt.serverCode == jsperr.NoError) {
				t.Fatalf("client echo: %v", echoErr)
			}
		})
	}
}

func TestNoClientCertificate(t *testing.T) {
	c := newTestCA(t, "prod", time.Now)
	srvCfg, err := ServerConfig(Static(mustIssue(t, c, "gateway", "g", time.Hour)), testVerifier(t, c, time.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := startEchoServer(t, srvCfg)
	cliCfg := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	if conn, err := dial(t, srv.ln.Addr().String(), cliCfg); err == nil {
		if echo(conn, "x") == nil {
			t.Fatal("server accepted a client without a certificate")
		}
	}
	if err := srv.handshakeErr(t); err == nil {
		t.Fatal("server handshake succeeded without a client certificate")
	}
	if _, err := ServerConfig(nil, nil); err == nil {
		t.Fatal("ServerConfig without source")
	}
	if _, err := ClientConfig(nil, nil); err == nil {
		t.Fatal("ClientConfig without source")
	}
}
