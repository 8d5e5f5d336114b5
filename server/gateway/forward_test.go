package gateway

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// whoService answers a forwarded command with the caller's identity.
type whoService struct{}

func (whoService) HandleCommand(_ context.Context, id core.Identity, body []byte) ([]byte, error) {
	return []byte(id.User + "|" + string(body)), nil
}

// TestForwardAndDrop forwards a COMMAND to a core service with the
// session's identity, has the core authorize SUBSCRIBE, and ends a
// user's subscription on a drop control event.
func TestForwardAndDrop(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	st, err := storage.Open(context.Background(), "sqlite::memory:", storage.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := core.NewRegistry()
	if err := reg.Register("who", whoService{}); err != nil {
		t.Fatal(err)
	}
	authz := core.AuthorizerFunc(func(_ context.Context, id core.Identity, a core.Action) error {
		if a.Op == core.OpSubscribe && a.Channel == "private" && id.User != "alice" {
			return jsperr.New(jsperr.Forbidden, "alice only")
		}
		return nil
	})
	c, err := core.New(core.Config{Bus: b, Store: st, Logger: testLogger(), Services: reg, Authorizer: authz})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	g := startGateway(t, Config{Bus: b, Authenticate: func(_ context.Context, h *wire.Hello, _ transport.Conn) (session.Identity, error) {
		return session.Identity{User: string(h.Auth)}, nil
	}})
	as := func(user string) *session.Session {
		s, err := g.dialInfo(t, transport.KindMem, "forward-test", func(tls.ConnectionState) []byte { return []byte(user) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	alice, bob := as("alice"), as("bob")

	rep, err := alice.Request(ctxT(t), &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "who"}, Class: protocol.ClassChat,
		Headers: map[string]string{HeaderRouteKey: "conv-1"}, Body: []byte("hi")})
	if err != nil || string(rep.Body) != "alice|hi" {
		t.Fatalf("forwarded command = %q, %v", rep.Body, err)
	}
	_, err = bob.Request(ctxT(t), &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "nobody"}, Class: protocol.ClassChat})
	if jsperr.CodeOf(err) != jsperr.NotFound {
		t.Fatalf("unknown service: %v", err)
	}

	// The core decides who may subscribe.
	if err := bob.Send(&wire.Subscribe{Channel: "private", ReqID: []byte("s1")}); err != nil {
		t.Fatal(err)
	}
	if e, ok := recvType(t, bob, wire.FrameError).Message.(*wire.ErrorMessage); !ok || e.Code != jsperr.Forbidden {
		t.Fatalf("bob's subscribe: %+v", e)
	}
	subscribe(t, alice, "private")
	subscribe(t, bob, "room")

	// A drop for bob ends his subscription of room; alice is unaffected.
	if _, err := c.Commit(ctxT(t), "room", storedMessage(&wire.Envelope{ID: []byte("m1"), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Body: []byte("one")}, "carol")); err != nil {
		t.Fatal(err)
	}
	if in := recvType(t, bob, wire.FrameEvent); string(in.Envelope.Body) != "one" {
		t.Fatalf("bob's event %q", in.Envelope.Body)
	}
	if err := c.Drop("room", "bob"); err != nil {
		t.Fatal(err)
	}
	// Ephemeral events pass with seq 0.
	if err := c.Ephemeral("private", storage.Message{Body: (&wire.Envelope{ID: []byte("t1"), Route: wire.Route{Kind: wire.RouteChannel, Name: "private"}, Body: []byte("typing")}).Append(nil)}); err != nil {
		t.Fatal(err)
	}
	if in := recvType(t, alice, wire.FrameEvent); string(in.Envelope.Body) != "typing" || in.Envelope.Seq != 0 {
		t.Fatalf("alice's ephemeral event %+v", in.Envelope)
	}
	// Wait until the drop reached the gateway: it was published before the
	// ephemeral event alice just received, on the same bus.
	time.Sleep(50 * time.Millisecond)
	if _, err := c.Commit(ctxT(t), "room", storedMessage(&wire.Envelope{ID: []byte("m2"), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"}, Body: []byte("two")}, "carol")); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if in, err := bob.Recv(rctx); err == nil {
		t.Fatalf("bob received %s %q after the drop", in.Type, in.Envelope.Body)
	}
}
