package gateway

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// blocking is a service whose commands and streams wait until released,
// or, for commands, until their TTL passes.
type blocking struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blocking) HandleCommand(ctx context.Context, c *services.Caller, cmd *wire.Envelope) ([]byte, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return []byte("released"), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (b *blocking) HandleStream(ctx context.Context, c *services.Caller, st services.Stream) error {
	b.entered <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return st.Close()
}

func blockingGateway(t *testing.T, cfg Config) (*testGateway, *blocking) {
	b := &blocking{entered: make(chan struct{}, 8), release: make(chan struct{})}
	r := services.NewRegistry()
	if err := r.Register(b, "block", "block"); err != nil {
		t.Fatal(err)
	}
	cfg.Services = r
	return startGateway(t, cfg), b
}

func TestMaxInflight(t *testing.T) {
	g, b := blockingGateway(t, Config{MaxInflight: 1})
	s := g.dial(t, transport.KindMem)
	route := wire.Route{Kind: wire.RouteService, Name: "block"}
	first := make(chan error, 1)
	go func() {
		rep, err := command(t, s, route, "1")
		if err == nil && string(rep.Body) != "released" {
			err = io.ErrUnexpectedEOF
		}
		first <- err
	}()
	<-b.entered
	if _, err := command(t, s, route, "2"); closeCode(err) != jsperr.QueueFull {
		t.Fatalf("second command: %v, want QUEUE_FULL", err)
	}
	close(b.release)
	if err := <-first; err != nil {
		t.Fatalf("first command: %v", err)
	}
	// The slot is free again.
	if _, err := command(t, s, route, "3"); err != nil {
		t.Fatal(err)
	}
}

func TestCommandTTL(t *testing.T) {
	g, b := blockingGateway(t, Config{})
	s := g.dial(t, transport.KindMem)
	// The TTL, not the caller's much longer deadline, bounds the command.
	_, err := s.Request(ctxT(t), &wire.Envelope{Route: wire.Route{Kind: wire.RouteService, Name: "block"}, Class: protocol.ClassChat, TTL: 50})
	var je *jsperr.Error
	if !errors.As(err, &je) || je.Code != jsperr.Timeout || !je.Remote {
		t.Fatalf("command past its TTL: %v, want remote TIMEOUT", err)
	}
	<-b.entered
}

func TestMaxStreamHandlers(t *testing.T) {
	g, b := blockingGateway(t, Config{MaxStreamHandlers: 1})
	s := g.dial(t, transport.KindMem)
	ctx := ctxT(t)
	held, err := s.OpenStream(ctx, protocol.ClassBulk, "block", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-b.entered
	over, err := s.OpenStream(ctx, protocol.ClassBulk, "block", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(over); closeCode(err) != jsperr.StreamReset {
		t.Fatalf("stream over the limit: %v, want a reset", err)
	}
	close(b.release)
	if _, err := io.ReadAll(held); err != nil {
		t.Fatalf("held stream: %v", err)
	}
	if g.metrics.errors.value(jsperr.StreamLimit.String()) != 1 {
		t.Fatal("STREAM_LIMIT not counted")
	}
}

// TestRequestRefusals checks the answers to failed requests at the frame
// level: an ERROR naming the request (JSP §5.3), and the session goes on.
func TestRequestRefusals(t *testing.T) {
	g := startGateway(t, Config{Hub: pubsubConfig(1)})
	_, ctl := rawClient(t, g, transport.KindMem)
	fr := wire.NewFrameReader(ctl, uint64(protocol.DefaultMaxFrameSize))
	send := func(m wire.Message) {
		t.Helper()
		if _, err := ctl.Write(wire.AppendMessage(nil, 0, 0, m)); err != nil {
			t.Fatal(err)
		}
	}
	next := func() wire.Message {
		t.Helper()
		for {
			h, payload, err := fr.ReadFrame()
			if err != nil {
				t.Fatal(err)
			}
			if h.Type == wire.FramePing || h.Type == wire.FramePong {
				continue
			}
			m, err := wire.DecodeMessage(h.Type, payload)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	send(&wire.Subscribe{Channel: "a", ReqID: []byte("r1")})
	if ack, ok := next().(*wire.Ack); !ok || string(ack.IDs[0]) != "r1" {
		t.Fatalf("first SUBSCRIBE: %+v", ack)
	}
	send(&wire.Subscribe{Channel: "b", ReqID: []byte("r2")})
	if e, ok := next().(*wire.ErrorMessage); !ok || e.Code != jsperr.LimitExceeded || string(e.Ref) != "r2" {
		t.Fatalf("SUBSCRIBE over the limit: %+v", e)
	}
	send(&wire.EnvelopeFrame{Type: wire.FramePublish, Envelope: wire.Envelope{
		ID: []byte("p1"), Route: wire.Route{Kind: wire.RouteService, Name: "echo"}, Kind: wire.KindEvent, Body: []byte("x")}})
	if e, ok := next().(*wire.ErrorMessage); !ok || e.Code != jsperr.BadRequest || string(e.Ref) != "p1" {
		t.Fatalf("PUBLISH to a service: %+v", e)
	}
	// Still served: a PUBLISH to the joined channel comes back as an EVENT.
	send(&wire.EnvelopeFrame{Type: wire.FramePublish, Envelope: wire.Envelope{
		ID: []byte("p2"), Route: wire.Route{Kind: wire.RouteChannel, Name: "a"}, Kind: wire.KindEvent, Body: []byte("y")}})
	if ev, ok := next().(*wire.EnvelopeFrame); !ok || ev.Type != wire.FrameEvent || ev.Envelope.Seq != 1 || string(ev.Envelope.Body) != "y" {
		t.Fatalf("EVENT: %+v", ev)
	}
}

func pubsubConfig(maxSubscriptions int) pubsub.Config {
	return pubsub.Config{MaxSubscriptions: maxSubscriptions}
}
