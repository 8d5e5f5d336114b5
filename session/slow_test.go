package session

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// TestPeerThatReadsNothing: a client completes the handshake and then never
// reads. The server's writes stall once the transport's buffers and windows
// are full, and the server closes that session with SLOW_CONSUMER while
// another session stays served.
func TestPeerThatReadsNothing(t *testing.T) {
	cc, sc := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type res struct {
		s   *Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Accept(ctx, sc, Config{Logger: quietLogger(), WriteTimeout: 300 * time.Millisecond}, ServerOptions{})
		ch <- res{s, err}
	}()
	// A hand-made client: HELLO, read WELCOME, then silence.
	ctl, err := cc.OpenStream(ctx, protocol.ClassSystem)
	if err != nil {
		t.Fatal(err)
	}
	hello := &wire.Hello{Versions: []protocol.Version{protocol.Version1}}
	if _, err := ctl.Write(wire.AppendFrame(nil, wire.FrameHello, 0, 0, hello.Append(nil))); err != nil {
		t.Fatal(err)
	}
	fr := wire.NewFrameReader(ctl, uint64(protocol.DefaultMaxFrameSize))
	if h, _, err := fr.ReadFrame(); err != nil || h.Type != wire.FrameWelcome {
		t.Fatalf("want WELCOME, got %v %v", h, err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	srv := r.s
	defer srv.Close()
	other, _ := establish(t, Config{}, Config{}, ClientInfo{})

	body := make([]byte, 4<<10)
	for i := 0; srv.Err() == nil; i++ {
		err := srv.SendEnvelope(wire.FrameEvent, &wire.Envelope{ID: []byte{byte(i), byte(i >> 8), byte(i >> 16)},
			Route: wire.Route{Kind: wire.RouteChannel, Name: "flood"}, Class: protocol.ClassChat, Body: body})
		if err != nil {
			// QUEUE_FULL is the backpressure signal; wait for the sender
			// to either drain or give up.
			if jsperr.CodeOf(err) != jsperr.QueueFull && srv.Err() == nil {
				t.Fatalf("send: %v", err)
			}
			select {
			case <-srv.Context().Done():
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("server never gave up on the silent client")
			}
		}
	}
	if code := jsperr.CodeOf(srv.Err()); code != jsperr.SlowConsumer {
		t.Fatalf("server session ended with %v, want SLOW_CONSUMER", srv.Err())
	}
	if _, err := other.Ping(ctx); err != nil {
		t.Fatalf("other session broken: %v", err)
	}
}
