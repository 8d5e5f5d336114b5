package gateway

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/services/keys"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func signerAt(t *testing.T, k devicekey.PrivateKey, now time.Time) *msgsig.Signer {
	t.Helper()
	s, err := msgsig.NewSigner(k, msgsig.SignerOptions{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signedPublish(t *testing.T, s *msgsig.Signer, channel, id, body string) *wire.Envelope {
	t.Helper()
	env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel},
		Class: protocol.ClassChat, Body: []byte(body)}
	if err := s.Sign(env); err != nil {
		t.Fatal(err)
	}
	return env
}

// sendAcked sends a PUBLISH and waits for its ACK or ERROR.
func sendAcked(t *testing.T, s *session.Session, env *wire.Envelope) error {
	t.Helper()
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
	for {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("waiting for the answer to %q: %v", env.ID, err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			if len(m.IDs) == 1 && bytes.Equal(m.IDs[0], env.ID) {
				return nil
			}
		case *wire.ErrorMessage:
			if bytes.Equal(m.Ref, env.ID) {
				return jsperr.New(m.Code, m.Reason)
			}
		}
	}
}

// nextEvent returns the next EVENT, skipping ACKs.
func nextEvent(t *testing.T, s *session.Session) *wire.Envelope {
	t.Helper()
	for {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("waiting for an EVENT: %v", err)
		}
		if in.Type == wire.FrameEvent {
			return in.Envelope
		}
	}
}

// TestSignedPublish runs signed PUBLISHes through a gateway on TLS over
// TCP with device authentication, a bus and a storage-backed core: a valid
// one is committed and reaches a subscriber, live and replayed from
// storage, with signature, nonce and timestamp intact; tampered, wrongly
// keyed, stale, replayed and foreign-device ones are each refused with
// their code while the session goes on.
func TestSignedPublish(t *testing.T) {
	reg, _ := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newClusterFixture(t, b)
	log, buf := bufferLogger()
	g := deviceGateway(t, reg, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw-sig", Logger: log, RefusalLogRate: -1})
	alice, alicePhone, bob := newDevice(t, reg, "alice"), newDevice(t, reg, "alice"), newDevice(t, reg, "bob")
	as, err := g.dialInfo(t, transport.KindTCP, "alice", proveWith(t, alice))
	if err != nil {
		t.Fatal(err)
	}
	bs, err := g.dialInfo(t, transport.KindTCP, "bob", proveWith(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	if err := bs.Send(&wire.Subscribe{Channel: "room", ReqID: []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	recvType(t, bs, wire.FrameAck)

	now := time.Now()
	sign := signerAt(t, alice, now)
	valid := signedPublish(t, sign, "room", "m-1", "hello")
	if err := sendAcked(t, as, valid); err != nil {
		t.Fatalf("valid signed PUBLISH: %v", err)
	}
	ev := nextEvent(t, bs)
	if err := msgsig.Verify(ev, alice.Public(), now); err != nil || ev.Sender != "alice" || ev.Seq != 1 {
		t.Fatalf("delivered event (sender %q seq %d) does not verify: %v", ev.Sender, ev.Seq, err)
	}

	tampered := signedPublish(t, sign, "room", "m-2", "hello")
	tampered.Body = []byte("hellO")
	wrongKey := signedPublish(t, signerAt(t, alicePhone, now), "room", "m-3", "x")
	wrongKey.Headers[msgsig.SignerHeader] = alice.Public().ID().String()
	tests := []struct {
		name string
		env  *wire.Envelope
		want jsperr.Code
	}{
		{"tampered body", tampered, jsperr.SignatureInvalid},
		{"wrong key", wrongKey, jsperr.SignatureInvalid},
		{"stale timestamp", signedPublish(t, signerAt(t, alice, now.Add(-time.Hour)), "room", "m-4", "x"), jsperr.SignatureStale},
		{"reused nonce", valid, jsperr.SignatureReplayed},
		{"another device's signature", signedPublish(t, signerAt(t, alicePhone, now), "room", "m-5", "x"), jsperr.SignerMismatch},
		{"no nonce", func() *wire.Envelope {
			e := signedPublish(t, sign, "room", "m-6", "x")
			e.Nonce = nil
			return e
		}(), jsperr.SignatureMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sendAcked(t, as, tt.env)
			if got := jsperr.CodeOf(err); got != tt.want {
				t.Fatalf("refused with %v (%s), want %s", err, got, tt.want)
			}
			if n := len(buf.lines("signed message refused", "code="+tt.want.String(), "user=alice")); n == 0 {
				t.Fatalf("no log line for %s", tt.want)
			}
		})
	}
	// The session went on, nothing refused reached the subscriber, and a
	// second valid message is the channel's second.
	if err := sendAcked(t, as, signedPublish(t, sign, "room", "m-7", "again")); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, bs); ev.Seq != 2 || string(ev.Body) != "again" {
		t.Fatalf("next event seq %d %q, want 2 \"again\"", ev.Seq, ev.Body)
	}
	if st := g.sigGuard.Stats(); st.Accepted != 2 || st.Replayed != 1 || st.Stale != 1 || st.Invalid != 2 {
		t.Fatalf("guard stats %+v", st)
	}

	// History: a late subscriber gets both from storage, still verifiable
	// with the key the keys service publishes.
	late, err := g.dialInfo(t, transport.KindTCP, "bob-late", proveWith(t, bob))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := command(t, late, wire.Route{Kind: wire.RouteService, Name: keys.Command},
		string((&msgsig.KeyRequest{Device: alice.Public().ID(), User: "alice"}).Append(nil)))
	if err != nil {
		t.Fatalf("keys lookup: %v", err)
	}
	kr, err := msgsig.ParseKeyReply(rep.Body)
	if err != nil || kr.Key != alice.Public() {
		t.Fatalf("keys reply %+v, %v", kr, err)
	}
	subscribeSince(t, late, "room", 0)
	for i, body := range []string{"hello", "again"} {
		ev := nextEvent(t, late)
		if string(ev.Body) != body {
			t.Fatalf("replayed event %d: %q, want %q", i, ev.Body, body)
		}
		if err := msgsig.VerifySignature(ev, kr.Key); err != nil {
			t.Fatalf("replayed event %d does not verify: %v", i, err)
		}
	}
}

// TestSignedWithoutRegistry: a gateway without a device registry cannot
// verify, so it refuses signed envelopes with SIGNER_UNKNOWN and does not
// offer the keys service; unsigned traffic is unaffected.
func TestSignedWithoutRegistry(t *testing.T) {
	g := startGateway(t, Config{})
	s := g.dial(t, transport.KindMem)
	k, _ := devicekey.GenerateKey(nil)
	err := sendAcked(t, s, signedPublish(t, signerAt(t, k, time.Now()), "room", "m-1", "x"))
	// Anonymous session: no device at all, so the signer cannot be it.
	if got := jsperr.CodeOf(err); got != jsperr.SignerMismatch {
		t.Fatalf("signed PUBLISH on an anonymous session: %v, want SIGNER_MISMATCH", err)
	}
	if _, ok := g.services.Command(keys.Command); ok {
		t.Fatal("keys service registered without a registry")
	}
	if _, err := g.sigGuard.Check(context.Background(), g.cfg.Devices, signedPublish(t, signerAt(t, k, time.Now()), "room", "m-2", "x")); jsperr.CodeOf(err) != jsperr.SignerUnknown {
		t.Fatalf("guard without registry: %v, want SIGNER_UNKNOWN", err)
	}
}
