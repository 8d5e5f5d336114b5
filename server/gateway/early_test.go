package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/wire"
)

// counter is a non-idempotent test service: every command increments it.
type counter struct{ n atomic.Int64 }

func (c *counter) HandleCommand(context.Context, *services.Caller, *wire.Envelope) ([]byte, error) {
	c.n.Add(1)
	return nil, nil
}

// flightProxy relays UDP between one client and a server. Until release
// it holds the server's packets back and records the client's: that is the
// client's first flight, its Initial and 0-RTT packets, complete because
// the client cannot send anything else before it hears from the server.
type flightProxy struct {
	front  *net.UDPConn // the client's side
	back   *net.UDPConn // connected to the server
	wg     sync.WaitGroup
	mu     sync.Mutex
	client net.Addr    // guarded by mu
	flight [][]byte    // guarded by mu: client datagrams before release
	held   [][]byte    // guarded by mu: server datagrams before release
	open   bool        // guarded by mu: released
	relay  chan []byte // server datagrams after release, in order
}

func newFlightProxy(t *testing.T, server net.Addr) *flightProxy {
	t.Helper()
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, server.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	p := &flightProxy{front: front, back: back}
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, addr, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			d := bytes.Clone(buf[:n])
			p.mu.Lock()
			p.client = addr
			if !p.open {
				p.flight = append(p.flight, d)
			}
			p.mu.Unlock()
			_, _ = back.Write(d)
		}
	}()
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := back.Read(buf)
			if err != nil {
				return
			}
			d := bytes.Clone(buf[:n])
			p.mu.Lock()
			if !p.open {
				p.held = append(p.held, d)
				p.mu.Unlock()
				continue
			}
			to := p.client
			p.mu.Unlock()
			_, _ = front.WriteTo(d, to)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *flightProxy) addr() string { return p.front.LocalAddr().String() }

// release lets the server's packets through, the held ones first, and
// returns the recorded first flight.
func (p *flightProxy) release() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open = true
	for _, d := range p.held {
		_, _ = p.front.WriteTo(d, p.client)
	}
	p.held = nil
	return p.flight
}

func (p *flightProxy) close() {
	_ = p.front.Close()
	_ = p.back.Close()
	p.wg.Wait()
}

// longHeaderType returns the QUIC v1 long-header packet type of a
// datagram's first packet (0 Initial, 1 0-RTT, 2 Handshake), or -1.
func longHeaderType(d []byte) int {
	if len(d) == 0 || d[0]&0x80 == 0 {
		return -1
	}
	return int(d[0]&0x30) >> 4
}

// earlyFlight is what the test client sends before its handshake can
// complete: HELLO, then a COMMAND marked idempotent and one that is not.
func earlyFlight() []byte {
	hello := &wire.Hello{ClientName: "replay-test", Versions: protocol.SupportedVersions}
	b := wire.AppendFrame(nil, wire.FrameHello, 0, 0, hello.Append(nil))
	for _, c := range []struct {
		id, route string
		headers   map[string]string
	}{
		{"c-idem", "count.idem", map[string]string{IdempotentHeader: "1"}},
		{"c-plain", "count.plain", nil},
	} {
		env := wire.EnvelopeFrame{Type: wire.FrameCommand, Envelope: wire.Envelope{
			ID: []byte(c.id), Route: wire.Route{Kind: wire.RouteService, Name: c.route}, Kind: wire.KindCommand, Headers: c.headers}}
		b = wire.AppendFrame(b, wire.FrameCommand, 0, 0, env.Append(nil))
	}
	return b
}

// TestZeroRTTReplay captures a client's 0-RTT flight and replays it to
// the gateway as a new connection. The live connection runs both of its
// commands once. The replay reaches the gateway (its HELLO is accepted
// and its idempotent command runs a second time), but its non-idempotent
// command waits for a handshake the replayer cannot complete and never
// runs.
func TestZeroRTTReplay(t *testing.T) {
	idem, plain := &counter{}, &counter{}
	reg := services.NewRegistry()
	if err := reg.Register(idem, "count.idem"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(plain, "count.plain"); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, Config{
		QUICAddr: "127.0.0.1:0", Services: reg,
		QUIC: jspquic.Config{Allow0RTT: true, HandshakeIdleTimeout: 500 * time.Millisecond},
	})
	tc := g.clientTLS(t)
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	ctx := ctxT(t)

	// A first session, with a full handshake, leaves a session ticket.
	conn, err := jspquic.Dial(ctx, g.Addrs().QUIC.String(), tc, jspquic.Config{Allow0RTT: true})
	if err != nil {
		t.Fatal(err)
	}
	first := g.sessionOn(t, conn)
	if _, err := command(t, first, wire.Route{Kind: wire.RouteService, Name: "count.idem"}, ""); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	idem.n.Store(0)

	// The second resumes through the proxy and sends its requests as
	// 0-RTT data, while the proxy holds the server's answers back.
	p := newFlightProxy(t, g.Addrs().QUIC)
	conn, err = jspquic.Dial(ctx, p.addr(), tc, jspquic.Config{Allow0RTT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
	ctl, err := conn.OpenStream(ctx, protocol.ClassSystem)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Write(earlyFlight()); err != nil {
		t.Fatal(err)
	}
	// The client sends 0-RTT packets as soon as it can; give it a moment.
	waitFor(t, "0-RTT packets", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, d := range p.flight {
			if longHeaderType(d) == 1 {
				return true
			}
		}
		return false
	})
	time.Sleep(20 * time.Millisecond)
	flight := p.release()

	// The live connection completes: WELCOME and both replies.
	fr := wire.NewFrameReader(ctl, 1<<20)
	replies := map[string]bool{}
	for len(replies) < 2 {
		h, payload, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("live connection: %v", err)
		}
		if h.Type == wire.FrameReply {
			m, err := wire.DecodeMessage(h.Type, payload)
			if err != nil {
				t.Fatal(err)
			}
			replies[string(m.(*wire.EnvelopeFrame).Envelope.ReplyTo)] = true
		}
	}
	if ec := conn.(jspquic.EarlyConn); !ec.Used0RTT() {
		t.Fatal("the live connection did not use 0-RTT; the test proves nothing")
	}
	if idem.n.Load() != 1 || plain.n.Load() != 1 {
		t.Fatalf("live connection ran idem %d, plain %d times; want 1 and 1", idem.n.Load(), plain.n.Load())
	}
	deferredBefore := g.metrics.earlyDeferred.value(wire.FrameCommand.String())
	// quic-go routes the live connection's first connection id to it
	// while it runs, and to its closed remains for a while after; the
	// replay is a new connection only once the id is free again.
	_ = conn.CloseWithError(jsperr.NoError, "")
	waitFor(t, "the live session to end", func() bool { return g.Health().Sessions == 0 })

	// Replay the first flight (Initial and 0-RTT packets) from another
	// address, repeated until the gateway takes it for a new connection.
	var sent int
	for _, d := range flight {
		if t := longHeaderType(d); t == 0 || t == 1 {
			sent++
		}
	}
	if sent < 2 {
		t.Fatalf("first flight has %d Initial/0-RTT datagrams", sent)
	}
	replayer, err := net.DialUDP("udp", nil, g.Addrs().QUIC.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer replayer.Close()
	deadline := time.Now().Add(testTimeout)
	for idem.n.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the replayed flight never reached the gateway")
		}
		for _, d := range flight {
			if t := longHeaderType(d); t == 0 || t == 1 {
				_, _ = replayer.Write(d)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The replay's plain command waits for the handshake, which fails;
	// the connection ends and the command never runs.
	waitFor(t, "the replayed session to end", func() bool { return g.Health().Sessions == 0 })
	if n := plain.n.Load(); n != 1 {
		t.Fatalf("the non-idempotent command ran %d times, want 1", n)
	}
	if n := g.metrics.earlyDeferred.value(wire.FrameCommand.String()); n <= deferredBefore {
		t.Fatalf("deferred-request metric %d, want above %d", n, deferredBefore)
	}
	if n := idem.n.Load(); n != 2 {
		t.Fatalf("the idempotent command ran %d times, want 2 (live and replay)", n)
	}
}

// sessionOn runs the session handshake on conn and closes the session at
// cleanup.
func (g *testGateway) sessionOn(t *testing.T, conn transport.Conn) *session.Session {
	t.Helper()
	s, err := session.Dial(ctxT(t), conn, session.ClientInfo{Name: "early-test"}, session.Config{Logger: testLogger()})
	if err != nil {
		_ = conn.CloseWithError(jsperr.NoError, "")
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
