package pubsub

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

// goid returns the id of the calling goroutine, from the header line of
// its stack trace, so that a test can tell which goroutine ran a sink.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	id, err := strconv.ParseUint(string(b[:bytes.IndexByte(b, ' ')]), 10, 64)
	if err != nil {
		panic("goid: " + err.Error())
	}
	return id
}

// fanOutProbe is a set of sink subscribers of one channel that check
// what a split delivery must keep: each subscriber gets every delivery
// once and in sequence order, never two at once, and all of a publish's
// deliveries are made before Publish returns.
type fanOutProbe struct {
	t    *testing.T
	subs []*Subscriber[string]
	last []uint64      // per subscriber: the last sequence number it got
	busy []atomic.Bool // per subscriber: its sink is running
	// refuseAt, when set for a subscriber, is the delivery it refuses.
	refuseAt []uint64
	running  atomic.Int32 // sinks running now

	mu    sync.Mutex
	ran   map[uint64]map[uint64]bool // sequence number -> goroutines that delivered it
	count map[uint64]int             // sequence number -> deliveries
	errs  []string
}

func newFanOutProbe(t *testing.T, h *Hub[string], channel string, n int, refuseAt map[int]uint64) *fanOutProbe {
	t.Helper()
	p := &fanOutProbe{
		t:        t,
		last:     make([]uint64, n),
		busy:     make([]atomic.Bool, n),
		refuseAt: make([]uint64, n),
		ran:      map[uint64]map[uint64]bool{},
		count:    map[uint64]int{},
	}
	for i, seq := range refuseAt {
		p.refuseAt[i] = seq
	}
	for i := range n {
		s := h.NewSinkSubscriber(fmt.Sprint("sink", i), func(d Delivery[string]) bool { return p.sink(i, d) })
		t.Cleanup(s.Close)
		if err := s.Subscribe(channel); err != nil {
			t.Fatal(err)
		}
		p.subs = append(p.subs, s)
	}
	return p
}

func (p *fanOutProbe) fail(format string, args ...any) {
	p.mu.Lock()
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
	p.mu.Unlock()
}

func (p *fanOutProbe) sink(i int, d Delivery[string]) bool {
	p.running.Add(1)
	defer p.running.Add(-1)
	if !p.busy[i].CompareAndSwap(false, true) {
		p.fail("sink %d ran twice at once", i)
		return true
	}
	defer p.busy[i].Store(false)
	if d.Seq != p.last[i]+1 {
		p.fail("sink %d got seq %d after %d", i, d.Seq, p.last[i])
	}
	p.last[i] = d.Seq
	id := goid()
	p.mu.Lock()
	if p.ran[d.Seq] == nil {
		p.ran[d.Seq] = map[uint64]bool{}
	}
	p.ran[d.Seq][id] = true
	p.count[d.Seq]++
	p.mu.Unlock()
	return p.refuseAt[i] == 0 || d.Seq < p.refuseAt[i]
}

// publish publishes one message and checks that all of its deliveries
// were made, by goroutines goroutines, the publishing one among them,
// before Publish returned, to want subscribers.
func (p *fanOutProbe) publish(h *Hub[string], channel string, want, goroutines int) {
	p.t.Helper()
	seq, err := h.Publish(channel, "m")
	if err != nil {
		p.t.Fatal(err)
	}
	if n := p.running.Load(); n != 0 {
		p.t.Fatalf("seq %d: %d sinks still running after Publish returned", seq, n)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.errs) > 0 {
		p.t.Fatal(p.errs)
	}
	if p.count[seq] != want {
		p.t.Fatalf("seq %d: %d deliveries, want %d", seq, p.count[seq], want)
	}
	if len(p.ran[seq]) != goroutines {
		p.t.Fatalf("seq %d delivered by %d goroutines, want %d", seq, len(p.ran[seq]), goroutines)
	}
	if want > 0 && !p.ran[seq][goid()] {
		p.t.Fatalf("seq %d: the publishing goroutine delivered none of it", seq)
	}
}

// TestFanOutSplit: a channel with at least 2×FanOutSplit subscribers is
// delivered by min(n/FanOutSplit, FanOutWorkers) goroutines, the
// publishing one included, and Publish returns when all are done; each
// subscriber still gets every message once, in order and one at a time.
func TestFanOutSplit(t *testing.T) {
	tests := []struct {
		split, workers, subs int
		goroutines           int
	}{
		{4, 3, 50, 3},
		{4, 3, 7, 1},  // under 2×split: the publishing goroutine alone
		{4, 3, 8, 2},  // twice split: two parts
		{4, 1, 50, 1}, // one worker
		{-1, 3, 50, 1},
		{1, 4, 5, 4},  // parts of 1 or 2 subscribers
		{2, 5, 11, 5}, // parts of 2 or 3
		{4, 8, 33, 8}, // parts of 4 or 5
		{1, 3, 1, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("split=%d/workers=%d/subs=%d", tt.split, tt.workers, tt.subs), func(t *testing.T) {
			h := newHub(t, Config{FanOutSplit: tt.split, FanOutWorkers: tt.workers})
			p := newFanOutProbe(t, h, "big", tt.subs, nil)
			for range 100 {
				p.publish(h, "big", tt.subs, tt.goroutines)
			}
			for i, last := range p.last {
				if last != 100 {
					t.Fatalf("sink %d got up to seq %d, want 100", i, last)
				}
			}
			if st := h.Stats(); st.Published != 100 || st.Delivered != uint64(100*tt.subs) || st.Dropped != 0 {
				t.Fatalf("stats = %+v", st)
			}
		})
	}
}

// TestFanOutSplitDrops: a sink that refuses a delivery made by any part
// of a split publish is dropped with SLOW_CONSUMER and gets nothing more,
// the others keep receiving, and the channel forgets the dropped
// subscribers; one dropped by a publish on another channel is skipped
// and pruned too.
func TestFanOutSplitDrops(t *testing.T) {
	const n = 50
	h := newHub(t, Config{FanOutSplit: 4, FanOutWorkers: 3})
	// Subscribers 0, 20 and 49 are in the three parts of 17, 17 and 16.
	refuse := map[int]uint64{0: 10, 20: 10, 49: 30}
	p := newFanOutProbe(t, h, "big", n, refuse)
	// Subscriber 5 is also in a small channel, where it is dropped.
	var other atomic.Int32
	small := h.NewSinkSubscriber("small", func(Delivery[string]) bool { other.Add(1); return true })
	defer small.Close()
	if err := small.Subscribe("small"); err != nil {
		t.Fatal(err)
	}
	if err := p.subs[5].Subscribe("small"); err != nil {
		t.Fatal(err)
	}
	p.refuseAt[5] = 1 // the first delivery it gets, on "small"
	if _, err := h.Publish("small", "m"); err != nil {
		t.Fatal(err)
	}
	if jsperr.CodeOf(p.subs[5].Err()) != jsperr.SlowConsumer {
		t.Fatalf("subscriber 5 Err = %v, want SLOW_CONSUMER", p.subs[5].Err())
	}
	// Its sequence on "big" starts afresh, and so do the probe's counts.
	p.last[5] = 0
	clear(p.ran)
	clear(p.count)

	want := n - 1 // subscriber 5 is skipped
	for seq := uint64(1); seq <= 100; seq++ {
		p.publish(h, "big", want, 3)
		for _, s := range refuse {
			if s == seq {
				want--
			}
		}
	}
	for i, s := range p.subs {
		dropped := refuse[i] != 0 || i == 5
		select {
		case <-s.Done():
			if !dropped {
				t.Fatalf("subscriber %d ended: %v", i, s.Err())
			}
			if jsperr.CodeOf(s.Err()) != jsperr.SlowConsumer {
				t.Fatalf("subscriber %d Err = %v, want SLOW_CONSUMER", i, s.Err())
			}
		default:
			if dropped {
				t.Fatalf("subscriber %d was not dropped", i)
			}
		}
		wantLast := uint64(100)
		switch {
		case i == 5:
			wantLast = 0
		case refuse[i] != 0:
			wantLast = refuse[i]
		}
		if p.last[i] != wantLast {
			t.Fatalf("subscriber %d got up to seq %d, want %d", i, p.last[i], wantLast)
		}
	}
	if st := h.Stats(); st.Dropped != 4 {
		t.Fatalf("Dropped = %d, want 4", st.Dropped)
	}
	h.mu.RLock()
	ch := h.channels["big"]
	h.mu.RUnlock()
	ch.mu.Lock()
	left := len(ch.subs)
	ch.mu.Unlock()
	if left != n-4 {
		t.Fatalf("channel holds %d subscribers, want %d", left, n-4)
	}
	if other.Load() != 1 {
		t.Fatalf("the other subscriber of the small channel got %d deliveries, want 1", other.Load())
	}
}

// TestFanOutConfig: FanOutSplit and FanOutWorkers default as documented,
// and a negative FanOutWorkers is refused.
func TestFanOutConfig(t *testing.T) {
	if _, err := New[string](Config{FanOutWorkers: -1}); err == nil {
		t.Fatal("New accepted a negative FanOutWorkers")
	}
	h := newHub(t, Config{})
	if h.cfg.FanOutSplit != DefaultFanOutSplit || h.cfg.FanOutWorkers != runtime.GOMAXPROCS(0) {
		t.Fatalf("FanOutSplit %d, FanOutWorkers %d; want %d, %d", h.cfg.FanOutSplit, h.cfg.FanOutWorkers, DefaultFanOutSplit, runtime.GOMAXPROCS(0))
	}
	h = newHub(t, Config{FanOutSplit: -1, FanOutWorkers: 2})
	if h.cfg.FanOutSplit != -1 || h.cfg.FanOutWorkers != 2 {
		t.Fatalf("set values changed: %+v", h.cfg)
	}
}

// TestFanOutSplitChurn: split publishes to a channel while subscribers
// join, leave and close; under -race it checks the locking, and every
// subscriber sees the channel's numbers in increasing order.
func TestFanOutSplitChurn(t *testing.T) {
	h := newHub(t, Config{FanOutSplit: 4, FanOutWorkers: 3})
	var (
		mu   sync.Mutex
		errs []string
	)
	newSink := func(name string) *Subscriber[string] {
		var last uint64
		var busy atomic.Bool
		return h.NewSinkSubscriber(name, func(d Delivery[string]) bool {
			if !busy.CompareAndSwap(false, true) {
				mu.Lock()
				errs = append(errs, name+": sink ran twice at once")
				mu.Unlock()
				return true
			}
			defer busy.Store(false)
			if d.Seq <= last {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: seq %d after %d", name, d.Seq, last))
				mu.Unlock()
			}
			last = d.Seq
			return true
		})
	}
	for i := range 40 {
		s := newSink(fmt.Sprint("stable", i))
		defer s.Close()
		if err := s.Subscribe("big"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for c := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s := newSink(fmt.Sprint("churn", c, "-", i))
				_ = s.Subscribe("big")
				_ = s.Subscribe("small")
				if i%2 == 0 {
					_ = s.Unsubscribe("big")
				}
				s.Close()
			}
		})
	}
	var pwg sync.WaitGroup
	for range 2 {
		pwg.Go(func() {
			for range 200 {
				if _, err := h.Publish("big", "m"); err != nil {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
					return
				}
			}
		})
	}
	pwg.Wait()
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	for _, e := range errs {
		t.Error(e)
	}
	if st := h.Stats(); st.Dropped != 0 || st.Published != 400 {
		t.Fatalf("stats = %+v", st)
	}
}
