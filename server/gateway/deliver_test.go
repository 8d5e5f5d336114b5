package gateway

import (
	"fmt"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// runOf returns a delivery of a run of messages numbered first..last.
func runOf(first, last uint64) pubsub.Delivery[*event] {
	e := &event{}
	for s := first; s <= last; s++ {
		e.envs = append(e.envs, &wire.Envelope{Seq: s})
	}
	return pubsub.Delivery[*event]{Channel: "c", Seq: last, Msg: e}
}

// TestRouteRuns checks how live deliveries, single messages and runs
// (D26), are routed against what the session has been sent: a run the
// session has had is dropped, one that overlaps a replay is sent without
// its first messages, and one that starts past the next number expected
// starts a gap replay.
func TestRouteRuns(t *testing.T) {
	tests := []struct {
		name     string
		last     uint64
		capped   bool
		catching bool
		d        pubsub.Delivery[*event]
		send     bool
		skip     int
		gap      uint64
		newLast  uint64
	}{
		{"first ever", 0, false, false, runOf(5, 7), true, 0, 0, 7},
		{"next run", 4, false, false, runOf(5, 7), true, 0, 0, 7},
		{"overlap", 5, false, false, runOf(4, 7), true, 2, 0, 7},
		{"already sent", 7, false, false, runOf(5, 7), false, 0, 0, 7},
		{"gap", 2, false, false, runOf(5, 7), false, 0, 2, 2},
		{"gap after a capped replay", 2, true, false, runOf(5, 7), true, 0, 0, 7},
		{"single next", 4, false, false, runOf(5, 5), true, 0, 0, 5},
		{"replaying", 4, false, true, runOf(5, 7), false, 0, 0, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &host{g: &Gateway{}, catching: map[string]*catchup{}, last: map[string]uint64{}, capped: map[string]struct{}{}}
			h.g.cfg.Hub.QueueLength = 16
			if tt.last > 0 {
				h.last["c"] = tt.last
			}
			if tt.capped {
				h.capped["c"] = struct{}{}
			}
			if tt.catching {
				h.catching["c"] = &catchup{}
			}
			send, skip, gap, err := h.routeDeliveryLocked(tt.d)
			if err != nil {
				t.Fatal(err)
			}
			if send != tt.send || skip != tt.skip || gap != tt.gap {
				t.Fatalf("send %v skip %d gap %d; want %v %d %d", send, skip, gap, tt.send, tt.skip, tt.gap)
			}
			if got := h.last["c"]; got != tt.newLast {
				t.Fatalf("last sent %d, want %d", got, tt.newLast)
			}
			if (tt.gap > 0 || tt.catching) && len(h.catching["c"].buf) != 1 {
				t.Fatalf("delivery not buffered for the replay")
			}
		})
	}
}

// TestSlowConsumer checks the slow-consumer policy on the hub's direct
// path (D26): a subscriber that stops reading is closed with
// SLOW_CONSUMER once its send queue is full, while another subscriber of
// the channel keeps receiving every event in order.
func TestSlowConsumer(t *testing.T) {
	g := startGateway(t, Config{RateLimits: unlimited(), Session: session.Config{SendQueueLength: 4}})
	slowSess := g.dial(t, transport.KindMem)
	subscribe(t, slowSess, "room")
	fast := g.dial(t, transport.KindMem)
	subscribe(t, fast, "room")
	pub := g.dial(t, transport.KindMem)
	body := strings.Repeat("x", 16<<10)
	const limit = 20000
	i := 0
	for ; i < limit && slowSess.Context().Err() == nil; i++ {
		// In step with the fast subscriber, so that only the one that
		// does not read falls behind.
		env := &wire.Envelope{ID: []byte(fmt.Sprint("m", i)), Route: wire.Route{Kind: wire.RouteChannel, Name: "room"},
			Class: protocol.ClassChat, Body: []byte(fmt.Sprint(i, body))}
		if err := pub.SendEnvelope(wire.FramePublish, env); err != nil {
			t.Fatal(err)
		}
		ev := recvType(t, fast, wire.FrameEvent).Envelope
		if ev.Seq != uint64(i+1) || !strings.HasPrefix(string(ev.Body), fmt.Sprint(i, "x")) {
			t.Fatalf("fast subscriber: event %d has seq %d", i, ev.Seq)
		}
	}
	if i == limit {
		t.Fatalf("a subscriber that never reads was not closed after %d events", limit)
	}
	if code := closeCode(slowSess.Wait()); code != jsperr.SlowConsumer {
		t.Fatalf("slow subscriber closed with %s, want SLOW_CONSUMER", code)
	}
	// The gateway gave it up (the hub dropped it), not the client.
	waitFor(t, "the hub's drop", func() bool { return g.hub.Stats().Dropped == 1 })
	publish(t, pub, "room", "after")
	if ev := recvType(t, fast, wire.FrameEvent).Envelope; string(ev.Body) != "after" {
		t.Fatalf("fast subscriber after the drop: %q", ev.Body)
	}
}
