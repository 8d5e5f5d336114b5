package client

import (
	"slices"
	"testing"
)

// TestDeliveryCursors checks the per-channel cursors a delivery moves: an
// ephemeral event (Seq 0) moves none, an in-order event sets the channel's
// resubscription point and queues its tracker once for the next ACK.
func TestDeliveryCursors(t *testing.T) {
	tests := []struct {
		name     string
		push     []uint64
		wantSeen uint64
		wantAck  uint64
		queued   bool
	}{
		{"nothing", nil, 0, 0, false},
		{"ephemeral only", []uint64{0, 0}, 0, 0, false},
		{"in order", []uint64{4, 5, 6}, 6, 6, true},
		{"ephemeral between", []uint64{4, 0, 5}, 5, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTrackerHarness(t, RecoveryOptions{}, nil)
			var want []uint64
			for _, seq := range tt.push {
				h.t.push(ev(seq))
				want = append(want, seq)
			}
			h.waitGot(t, want)
			h.c.mu.Lock()
			defer h.c.mu.Unlock()
			if h.t.seen != tt.wantSeen || h.t.ackSeq != tt.wantAck || h.t.ackQueued != tt.queued {
				t.Fatalf("seen %d, ack %d queued %v; want %d, %d, %v", h.t.seen, h.t.ackSeq, h.t.ackQueued, tt.wantSeen, tt.wantAck, tt.queued)
			}
			if n := len(h.c.ackQueue); n != map[bool]int{false: 0, true: 1}[tt.queued] {
				t.Fatalf("%d trackers queued for ACK", n)
			}
		})
	}
}

// TestRemoveSubLeavesPublishedList checks that removing a subscription
// never changes a list deliver may be handing on (Client.subs).
func TestRemoveSubLeavesPublishedList(t *testing.T) {
	for i := range 3 {
		c := &Client{subs: map[string][]*Subscription{}, since: map[string]uint64{}, order: map[string]*seqTracker{}, runners: map[stopper]struct{}{}}
		subs := []*Subscription{{c: c, channel: "ch"}, {c: c, channel: "ch"}, {c: c, channel: "ch"}}
		c.subs["ch"] = subs
		published := c.subs["ch"]
		before := slices.Clone(published)
		if !c.removeSubLocked(subs[i]) {
			t.Fatalf("subscription %d not found", i)
		}
		if !slices.Equal(published, before) {
			t.Fatalf("removing subscription %d changed the published list", i)
		}
		if got := c.subs["ch"]; len(got) != 2 || slices.Contains(got, subs[i]) {
			t.Fatalf("after removing %d: %d left", i, len(got))
		}
	}
}
