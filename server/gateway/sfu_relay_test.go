package gateway

import (
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/server/sfu"
)

func TestRelayNackBody(t *testing.T) {
	seqs := []protocol.MediaSeq{1, 65535, 65536 + 7}
	b := relayNackBody(2, "gwb", seqs)
	layer, node, got, ok := parseRelayNack(b)
	if !ok || layer != 2 || node != "gwb" || !slices.Equal(got, []mediapkt.Seq{1, 65535, 7}) {
		t.Fatalf("round trip: %v %q %v %v", layer, node, got, ok)
	}
	// No proper prefix parses: every cut leaves a length that disagrees.
	for i := range len(b) {
		if _, _, _, ok := parseRelayNack(b[:i]); ok && i < len(b)-1 {
			// A cut at a seq boundary is a shorter, valid NACK only if
			// at least one seq is left.
			if (i-2-3)%2 != 0 || i-2-3 < 2 {
				t.Fatalf("prefix of %d bytes parsed", i)
			}
		}
	}
	bad := map[string][]byte{
		"empty":       nil,
		"no seqs":     {0, 0},
		"odd":         {0, 0, 1},
		"node past":   {0, 9, 'a'},
		"layer":       {3, 0, 0, 1},
		"too many":    append([]byte{0, 0}, make([]byte, 2*(sfu.MaxNackSeqs+1))...),
		"long node":   append([]byte{0, 255}, make([]byte, 10)...),
		"half a seq":  {0, 1, 'a', 0, 1, 2},
		"node no seq": {0, 1, 'a'},
	}
	for name, b := range bad {
		if _, _, _, ok := parseRelayNack(b); ok {
			t.Errorf("%s: parsed", name)
		}
	}
}

func FuzzRelayNack(f *testing.F) {
	f.Add(relayNackBody(0, "gwa", []protocol.MediaSeq{1, 2, 3}))
	f.Add(relayNackBody(2, "", []protocol.MediaSeq{65535}))
	f.Fuzz(func(t *testing.T, b []byte) {
		layer, node, seqs, ok := parseRelayNack(b)
		if !ok {
			return
		}
		ext := make([]protocol.MediaSeq, len(seqs))
		for i, s := range seqs {
			ext[i] = protocol.MediaSeq(s)
		}
		if again := relayNackBody(layer, node, ext); !slices.Equal(again, b) {
			t.Fatalf("re-encoding %x gave %x", b, again)
		}
	})
}

func TestRelayBucket(t *testing.T) {
	var b relayBucket
	now := time.Unix(100, 0)
	if got := b.take(1000, now); got != sfu.DefaultNackBurst {
		t.Fatalf("first take %d", got)
	}
	if got := b.take(10, now); got != 0 {
		t.Fatalf("empty bucket gave %d", got)
	}
	if got := b.take(1000, now.Add(100*time.Millisecond)); got != sfu.DefaultNackRate/10 {
		t.Fatalf("after 100 ms: %d", got)
	}
}

func TestRelayRepairState(t *testing.T) {
	rr, err := newRelayRepair(1)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(100, 0)
	pkt := func(seq int, rtx bool) []byte {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(seq)}
		if rtx {
			h.Flags |= mediapkt.FlagRetransmission
		}
		b, _ := mediapkt.AppendPacket(nil, &h, []byte{1})
		return b
	}
	for _, c := range []struct {
		seq      int
		fwd, gap bool
	}{{10, true, false}, {11, true, false}, {14, true, true}, {15, true, false}, {12, true, false}, {12, false, false}} {
		fwd, gap := rr.onPacket(0, pkt(c.seq, false), now)
		if fwd != c.fwd || gap != c.gap {
			t.Fatalf("seq %d: forward %v gap %v", c.seq, fwd, gap)
		}
	}
	bodies, next := rr.nacks("gwb", now)
	if len(bodies) != 1 || next.IsZero() {
		t.Fatalf("bodies %d next %v", len(bodies), next)
	}
	_, _, seqs, _ := parseRelayNack(bodies[0])
	if !slices.Equal(seqs, []mediapkt.Seq{13}) {
		t.Fatalf("nacked %v", seqs)
	}
	if fwd, _ := rr.onPacket(0, pkt(13, true), now); !fwd {
		t.Fatal("repair not forwarded")
	}
	if st := rr.snapshot(); st.Repaired != 2 || st.Duplicates != 1 || st.Nacked != 1 {
		t.Fatalf("stats %+v", st)
	}
}
