package gateway

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

func TestShutdownGoAway(t *testing.T) {
	alts := []string{"jsp+quic://other.example:7400"}
	const grace = 300 * time.Millisecond
	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0", DrainGrace: grace, Alternatives: alts})
	leaving := g.dial(t, transport.KindQUIC) // leaves as soon as told
	staying := g.dial(t, transport.KindMem)  // stays until closed
	waitFor(t, "two sessions", func() bool { return g.Health().Sessions == 2 })

	shut := make(chan error, 1)
	go func() { shut <- g.Shutdown(ctxT(t)) }()
	for _, s := range []interface {
		GoingAway() <-chan struct{}
		GoAwayInfo() *wire.Goaway
	}{leaving, staying} {
		select {
		case <-s.GoingAway():
		case <-ctxT(t).Done():
			t.Fatal("no GOAWAY")
		}
		ga := s.GoAwayInfo()
		if ga.Code != jsperr.GoingAway || !slices.Equal(ga.Alternatives, alts) || ga.GraceMS != uint64(grace.Milliseconds()) {
			t.Fatalf("GOAWAY = %+v", ga)
		}
	}
	if h := g.Health(); h.Status != "draining" {
		t.Fatalf("health while draining = %+v", h)
	}
	// New connections are refused while draining.
	if conn, err := memtransport.Dial(ctxT(t), g.memName, mux.Config{}); err == nil {
		<-conn.Context().Done()
		_ = conn.CloseWithError(jsperr.NoError, "")
	}
	_ = leaving.Close()
	if err := staying.Wait(); closeCode(err) != jsperr.GoingAway {
		t.Fatalf("staying session ended with %v, want GOING_AWAY", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-g.served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	g.served <- ErrServerClosed // for the cleanup
	if err := g.Shutdown(context.Background()); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("second Shutdown = %v", err)
	}
	if h := g.Health(); h.Sessions != 0 {
		t.Fatalf("sessions after shutdown = %d", h.Sessions)
	}
}

func TestShutdownDeadline(t *testing.T) {
	g := startGateway(t, Config{DrainGrace: time.Hour})
	s := g.dial(t, transport.KindMem)
	waitFor(t, "session", func() bool { return g.Health().Sessions == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := g.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	if err := s.Wait(); err == nil {
		t.Fatal("session survived the shutdown")
	}
}

func TestCloseCutsDrain(t *testing.T) {
	g := startGateway(t, Config{DrainGrace: time.Hour})
	s := g.dial(t, transport.KindMem)
	waitFor(t, "session", func() bool { return g.Health().Sessions == 1 })
	shut := make(chan error, 1)
	go func() { shut <- g.Shutdown(context.Background()) }()
	<-s.GoingAway()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown after Close = %v", err)
	}
	if err := s.Wait(); closeCode(err) != jsperr.GoingAway {
		t.Fatalf("session ended with %v", err)
	}
}

// rawClient does the handshake by hand so that the test can then send
// bytes no session would.
func rawClient(t *testing.T, g *testGateway, kind transport.Kind) (transport.Conn, transport.Stream) {
	t.Helper()
	ctx := ctxT(t)
	conn := g.dialConn(t, kind)
	t.Cleanup(func() { _ = conn.CloseWithError(jsperr.NoError, "") })
	ctl, err := conn.OpenStream(ctx, protocol.ClassSystem)
	if err != nil {
		t.Fatal(err)
	}
	hello := &wire.Hello{Versions: []protocol.Version{protocol.Version1}, ClientName: "raw"}
	if _, err := ctl.Write(wire.AppendMessage(nil, 0, 0, hello)); err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFrameReader(ctl, uint64(protocol.DefaultMaxFrameSize))
	h, _, err := fr.ReadFrame()
	if err != nil || h.Type != wire.FrameWelcome {
		t.Fatalf("handshake: %v %v", h.Type, err)
	}
	return conn, ctl
}

// TestBadClientIsolated: a client that sends garbage is closed with the
// code for its mistake, and another client on the same gateway keeps
// being served.
func TestBadClientIsolated(t *testing.T) {
	g := startGateway(t, allListeners(Config{}))
	good := g.dial(t, transport.KindQUIC)
	echoOnce := func() {
		t.Helper()
		if rep, err := command(t, good, wire.Route{Kind: wire.RouteService, Name: "echo"}, "still here"); err != nil || string(rep.Body) != "still here" {
			t.Fatalf("good client: %v", err)
		}
	}
	oversize := wire.AppendHeader(nil, wire.Header{Type: wire.FramePublish, Length: uint64(protocol.DefaultMaxFrameSize) + 1})
	tests := []struct {
		name  string
		bytes []byte
		code  jsperr.Code
	}{
		{"oversize frame", oversize, jsperr.FrameTooLarge},
		{"non-minimal varint", []byte{0x40, 0x1a, 0x00, 0x00, 0x00}, jsperr.NonMinimalVarint},
		{"invalid CBOR", wire.AppendFrame(nil, wire.FramePublish, 0, 0, []byte{0xff, 0xff}), jsperr.InvalidCbor},
		{"EVENT from client", wire.AppendMessage(nil, 0, 0, &wire.EnvelopeFrame{Type: wire.FrameEvent, Envelope: wire.Envelope{
			ID: []byte("e"), Route: wire.Route{Kind: wire.RouteChannel, Name: "c"}, Kind: wire.KindEvent}}), jsperr.ProtocolViolation},
		{"HELLO again", wire.AppendMessage(nil, 0, 0, &wire.Hello{Versions: []protocol.Version{1}}), jsperr.ProtocolViolation},
	}
	for _, kind := range append(slices.Clone(realKinds), transport.KindMem) {
		for _, tt := range tests {
			t.Run(string(kind)+"/"+tt.name, func(t *testing.T) {
				conn, ctl := rawClient(t, g, kind)
				echoOnce()
				if _, err := ctl.Write(tt.bytes); err != nil {
					t.Fatal(err)
				}
				select {
				case <-conn.Context().Done():
				case <-ctxT(t).Done():
					t.Fatal("bad client not closed")
				}
				cause := context.Cause(conn.Context())
				var je *jsperr.Error
				if !errors.As(cause, &je) || je.Code != tt.code || !je.Remote {
					t.Fatalf("closed with %v, want remote %s", cause, tt.code)
				}
				echoOnce()
			})
		}
	}
	// The errors were counted by code.
	for _, code := range []jsperr.Code{jsperr.FrameTooLarge, jsperr.ProtocolViolation} {
		if g.metrics.errors.value(code.String()) == 0 {
			t.Errorf("no %s counted", code)
		}
	}
}

func TestConnectionCaps(t *testing.T) {
	tests := []struct {
		name   string
		cfg    Config
		reason string
	}{
		// The filter refuses the second connection before its handshake,
		// and gives it one to deliver the code.
		{"per ip", Config{MaxConnsPerIP: 1}, "too_many_connections"},
		// The filter's global cap is MaxSessions too.
		{"max sessions", Config{MaxSessions: 1}, "too_many_connections"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.QUICAddr = "127.0.0.1:0"
			g := startGateway(t, tt.cfg)
			first := g.dial(t, transport.KindQUIC)
			conn := g.dialConn(t, transport.KindQUIC)
			select {
			case <-conn.Context().Done():
			case <-ctxT(t).Done():
				t.Fatal("second connection not refused")
			}
			if code := closeCode(context.Cause(conn.Context())); code != jsperr.TooManyConnections {
				t.Fatalf("refused with %v, want TOO_MANY_CONNECTIONS", context.Cause(conn.Context()))
			}
			if g.metrics.refused.value(tt.reason) != 1 {
				t.Fatalf("refusals counted: %d", g.metrics.refused.value(tt.reason))
			}
			// The first client is unaffected, and its slot is released
			// when it leaves.
			if _, err := command(t, first, wire.Route{Kind: wire.RouteService, Name: "echo"}, "x"); err != nil {
				t.Fatal(err)
			}
			_ = first.Close()
			waitFor(t, "slot released", func() bool {
				g.mu.Lock()
				defer g.mu.Unlock()
				st := g.adm.filter.Stats()
				return g.conns == 0 && st.Conns == 0 && st.Handshakes == 0
			})
			g.dial(t, transport.KindQUIC)
		})
	}
}

func TestHandshakeTimeoutFreesSlot(t *testing.T) {
	g := startGateway(t, Config{MaxHandshakes: 1, Session: sessionConfigHandshake(100 * time.Millisecond)})
	// A client that connects and never says HELLO holds the only handshake
	// slot until the timeout.
	conn := g.dialConn(t, transport.KindMem)
	<-conn.Context().Done()
	if code := closeCode(context.Cause(conn.Context())); code != jsperr.HandshakeTimeout {
		t.Fatalf("silent client closed with %v", context.Cause(conn.Context()))
	}
	// The slot is released just after the close code leaves.
	waitFor(t, "handshake slot", func() bool { return len(g.handshakeSem) == 0 })
	g.dial(t, transport.KindMem)
}

func TestCloseClosesSessions(t *testing.T) {
	g := startGateway(t, Config{})
	s := g.dial(t, transport.KindMem)
	waitFor(t, "session", func() bool { return g.Health().Sessions == 1 })
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Wait(); closeCode(err) != jsperr.GoingAway {
		t.Fatalf("session ended with %v, want GOING_AWAY", err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}
