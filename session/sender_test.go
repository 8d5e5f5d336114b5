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
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()

	// The first frame occupies the writer.
	if err := s.enqueue(protocol.ClassChat, frameOf(wire.FrameMessage, protocol.ClassChat, 10), time.Time{}); err != nil {
		t.Fatal(err)
	}
	<-gs.entered
	for i := 0; i < 5; i++ {
		if err := s.enqueue(protocol.ClassMedia, frameOf(wire.FrameMessage, protocol.ClassMedia, 100), clk.Now().Add(cfg.MediaDeadline)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.enqueue(protocol.ClassBulk, frameOf(wire.FrameMessage, protocol.ClassBulk, 10), time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := s.enqueue(protocol.ClassSystem, frameOf(wire.FramePing, protocol.ClassSystem, 3), time.Time{}); err != nil {
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
	run := func(t *testing.T, cfg Config, battery bool) (writes, frames uint64) {
		gs := newGateStream()
		close(gs.gate)
		cfg = cfg.withDefaults()
		s := newSender(gs, cfg)
		s.battery.Store(battery)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.run(ctx) }()
		for i := 0; i < 1000; i++ {
			for {
				err := s.enqueue(protocol.ClassChat, frameOf(wire.FrameMessage, protocol.ClassChat, 40), time.Time{})
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
	unbatched, _ := run(t, Config{DisableBatching: true}, false)
	natural, _ := run(t, Config{}, false)
	battery, _ := run(t, Config{}, true)
	t.Logf("writes for 1000 chat frames: unbatched %d, batched %d, battery mode %d", unbatched, natural, battery)
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
