package mux_test

import (
	"context"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/memtransport"
	"github.com/jetstreamproto/jsp/transport/mux"
)

// writers counts the link writer goroutines in the process.
func writers() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	return strings.Count(string(buf[:n]), "mux.(*Conn).writeLoop(")
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWriterRunsOnDemand: a link's writer goroutine exists only while
// frames are queued (and briefly after); writes after it ended start a
// new one and arrive in order (D27).
func TestWriterRunsOnDemand(t *testing.T) {
	client, server := memtransport.NewPair(mux.Config{})
	defer client.Close()
	defer server.Close()
	waitFor(t, "no writer on an idle link", func() bool { return writers() == 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	var peer transport.Stream
	for round := range 3 {
		msg := []byte{'a' + byte(round)}
		if _, err := st.Write(msg); err != nil {
			t.Fatal(err)
		}
		if peer == nil {
			if peer, err = server.AcceptStream(ctx); err != nil {
				t.Fatal(err)
			}
		}
		got := make([]byte, 1)
		if _, err := io.ReadFull(peer, got); err != nil || got[0] != msg[0] {
			t.Fatalf("round %d: read %q, %v; want %q", round, got, err, msg)
		}
		waitFor(t, "the writers to end", func() bool { return writers() == 0 })
	}
}

// TestArrivalAndReadCallbacks: the callbacks run for a new stream, a
// datagram, stream data, FIN and the link's close, and the Try calls and
// Readable agree with them.
func TestArrivalAndReadCallbacks(t *testing.T) {
	client, server := memtransport.NewPair(mux.Config{})
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	arrived := make(chan struct{}, 16)
	server.NotifyArrivals(func() {
		select {
		case arrived <- struct{}{}:
		default:
		}
	})
	wait := func(ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("no callback for %s", what)
		}
	}
	if _, ok := server.TryAcceptStream(); ok {
		t.Fatal("TryAcceptStream found a stream on a fresh link")
	}
	st, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	wait(arrived, "a new stream")
	ts, ok := server.TryAcceptStream()
	if !ok {
		t.Fatal("TryAcceptStream found nothing after the callback")
	}
	if err := client.SendDatagram([]byte("dg"), protocol.ClassMedia); err != nil {
		t.Fatal(err)
	}
	wait(arrived, "a datagram")
	if b, ok := server.TryReceiveDatagram(); !ok || string(b) != "dg" {
		t.Fatalf("TryReceiveDatagram = %q, %v", b, ok)
	}
	if _, ok := server.TryReceiveDatagram(); ok {
		t.Fatal("a second datagram out of one")
	}

	rn := ts.(transport.ReadNotifier)
	readable := make(chan struct{}, 16)
	rn.NotifyReadable(func() {
		select {
		case readable <- struct{}{}:
		default:
		}
	})
	wait(readable, "data buffered before registration")
	buf := make([]byte, 2)
	if _, err := io.ReadFull(ts, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	if rn.Readable() {
		t.Fatal("Readable with nothing buffered")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	wait(readable, "FIN")
	if !rn.Readable() {
		t.Fatal("not Readable after FIN")
	}
	if _, err := ts.Read(buf); err != io.EOF {
		t.Fatalf("read after FIN: %v, want EOF", err)
	}

	// A stream that is still open learns of the link's close.
	st2, err := client.OpenStream(ctx, protocol.ClassChat)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st2.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wait(arrived, "a second stream")
	ts2, ok := server.TryAcceptStream()
	if !ok {
		t.Fatal("second stream missing")
	}
	if _, err := io.ReadFull(ts2, buf[:1]); err != nil {
		t.Fatal(err)
	}
	rn2 := ts2.(transport.ReadNotifier)
	closed := make(chan struct{}, 4)
	rn2.NotifyReadable(func() {
		select {
		case closed <- struct{}{}:
		default:
		}
	})
	if rn2.Readable() {
		t.Fatal("Readable before the close")
	}
	server.Close()
	wait(closed, "the link's close")
	if !rn2.Readable() {
		t.Fatal("not Readable after the link closed")
	}
}
