package simnet

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func pkt(i int) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(i))
	return b
}

func idOf(p Packet) int { return int(binary.BigEndian.Uint64(p.Data)) }

// run sends n packets, one every interval, and collects every delivery.
func run(t *testing.T, cfg Config, n int, interval time.Duration) ([]Packet, Stats) {
	t.Helper()
	l, err := NewLink(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []Packet
	for i := 0; i < n; i++ {
		now := t0.Add(time.Duration(i) * interval)
		out = append(out, l.Deliver(now)...)
		l.Send(pkt(i), now)
	}
	out = append(out, l.Deliver(t0.Add(time.Hour))...)
	if l.InFlight() != 0 {
		t.Fatalf("%d packets still in flight after an hour", l.InFlight())
	}
	return out, l.Stats()
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"full", Config{Loss: 0.1, Burst: &GilbertElliott{0.01, 0.3, 0, 1}, Delay: time.Millisecond, Jitter: time.Millisecond, Reorder: 0.1, Duplicate: 0.1, Rate: 1e6}, true},
		{"loss over 1", Config{Loss: 1.5}, false},
		{"loss NaN", Config{Loss: math.NaN()}, false},
		{"negative reorder", Config{Reorder: -0.1}, false},
		{"bad burst", Config{Burst: &GilbertElliott{LossBad: 2}}, false},
		{"negative delay", Config{Delay: -1}, false},
		{"negative rate", Config{Rate: -1}, false},
		{"negative in-flight cap", Config{MaxInFlight: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewLink(tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestPerfectLink(t *testing.T) {
	out, st := run(t, Config{Delay: 30 * time.Millisecond}, 100, 10*time.Millisecond)
	if len(out) != 100 || st.Delivered != 100 || st.Reordered != 0 {
		t.Fatalf("delivered %d, stats %+v", len(out), st)
	}
	for i, p := range out {
		if idOf(p) != i || p.At.Sub(p.Sent) != 30*time.Millisecond {
			t.Fatalf("packet %d: id %d, delay %v", i, idOf(p), p.At.Sub(p.Sent))
		}
	}
}

func TestDeliverRespectsClock(t *testing.T) {
	l, _ := NewLink(Config{Delay: 50 * time.Millisecond})
	l.Send([]byte("x"), t0)
	if got := l.Deliver(t0.Add(49 * time.Millisecond)); len(got) != 0 {
		t.Fatalf("delivered early: %v", got)
	}
	if at, ok := l.NextDelivery(); !ok || !at.Equal(t0.Add(50*time.Millisecond)) {
		t.Fatalf("NextDelivery = %v, %v", at, ok)
	}
	if got := l.Deliver(t0.Add(50 * time.Millisecond)); len(got) != 1 || string(got[0].Data) != "x" {
		t.Fatalf("Deliver at arrival time = %v", got)
	}
	if _, ok := l.NextDelivery(); ok {
		t.Fatal("NextDelivery ok on an empty link")
	}
}

func TestSendCopies(t *testing.T) {
	l, _ := NewLink(Config{})
	b := []byte("abc")
	l.Send(b, t0)
	b[0] = 'z'
	if got := l.Deliver(t0); string(got[0].Data) != "abc" {
		t.Fatalf("link kept the caller's buffer: %q", got[0].Data)
	}
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Loss: 0.1, Burst: &GilbertElliott{0.02, 0.3, 0, 0.9}, Delay: 20 * time.Millisecond,
		Jitter: 15 * time.Millisecond, Reorder: 0.05, Duplicate: 0.02, Rate: 200_000}
	a, sa := run(t, cfg, 2000, 2*time.Millisecond)
	b, sb := run(t, cfg, 2000, 2*time.Millisecond)
	if sa != sb || len(a) != len(b) {
		t.Fatalf("same seed, different stats:\n%+v\n%+v", sa, sb)
	}
	for i := range a {
		if !bytes.Equal(a[i].Data, b[i].Data) || !a[i].At.Equal(b[i].At) {
			t.Fatalf("same seed, delivery %d differs", i)
		}
	}
	cfg.Seed = 43
	_, sc := run(t, cfg, 2000, 2*time.Millisecond)
	if sc == sa {
		t.Fatal("different seeds gave identical stats")
	}
}

func TestRandomLossRate(t *testing.T) {
	for _, p := range []float64{0.05, 0.2} {
		_, st := run(t, Config{Seed: 1, Loss: p}, 50_000, time.Millisecond)
		got := float64(st.Lost) / float64(st.Sent)
		// Binomial standard deviation at n=50,000 is under 0.002; five of
		// them is a loose bound for a fixed seed.
		if math.Abs(got-p) > 0.01 {
			t.Fatalf("loss %v: measured %v", p, got)
		}
		if st.Delivered+st.Lost != st.Sent {
			t.Fatalf("stats do not add up: %+v", st)
		}
	}
}

func TestBurstLoss(t *testing.T) {
	g := GilbertElliott{PGoodToBad: 0.01, PBadToGood: 0.25, LossGood: 0, LossBad: 1}
	l, _ := NewLink(Config{Seed: 7, Burst: &g})
	var bursts, inBurst, lost int
	for i := 0; i < 100_000; i++ {
		if l.Send(pkt(i), t0) {
			inBurst = 0
			continue
		}
		lost++
		if inBurst == 0 {
			bursts++
		}
		inBurst++
	}
	rate := float64(lost) / 100_000
	if math.Abs(rate-g.MeanLoss()) > 0.01 {
		t.Fatalf("burst loss rate %v, model mean %v", rate, g.MeanLoss())
	}
	// With LossBad = 1 a burst is a stay in Bad: mean length 1/PBadToGood.
	if mean := float64(lost) / float64(bursts); math.Abs(mean-4) > 0.5 {
		t.Fatalf("mean burst length %v, want about 4", mean)
	}
}

func TestJitterBoundsAndReorder(t *testing.T) {
	out, st := run(t, Config{Seed: 3, Delay: 20 * time.Millisecond, Jitter: 10 * time.Millisecond}, 5000, time.Millisecond)
	for _, p := range out {
		if d := p.At.Sub(p.Sent); d < 20*time.Millisecond || d >= 30*time.Millisecond {
			t.Fatalf("delay %v outside [20ms, 30ms)", d)
		}
	}
	if st.Reordered == 0 {
		t.Fatal("10 ms of jitter on 1 ms spacing reordered nothing")
	}
	for i := 1; i < len(out); i++ {
		if out[i].At.Before(out[i-1].At) {
			t.Fatal("Deliver not in arrival order")
		}
	}
}

func TestReorderKnob(t *testing.T) {
	out, st := run(t, Config{Seed: 5, Delay: 5 * time.Millisecond, Reorder: 0.1, ReorderDelay: 30 * time.Millisecond}, 10_000, 5*time.Millisecond)
	if len(out) != 10_000 {
		t.Fatalf("reordering lost packets: %d delivered", len(out))
	}
	if r := float64(st.Reordered) / 10_000; r < 0.08 || r > 0.12 {
		t.Fatalf("reordered share %v, want about 0.1", r)
	}
}

func TestDuplicate(t *testing.T) {
	out, st := run(t, Config{Seed: 9, Duplicate: 0.1}, 10_000, time.Millisecond)
	if uint64(len(out)) != 10_000+st.Duplicated || st.Duplicated < 900 || st.Duplicated > 1100 {
		t.Fatalf("%d delivered, %d duplicated", len(out), st.Duplicated)
	}
}

func TestRateLimit(t *testing.T) {
	l, _ := NewLink(Config{Rate: 1000, QueueDelay: 200 * time.Millisecond})
	for i := 0; i < 10; i++ {
		l.Send(make([]byte, 100), t0)
	}
	st := l.Stats()
	// 100 bytes at 1,000 B/s take 100 ms each: packets starting at 0, 100
	// and 200 ms fit the 200 ms queue, the rest are tail-dropped.
	if st.QueueDrops != 7 {
		t.Fatalf("queue drops = %d, want 7", st.QueueDrops)
	}
	out := l.Deliver(t0.Add(time.Second))
	for i, p := range out {
		if want := time.Duration(i+1) * 100 * time.Millisecond; p.At.Sub(t0) != want {
			t.Fatalf("packet %d arrived at +%v, want +%v", i, p.At.Sub(t0), want)
		}
	}
	// After the queue drains the link accepts again.
	if !l.Send(make([]byte, 100), t0.Add(time.Second)) {
		t.Fatal("drained link refused a packet")
	}
}

func TestMaxInFlight(t *testing.T) {
	l, _ := NewLink(Config{Delay: time.Second, MaxInFlight: 10})
	for i := 0; i < 15; i++ {
		l.Send(pkt(i), t0)
	}
	if l.InFlight() != 10 || l.Stats().Overflow != 5 {
		t.Fatalf("in flight %d, overflow %d", l.InFlight(), l.Stats().Overflow)
	}
}
