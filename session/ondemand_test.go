package session

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// goroutinesIn counts the goroutines whose stack has a frame of fn.
func goroutinesIn(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, fn) {
			count++
		}
	}
	return count
}

// waitNoGoroutines waits until no goroutine runs any of fns.
func waitNoGoroutines(t *testing.T, fns ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := map[string]int{}
		for _, fn := range fns {
			if n := goroutinesIn(fn); n > 0 {
				left[fn] = n
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines still running: %v", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sessionGoroutines are the functions of the session's goroutines.
var sessionGoroutines = []string{
	"session.(*sender).wakeLocked.func1", // the sender's run
	"session.(*demand).loop",
	"session.(*Session).readControl",
	"session.(*Session).acceptStreams",
	"session.(*Session).receiveDatagrams",
}

// TestIdleSessionHoldsNoGoroutine: over a link that reports input by
// callback (mux), an established idle session, either end, holds no
// goroutine of its own; traffic starts them and they end again (D27).
func TestIdleSessionHoldsNoGoroutine(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	waitNoGoroutines(t, sessionGoroutines...)
	if cli.reading == nil || cli.arrivals == nil || srv.reading == nil || srv.arrivals == nil {
		t.Fatal("the mux link's callbacks were not used")
	}
	if cli.queues.Load() != nil || srv.queues.Load() != nil {
		t.Fatal("arrival queues made before anything arrived")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for round := range 3 {
		// Control stream both ways, then a datagram: each wakes its
		// reader, and each reader ends again once idle.
		if _, err := cli.Ping(ctx); err != nil {
			t.Fatalf("round %d: ping: %v", round, err)
		}
		b := []byte{byte(round), 1, 2, 3}
		if err := cli.SendDatagram(b, protocol.ClassMedia); err != nil {
			t.Fatal(err)
		}
		got, err := srv.ReceiveDatagram(ctx)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round %d: datagram %v, %v", round, got, err)
		}
		waitNoGoroutines(t, sessionGoroutines...)
		for _, s := range []*Session{cli, srv} {
			s.send.mu.Lock()
			held := s.send.sched != nil
			s.send.mu.Unlock()
			if held {
				t.Fatalf("round %d: an idle sender holds its scheduler", round)
			}
		}
	}
}

// TestHandleArrivals: streams and datagrams reach the callback, those
// queued before it was registered included, and AcceptStream sees none.
func TestHandleArrivals(t *testing.T) {
	cli, srv := establish(t, Config{}, Config{}, ClientInfo{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Queued before the callback exists.
	if _, err := cli.OpenStream(ctx, protocol.ClassChat, "early", nil); err != nil {
		t.Fatal(err)
	}
	if err := cli.SendDatagram([]byte("d1"), protocol.ClassMedia); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	q := srv.arrivalQueues()
	for (len(q.streams) < 1 || len(q.dgrams) < 1) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	var mu sync.Mutex
	var labels, dgrams []string
	got := make(chan struct{}, 8)
	srv.HandleArrivals(func(st *Stream, dg []byte) {
		mu.Lock()
		if st != nil {
			labels = append(labels, st.Label())
		} else {
			dgrams = append(dgrams, string(dg))
		}
		mu.Unlock()
		got <- struct{}{}
	})
	if _, err := cli.OpenStream(ctx, protocol.ClassChat, "late", nil); err != nil {
		t.Fatal(err)
	}
	if err := cli.SendDatagram([]byte("d2"), protocol.ClassMedia); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("arrivals: streams %v, datagrams %v", labels, dgrams)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(labels, ",") != "early,late" || strings.Join(dgrams, ",") != "d1,d2" {
		t.Fatalf("arrivals: streams %v, datagrams %v; want early,late and d1,d2", labels, dgrams)
	}
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if st, err := srv.AcceptStream(short); err == nil {
		t.Fatalf("AcceptStream returned %q after HandleArrivals", st.Label())
	}
}
