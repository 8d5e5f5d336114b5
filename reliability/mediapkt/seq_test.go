package mediapkt

import (
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

func TestSeqCompare(t *testing.T) {
	tests := []struct {
		s, t   Seq
		newer  bool
		older  bool
		diff   int
		reason string
	}{
		{1, 0, true, false, 1, "plain"},
		{0, 1, false, true, -1, "plain older"},
		{5, 5, false, false, 0, "equal"},
		{0, 65535, true, false, 1, "across the wrap"},
		{65535, 0, false, true, -1, "across the wrap, older"},
		{10, 65530, true, false, 16, "a few across the wrap"},
		{65530, 10, false, true, -16, "a few across the wrap, older"},
		{32767, 0, true, false, 32767, "largest forward distance"},
		{32768, 0, false, false, -32768, "half the space apart: unordered"},
		{0, 32768, false, false, -32768, "half the space apart, swapped: unordered"},
		{32769, 0, false, true, -32767, "more than half: older"},
	}
	for _, tt := range tests {
		if got := tt.s.Newer(tt.t); got != tt.newer {
			t.Errorf("%d.Newer(%d) = %v, want %v (%s)", tt.s, tt.t, got, tt.newer, tt.reason)
		}
		if got := tt.s.Older(tt.t); got != tt.older {
			t.Errorf("%d.Older(%d) = %v, want %v (%s)", tt.s, tt.t, got, tt.older, tt.reason)
		}
		if got := tt.s.Diff(tt.t); got != tt.diff {
			t.Errorf("%d.Diff(%d) = %d, want %d (%s)", tt.s, tt.t, got, tt.diff, tt.reason)
		}
	}
}

func TestSeqAdd(t *testing.T) {
	tests := []struct {
		s    Seq
		n    int
		want Seq
	}{
		{65535, 1, 0},
		{0, -1, 65535},
		{65530, 20, 14},
		{3, 65536, 3},
	}
	for _, tt := range tests {
		if got := tt.s.Add(tt.n); got != tt.want {
			t.Errorf("%d.Add(%d) = %d, want %d", tt.s, tt.n, got, tt.want)
		}
	}
}

func TestExtend(t *testing.T) {
	tests := []struct {
		ref  protocol.MediaSeq
		s    Seq
		want protocol.MediaSeq
	}{
		{0, 0, 0},
		{100, 101, 101},
		{100, 90, 90},
		{65535, 0, 65536},                 // forward across the wrap
		{65536, 65535, 65535},             // backward across the wrap
		{65536 + 5, 65530, 65530},         // reordered packet from the previous lap
		{3 << 16, 2, 3<<16 + 2},           // in the same lap
		{5, 65530, 65530},                 // would be negative: next lap instead
		{1<<40 + 65535, 1, 1<<40 + 65537}, // far into the flow
	}
	for _, tt := range tests {
		if got := Extend(tt.ref, tt.s); got != tt.want {
			t.Errorf("Extend(%d, %d) = %d, want %d", tt.ref, tt.s, got, tt.want)
		}
	}
}

func TestUnwrapperAcrossWraps(t *testing.T) {
	var u Unwrapper
	if _, ok := u.Highest(); ok {
		t.Fatal("Highest before any packet reported ok")
	}
	// Send 200,000 packets (three wraps) starting near the top of the
	// space, delivering each pair swapped to exercise reordering at the
	// wrap.
	const start = 65500
	for i := 0; i < 200_000; i += 2 {
		for _, j := range []int{i + 1, i} {
			want := protocol.MediaSeq(start + j)
			if got := u.Unwrap(SeqOf(want)); got != want {
				t.Fatalf("packet %d: Unwrap(%d) = %d, want %d", j, SeqOf(want), got, want)
			}
		}
	}
	if h, _ := u.Highest(); h != start+199_999 {
		t.Fatalf("Highest = %d", h)
	}
	// A packet 1,000 behind, delivered late, still extends correctly.
	if got := u.Unwrap(SeqOf(start + 199_000)); got != start+199_000 {
		t.Fatalf("late packet extended to %d", got)
	}
}

func TestExtendTimestamp(t *testing.T) {
	tests := []struct {
		ref  uint64
		ts   uint32
		want uint64
	}{
		{0, 960, 960},
		{0xffffff00, 0x10, 1<<32 + 0x10},
		{1<<32 + 0x10, 0xffffff00, 0xffffff00},
		{10, 0xfffffff0, 0xfffffff0},
	}
	for _, tt := range tests {
		if got := ExtendTimestamp(tt.ref, tt.ts); got != tt.want {
			t.Errorf("ExtendTimestamp(%#x, %#x) = %#x, want %#x", tt.ref, tt.ts, got, tt.want)
		}
	}
}
