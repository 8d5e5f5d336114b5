package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// gateStream is a transport.Stream fake whose writes block until released,
// recording what was written.
type gateStream struct {
	mu      sync.Mutex
	written []byte
	writes  int
	gate    chan struct{} // receive to let one write through; closed = open
	entered chan struct{} // signalled when a write starts waiting
}

func newGateStream() *gateStream {
	return &gateStream{gate: make(chan struct{}), entered: make(chan struct{}, 16)}
}

func (g *gateStream) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.written = append(g.written, p...)
	g.writes++
	return len(p), nil
}
func (g *gateStream) Read(p []byte) (int, error)         { select {} }
func (g *gateStream) Close() error                       { return nil }
func (g *gateStream) ID() protocol.StreamID              { return 0 }
func (g *gateStream) Class() protocol.Class              { return protocol.ClassSystem }
func (g *gateStream) CancelWrite(jsperr.Code)            {}
func (g *gateStream) CancelRead(jsperr.Code)             {}
func (g *gateStream) SetReadDeadline(time.Time) error    { return nil }
func (g *gateStream) SetWriteDeadline(t time.Time) error { return nil }

// fakeClock is a manually advanced clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func frameOf(t wire.FrameType, class protocol.Class, n int) []byte {
	return wire.AppendFrame(nil, t, wire.Flags(0).WithClass(class), 0, make([]byte, n))
}

// parseAll splits written bytes back into frame headers.
func parseAll(t *testing.T, b []byte) []wire.Header {
	t.Helper()
	var hs []wire.Header
	for len(b) > 0 {
		h, _, n, err := wire.ParseFrame(b, 1<<30)
		if err != nil {
			t.Fatalf("parse written frames: %v", err)
		}
		hs = append(hs, h)
		b = b[n:]
	}
	return hs
}

// TestSenderDropsStaleMedia: media frames whose deadline passes while the
// writer is blocked are dropped, not sent; system and chat frames are sent,
// system first (JSP §11.3).
func TestSenderDropsStaleMedia(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	gs := newGateStream()
	cfg := Config{Now: clk.Now}.withDefaults()
	s := newSender(gs, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(t, ctx, s)

	// The first frame occupies the writer.
	if err := s.enqueue(protocol.ClassChat, frameOf(wire.FrameMessage, protocol.ClassChat, 10), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	<-gs.entered
	for i := 0; i < 5; i++ {
		if err := s.enqueue(protocol.ClassMedia, frameOf(wire.FrameMessage, protocol.ClassMedia, 100), clk.Now().Add(cfg.MediaDeadline), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.enqueue(protocol.ClassBulk, frameOf(wire.FrameMessage, protocol.ClassBulk, 10), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if err := s.enqueue(protocol.ClassSystem, frameOf(wire.FramePing, protocol.ClassSystem, 3), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second) // every media frame is now stale
	close(gs.gate)
	deadline := time.Now().Add(10 * time.Second)
	for s.framesSent.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	hs := parseAll(t, gs.written)
	gs.mu.Unlock()
	var classes []protocol.Class
	for _, h := range hs {
		classes = append(classes, h.Flags.Class())
	}
	want := []protocol.Class{protocol.ClassChat, protocol.ClassSystem, protocol.ClassBulk}
	if len(classes) != len(want) {
		t.Fatalf("sent classes %v, want %v", classes, want)
	}
	for i := range want {
		if classes[i] != want[i] {
			t.Fatalf("sent classes %v, want %v", classes, want)
		}
	}
	if got := s.mediaDropped.Load(); got != 5 {
		t.Fatalf("media dropped = %d, want 5", got)
	}
}

// TestSenderBatching counts write calls for 1,000 small chat frames: one
// write per frame without batching; a handful in battery mode, where chat
// waits up to its flush delay for company (JSP §11.5).
func TestSenderBatching(t *testing.T) {
	run := func(t *testing.T, cfg Config, battery, direct bool) (writes, frames uint64) {
		gs := newGateStream()
		close(gs.gate)
		cfg = cfg.withDefaults()
		s := newSender(gs, cfg)
		s.onError = func(err error) { t.Errorf("write: %v", err) }
		s.battery.Store(battery)
		ctx, cancel := context.WithCancel(context.Background())
		done := runSender(t, ctx, s)
		for i := 0; i < 1000; i++ {
			for {
				err := s.enqueue(protocol.ClassChat, frameOf(wire.FrameMessage, protocol.ClassChat, 40), time.Time{}, direct)
				if err == nil {
					break
				}
				time.Sleep(time.Millisecond) // queue full: back off
			}
		}
		deadline := time.Now().Add(20 * time.Second)
		for s.framesSent.Load() < 1000 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := len(parseAll(t, gs.written)); n != 1000 {
			t.Fatalf("%d frames written, want 1000", n)
		}
		return s.writes.Load(), s.framesSent.Load()
	}
	unbatched, _ := run(t, Config{DisableBatching: true}, false, false)
	natural, _ := run(t, Config{}, false, false)
	battery, _ := run(t, Config{}, true, false)
	// The application path (write-through allowed): in battery mode chat
	// waits for company, so write-through never applies to it.
	batteryApp, _ := run(t, Config{}, true, true)
	t.Logf("writes for 1000 chat frames: unbatched %d, batched %d, battery mode %d (application path %d)", unbatched, natural, battery, batteryApp)
	if batteryApp > 50 {
		t.Fatalf("battery-mode writes on the application path = %d, want <= 50", batteryApp)
	}
	if unbatched != 1000 {
		t.Fatalf("unbatched writes = %d, want 1000", unbatched)
	}
	if natural > unbatched {
		t.Fatalf("batched writes %d exceed unbatched %d", natural, unbatched)
	}
	// 1,000 frames of 45 bytes fit in one 64 KiB batch; the 50 ms window
	// collects everything enqueued within it. Allow for a slow producer.
	if battery > 50 {
		t.Fatalf("battery-mode writes = %d, want <= 50", battery)
	}
}

// TestSenderWriteThroughKeepsOrder: with write-through, frames from each
// producer still leave in the order they were enqueued, and nothing is lost
// or written twice, whether a frame went directly or through the queue.
func TestSenderWriteThroughKeepsOrder(t *testing.T) {
	gs := newGateStream()
	close(gs.gate)
	cfg := Config{}.withDefaults()
	s := newSender(gs, cfg)
	s.onError = func(err error) { t.Errorf("write: %v", err) }
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(t, ctx, s)

	// A write-through on an idle sender is done when enqueue returns.
	if err := s.enqueue(protocol.ClassChat, frameOf(wire.FrameMessage, protocol.ClassChat, 4), time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if w := s.writes.Load(); w != 1 {
		t.Fatalf("writes after an idle write-through = %d, want 1", w)
	}

	const producers, each = 4, 500
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				payload := []byte{byte(p), byte(i >> 8), byte(i)}
				f := wire.AppendFrame(nil, wire.FrameMessage, wire.Flags(0).WithClass(protocol.ClassChat), 0, payload)
				for s.enqueue(protocol.ClassChat, f, time.Time{}, true) != nil {
					time.Sleep(time.Millisecond) // queue full: back off
				}
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for s.framesSent.Load() < producers*each+1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	b := gs.written
	gs.mu.Unlock()
	next := make([]int, producers)
	for len(b) > 0 {
		_, p, n, err := wire.ParseFrame(b, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		b = b[n:]
		if len(p) != 3 {
			continue // the first, 4-byte frame
		}
		prod, i := int(p[0]), int(p[1])<<8|int(p[2])
		if i != next[prod] {
			t.Fatalf("producer %d: frame %d after %d", prod, i, next[prod]-1)
		}
		next[prod]++
	}
	for p, n := range next {
		if n != each {
			t.Fatalf("producer %d: %d frames written, want %d", p, n, each)
		}
	}
	t.Logf("%d frames in %d writes", producers*each+1, s.writes.Load())
}

// runSender lets s start its run goroutine on demand (as a session does)
// until ctx ends; the returned channel gets the first error a run
// reported, or nil, once every run has ended.
func runSender(t testing.TB, ctx context.Context, s *sender) <-chan error {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	report := s.onError
	s.onError = func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		if report != nil {
			report(err)
		}
	}
	s.ctx, s.wg = ctx, &wg
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		s.stop()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		done <- first
	}()
	return done
}
