package client_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/credential"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/auth"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// deviceServer runs a gateway on TLS over TCP (QUIC and WebSocket off)
// whose clients authenticate with device keys from reg; with a registry
// the gateway also runs the keys service.
func deviceServer(t *testing.T, reg devicekey.Registry) *gateway.Gateway {
	t.Helper()
	a, err := auth.New(auth.Config{Mode: auth.ModeDevice, Devices: reg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(gateway.Config{
		QUICAddr: gateway.Off, WSAddr: gateway.Off, TCPAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), Logger: quietLogger(),
		Authenticate: a.Authenticate, Devices: reg,
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
	return g
}

func registerDevice(t *testing.T, reg devicekey.Registry, owner string) devicekey.PrivateKey {
	t.Helper()
	k, err := devicekey.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(context.Background(), devicekey.Device{ID: k.Public().ID(), Key: k.Public(), Owner: owner}); err != nil {
		t.Fatal(err)
	}
	return k
}

// dialDevice connects over TLS/TCP as the device k.
func dialDevice(t *testing.T, g *gateway.Gateway, k devicekey.PrivateKey, mod func(*client.Options)) *client.Client {
	t.Helper()
	o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quietLogger(),
		Credentials: func(ctx context.Context, cs tls.ConnectionState) ([]byte, error) {
			return credential.ForConnection("", k, cs)
		}}
	if mod != nil {
		mod(&o)
	}
	c, err := client.Dial(ctxT(t), "jsp+tcp://"+g.Addrs().TCP.String(), o)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSignedEventsVerified: a publisher with SigningKey signs, the gateway
// verifies and forwards, and a subscriber with Verify fetches the
// publisher's key from the keys service and reports the event verified;
// unsigned events are reported (or dropped) as unverified.
func TestSignedEventsVerified(t *testing.T) {
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	g := deviceServer(t, reg)
	alice, bob, carol := registerDevice(t, reg, "alice"), registerDevice(t, reg, "bob"), registerDevice(t, reg, "carol")
	pub := dialDevice(t, g, alice, func(o *client.Options) { o.SigningKey = alice })
	plain := dialDevice(t, g, carol, nil)
	sub := dialDevice(t, g, bob, func(o *client.Options) { o.Verify.Enabled = true })
	dropper := dialDevice(t, g, bob, func(o *client.Options) { o.Verify = client.VerifyOptions{Enabled: true, DropUnverified: true} })

	events := make(chan client.Event, 8)
	if _, err := sub.Subscribe(ctxT(t), "room", func(ev client.Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	kept := make(chan client.Event, 8)
	if _, err := dropper.Subscribe(ctxT(t), "room", func(ev client.Event) { kept <- ev }); err != nil {
		t.Fatal(err)
	}
	if err := plain.Publish(ctxT(t), "room", []byte("unsigned")); err != nil {
		t.Fatal(err)
	}
	ev := recvEvent(t, events)
	if ev.Verified || !errors.Is(ev.VerifyErr, client.ErrUnsigned) {
		t.Fatalf("unsigned event: verified %v, err %v", ev.Verified, ev.VerifyErr)
	}
	if err := pub.Publish(ctxT(t), "room", []byte("signed")); err != nil {
		t.Fatal(err)
	}
	ev = recvEvent(t, events)
	if !ev.Verified || ev.VerifyErr != nil || ev.Signer == nil || ev.Signer.Owner != "alice" || ev.Signer.Device != alice.Public().ID() {
		t.Fatalf("signed event: verified %v, signer %+v, err %v", ev.Verified, ev.Signer, ev.VerifyErr)
	}
	if string(ev.Body) != "signed" || ev.Envelope.Headers[msgsig.SignerHeader] != alice.Public().ID().String() {
		t.Fatalf("signed event body %q headers %v", ev.Body, ev.Envelope.Headers)
	}
	// The dropper saw only the signed one.
	if ev := recvEvent(t, kept); string(ev.Body) != "signed" || !ev.Verified {
		t.Fatalf("dropper got %q (verified %v)", ev.Body, ev.Verified)
	}
	if n := dropper.Stats().Unverified; n != 1 {
		t.Fatalf("dropper counted %d unverified, want 1", n)
	}
}

// TestSigningKeyMismatch: a client that signs with a device key other than
// the one its session proved gets its publishes refused; the refusal is
// SIGNER_MISMATCH, which the client logs (Publish does not wait for
// acknowledgement), and nothing reaches subscribers.
func TestSigningKeyMismatch(t *testing.T) {
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	g := deviceServer(t, reg)
	alice, other, bob := registerDevice(t, reg, "alice"), registerDevice(t, reg, "alice"), registerDevice(t, reg, "bob")
	logBuf := &syncBuffer{}
	pub := dialDevice(t, g, alice, func(o *client.Options) {
		o.SigningKey = other
		o.Logger = slog.New(slog.NewTextHandler(logBuf, nil))
	})
	sub := dialDevice(t, g, bob, nil)
	events := make(chan client.Event, 8)
	if _, err := sub.Subscribe(ctxT(t), "room", func(ev client.Event) { events <- ev }); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctxT(t), "room", []byte("x")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logBuf.String(), "code="+jsperr.SignerMismatch.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no SIGNER_MISMATCH refusal logged; log:\n%s", logBuf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case ev := <-events:
		t.Fatalf("refused event delivered: %q", ev.Body)
	case <-time.After(100 * time.Millisecond):
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
