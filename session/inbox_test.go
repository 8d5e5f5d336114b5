package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/wire"
)

// recvQueued returns how many messages wait in the queues Recv reads.
func recvQueued(s *Session) int {
	s.recvMu.Lock()
	defer s.recvMu.Unlock()
	if s.recvQ == nil {
		return 0
	}
	return s.recvQ.Len()
}

// publishBody sends a chat PUBLISH whose body is body.
func publishBody(t *testing.T, cli *Session, body string) {
	t.Helper()
	env := &wire.Envelope{ID: []byte(body), Route: wire.Route{Kind: wire.RouteChannel, Name: "c"}, Class: protocol.ClassChat, Body: []byte(body)}
	if err := cli.SendEnvelope(wire.FramePublish, env); err != nil {
		t.Fatalf("send %s: %v", body, err)
	}
}

// sendPairs sends, for each i in [from, to), a chat PUBLISH "pub:<i>" and
// a SUBSCRIBE to channel "<i>" (class system).
func sendPairs(t *testing.T, cli *Session, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		publishBody(t, cli, fmt.Sprintf("pub:%02d", i))
		if err := cli.Send(&wire.Subscribe{Channel: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// wantPairsInOrder checks that got holds the n pairs sendPairs sent, each
// class in order.
func wantPairsInOrder(t *testing.T, got []string, n int) {
	t.Helper()
	pubs, subs := inClass(got, "pub:"), inClass(got, "sub:")
	if len(pubs) != n || len(subs) != n {
		t.Fatalf("%d publishes and %d subscribes, want %d each: %v", len(pubs), len(subs), n, got)
	}
	for i := range n {
		if pubs[i] != fmt.Sprintf("pub:%02d", i) || subs[i] != fmt.Sprintf("sub:%d", i) {
			t.Fatalf("out of order at %d: %v", i, got)
		}
	}
}

// waitQueued waits until n messages wait in the queues Recv reads.
func waitQueued(t *testing.T, srv *Session, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for recvQueued(srv) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages queued, want %d", recvQueued(srv), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collector records what HandleMessages hands over.
type collector struct {
	mu   sync.Mutex
	got  []string
	more chan struct{}
}

func newCollector() *collector { return &collector{more: make(chan struct{}, 1)} }

func (c *collector) add(in Incoming) {
	name := in.Type.String()
	switch {
	case in.Envelope != nil:
		name = string(in.Envelope.Body)
	case in.Type == wire.FrameSubscribe:
		name = "sub:" + in.Message.(*wire.Subscribe).Channel
	}
	c.mu.Lock()
	c.got = append(c.got, name)
	c.mu.Unlock()
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// wait waits until n messages have been handed over and returns them.
func (c *collector) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		got := append([]string(nil), c.got...)
		c.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-c.more:
		case <-deadline:
			t.Fatalf("%d messages handed over, want %d: %v", len(got), n, got)
		}
	}
}

// inClass returns the elements of got with prefix p, in order.
func inClass(got []string, p string) []string {
	var out []string
	for _, g := range got {
		if len(g) >= len(p) && g[:len(p)] == p {
			out = append(out, g)
		}
	}
	return out
}

// TestHandleMessagesOrder: messages queued before HandleMessages and those
// after it are handed over once each, in order within each class, and no
// hand-off goroutine remains once they are handled (D34).
func TestHandleMessagesOrder(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	const before, after = 5, 20
	sendPairs(t, cli, 0, before)
	waitQueued(t, srv, 2*before)
	c := newCollector()
	srv.HandleMessages(func(in Incoming) bool { c.add(in); return true })
	sendPairs(t, cli, before, before+after)
	got := c.wait(t, 2*(before+after))
	wantPairsInOrder(t, got, before+after)
	if _, err := srv.Recv(context.Background()); !errors.Is(err, errHandled) {
		t.Fatalf("Recv after HandleMessages = %v, want %v", err, errHandled)
	}
	waitNoGoroutines(t, "session.(*Session).handOff")
	srv.recvMu.Lock()
	idle := srv.handoff == nil && !srv.handing && srv.recvQ == nil
	srv.recvMu.Unlock()
	if !idle {
		t.Fatal("an idle hand-off still holds its queue or its goroutine")
	}
}

// TestHandleMessagesBackpressure: a callback that blocks holds chat
// messages back in a queue of Config.RecvQueueLength; once it goes on,
// every message arrives, in order, and the session is still up.
func TestHandleMessagesBackpressure(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{RecvQueueLength: 2}, ClientInfo{})
	gate := make(chan struct{})
	c := newCollector()
	srv.HandleMessages(func(in Incoming) bool {
		<-gate
		c.add(in)
		return true
	})
	const n = 30
	for i := range n {
		publishBody(t, cli, fmt.Sprintf("pub:%02d", i))
	}
	// Let the reader fill the queue and wait on it.
	time.Sleep(100 * time.Millisecond)
	srv.recvMu.Lock()
	queued := 0
	if srv.handoff != nil {
		queued = srv.handoff.Len()
	}
	srv.recvMu.Unlock()
	if queued > 2 {
		t.Fatalf("%d chat messages queued, want at most 2", queued)
	}
	close(gate)
	got := c.wait(t, n)
	for i, g := range got {
		if g != fmt.Sprintf("pub:%02d", i) {
			t.Fatalf("out of order at %d: %v", i, got)
		}
	}
	if err := srv.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
}

// TestHandleMessagesStop: after the callback returns false nothing more is
// handed over; Wait returns only after the callback's last call, which
// may close the session itself.
func TestHandleMessagesStop(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	release := make(chan struct{})
	var calls, inside sync.WaitGroup
	calls.Add(1)
	inside.Add(1)
	var mu sync.Mutex
	handled := 0
	srv.HandleMessages(func(in Incoming) bool {
		mu.Lock()
		handled++
		first := handled == 1
		mu.Unlock()
		if first {
			inside.Done()
			<-release
			_ = srv.Close() // the callback may close the session
			calls.Done()
		}
		return false
	})
	for i := range 5 {
		publishBody(t, cli, fmt.Sprintf("pub:%02d", i))
	}
	inside.Wait()
	waited := make(chan error, 1)
	go func() { waited <- srv.Wait() }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned while the callback ran: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	calls.Wait()
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after the callback")
	}
	mu.Lock()
	defer mu.Unlock()
	if handled != 1 {
		t.Fatalf("callback ran %d times, want 1", handled)
	}
}

// TestHandleMessagesAfterEnd: messages that arrived before the session
// ended are handed over even when HandleMessages is called after the end,
// and Wait joins that hand-off.
func TestHandleMessagesAfterEnd(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	publishBody(t, cli, "pub:00")
	deadline := time.Now().Add(10 * time.Second)
	for recvQueued(srv) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("message not queued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = srv.Close()
	c := newCollector()
	srv.HandleMessages(func(in Incoming) bool { c.add(in); return true })
	_ = srv.Wait()
	if got := c.wait(t, 1); got[0] != "pub:00" {
		t.Fatalf("handed over %v", got)
	}
}

// TestOnEnd: OnEnd's function runs once the session has ended, on its own
// goroutine (so it may call Wait), and at once when the session has
// already ended.
func TestOnEnd(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ended := make(chan error, 1)
	srv.OnEnd(func() { ended <- srv.Wait() })
	select {
	case err := <-ended:
		t.Fatalf("OnEnd ran while the session was up: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	_ = cli.Close()
	select {
	case err := <-ended:
		if err == nil {
			t.Fatal("Wait in OnEnd returned no cause")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnEnd did not run after the peer closed")
	}
	again := make(chan struct{})
	srv.OnEnd(func() { close(again) })
	select {
	case <-again:
	case <-time.After(10 * time.Second):
		t.Fatal("OnEnd after the end did not run")
	}
}

// TestDeliverInlineOrder: messages queued before DeliverInline are handed
// over within the call, in the order Recv would give them; later ones on
// the receiving goroutine in arrival order; the calls never overlap; Recv
// and HandleMessages then take nothing (D47).
func TestDeliverInlineOrder(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	const before, after = 5, 20
	sendPairs(t, cli, 0, before)
	waitQueued(t, srv, 2*before)
	c := newCollector()
	var inside, overlaps atomic.Int32
	srv.DeliverInline(func(in Incoming) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		c.add(in)
		inside.Add(-1)
	})
	if got := len(c.wait(t, 2*before)); got != 2*before {
		t.Fatalf("%d queued messages handed over within the call, want %d", got, 2*before)
	}
	srv.HandleMessages(func(Incoming) bool { t.Error("HandleMessages after DeliverInline got a message"); return true })
	sendPairs(t, cli, before, before+after)
	got := c.wait(t, 2*(before+after))
	wantPairsInOrder(t, got, before+after)
	// After the call: exactly the arrival order, classes interleaved.
	for i, g := range got[2*before:] {
		n := before + i/2
		want := fmt.Sprintf("pub:%02d", n)
		if i%2 == 1 {
			want = fmt.Sprintf("sub:%d", n)
		}
		if g != want {
			t.Fatalf("message %d after the call is %s, want %s: %v", i, g, want, got)
		}
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping calls", overlaps.Load())
	}
	if _, err := srv.Recv(context.Background()); !errors.Is(err, errHandled) {
		t.Fatalf("Recv after DeliverInline = %v, want %v", err, errHandled)
	}
	if recvQueued(srv) != 0 {
		t.Fatal("messages queued for Recv after DeliverInline")
	}
}
