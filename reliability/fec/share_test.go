package fec

import "testing"

func TestParityShare(t *testing.T) {
	tests := []struct {
		name string
		g    Group
		full Params
		want int
	}{
		{"full group", Group{K: 4, M: 2}, Params{K: 4, M: 2}, 2},
		{"one of four", Group{K: 1, M: 2}, Params{K: 4, M: 2}, 1},
		{"three of four rounds up", Group{K: 3, M: 2}, Params{K: 4, M: 2}, 2},
		{"two of six at 6+3", Group{K: 2, M: 3}, Params{K: 6, M: 3}, 1},
		{"five of ten at 10+4", Group{K: 5, M: 4}, Params{K: 10, M: 4}, 2},
		{"one of twenty at 20+2, at least one", Group{K: 1, M: 2}, Params{K: 20, M: 2}, 1},
		{"at most the group's M", Group{K: 3, M: 1}, Params{K: 4, M: 4}, 1},
		{"no shape (decoder side): all", Group{K: 1, M: 3}, Params{}, 3},
		{"longer than the shape: all", Group{K: 8, M: 2}, Params{K: 4, M: 2}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ParityShare(tt.g, tt.full); got != tt.want {
				t.Fatalf("ParityShare(%+v, %+v) = %d, want %d", tt.g, tt.full, got, tt.want)
			}
			for i := range tt.g.M {
				if in := (Parity{Group: tt.g, Index: i, Shape: tt.full}).InShare(); in != (i < tt.want) {
					t.Fatalf("index %d in share: %v", i, in)
				}
			}
		})
	}
}

// TestEncoderParityShape: the encoder marks each parity with the shape its
// group was opened with, also when the shape changes while it is open.
func TestEncoderParityShape(t *testing.T) {
	e, err := NewEncoder(EncoderConfig{Params: Params{K: 4, M: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Add(0, []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := e.SetParams(Params{K: 10, M: 4}); err != nil {
		t.Fatal(err)
	}
	par, err := e.Flush()
	if err != nil {
		t.Fatal(err)
	}
	if len(par) != 2 || par[0].Shape != (Params{K: 4, M: 2}) || par[0].Group.K != 1 {
		t.Fatalf("parity %+v", par)
	}
	if n := ParityShare(par[0].Group, par[0].Shape); n != 1 {
		t.Fatalf("share %d, want 1", n)
	}
}
