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
// plays as a whole (corrupt) frame.
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
		before []pkt // layer-2 packets before the target moves to layer 2
		after  []pkt // and after
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
			// rest: too late to start there.
			name:  "fec rebuild of the key frame's first packet",
			after: []pkt{{10, 0}, {11, e}, {13, k}, {14, k}, {12, k}, {15, k | e}, {16, k}, {17, k | e}},
		},
		{
			name:  "in order",
			after: []pkt{{10, 0}, {11, e}, {12, k}, {13, k}, {14, k}, {15, k | e}, {16, 0}, {17, e}},
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
			for _, b := range drain(d) {
				if b[len(b)-2] == 2 {
					got = append(got, b[len(b)-1])
				}
			}
			want := []byte{16, 17}
			if tt.name == "in order" {
				want = []byte{12, 13, 14, 15, 16, 17}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("layer-2 packets forwarded %v, want %v", got, want)
			}
		})
	}
}
