package ddos

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

type slotKey struct{}

// TestQUICRetryUnderLoad wires the filter into a real quic-go v0.65
// listener on loopback the way the gateway will: VerifySourceAddress
// decides about Retry and ConnContext takes a slot. Without load a client
// connects without Retry; under load its address is validated first
// (ClientInfo.AddrVerified); when the load and the hold are over, Retry
// stops again.
func TestQUICRetryUnderLoad(t *testing.T) {
	clk := newClock()
	f := mustNew(t, Config{MaxHandshakes: 8, RetryAttemptRate: -1, RetryHold: 10 * time.Second, Now: clk.Now})

	udpConn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	verified := make(chan bool, 8)
	var wg sync.WaitGroup
	tr := &quic.Transport{
		Conn:                udpConn,
		VerifySourceAddress: f.RequireAddressValidation,
		ConnContext: func(ctx context.Context, info *quic.ClientInfo) (context.Context, error) {
			verified <- info.AddrVerified
			addr, err := AddrIP(info.RemoteAddr)
			if err != nil {
				return ctx, err
			}
			slot, err := f.BeginHandshake(addr)
			if err != nil {
				return ctx, err
			}
			// The context ends with the connection (or a failed handshake).
			wg.Go(func() {
				<-ctx.Done()
				slot.Release()
			})
			return context.WithValue(ctx, slotKey{}, slot), nil
		},
	}
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"jsp-test"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		for {
			conn, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			if err := conn.Context().Value(slotKey{}).(*Slot).Established(); err != nil {
				conn.CloseWithError(1, err.Error())
			}
		}
	})
	defer func() {
		ln.Close()
		tr.Close()
		udpConn.Close()
		wg.Wait()
	}()

	dial := func() bool {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := quic.DialAddr(ctx, udpConn.LocalAddr().String(),
			&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"jsp-test"}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseWithError(0, "")
		select {
		case v := <-verified:
			return v
		case <-time.After(10 * time.Second):
			t.Fatal("ConnContext not called")
			return false
		}
	}

	if dial() {
		t.Fatal("idle server required Retry")
	}
	// Load: two handshakes in flight elsewhere reach RetryHandshakes (8/4).
	var load []*Slot
	for _, a := range []string{"192.0.2.1", "192.0.2.2"} {
		s, err := f.BeginHandshake(ip(a))
		if err != nil {
			t.Fatal(err)
		}
		load = append(load, s)
	}
	if !dial() {
		t.Fatal("loaded server did not require Retry")
	}
	for _, s := range load {
		s.Release()
	}
	if !dial() {
		t.Fatal("Retry stopped within RetryHold")
	}
	clk.Advance(11 * time.Second)
	if dial() {
		t.Fatal("Retry still required after load and hold ended")
	}
	if s := f.Stats(); s.RetryRequired < 2 || s.Begun < 6 {
		t.Fatalf("stats %+v", s)
	}
}
