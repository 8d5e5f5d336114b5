package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// TestZeroRTTResume: a client with QUIC.Allow0RTT and a session cache that
// outlives it resumes its next connection with 0-RTT (HELLO goes in the
// first flight), and the session works as usual.
func TestZeroRTTResume(t *testing.T) {
	g, err := gateway.New(gateway.Config{
		QUICAddr: "127.0.0.1:0", TCPAddr: gateway.Off, WSAddr: gateway.Off,
		DataDir: t.TempDir(), Logger: quietLogger(), QUIC: quic.Config{Allow0RTT: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = g.Close()
		if err := <-done; !errors.Is(err, gateway.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	cache := tls.NewLRUClientSessionCache(4)
	for round := range 2 {
		o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quietLogger(),
			TLS: &tls.Config{ClientSessionCache: cache}, QUIC: quic.Config{Allow0RTT: true}}
		c, err := client.Dial(ctxT(t), "jsp+quic://"+g.Addrs().QUIC.String(), o)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if reply, err := c.Command(ctxT(t), "echo", []byte("hi")); err != nil || string(reply) != "hi" {
			t.Fatalf("round %d: echo %q, %v", round, reply, err)
		}
		ec, ok := c.Session().Conn().(quic.EarlyConn)
		if !ok {
			t.Fatalf("round %d: %T is not a QUIC connection", round, c.Session().Conn())
		}
		<-ec.HandshakeComplete()
		if got := ec.Used0RTT(); got != (round == 1) {
			t.Fatalf("round %d: Used0RTT %v", round, got)
		}
		_ = c.Close()
	}
}
