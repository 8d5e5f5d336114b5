package session

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// tryGate is a gateStream that can also write without waiting, as a link
// stream over wss:// can (D50): TryWrite appends to what was written, or
// refuses, or fails, as told.
type tryGate struct {
	*gateStream
	refuse bool
	fail   error

	mu    sync.Mutex
	tried int
}

func (g *tryGate) TryWrite(p []byte) (bool, error) {
	g.mu.Lock()
	g.tried++
	g.mu.Unlock()
	switch {
	case g.fail != nil:
		return true, g.fail
	case g.refuse:
		return false, nil
	}
	g.gateStream.mu.Lock()
	defer g.gateStream.mu.Unlock()
	g.written = append(g.written, p...)
	g.writes++
	return true, nil
}

func (g *tryGate) triedCount() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.tried
}

// numbered is a frame of class that carries i, to tell frames apart.
func numbered(class protocol.Class, i int) []byte {
	return wire.AppendFrame(nil, wire.FrameMessage, wire.Flags(0).WithClass(class), 0, []byte(fmt.Sprint("frame ", i)))
}

// TestSenderOffer checks when offer writes a frame on the caller's
// goroutine (D50): only with nothing queued or being written, for a class
// that goes out at once, on a stream that can write without waiting and
// does. Otherwise the frame is queued for a run goroutine, behind what is
// already there, and the order of the frames is kept either way.
func TestSenderOffer(t *testing.T) {
	tests := []struct {
		name    string
		plain   bool // the stream has no TryWrite
		refuse  bool
		battery bool
		class   protocol.Class
		// ahead is a write in flight before the offer, held by the gate:
		// run's write of a queued frame, or a write-through.
		ahead  string
		tried  int // TryWrite calls of the stream
		direct bool
	}{
		{"idle", false, false, false, protocol.ClassChat, "", 1, true},
		{"system class", false, false, false, protocol.ClassSystem, "", 1, true},
		{"stream refuses", false, true, false, protocol.ClassChat, "", 1, false},
		{"no TryWrite", true, false, false, protocol.ClassChat, "", 0, false},
		{"class waits for company", false, false, false, protocol.ClassBulk, "", 0, false},
		{"battery mode", false, false, true, protocol.ClassChat, "", 0, false},
		{"run writing ahead", false, false, false, protocol.ClassChat, "run", 0, false},
		{"write-through ahead", false, false, false, protocol.ClassChat, "write-through", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gs := newGateStream()
			tg := &tryGate{gateStream: gs, refuse: tt.refuse}
			var s *sender
			if tt.plain {
				s = newSender(gs, Config{}.withDefaults())
			} else {
				s = newSender(tg, Config{}.withDefaults())
			}
			s.battery.Store(tt.battery)
			ctx, cancel := context.WithCancel(context.Background())
			done := runSender(t, ctx, s)
			var openGate sync.Once
			open := func() { openGate.Do(func() { close(gs.gate) }) }
			defer func() {
				open() // also after a failure, so that the writes end
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}()
			var want []byte
			ahead := make(chan error, 1)
			switch tt.ahead {
			case "run":
				f := numbered(tt.class, 0)
				want = append(want, f...)
				if err := s.enqueue(tt.class, f, time.Time{}, false); err != nil {
					t.Fatal(err)
				}
				<-gs.entered // run is writing it, held by the gate
				ahead <- nil
			case "write-through":
				f := numbered(tt.class, 0)
				want = append(want, f...)
				go func() { ahead <- s.enqueue(tt.class, f, time.Time{}, true) }()
				<-gs.entered // the write-through is held by the gate
			default:
				ahead <- nil
			}
			f := numbered(tt.class, 1)
			want = append(want, f...)
			if err := s.offer(tt.class, f, time.Time{}); err != nil {
				t.Fatal(err)
			}
			if n := tg.triedCount(); n != tt.tried {
				t.Fatalf("TryWrite called %d times, want %d", n, tt.tried)
			}
			s.mu.Lock()
			direct := !s.running && s.lenLocked() == 0
			s.mu.Unlock()
			if direct != tt.direct {
				t.Fatalf("written on the caller's goroutine: %v, want %v", direct, tt.direct)
			}
			if tt.direct {
				gs.mu.Lock()
				written := bytes.Clone(gs.written)
				gs.mu.Unlock()
				if !bytes.Equal(written, f) {
					t.Fatalf("a direct offer wrote %x, want %x", written, f)
				}
				if w, n := s.writes.Load(), s.framesSent.Load(); w != 1 || n != 1 {
					t.Fatalf("writes %d, frames sent %d after a direct offer; want 1, 1", w, n)
				}
			}
			open()
			if err := <-ahead; err != nil {
				t.Fatal(err)
			}
			frames := uint64(len(parseAll(t, want)))
			for deadline := time.Now().Add(10 * time.Second); s.framesSent.Load() < frames; {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d frames sent", s.framesSent.Load(), frames)
				}
				time.Sleep(time.Millisecond)
			}
			gs.mu.Lock()
			defer gs.mu.Unlock()
			if !bytes.Equal(gs.written, want) {
				t.Fatalf("written %q, want %q", gs.written, want)
			}
		})
	}
}

// TestSenderOfferStopped: a sender of a session that is ending writes
// nothing more on the caller's goroutine.
func TestSenderOfferStopped(t *testing.T) {
	tg := &tryGate{gateStream: newGateStream()}
	s := newSender(tg, Config{}.withDefaults())
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(t, ctx, s)
	s.stop()
	if err := s.offer(protocol.ClassChat, numbered(protocol.ClassChat, 1), time.Time{}); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := tg.triedCount(); n != 0 {
		t.Fatalf("TryWrite called %d times on a stopped sender", n)
	}
	if n := s.queued(); n != 1 {
		t.Fatalf("%d frames queued, want 1", n)
	}
}

// TestSenderOfferFails: a stream that takes the frame but fails ends the
// session through onError, and offer returns the failure.
func TestSenderOfferFails(t *testing.T) {
	boom := errors.New("socket failed")
	tg := &tryGate{gateStream: newGateStream(), fail: boom}
	close(tg.gate) // a queued frame is written at once
	s := newSender(tg, Config{}.withDefaults())
	var reported error
	s.onError = func(err error) { reported = err }
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(t, ctx, s)
	err := s.offer(protocol.ClassChat, numbered(protocol.ClassChat, 1), time.Time{})
	cancel()
	<-done
	if !errors.Is(err, boom) || !errors.Is(reported, boom) {
		t.Fatalf("offer = %v, reported %v; want both %v", err, reported, boom)
	}
	if n := s.framesSent.Load(); n != 0 {
		t.Fatalf("frames sent = %d after a failed write", n)
	}
}

// TestSendSharedWritesThrough: shared frames sent to a quiet session over
// a real wss:// or TLS/TCP link arrive complete and in order, and are
// written on the caller's goroutine: no sender goroutine starts for them
// (D50).
func TestSendSharedWritesThrough(t *testing.T) {
	for _, tc := range []struct {
		name string
		pair func(*testing.T) (transport.Conn, transport.Conn)
	}{
		{"wss", wsPair},
		{"tcp", tcpPair},
	} {
		t.Run(tc.name, func(t *testing.T) { testSendSharedWritesThrough(t, tc.pair) })
	}
}

func testSendSharedWritesThrough(t *testing.T, pair func(*testing.T) (transport.Conn, transport.Conn)) {
	cli, srv := establishOn(t, pair, Config{}, Config{}, ClientInfo{})
	if _, ok := srv.send.w.(tryStream); !ok {
		t.Fatalf("the control stream (%T) has no TryWrite", srv.send.w)
	}
	// idle reports that no run goroutine exists and nothing is queued:
	// a frame sent now and found so afterwards was written by SendShared
	// itself, since a queued frame starts a run.
	idle := func() bool {
		srv.send.mu.Lock()
		defer srv.send.mu.Unlock()
		return !srv.send.running && srv.send.lenLocked() == 0
	}
	// waitIdle waits for a run goroutine, started by a frame that found
	// the link busy, to end after senderIdleRelease, and for the link's
	// writer to end too: a writer that wrote more than one batch lingers
	// for its own idle release, and while it runs the link refuses
	// TryWrite (each frame it then writes keeps it lingering). No other
	// link of this package's tests is open at this point.
	waitIdle := func() {
		for deadline := time.Now().Add(10 * time.Second); !idle() || goroutinesIn("mux.(*Conn).writeLoop") > 0; {
			if time.Now().After(deadline) {
				t.Fatal("the server's sender never went idle")
			}
			time.Sleep(time.Millisecond)
		}
	}
	const n = 20
	before := srv.Stats()
	direct := 0
	for i := range n {
		waitIdle()
		env := &wire.Envelope{ID: []byte{byte(i)}, Kind: wire.KindEvent, Route: wire.Route{Kind: wire.RouteChannel, Name: "room"},
			Class: protocol.ClassChat, Seq: uint64(i + 1), Body: []byte(fmt.Sprint("event ", i))}
		if err := srv.SendShared(NewSharedEnvelope(wire.FrameEvent, env, time.Now())); err != nil {
			t.Fatalf("SendShared %d: %v", i, err)
		}
		if idle() {
			direct++
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		in, err := cli.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv %d: %v", i, err)
		}
		if in.Type != wire.FrameEvent || in.Envelope.Seq != uint64(i+1) || string(in.Envelope.Body) != fmt.Sprint("event ", i) {
			t.Fatalf("message %d: %s seq %d body %q", i, in.Type, in.Envelope.Seq, in.Envelope.Body)
		}
	}
	t.Logf("%d of %d frames written on the caller's goroutine", direct, n)
	if direct == 0 {
		t.Fatal("every frame went through the sender goroutine")
	}
	if st := srv.Stats(); st.FramesSent-before.FramesSent != n {
		t.Fatalf("frames sent %d, want %d", st.FramesSent-before.FramesSent, n)
	}
}

// TestSenderOfferQuiet: offer writes directly only to a session that had
// no frame written for offerQuiet; frames that follow closely are queued
// for run, which batches them, and all arrive in order (D50).
func TestSenderOfferQuiet(t *testing.T) {
	gs := newGateStream()
	close(gs.gate)
	tg := &tryGate{gateStream: gs}
	s := newSender(tg, Config{}.withDefaults())
	ctx, cancel := context.WithCancel(context.Background())
	done := runSender(t, ctx, s)
	var want []byte
	offer := func(i int) {
		f := numbered(protocol.ClassChat, i)
		want = append(want, f...)
		if err := s.offer(protocol.ClassChat, f, time.Time{}); err != nil {
			t.Fatalf("offer %d: %v", i, err)
		}
	}
	// The clock runs backwards far enough for the first offer to find
	// the session quiet, however recently the sender was made.
	s.lastWrite.Store(0)
	offer(0)
	if n := tg.triedCount(); n != 1 {
		t.Fatalf("first offer: %d TryWrite calls, want 1", n)
	}
	// Straight after it: not quiet, so queued whatever the stream says.
	s.lastWrite.Store(time.Now().UnixNano())
	offer(1)
	offer(2)
	if n := tg.triedCount(); n != 1 {
		t.Fatalf("offers within offerQuiet: %d TryWrite calls, want still 1", n)
	}
	for deadline := time.Now().Add(10 * time.Second); s.framesSent.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of 3 frames sent", s.framesSent.Load())
		}
		time.Sleep(time.Millisecond)
	}
	// Quiet again after offerQuiet: written directly.
	s.lastWrite.Store(time.Now().Add(-2 * offerQuiet).UnixNano())
	offer(3)
	if n := tg.triedCount(); n != 2 {
		t.Fatalf("offer after a quiet spell: %d TryWrite calls, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if !bytes.Equal(gs.written, want) {
		t.Fatalf("written %q, want %q", gs.written, want)
	}
}
