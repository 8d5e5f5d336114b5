package gateway

import (
	"testing"

	"github.com/jetstreamproto/jsp/server/pubsub"
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
