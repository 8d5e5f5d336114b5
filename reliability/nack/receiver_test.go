package nack

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

var t0 = time.Unix(1_700_000_000, 0)

func ms(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }

type seqs = []protocol.MediaSeq

func TestReceiverConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  ReceiverConfig
		ok   bool
	}{
		{"zero", ReceiverConfig{}, true},
		{"window 1", ReceiverConfig{Window: 1}, false},
		{"window too big", ReceiverConfig{Window: MaxWindow + 1}, false},
		{"negative retries", ReceiverConfig{MaxRetries: -1}, false},
		{"backoff below 1", ReceiverConfig{Backoff: 0.5}, false},
		{"negative delay", ReceiverConfig{MaxDelay: -time.Second}, false},
		{"negative batch", ReceiverConfig{MaxBatch: -1}, false},
		{"negative reorder tolerance", ReceiverConfig{ReorderTolerance: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewReceiver(tt.cfg); (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// step is one scripted event: a packet arrival (seq >= 0) or a Nacks call
// (seq < 0) at time at (ms after t0).
type step struct {
	at    int
	seq   int64
	want  Arrival // for arrivals
	nacks seqs    // for Nacks calls
}

func arrive(at int, seq int64, want Arrival) step { return step{at: at, seq: seq, want: want} }
func nacks(at int, want ...protocol.MediaSeq) step {
	return step{at: at, seq: -1, nacks: want}
}

func TestReceiverScript(t *testing.T) {
	// RTT 100 ms, backoff 1.5, three retries, 500 ms deadline.
	cfg := ReceiverConfig{InitialRTT: 100 * time.Millisecond, Backoff: 1.5, MaxRetries: 3, MaxDelay: 500 * time.Millisecond}
	tests := []struct {
		name  string
		cfg   ReceiverConfig
		steps []step
		stats ReceiverStats
	}{
		{"in order, nothing to NACK", cfg, []step{
			arrive(0, 1, ArrivalNew), arrive(1, 2, ArrivalNew), arrive(2, 3, ArrivalNew), nacks(3),
		}, ReceiverStats{Received: 3}},
		{"gap NACKed with backoff, then abandoned", cfg, []step{
			arrive(0, 1, ArrivalNew), arrive(10, 3, ArrivalNew),
			nacks(10, 2),
			nacks(50),     // before one RTT: not again
			nacks(110, 2), // one RTT later
			nacks(200),    // second repeat waits 150 ms
			nacks(260, 2), // 110 + 150
			nacks(400),    // retries exhausted
			nacks(509),    // still tracked until the deadline (10 + 500)
			nacks(510),    // abandoned
			arrive(520, 2, ArrivalLate),
		}, ReceiverStats{Received: 2, Missing: 1, Nacked: 3, Abandoned: 1, Late: 1}},
		{"recovered gap is not NACKed again", cfg, []step{
			arrive(0, 1, ArrivalNew), arrive(5, 4, ArrivalNew), nacks(5, 2, 3),
			arrive(60, 3, ArrivalRecovered), nacks(200, 2),
			arrive(210, 2, ArrivalRecovered), nacks(600),
		}, ReceiverStats{Received: 4, Missing: 2, Recovered: 2, Nacked: 3}},
		{"duplicates and reordering", cfg, []step{
			arrive(0, 10, ArrivalNew), arrive(1, 10, ArrivalDuplicate), arrive(2, 12, ArrivalNew),
			arrive(3, 11, ArrivalRecovered), arrive(4, 11, ArrivalDuplicate), nacks(5),
			arrive(6, 9, ArrivalNew), // older than the first packet, never missed
		}, ReceiverStats{Received: 4, Duplicates: 2, Missing: 1, Recovered: 1}},
		{"no NACK that cannot be answered in time", ReceiverConfig{InitialRTT: 400 * time.Millisecond, MaxDelay: 500 * time.Millisecond}, []step{
			arrive(0, 1, ArrivalNew), arrive(0, 3, ArrivalNew),
			nacks(0, 2),
			nacks(400), // due again, but 400 + 400 > 500
			nacks(500),
		}, ReceiverStats{Received: 2, Missing: 1, Nacked: 1, Abandoned: 1}},
		{"window bounds", ReceiverConfig{Window: 16}, []step{
			arrive(0, 0, ArrivalNew), arrive(1, 5, ArrivalNew), // 1..4 missing
			arrive(2, 20, ArrivalNew), // window (4, 20]: 1..4 abandoned, 6..19 missing
			arrive(3, 4, ArrivalTooOld),
			arrive(4, 1000, ArrivalNew), // jump past the window: 6..19 and 21..984 abandoned
			nacks(4, 985, 986, 987, 988, 989, 990, 991, 992, 993, 994, 995, 996, 997, 998, 999),
		}, ReceiverStats{Received: 4, TooOld: 1, Missing: 4 + 14 + 979, Abandoned: 4 + 14 + 964, Nacked: 15}},
		{"reorder tolerance", ReceiverConfig{ReorderTolerance: 15 * time.Millisecond}, []step{
			arrive(0, 1, ArrivalNew), arrive(0, 4, ArrivalNew), // 2, 3 missing
			nacks(10), arrive(12, 2, ArrivalRecovered), // 2 was only overtaken
			nacks(14), nacks(15, 3),
		}, ReceiverStats{Received: 3, Missing: 2, Recovered: 1, Nacked: 1}},
		{"batch cap, oldest first", ReceiverConfig{MaxBatch: 2}, []step{
			arrive(0, 0, ArrivalNew), arrive(0, 4, ArrivalNew),
			nacks(0, 1, 2), nacks(1, 3),
		}, ReceiverStats{Received: 2, Missing: 3, Nacked: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewReceiver(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tt.steps {
				if s.seq >= 0 {
					if got := r.OnPacket(protocol.MediaSeq(s.seq), ms(s.at)); got != s.want {
						t.Fatalf("step %d: OnPacket(%d) = %v, want %v", i, s.seq, got, s.want)
					}
					continue
				}
				if got := r.Nacks(ms(s.at), nil); !slices.Equal(got, s.nacks) {
					t.Fatalf("step %d: Nacks at %d ms = %v, want %v", i, s.at, got, s.nacks)
				}
			}
			if got := r.Stats(); got != tt.stats {
				t.Fatalf("stats\n got %+v\nwant %+v", got, tt.stats)
			}
			if r.Pending() > tt.cfg.Window && tt.cfg.Window > 0 {
				t.Fatalf("Pending %d over window %d", r.Pending(), tt.cfg.Window)
			}
		})
	}
}

func TestReceiverSetRTT(t *testing.T) {
	r, _ := NewReceiver(ReceiverConfig{InitialRTT: 100 * time.Millisecond, MinInterval: 20 * time.Millisecond})
	r.OnPacket(1, ms(0))
	r.OnPacket(3, ms(0))
	r.Nacks(ms(0), nil)
	r.SetRTT(5 * time.Millisecond) // below MinInterval: the floor applies
	r.SetRTT(0)                    // ignored
	if got := r.Nacks(ms(19), nil); len(got) != 0 {
		t.Fatalf("re-NACK before MinInterval: %v", got)
	}
	if got := r.Nacks(ms(20), nil); !slices.Equal(got, seqs{2}) {
		t.Fatalf("re-NACK at MinInterval = %v", got)
	}
}

func TestReceiverNextNack(t *testing.T) {
	r, _ := NewReceiver(ReceiverConfig{InitialRTT: 100 * time.Millisecond, MaxRetries: 2, MaxDelay: 500 * time.Millisecond})
	if _, ok := r.NextNack(ms(0)); ok {
		t.Fatal("NextNack with nothing missing")
	}
	r.OnPacket(1, ms(0))
	r.OnPacket(3, ms(10))
	want := []struct {
		now, next int
	}{
		{10, 10},   // first NACK due at detection
		{10, 110},  // after it, one RTT
		{110, 110}, // second NACK due
		{110, 510}, // retries exhausted: only the deadline is left
	}
	for i, w := range want {
		next, ok := r.NextNack(ms(w.now))
		if !ok || !next.Equal(ms(w.next)) {
			t.Fatalf("step %d: NextNack(%d) = %v, %v; want %d ms", i, w.now, next.Sub(t0), ok, w.next)
		}
		r.Nacks(ms(w.now), nil)
	}
	r.Nacks(ms(510), nil)
	if _, ok := r.NextNack(ms(510)); ok {
		t.Fatal("NextNack after the gap was abandoned")
	}
}

// FuzzReceiver drives a receiver with an arbitrary stream of arrivals and
// NACK rounds and checks its invariants: a received packet is never NACKed,
// no packet is NACKed more than MaxRetries times, memory stays within the
// window, and the counters add up.
func FuzzReceiver(f *testing.F) {
	f.Add([]byte{0, 1, 0, 3, 0x80, 5, 0, 2, 0x80, 200})
	f.Add([]byte{0, 0, 0, 0xff, 0x81, 0x10, 0x40, 0x01, 0x80, 0xff, 0x80, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		const window = 64
		r, err := NewReceiver(ReceiverConfig{Window: window, MaxRetries: 2, InitialRTT: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxBatch: 8})
		if err != nil {
			t.Fatal(err)
		}
		received := map[protocol.MediaSeq]bool{}
		nacked := map[protocol.MediaSeq]int{}
		now := t0
		var base protocol.MediaSeq = 1000
		for len(data) >= 2 {
			op, arg := data[0], data[1]
			data = data[2:]
			switch {
			case op&0x80 != 0: // advance the clock and run a NACK round
				now = now.Add(time.Duration(arg) * time.Millisecond)
				for _, s := range r.Nacks(now, nil) {
					if received[s] {
						t.Fatalf("NACKed %d, which was received", s)
					}
					if h, _ := r.Highest(); s > h || h-s >= window {
						t.Fatalf("NACKed %d outside the window below %d", s, h)
					}
					nacked[s]++
					if nacked[s] > 2 {
						t.Fatalf("NACKed %d %d times", s, nacked[s])
					}
				}
			case op&0x40 != 0 && len(data) >= 2: // a jump
				base += protocol.MediaSeq(binary.BigEndian.Uint16(data))
				data = data[2:]
				r.OnPacket(base, now)
				received[base] = true
			default: // a packet near base, possibly behind it
				s := base + protocol.MediaSeq(arg) - 128
				r.OnPacket(s, now)
				received[s] = true
			}
			if r.Pending() >= window {
				t.Fatalf("%d gaps pending, window %d", r.Pending(), window)
			}
		}
		st := r.Stats()
		if st.Recovered > st.Missing || st.Abandoned+st.Recovered > st.Missing {
			t.Fatalf("counters do not add up: %+v", st)
		}
		if uint64(r.Pending()) != st.Missing-st.Recovered-st.Abandoned {
			t.Fatalf("Pending %d, but Missing-Recovered-Abandoned = %d (%+v)", r.Pending(), st.Missing-st.Recovered-st.Abandoned, st)
		}
	})
}
