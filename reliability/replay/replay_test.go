package replay

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestNewWindowSize(t *testing.T) {
	tests := []struct {
		in      int
		want    int
		wantErr bool
	}{
		{0, DefaultWindowSize, false},
		{1, 64, false},
		{64, 64, false},
		{65, 128, false},
		{MaxWindowSize, MaxWindowSize, false},
		{MaxWindowSize + 1, 0, true},
		{-1, 0, true},
	}
	for _, tt := range tests {
		w, err := NewWindow(tt.in)
		if (err != nil) != tt.wantErr {
			t.Fatalf("NewWindow(%d) err = %v", tt.in, err)
		}
		if err == nil && w.Size() != tt.want {
			t.Fatalf("NewWindow(%d).Size() = %d, want %d", tt.in, w.Size(), tt.want)
		}
	}
}

func TestWindowScript(t *testing.T) {
	type step struct {
		c    uint64
		want bool
	}
	tests := []struct {
		name  string
		size  int
		steps []step
	}{
		{"first counter is accepted whatever it is", 64, []step{{1000, true}, {1000, false}, {999, true}, {999, false}}},
		{"zero is a counter", 64, []step{{0, true}, {0, false}, {1, true}}},
		{"in order", 64, []step{{1, true}, {2, true}, {3, true}, {2, false}, {4, true}}},
		{"reordered inside the window", 128, []step{{10, true}, {5, true}, {7, true}, {5, false}, {6, true}, {10, false}}},
		{"edge of the window", 64, []step{{100, true}, {37, true}, {36, false}, {37, false}}},
		{"slide by exactly one block", 64, []step{{63, true}, {127, true}, {64, true}, {63, false}, {127, false}}},
		{"huge jump clears everything", 128, []step{{5, true}, {1 << 40, true}, {1<<40 - 127, true}, {1<<40 - 128, false}, {5, false}}},
		{"slide keeps bits still inside", 128, []step{{200, true}, {150, true}, {260, true}, {150, false}, {200, false}, {140, true}, {132, false}}},
		{"top of the counter space", 64, []step{{math.MaxUint64, true}, {math.MaxUint64, false}, {math.MaxUint64 - 63, true}, {math.MaxUint64 - 64, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWindow(tt.size)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				if got := w.Check(s.c); got != s.want {
					t.Fatalf("step %d: Check(%d) = %v, want %v", i, s.c, got, s.want)
				}
				if got := w.Accept(s.c); got != s.want {
					t.Fatalf("step %d: Accept(%d) = %v, want %v", i, s.c, got, s.want)
				}
			}
		})
	}
}

func TestWindowCheckDoesNotRecord(t *testing.T) {
	w, _ := NewWindow(64)
	for i := 0; i < 3; i++ {
		if !w.Check(7) {
			t.Fatal("Check(7) false before Accept")
		}
	}
	if _, ok := w.Newest(); ok {
		t.Fatal("Check started the window")
	}
	if !w.Accept(7) || w.Check(7) {
		t.Fatal("Accept did not record 7")
	}
}

func TestWindowCount(t *testing.T) {
	w, _ := NewWindow(64)
	for _, c := range []uint64{1, 2, 3, 10, 80} {
		w.Accept(c)
	}
	// 80 slid the window to (16, 80]: only 80 is left inside.
	if got := w.Count(); got != 1 {
		t.Fatalf("Count = %d, want 1", got)
	}
}

// model is the reference the fuzz target compares Window with: a set of
// every accepted counter, and the window rule written out plainly.
type model struct {
	seen    map[uint64]bool
	newest  uint64
	started bool
	size    uint64
}

func (m *model) accept(c uint64) bool {
	if m.started && c <= m.newest && (m.newest-c >= m.size || m.seen[c]) {
		return false
	}
	m.seen[c] = true
	if !m.started || c > m.newest {
		m.newest, m.started = c, true
	}
	return true
}

func FuzzWindow(f *testing.F) {
	f.Add(uint16(64), []byte{0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 5})
	f.Add(uint16(128), []byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 200})
	f.Fuzz(func(t *testing.T, size uint16, data []byte) {
		w, err := NewWindow(int(size)%4096 + 1)
		if err != nil {
			t.Fatal(err)
		}
		m := &model{seen: map[uint64]bool{}, size: uint64(w.Size())}
		var base uint64
		for len(data) >= 2 {
			// Mostly small moves around a base so that the window is
			// exercised, with occasional large jumps.
			var c uint64
			if data[0]&0x80 != 0 && len(data) >= 8 {
				base = binary.BigEndian.Uint64(data)
				c = base
				data = data[8:]
			} else {
				c = base + uint64(binary.BigEndian.Uint16(data)&0x3fff)
				data = data[2:]
			}
			check := w.Check(c)
			got := w.Accept(c)
			want := m.accept(c)
			if got != want || check != want {
				t.Fatalf("counter %d: Check=%v Accept=%v, model %v", c, check, got, want)
			}
		}
	})
}
