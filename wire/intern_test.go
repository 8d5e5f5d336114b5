package wire

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// TestInternBytes checks the intern table: the value is always the bytes'
// own, an equal name seen before comes back as the same string without an
// allocation, a name longer than internMaxLen is never kept, and
// concurrent decoders of colliding names each get their own value.
func TestInternBytes(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"short", "room.42"},
		{"one byte", "x"},
		{"at the limit", strings.Repeat("a", internMaxLen)},
		{"past the limit", strings.Repeat("b", internMaxLen+1)},
		{"empty", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.in)
			first := internBytes(b)
			second := internBytes(b)
			if first != tt.in || second != tt.in {
				t.Fatalf("interned %q and %q, want %q", first, second, tt.in)
			}
			if len(b) > 0 {
				b[0] = '!' // the caller's buffer is reused: the strings must not change
			}
			if first != tt.in {
				t.Fatalf("the interned string changed with the buffer: %q", first)
			}
			kept := len(tt.in) > 0 && len(tt.in) <= internMaxLen
			same := len(tt.in) > 0 && unsafe.StringData(first) == unsafe.StringData(second)
			if same != kept {
				t.Fatalf("second lookup shared the first's bytes: %v, want %v", same, kept)
			}
		})
	}
	hit := []byte("room.allocs")
	internBytes(hit)
	if n := testing.AllocsPerRun(100, func() { _ = internBytes(hit) }); n != 0 {
		t.Fatalf("%v allocations per lookup of a known name, want 0", n)
	}
	// More names than slots, from several goroutines at once: every
	// lookup returns its own bytes (run with -race).
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 3 * internSlots {
				want := fmt.Sprintf("user-%d-%d", g, i%(2*internSlots))
				if got := internBytes([]byte(want)); got != want {
					t.Errorf("interned %q, want %q", got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
