package simulcast

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// TestRewriterNext: Next continues the outgoing spaces after the newest
// packet, wrapping, with the timestamp advanced by the time since, at
// least one tick; a Rewriter started there carries on seamlessly.
func TestRewriterNext(t *testing.T) {
	t0 := time.Unix(50, 0)
	tests := []struct {
		name    string
		seqs    []mediapkt.Seq // incoming, layer 0, 20 ms apart, timestamps +1800
		after   time.Duration  // from the last packet to Next
		wantSeq mediapkt.Seq
		wantTS  uint32
	}{
		{"one packet, no time", []mediapkt.Seq{7}, 0, 65531, 1<<32 - 4},
		{"wraps", []mediapkt.Seq{7, 8, 9, 10, 11, 12}, 0, 0, 5*1800 - 5 + 1},
		{"reordered keeps the newest", []mediapkt.Seq{7, 9, 8}, 0, 65533, 2*1800 - 5 + 1},
		{"time passes", []mediapkt.Seq{7}, 100 * time.Millisecond, 65531, 9000 - 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRewriter(RewriterConfig{InitialSeq: 65530, InitialTimestamp: 1<<32 - 5})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := r.Next(t0); ok {
				t.Fatal("Next before the first packet")
			}
			now := t0
			for _, s := range tt.seqs {
				if _, _, ok := r.Rewrite(now, 0, s, uint32(s-7)*1800); !ok {
					t.Fatalf("packet %d dropped", s)
				}
				now = now.Add(20 * time.Millisecond)
			}
			last := now.Add(-20 * time.Millisecond)
			seq, ts, ok := r.Next(last.Add(tt.after))
			if !ok || seq != tt.wantSeq || ts != tt.wantTS {
				t.Fatalf("Next = %d, %d, %v; want %d, %d", seq, ts, ok, tt.wantSeq, tt.wantTS)
			}
			// A rewriter started there sends exactly that.
			r2, err := NewRewriter(RewriterConfig{InitialSeq: seq, InitialTimestamp: ts})
			if err != nil {
				t.Fatal(err)
			}
			if s2, ts2, _ := r2.Rewrite(now, 0, 4000, 123); s2 != seq || ts2 != ts {
				t.Fatalf("continued at %d, %d", s2, ts2)
			}
		})
	}
}
