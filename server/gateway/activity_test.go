package gateway

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// TestActivityIgnoresAcks: a session's last activity (presence's online
// versus away) moves with what the user does, not with the ACKs its SDK
// sends for events it received.
func TestActivityIgnoresAcks(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1_000, 0).UnixNano())
	g := startGateway(t, Config{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	s := g.dial(t, transport.KindMem)
	var h *host
	waitFor(t, "session hosted", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		for x := range g.hosts {
			h = x
		}
		return h != nil
	})
	start := h.lastActive.Load()
	step := func() int64 { return clock.Add(int64(time.Minute)) }

	step()
	if err := s.Send(&wire.Ack{Cursors: []wire.Cursor{{Channel: "c", Seq: 1}}}); err != nil {
		t.Fatal(err)
	}
	// The gateway counts a message in before it records activity, in the
	// same step: once the ACK is counted, its turn has passed.
	acks := g.metrics.messagesIn.get(wire.FrameAck.String())
	waitFor(t, "ACK received", func() bool { return acks.Load() == 1 })
	if got := h.lastActive.Load(); got != start {
		t.Fatalf("an ACK moved the last activity from %d to %d", start, got)
	}
	at := step()
	if err := s.Send(&wire.Subscribe{Channel: "c"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SUBSCRIBE counted as activity", func() bool { return h.lastActive.Load() == at })
}
