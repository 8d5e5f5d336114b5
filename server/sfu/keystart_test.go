package sfu

import (
	"slices"
	"testing"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// TestKeyFrameStartAfterRepair: a subscriber switches layers only at the
// first packet of a key frame. Packets that arrive out of order after an
// upstream repair (an FEC rebuild, which carries no R flag, or a NACK
// retransmission) must not make a later packet in the middle of a key frame
// look like a frame start: a switch there hands the subscriber a frame
// without its first packets, in contiguous sequence numbers, which it then
// plays as a whole (corrupt) frame. A late first packet whose predecessor
// ended a frame does start one: a subscriber switching there gets the
// packets that followed it too.
func TestKeyFrameStartAfterRepair(t *testing.T) {
	const (
		k = mediapkt.FlagKeyFrame
		e = mediapkt.FlagEndOfFrame
		r = mediapkt.FlagRetransmission
	)
	type pkt struct {
		seq   mediapkt.Seq
		flags mediapkt.Flags
	}
	// Layer 2 runs a delta frame (10, 11), a key frame (12-15) and
	// another key frame (16, 17); the target moves to layer 2 at
	// "switch".
	tests := []struct {
		name   string
		before []pkt  // layer-2 packets before the target moves to layer 2
		after  []pkt  // and after
		want   []byte // layer-2 packets forwarded, in order; default 16, 17
	}{
		{
			// 11 (the delta frame's end) is lost and rebuilt from
			// parity after 13: it must not make 14 a frame start.
			name:  "fec rebuild of the previous frame's end",
			after: []pkt{{10, 0}, {12, k}, {13, k}, {11, e}, {14, k}, {15, k | e}, {16, k}, {17, k | e}},
		},
		{
			// 13 is lost and retransmitted after the key frame's
			// end, once the subscriber wants layer 2.
			name:   "retransmission after the key frame's end",
			before: []pkt{{10, 0}, {11, e}, {12, k}, {14, k}, {15, k | e}},
			after:  []pkt{{13, k | r}, {16, k}, {17, k | e}},
		},
		{
			// The key frame's first packet is rebuilt after the
			// next two: its predecessor ended a frame, so it
			// starts one, and the subscriber gets 13 and 14 after
			// it.
			name:  "fec rebuild of the key frame's first packet",
			after: []pkt{{10, 0}, {11, e}, {13, k}, {14, k}, {12, k}, {15, k | e}, {16, 0}, {17, e}},
			want:  []byte{12, 13, 14, 15, 16, 17},
		},
		{
			// The same, retransmitted after the key frame's end.
			name:  "retransmission of the key frame's first packet",
			after: []pkt{{10, 0}, {11, e}, {13, k}, {14, k}, {15, k | e}, {16, 0}, {12, k | r}, {17, e}},
			want:  []byte{12, 13, 14, 15, 16, 17},
		},
		{
			// 11 was lost too: nothing says 12 starts a frame.
			name:  "late key-frame packet after a lost end of frame",
			after: []pkt{{10, 0}, {13, k}, {14, k}, {12, k | r}, {15, k | e}, {16, k}, {17, k | e}},
		},
		{
			name:  "in order",
			after: []pkt{{10, 0}, {11, e}, {12, k}, {13, k}, {14, k}, {15, k | e}, {16, 0}, {17, e}},
			want:  []byte{12, 13, 14, 15, 16, 17},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := newForwarder(t, Config{})
			tr, err := f.Publish(TrackConfig{ID: "v", Kind: KindVideo, Layers: threeLayers})
			if err != nil {
				t.Fatal(err)
			}
			d, err := f.Subscribe("v", SubscriberConfig{Selector: simulcast.SelectorConfig{UpHold: -1, DownHold: -1}})
			if err != nil {
				t.Fatal(err)
			}
			write := func(layer int, p pkt) {
				t.Helper()
				h := mediapkt.Header{Flags: p.flags, Seq: p.seq, Timestamp: uint32(p.seq) * 3000}
				if err := tr.WritePacket(layer, packet(t, h, byte(layer), byte(p.seq))); err != nil {
					t.Fatal(err)
				}
			}
			write(0, pkt{0, k})
			write(0, pkt{1, k | e})
			for _, p := range tt.before {
				write(2, p)
			}
			d.SetEstimate(3 * bwe.Mbps)
			for _, p := range tt.after {
				write(2, p)
			}
			var got []byte
			var last mediapkt.Header
			for i, b := range drain(d) {
				// The subscriber's numbers run on without a gap
				// or a repeat, its timestamps never step back.
				if h := parse(t, b); i > 0 && (h.Seq != last.Seq+1 || int32(h.Timestamp-last.Timestamp) < 0) {
					t.Fatalf("packet %d: seq %d ts %d after %d/%d", i, h.Seq, h.Timestamp, last.Seq, last.Timestamp)
				} else {
					last = h
				}
				if b[len(b)-2] == 2 {
					got = append(got, b[len(b)-1])
				}
			}
			want := tt.want
			if want == nil {
				want = []byte{16, 17}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("layer-2 packets forwarded %v, want %v", got, want)
			}
		})
	}
}
