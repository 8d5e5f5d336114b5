package pubsub

import "testing"

// TestRing checks FIFO order across growth and wrap-around, and that an
// emptied large buffer is released while a small one is kept.
func TestRing(t *testing.T) {
	tests := []struct {
		name      string
		ops       string // 'p' push next number, 'o' pop and check order
		wantLen   int
		wantCap   int
		wantLenOK bool
	}{
		{"empty", "", 0, 0, true},
		{"push and pop one", "po", 0, ringMinCap, true},
		{"wrap without growth", "ppppppoooopppppp", 8, ringMinCap, true},
		{"grow while wrapped", "ppppppooooppppppppppp", 13, 16, true},
		{"burst released", string(repeat('p', 200)) + string(repeat('o', 200)), 0, 0, true},
		{"small kept", string(repeat('p', 40)) + string(repeat('o', 40)), 0, 64, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r ring[int]
			next, want := 0, 0
			for _, op := range tt.ops {
				switch op {
				case 'p':
					r.push(next)
					next++
				case 'o':
					v, ok := r.pop()
					if !ok || v != want {
						t.Fatalf("pop = %d, %v; want %d", v, ok, want)
					}
					want++
				}
			}
			if r.len() != tt.wantLen || len(r.buf) != tt.wantCap {
				t.Fatalf("len %d cap %d, want %d and %d", r.len(), len(r.buf), tt.wantLen, tt.wantCap)
			}
			for r.len() > 0 {
				v, _ := r.pop()
				if v != want {
					t.Fatalf("drain pop = %d, want %d", v, want)
				}
				want++
			}
			if _, ok := r.pop(); ok {
				t.Fatal("pop from an empty ring succeeded")
			}
		})
	}
}

func repeat(b byte, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}
