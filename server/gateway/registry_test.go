package gateway

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// TestRegistryAndPresence runs two gateways on one bus: each finds the
// other in the gateway registry and lists it in WELCOME, a session is
// online in presence (queried through the presence command) until it
// ends, and a draining gateway leaves the others' lists.
func TestRegistryAndPresence(t *testing.T) {
	f := newClusterFixture(t, embeddedBus(t))
	a := startGateway(t, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw-a", PublicURLs: []string{"jsp+tcp://a.example:7400"}})
	b := startGateway(t, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw-b", PublicURLs: []string{"jsp+tcp://b.example:7400"},
		DrainGrace: 50 * time.Millisecond})
	waitFor(t, "registry open", func() bool { return a.reg.presence.Load() != nil && b.reg.presence.Load() != nil })
	waitFor(t, "gw-a lists gw-b", func() bool { return slices.Contains(a.alternatives(), "jsp+tcp://b.example:7400") })
	waitFor(t, "gw-b lists gw-a", func() bool { return slices.Contains(b.alternatives(), "jsp+tcp://a.example:7400") })

	s := a.dial(t, transport.KindMem)
	if w := s.Welcome(); w == nil || !slices.Contains(w.Gateways, "jsp+tcp://b.example:7400") || slices.Contains(w.Gateways, "jsp+tcp://a.example:7400") {
		t.Fatalf("WELCOME gateways %v", s.Welcome().Gateways)
	}
	id := hex.EncodeToString(s.ID())
	var up core.UserPresence
	waitFor(t, "presence online", func() bool {
		var err error
		up, err = a.reg.presence.Load().Query(ctxT(t), "anonymous")
		return err == nil && up.Status == core.StatusOnline && len(up.Sessions) == 1
	})
	if e := up.Sessions[0]; e.Session != id || e.Gateway != "gw-a" || e.Transport != string(transport.KindMem) || e.RemoteAddr == "" || e.Since.IsZero() {
		t.Fatalf("presence entry %+v", e)
	}
	// The same answer through the presence service, from the other
	// gateway's session.
	s2 := b.dial(t, transport.KindMem)
	cmd := &wire.Envelope{ID: []byte("q1"), Kind: wire.KindCommand, Route: wire.Route{Kind: wire.RouteService, Name: PresenceCommand}, Class: protocol.ClassSystem, Body: []byte("anonymous")}
	if err := s2.SendEnvelope(wire.FrameCommand, cmd); err != nil {
		t.Fatal(err)
	}
	rep := recvType(t, s2, wire.FrameReply)
	var got core.UserPresence
	if err := json.Unmarshal(rep.Envelope.Body, &got); err != nil || got.Status != core.StatusOnline || len(got.Sessions) < 1 {
		t.Fatalf("presence reply %s: %v", rep.Envelope.Body, err)
	}
	// An empty body is a named error, not a crash.
	cmd = &wire.Envelope{ID: []byte("q2"), Kind: wire.KindCommand, Route: wire.Route{Kind: wire.RouteService, Name: PresenceCommand}, Class: protocol.ClassSystem}
	if err := s2.SendEnvelope(wire.FrameCommand, cmd); err != nil {
		t.Fatal(err)
	}
	if rep := recvType(t, s2, wire.FrameReply); rep.Envelope.ErrCode != jsperr.BadRequest {
		t.Fatalf("empty presence query: code %d", rep.Envelope.ErrCode)
	}
	_ = s2.Close()

	_ = s.Close()
	waitFor(t, "session gone from the registry", func() bool {
		up, err := a.reg.presence.Load().Query(ctxT(t), "anonymous")
		return err == nil && !slices.ContainsFunc(up.Sessions, func(e core.SessionEntry) bool { return e.Session == id })
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() { _ = b.Shutdown(ctx) }()
	waitFor(t, "draining gw-b leaves gw-a's list", func() bool { return !slices.Contains(a.alternatives(), "jsp+tcp://b.example:7400") })
}

// TestUnknownRoutes checks that messages for routes nobody serves get a
// named error: a COMMAND for an unknown service NOT_FOUND, a PUBLISH to a
// user or service route BAD_REQUEST.
func TestUnknownRoutes(t *testing.T) {
	f := newClusterFixture(t, embeddedBus(t))
	g := f.gateway(t, "gw-routes")
	s := g.dial(t, transport.KindMem)
	cmd := &wire.Envelope{ID: []byte("c1"), Kind: wire.KindCommand, Route: wire.Route{Kind: wire.RouteService, Name: "no.such.service"}, Class: protocol.ClassChat}
	if err := s.SendEnvelope(wire.FrameCommand, cmd); err != nil {
		t.Fatal(err)
	}
	if rep := recvType(t, s, wire.FrameReply); rep.Envelope.ErrCode != jsperr.NotFound {
		t.Fatalf("unknown service: code %d reason %q", rep.Envelope.ErrCode, rep.Envelope.ErrReason)
	}
	for _, r := range []wire.Route{{Kind: wire.RouteUser, Name: "bob"}, {Kind: wire.RouteService, Name: "echo"}} {
		err := publishTo(t, s, r, "p-"+r.Name)
		if jsperr.CodeOf(err) != jsperr.BadRequest {
			t.Fatalf("PUBLISH to %v: %v", r, err)
		}
	}
}

// publishTo publishes to route r and returns the ERROR it is answered
// with (nil for an ACK).
func publishTo(t *testing.T, s *session.Session, r wire.Route, id string) error {
	t.Helper()
	env := &wire.Envelope{ID: []byte(id), Route: r, Class: protocol.ClassChat, Body: []byte("x")}
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
	for {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			return nil
		case *wire.ErrorMessage:
			return jsperr.New(m.Code, m.Reason)
		}
	}
}

// TestPublicURLs checks which addresses a gateway announces.
func TestPublicURLs(t *testing.T) {
	g := startGateway(t, Config{TCPAddr: "127.0.0.1:0", QUICAddr: ":0"})
	got := g.publicURLs()
	if len(got) != 1 || !strings.HasPrefix(got[0], "jsp+tcp://127.0.0.1:") {
		t.Fatalf("publicURLs = %v, want the TCP address only (QUIC is bound to every address)", got)
	}
	g2 := startGateway(t, Config{PublicURLs: []string{"jsp://gw.example.com"}})
	if got := g2.publicURLs(); len(got) != 1 || got[0] != "jsp://gw.example.com" {
		t.Fatalf("publicURLs = %v", got)
	}
}
