package media

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/reliability/fec"
)

// TestPartialGroupParity: a group closed before K packets (here by Close,
// which flushes it) gets its share of parity at the shape's rate,
// ceil(k*M/K), at least one, not the full M the encoder makes for it; a
// full group gets all M.
func TestPartialGroupParity(t *testing.T) {
	tests := []struct {
		name    string
		shape   fec.Params
		packets int
		parity  uint64 // sent
		trimmed uint64 // made, not sent
	}{
		{"1 of 4+2", fec.Params{K: 4, M: 2}, 1, 1, 1},
		{"3 of 4+2", fec.Params{K: 4, M: 2}, 3, 2, 0},
		{"4 of 4+2 (full)", fec.Params{K: 4, M: 2}, 4, 2, 0},
		{"5 of 4+2 (full and 1)", fec.Params{K: 4, M: 2}, 5, 3, 1},
		{"2 of 6+3", fec.Params{K: 6, M: 3}, 2, 1, 2},
		{"5 of 10+4", fec.Params{K: 10, M: 4}, 5, 2, 2},
		{"1 of 20+2", fec.Params{K: 20, M: 2}, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := fec.PolicyConfig{Table: []fec.Step{{MinLoss: 0, Params: tt.shape}}}
			// The group delay outlasts the test: only a full group
			// or Close closes a group.
			p := newFlowPair(t, []string{CapFEC}, SenderConfig{Policy: policy, MaxGroupDelay: time.Hour}, rxConfig())
			for i := range tt.packets {
				if err := p.tx.WriteFrame(Frame{Timestamp: uint32(i * 900), Payload: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.tx.Close(); err != nil {
				t.Fatal(err)
			}
			st := p.tx.Stats()
			if st.Packets != uint64(tt.packets) || st.Parity != tt.parity || st.ParityTrimmed != tt.trimmed {
				t.Fatalf("%d packets: %d parity sent, %d trimmed; want %d and %d", st.Packets, st.Parity, st.ParityTrimmed, tt.parity, tt.trimmed)
			}
		})
	}
}
