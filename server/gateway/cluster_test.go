package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/sqlite"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// clusterFixture is one bus, one store and one core shared by the
// gateways of a test.
type clusterFixture struct {
	bus   bus.Bus
	store storage.Store
	core  *core.Core
}

// newClusterFixture starts a core on b with a SQLite store; edits, if
// any, change the core's Config first.
func newClusterFixture(t testing.TB, b bus.Bus, edits ...func(*core.Config)) *clusterFixture {
	t.Helper()
	st, err := storage.Open(context.Background(), "sqlite:"+t.TempDir()+"/jsp.db", storage.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := core.Config{Bus: b, Store: st, Logger: testLogger()}
	for _, edit := range edits {
		edit(&cfg)
	}
	c, err := core.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &clusterFixture{bus: b, store: st, core: c}
}

func embeddedBus(t testing.TB) bus.Bus {
	t.Helper()
	b, err := natsbus.Embedded(natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: t.TempDir(), Logger: testLogger()},
		Client: natsbus.ClientConfig{Logger: testLogger()},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func (f *clusterFixture) gateway(t *testing.T, node string) *testGateway {
	return startGateway(t, Config{Bus: f.bus, Sessions: f.store, NodeID: node})
}

// publishAcked publishes with the given id and waits for its ACK (or
// ERROR), skipping events that arrive meanwhile.
func publishAcked(t testing.TB, s *session.Session, channel, id, body string) error {
	t.Helper()
	// A resend is the same envelope, timestamp included (JSP §4): the
	// core compares it with the committed one.
	env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: channel}, Class: protocol.ClassChat,
		Timestamp: 1_700_000_000_000, Body: []byte(body)}
	if err := s.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatal(err)
	}
	for {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("waiting for ACK of %q: %v", id, err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			if len(m.IDs) != 1 || !bytes.Equal(m.IDs[0], []byte(id)) {
				t.Fatalf("ACK %q, want %q", m.IDs, id)
			}
			return nil
		case *wire.ErrorMessage:
			if !bytes.Equal(m.Ref, []byte(id)) {
				t.Fatalf("ERROR ref %q, want %q", m.Ref, id)
			}
			return jsperr.New(m.Code, m.Reason)
		}
	}
}

func subscribeSince(t *testing.T, s *session.Session, channel string, since uint64) {
	t.Helper()
	req := []byte("sub-since-" + channel)
	if err := s.Send(&wire.Subscribe{Channel: channel, Since: since, HasSince: true, ReqID: req}); err != nil {
		t.Fatal(err)
	}
}

// wantEvents receives n EVENTs and checks their numbers and bodies; an ACK
// for a subscribe in between is skipped.
func wantEvents(t *testing.T, s *session.Session, channel string, first uint64, bodies ...string) {
	t.Helper()
	for i, body := range bodies {
		var ev *wire.Envelope
		for ev == nil {
			in, err := s.Recv(ctxT(t))
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			switch in.Type {
			case wire.FrameEvent:
				ev = in.Envelope
			case wire.FrameAck:
			default:
				t.Fatalf("received %s, want EVENT", in.Type)
			}
		}
		if want := first + uint64(i); ev.Seq != want || string(ev.Body) != body || ev.Route.Name != channel || ev.Kind != wire.KindEvent {
			t.Fatalf("event %d: seq %d body %q route %v; want seq %d body %q", i, ev.Seq, ev.Body, ev.Route, want, body)
		}
	}
}

func noMoreEvents(t *testing.T, s *session.Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if in, err := s.Recv(ctx); err == nil {
		t.Fatalf("unexpected %s seq %d", in.Type, in.Envelope.Seq)
	}
}

// Two gateways on one bus and one store: a publish on A reaches B's
// subscriber with the commit's number after the publisher's ACK; a resend
// is not duplicated; a late subscriber with Since gets what it missed and
// then the live messages, in order.
func testTwoGateways(t *testing.T, b bus.Bus) {
	f := newClusterFixture(t, b)
	ga, gb := f.gateway(t, "gw-a"), f.gateway(t, "gw-b")
	const ch = "room.cluster"

	sub := gb.dial(t, transport.KindMem)
	subscribe(t, sub, ch)
	pub := ga.dial(t, transport.KindMem)
	for i := range 3 {
		if err := publishAcked(t, pub, ch, fmt.Sprint("id", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	wantEvents(t, sub, ch, 1, "m0", "m1", "m2")

	// A resend of id1 is ACKed again but neither stored nor delivered.
	if err := publishAcked(t, pub, ch, "id1", "m1"); err != nil {
		t.Fatalf("resend: %v", err)
	}
	noMoreEvents(t, sub)
	if info, err := f.store.ChannelInfo(ctxT(t), ch); err != nil || info.Last != 3 {
		t.Fatalf("channel info %+v %v, want last 3", info, err)
	}
	// Reusing an id for another body is refused with CONFLICT.
	if err := publishAcked(t, pub, ch, "id1", "other"); jsperr.CodeOf(err) != jsperr.Conflict {
		t.Fatalf("reused id: %v, want CONFLICT", err)
	}

	// A late subscriber on A that saw seq 1 gets 2 and 3, then live ones.
	late := ga.dial(t, transport.KindMem)
	subscribeSince(t, late, ch, 1)
	wantEvents(t, late, ch, 2, "m1", "m2")
	if err := publishAcked(t, pub, ch, "id3", "m3"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, late, ch, 4, "m3")
	wantEvents(t, sub, ch, 4, "m3")
	noMoreEvents(t, late)

	// Since 0 replays the whole retained log.
	all := gb.dial(t, transport.KindMem)
	subscribeSince(t, all, ch, 0)
	wantEvents(t, all, ch, 1, "m0", "m1", "m2", "m3")

	// Gateway B holds one bus subscription for its two subscribers and
	// took in each of the four events once.
	rec := httptest.NewRecorder()
	gb.serveMetrics(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"\njsp_bus_channels 1\n", "\njsp_bus_channel_subscribes_total 1\n", "\njsp_bus_events_delivered_total 4\n"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics of B lack %q", want)
		}
	}

	// Session records: four sessions open on the two gateways.
	for _, node := range []string{"gw-a", "gw-b"} {
		ss, err := f.store.ListSessions(ctxT(t), storage.SessionQuery{Gateway: node})
		if err != nil || len(ss) != 2 {
			t.Fatalf("sessions of %s: %d %v, want 2", node, len(ss), err)
		}
	}
	id := fmt.Sprintf("%x", pub.ID())
	_ = pub.Close()
	waitFor(t, "closed session record", func() bool {
		s, err := f.store.GetSession(ctxT(t), id)
		return err == nil && !s.Open()
	})
	if st := f.core.Stats(); st.Published != 4 || st.Duplicates != 1 {
		t.Fatalf("core stats %+v", st)
	}
}

func TestClusterMembus(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	testTwoGateways(t, b)
}

func TestClusterEmbeddedNATS(t *testing.T) { testTwoGateways(t, embeddedBus(t)) }

// Without a core the publisher gets an ERROR with its id, not an ACK.
func TestClusterNoCore(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	g := startGateway(t, Config{Bus: b})
	s := g.dial(t, transport.KindMem)
	if err := publishAcked(t, s, "room", "x", "y"); jsperr.CodeOf(err) != jsperr.CircuitOpen {
		t.Fatalf("publish without core: %v, want CIRCUIT_OPEN", err)
	}
	// The session goes on; a subscription needs the core's authorization
	// (zero trust), so without a core it is refused, not granted.
	if err := s.Send(&wire.Subscribe{Channel: "room", ReqID: []byte("sub")}); err != nil {
		t.Fatal(err)
	}
	in := recvType(t, s, wire.FrameError)
	if e, ok := in.Message.(*wire.ErrorMessage); !ok || e.Code != jsperr.CircuitOpen {
		t.Fatalf("subscribe without core: %+v, want CIRCUIT_OPEN", e)
	}
}

// wantReplay receives the replayed EVENTs and the SUBSCRIBE's ACK. The ACK
// is a system frame and the events chat frames, so the receiver may see
// the ACK first (JSP §11.3 priority), although it was sent last.
func wantReplay(t *testing.T, s *session.Session, channel string, first uint64, bodies ...string) {
	t.Helper()
	acked, got := false, 0
	for !acked || got < len(bodies) {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("replay of %s: %v (acked %v, %d events)", channel, err, acked, got)
		}
		switch in.Type {
		case wire.FrameAck:
			acked = true
		case wire.FrameEvent:
			ev := in.Envelope
			if got >= len(bodies) || ev.Seq != first+uint64(got) || string(ev.Body) != bodies[got] {
				t.Fatalf("replayed event %d: seq %d body %q", got, ev.Seq, ev.Body)
			}
			got++
		default:
			t.Fatalf("received %s during replay", in.Type)
		}
	}
}

// A replay stops at MaxReplay, and after a trim the client is told that
// recovery is impossible.
func TestClusterReplayLimits(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newClusterFixture(t, b)
	g := startGateway(t, Config{Bus: b, MaxReplay: 2})
	const ch = "replay"
	pub := g.dial(t, transport.KindMem)
	for i := range 5 {
		if err := publishAcked(t, pub, ch, fmt.Sprint("id", i), fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	capped := g.dial(t, transport.KindMem)
	subscribeSince(t, capped, ch, 0)
	wantReplay(t, capped, ch, 1, "m0", "m1")
	if err := publishAcked(t, pub, ch, "id5", "m5"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, capped, ch, 6, "m5")

	if _, err := f.store.TrimMessages(ctxT(t), ch, 2); err != nil {
		t.Fatal(err)
	}
	// After the trim, events after 1 cannot all be replayed: the client
	// gets RECOVERY_IMPOSSIBLE naming the channel, the SUBSCRIBE's ACK,
	// and then live events.
	late := g.dial(t, transport.KindMem)
	subscribeSince(t, late, ch, 1)
	wantRecoveryImpossible(t, late, ch, true)
	if err := publishAcked(t, pub, ch, "id6", "m6"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, late, ch, 7, "m6")
	noMoreEvents(t, late)
}

// wantRecoveryImpossible receives ERROR RECOVERY_IMPOSSIBLE for channel
// and, with acked, the SUBSCRIBE's ACK, in either order.
func wantRecoveryImpossible(t *testing.T, s *session.Session, channel string, acked bool) {
	t.Helper()
	gotErr := false
	for !gotErr || !acked {
		in, err := s.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("waiting for RECOVERY_IMPOSSIBLE: %v", err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			acked = true
		case *wire.ErrorMessage:
			if m.Code != jsperr.RecoveryImpossible || m.Channel != channel || len(m.Ref) != 0 {
				t.Fatalf("ERROR %s channel %q ref %q", m.Code, m.Channel, m.Ref)
			}
			gotErr = true
		default:
			t.Fatalf("received %s, want RECOVERY_IMPOSSIBLE", in.Type)
		}
	}
}

// A live event that arrives after a gap (the bus lost one: core messages
// are at most once) makes the session replay the missing ones from
// storage first, so the client sees every number in order.
func TestClusterGapFilled(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newClusterFixture(t, b)
	g := startGateway(t, Config{Bus: b})
	const ch = "gappy"
	sub := g.dial(t, transport.KindMem)
	subscribe(t, sub, ch)
	pub := g.dial(t, transport.KindMem)
	if err := publishAcked(t, pub, ch, "a", "m1"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 1, "m1")
	// Seq 2 is committed without its event: as if the bus dropped it.
	lost := &wire.Envelope{ID: []byte("lost"), Route: wire.Route{Kind: wire.RouteChannel, Name: ch}, Class: protocol.ClassChat, Body: []byte("m2")}
	if _, err := f.store.AppendMessage(ctxT(t), ch, storedMessage(lost, "someone")); err != nil {
		t.Fatal(err)
	}
	if err := publishAcked(t, pub, ch, "c", "m3"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 2, "m2", "m3")
	noMoreEvents(t, sub)
	if n := g.cluster.gaps.Load(); n != 1 {
		t.Fatalf("gaps %d, want 1", n)
	}
}
