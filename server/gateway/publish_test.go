package gateway

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// TestPublishWindowLimit checks the PublishWindow limit: its default and
// its validation.
func TestPublishWindowLimit(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.PublishWindow != DefaultPublishWindow {
		t.Fatalf("default PublishWindow %d, want %d", c.PublishWindow, DefaultPublishWindow)
	}
	for _, tt := range []struct {
		window int
		ok     bool
	}{{-1, false}, {0, true}, {1, true}, {core.DefaultMaxPublishBatch, true}, {core.DefaultMaxPublishBatch + 1, false}} {
		cfg := Config{PublishWindow: tt.window}
		if err := cfg.validate(); (err == nil) != tt.ok {
			t.Errorf("PublishWindow %d: validate = %v, want ok=%v", tt.window, err, tt.ok)
		}
	}
}

// TestPublishWindowOrder sends many PUBLISHes to two channels without
// waiting for ACKs, so that they are committed several at a time, with a
// reused id in the middle: the ACKs and the ERROR must come in the order
// sent, and each channel's EVENTs in sequence order with the publisher's
// order of bodies (JSP §4.6, §5.6, §5.8). A window of 4 forces many rounds.
func TestPublishWindowOrder(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newClusterFixture(t, b)
	g := startGateway(t, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw", PublishWindow: 4})
	sub := g.dial(t, transport.KindMem)
	for _, ch := range []string{"win.a", "win.b"} {
		if err := sub.Send(&wire.Subscribe{Channel: ch, ReqID: []byte("s-" + ch)}); err != nil {
			t.Fatal(err)
		}
		recvType(t, sub, wire.FrameAck)
	}
	pub := g.dial(t, transport.KindMem)

	const n = 60
	const conflict = 30 // reuses id 0 with another body: CONFLICT
	var sent []string
	bodies := map[string][]string{}
	for i := range n {
		ch := []string{"win.a", "win.b"}[i%2]
		id, body := fmt.Sprint("p", i), fmt.Sprint("m", i)
		if i == conflict {
			id, body = "p0", "other"
		} else {
			bodies[ch] = append(bodies[ch], body)
		}
		env := &wire.Envelope{ID: []byte(id), Route: wire.Route{Kind: wire.RouteChannel, Name: ch}, Class: protocol.ClassChat,
			Timestamp: 1_700_000_000_000, Body: []byte(body)}
		for {
			err := pub.SendEnvelope(wire.FramePublish, env)
			if err == nil {
				break
			}
			if jsperr.CodeOf(err) != jsperr.QueueFull {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond)
		}
		sent = append(sent, id)
	}

	// Answers in the order sent: ACK ids (possibly several per ACK) and
	// the one ERROR at its place.
	var got []string
	for len(got) < n {
		in, err := pub.Recv(ctxT(t))
		if err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		switch m := in.Message.(type) {
		case *wire.Ack:
			for _, id := range m.IDs {
				got = append(got, string(id))
			}
		case *wire.ErrorMessage:
			if m.Code != jsperr.Conflict {
				t.Fatalf("ERROR %v for %q, want CONFLICT", m.Code, m.Ref)
			}
			got = append(got, string(m.Ref))
		}
	}
	for i := range sent {
		if !bytes.Equal([]byte(got[i]), []byte(sent[i])) {
			t.Fatalf("answer %d for %q, want %q (answers %q)", i, got[i], sent[i], got)
		}
	}

	// EVENTs: per channel consecutive numbers from 1, bodies in the
	// publisher's order.
	next := map[string]int{}
	for total := len(bodies["win.a"]) + len(bodies["win.b"]); total > 0; total-- {
		in := recvType(t, sub, wire.FrameEvent)
		ch := in.Envelope.Route.Name
		i := next[ch]
		if i >= len(bodies[ch]) || in.Envelope.Seq != uint64(i+1) || string(in.Envelope.Body) != bodies[ch][i] {
			t.Fatalf("%s event %d: seq %d body %q", ch, i, in.Envelope.Seq, in.Envelope.Body)
		}
		next[ch]++
	}
}
