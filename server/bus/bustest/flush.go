package bustest

import (
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
)

// testFlush checks bus.Flush: a subscription made on one connection and
// flushed receives the very next message published through another
// connection, with no marker sent first; and Flush on a closed bus that
// implements bus.Flusher fails.
func testFlush(t *testing.T, b bus.Bus) {
	sub, pub := b, b
	if _, ok := b.(bus.NoEchoOpener); ok {
		e, err := bus.OpenNoEcho(b, "edge-flush")
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		sub = e
	}
	const subj = "jsp.conf.ch.flush"
	for i, text := range []string{"first", "second"} {
		var got texts
		s := mustSub(t, sub, subj, got.handle)
		if err := bus.Flush(ctx(t), sub); err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(subj, bus.Msg{Data: []byte(text)}); err != nil {
			t.Fatal(err)
		}
		if m := got.wait(t, "the flushed subscription", 1); m[0] != text {
			t.Fatalf("round %d: received %q, want %q", i, m, text)
		}
		if err := s.Unsubscribe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.(bus.Flusher); ok {
		if err := bus.Flush(ctx(t), b); err == nil {
			t.Fatal("Flush on a closed bus succeeded")
		}
	}
}
