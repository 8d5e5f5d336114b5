package reorder

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

var t0 = time.Unix(1_700_000_000, 0)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

type arrival struct {
	seq       protocol.MediaSeq
	sent, at  int // ms
	recovered bool
}

type release struct {
	seq  protocol.MediaSeq
	at   int // ms
	lost uint64
}

// simulate runs the buffer on a 1 ms virtual clock up to end: at each tick
// it pushes the arrivals due then and releases what is due.
func simulate(t *testing.T, b *Buffer[int], arrivals []arrival, end int) ([]release, map[protocol.MediaSeq]Verdict) {
	t.Helper()
	var out []release
	verdicts := map[protocol.MediaSeq]Verdict{}
	for now := 0; now <= end; now++ {
		for _, a := range arrivals {
			if a.at != now {
				continue
			}
			if a.recovered {
				verdicts[a.seq] = b.PushRecovered(a.seq, ms(a.sent), t0.Add(ms(a.at)), int(a.seq))
			} else {
				verdicts[a.seq] = b.Push(a.seq, ms(a.sent), t0.Add(ms(a.at)), int(a.seq))
			}
		}
		for _, it := range b.Release(t0.Add(ms(now)), nil) {
			if it.Value != int(it.Seq) {
				t.Fatalf("released value %d for seq %d", it.Value, it.Seq)
			}
			out = append(out, release{it.Seq, now, it.LostBefore})
		}
	}
	return out, verdicts
}

// evenly returns n packets sent every 20 ms with a fixed 10 ms transit.
func evenly(n int) []arrival {
	a := make([]arrival, n)
	for i := range a {
		a[i] = arrival{seq: protocol.MediaSeq(100 + i), sent: 20 * i, at: 20*i + 10}
	}
	return a
}

func newBuf(t *testing.T, cfg Config) *Buffer[int] {
	t.Helper()
	b, err := New[int](cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"min above default max lifts max", Config{MinDelay: time.Second}, true},
		{"max below min", Config{MinDelay: 50 * time.Millisecond, MaxDelay: 40 * time.Millisecond}, false},
		{"negative min", Config{MinDelay: -1}, false},
		{"negative factor", Config{JitterFactor: -1}, false},
		{"negative packets", Config{MaxPackets: -1}, false},
		{"negative base window", Config{BaseWindow: -1}, false},
	}
	for _, tt := range tests {
		if _, err := New[int](tt.cfg); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
	}
}

func TestScriptedArrivals(t *testing.T) {
	cfg := Config{MinDelay: 30 * time.Millisecond}
	tests := []struct {
		name     string
		arrivals []arrival
		want     []release
		stats    Stats
	}{
		{
			name:     "steady stream is released sent + transit + delay",
			arrivals: evenly(3),
			want:     []release{{100, 40, 0}, {101, 60, 0}, {102, 80, 0}},
			stats:    Stats{Pushed: 3, Released: 3},
		},
		{
			name: "reordered packet waits for its turn",
			arrivals: []arrival{
				{100, 0, 10, false}, {101, 20, 30, false}, {103, 60, 70, false}, {102, 40, 75, false}, {104, 80, 90, false},
			},
			want:  []release{{100, 40, 0}, {101, 60, 0}, {102, 80, 0}, {103, 100, 0}, {104, 120, 0}},
			stats: Stats{Pushed: 5, Released: 5},
		},
		{
			name: "gap declared lost at the next packet's playout, then late",
			arrivals: []arrival{
				{100, 0, 10, false}, {101, 20, 30, false}, {103, 60, 70, false}, {102, 40, 130, false},
			},
			want:  []release{{100, 40, 0}, {101, 60, 0}, {103, 100, 1}},
			stats: Stats{Pushed: 3, Released: 3, Lost: 1, Late: 1},
		},
		{
			name: "repaired packet fills its place",
			arrivals: []arrival{
				{100, 0, 10, false}, {102, 40, 50, false}, {101, 20, 55, true},
			},
			want:  []release{{100, 40, 0}, {101, 60, 0}, {102, 80, 0}},
			stats: Stats{Pushed: 3, Repaired: 1, Released: 3},
		},
		{
			name: "duplicate dropped",
			arrivals: []arrival{
				{100, 0, 10, false}, {101, 20, 30, false}, {101, 20, 31, false},
			},
			want:  []release{{100, 40, 0}, {101, 60, 0}},
			stats: Stats{Pushed: 2, Released: 2, Duplicate: 1},
		},
		{
			name: "first packets reordered before any release",
			arrivals: []arrival{
				{101, 20, 30, false}, {100, 0, 35, false},
			},
			// Base comes from 101 (transit 10): 100 is due at 40.
			want:  []release{{100, 40, 0}, {101, 60, 0}},
			stats: Stats{Pushed: 2, Released: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBuf(t, cfg)
			got, _ := simulate(t, b, tt.arrivals, 500)
			if len(got) != len(tt.want) {
				t.Fatalf("released %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("release %d = %+v, want %+v (all: %v)", i, got[i], tt.want[i], got)
				}
			}
			if st := b.Stats(); st != tt.stats {
				t.Fatalf("stats\n got %+v\nwant %+v", st, tt.stats)
			}
			if b.Len() != 0 {
				t.Fatalf("%d packets left", b.Len())
			}
		})
	}
}

func TestJitterAdapts(t *testing.T) {
	b := newBuf(t, Config{MinDelay: 20 * time.Millisecond, MaxDelay: 300 * time.Millisecond})
	now := 0
	push := func(i, transit int) {
		now = 20*i + transit
		b.Push(protocol.MediaSeq(i), ms(20*i), t0.Add(ms(now)), i)
		b.Release(t0.Add(ms(now)), nil)
	}
	// Transit alternating 10 and 50 ms: |D| = 40 ms every packet, so the
	// estimate converges to 40 ms and the target to 3 x 40 = 120 ms.
	for i := 0; i < 200; i++ {
		push(i, 10+40*(i%2))
	}
	if j := b.Jitter(); j < 39*time.Millisecond || j > 40*time.Millisecond {
		t.Fatalf("jitter %v after alternating transits, want about 40ms", j)
	}
	if d := b.Delay(); d < 117*time.Millisecond || d > 120*time.Millisecond {
		t.Fatalf("target delay %v, want about 120ms", d)
	}
	// Steady again: the estimate decays by 1/16 per packet.
	for i := 200; i < 400; i++ {
		push(i, 10)
	}
	if d := b.Delay(); d != 20*time.Millisecond {
		t.Fatalf("target delay %v after a steady stretch, want the 20ms floor", d)
	}
	// The ceiling holds under wild jitter.
	for i := 400; i < 600; i++ {
		push(i, 10+400*(i%2))
	}
	if d := b.Delay(); d != 300*time.Millisecond {
		t.Fatalf("target delay %v, want the 300ms ceiling", d)
	}
}

func TestRepairedDoesNotMoveJitter(t *testing.T) {
	b := newBuf(t, Config{})
	for i := 0; i < 10; i++ {
		b.Push(protocol.MediaSeq(i*2), ms(40*i), t0.Add(ms(40*i+5)), i)
	}
	j := b.Jitter()
	for i := 0; i < 10; i++ {
		b.PushRecovered(protocol.MediaSeq(i*2+1), ms(40*i+20), t0.Add(ms(40*i+200)), i)
	}
	if b.Jitter() != j || b.Stats().Repaired != 10 {
		t.Fatalf("jitter %v -> %v, stats %+v", j, b.Jitter(), b.Stats())
	}
}

func TestRepairedFirstSetsClock(t *testing.T) {
	b := newBuf(t, Config{MinDelay: 30 * time.Millisecond})
	b.PushRecovered(5, ms(100), t0.Add(ms(180)), 5)
	// The repair's own transit (80 ms) maps the clock until an original
	// arrives: due at 100 + 80 + 30.
	if at, ok := b.NextRelease(); !ok || !at.Equal(t0.Add(ms(210))) {
		t.Fatalf("NextRelease = %v, %v", at.Sub(t0), ok)
	}
	// An original with a shorter transit takes over.
	b.Push(6, ms(120), t0.Add(ms(130)), 6)
	if at, _ := b.NextRelease(); !at.Equal(t0.Add(ms(140))) {
		t.Fatalf("NextRelease after an original = %v", at.Sub(t0))
	}
}

func TestOverflowDropsOldest(t *testing.T) {
	b := newBuf(t, Config{MaxPackets: 3, MinDelay: time.Second})
	at := t0
	for s := protocol.MediaSeq(0); s < 6; s++ {
		if v := b.Push(s, ms(int(s)), at, int(s)); v != Accepted {
			t.Fatalf("push %d: %v", s, v)
		}
		if b.Len() > 3 {
			t.Fatalf("holding %d packets, cap 3", b.Len())
		}
	}
	if v := b.Push(1, ms(1), at, 1); v != Late {
		t.Fatalf("push of a dropped number: %v, want late", v)
	}
	got := b.Release(at.Add(time.Hour), nil)
	if len(got) != 3 || got[0].Seq != 3 || got[0].LostBefore != 3 || got[1].LostBefore != 0 {
		t.Fatalf("released %+v", got)
	}
	if st := b.Stats(); st.Overflow != 3 || st.Lost != 0 || st.Late != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Full, and the arrival is older than everything held: it is the one
	// dropped, and the numbers between it and the held ones are lost.
	b = newBuf(t, Config{MaxPackets: 3, MinDelay: time.Second})
	for _, s := range []protocol.MediaSeq{10, 11, 12} {
		b.Push(s, ms(int(s)), at, int(s))
	}
	if v := b.Push(5, ms(5), at, 5); v != Overflowed {
		t.Fatalf("push of the oldest into a full buffer: %v", v)
	}
	got = b.Release(at.Add(time.Hour), nil)
	if len(got) != 3 || got[0].Seq != 10 || got[0].LostBefore != 5 {
		t.Fatalf("released %+v", got)
	}
	if st := b.Stats(); st.Overflow != 1 || st.Lost != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestBaseFollowsRouteChange(t *testing.T) {
	b := newBuf(t, Config{MinDelay: 30 * time.Millisecond, BaseWindow: time.Second})
	var arrivals []arrival
	// Transit 10 ms for two seconds, then 110 ms for three.
	for i := 0; i < 250; i++ {
		transit := 10
		if i >= 100 {
			transit = 110
		}
		arrivals = append(arrivals, arrival{seq: protocol.MediaSeq(i), sent: 20 * i, at: 20*i + transit})
	}
	got, _ := simulate(t, b, arrivals, 6000)
	if len(got) != 250 {
		t.Fatalf("released %d of 250", len(got))
	}
	// Right after the change packets are overdue on arrival and go out at
	// once; a base window later the mapping has caught up and each packet
	// again waits the full target delay.
	if wait := got[100].at - arrivals[100].at; wait != 0 {
		t.Fatalf("packet 100 waited %d ms after the route change, want 0", wait)
	}
	for _, i := range []int{200, 249} {
		if wait := got[i].at - arrivals[i].at; wait != 30 {
			t.Fatalf("packet %d waited %d ms, want the 30 ms target", i, wait)
		}
	}
}

func TestNextRelease(t *testing.T) {
	b := newBuf(t, Config{MinDelay: 30 * time.Millisecond})
	if _, ok := b.NextRelease(); ok {
		t.Fatal("NextRelease on an empty buffer")
	}
	b.Push(7, ms(100), t0.Add(ms(110)), 7)
	if at, ok := b.NextRelease(); !ok || !at.Equal(t0.Add(ms(140))) {
		t.Fatalf("NextRelease = %v, %v", at.Sub(t0), ok)
	}
	if _, ok := b.Pop(t0.Add(ms(139))); ok {
		t.Fatal("released early")
	}
	if it, ok := b.Pop(t0.Add(ms(140))); !ok || it.Seq != 7 {
		t.Fatalf("Pop at playout = %+v, %v", it, ok)
	}
}

// FuzzBuffer pushes arbitrary arrivals and checks the buffer's promises:
// releases come out in strictly increasing order, never beyond MaxPackets
// are held, a number is released at most once, and LostBefore accounts for
// every number skipped.
func FuzzBuffer(f *testing.F) {
	f.Add([]byte{0, 10, 5, 1, 20, 3, 3, 9, 200, 2, 0, 255})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := New[int](Config{MaxPackets: 8, MinDelay: 10 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		now := t0
		var last protocol.MediaSeq
		released := false
		check := func(items []Item[int]) {
			for _, it := range items {
				if released && it.Seq <= last {
					t.Fatalf("released %d after %d", it.Seq, last)
				}
				if released && uint64(it.Seq-last-1) != it.LostBefore {
					t.Fatalf("released %d after %d with LostBefore %d", it.Seq, last, it.LostBefore)
				}
				last, released = it.Seq, true
			}
		}
		for len(data) >= 3 {
			now = now.Add(time.Duration(data[0]) * time.Millisecond)
			seq := protocol.MediaSeq(data[1])
			sent := time.Duration(data[1])*20*time.Millisecond + time.Duration(int8(data[2]))*time.Millisecond
			if data[2]&1 == 1 {
				b.PushRecovered(seq, sent, now, int(seq))
			} else {
				b.Push(seq, sent, now, int(seq))
			}
			data = data[3:]
			if b.Len() > 8 {
				t.Fatalf("holding %d packets, cap 8", b.Len())
			}
			check(b.Release(now, nil))
		}
		check(b.Release(now.Add(time.Hour), nil))
	})
}
