package mux_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

// nowWriter is the method a session's sender uses on link streams.
type nowWriter interface {
	WriteNow(p []byte) (int, error)
}

// TestWriteThrough checks that a WriteNow finding nothing queued writes
// its frame itself (D45), that plain Write never does, and that the frames
// are the same either way.
func TestWriteThrough(t *testing.T) {
	for _, tc := range []struct {
		name    string
		disable bool // plain Write
	}{
		{"WriteNow", false},
		{"Write", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRaw(t, mux.Config{}, true, 0, true)
			s, err := r.conn.OpenStream(context.Background(), protocol.ClassChat)
			if err != nil {
				t.Fatal(err)
			}
			const n = 50
			for i := range n {
				write := s.(nowWriter).WriteNow
				if tc.disable {
					write = s.Write
				}
				if _, err := write(fmt.Appendf(nil, "message %d", i)); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				// Let the writer goroutine (Write) finish, so that each
				// WriteNow finds the link idle.
				waitWrites(t, r.conn, uint64(i+1))
			}
			var got []string
			r.waitFrame(func(f rawFrame) bool {
				if f.h.Type == wire.FrameStream && f.h.StreamID == s.ID() {
					got = append(got, string(f.payload))
				}
				return len(got) == n
			})
			for i, p := range got {
				if want := fmt.Sprintf("message %d", i); p != want {
					t.Fatalf("frame %d carries %q, want %q", i, p, want)
				}
			}
			st := r.conn.Stats()
			want := uint64(n)
			if tc.disable {
				want = 0
			}
			if st.WritesThrough != want {
				t.Fatalf("WritesThrough = %d, want %d", st.WritesThrough, want)
			}
		})
	}
}

// TestWriteThroughQueuesBehindWriter checks that a WriteNow made while the
// writer holds queued frames of the same class queues behind them instead
// of overtaking them.
func TestWriteThroughQueuesBehindWriter(t *testing.T) {
	r := newRaw(t, mux.Config{MaxChunk: 1000}, true, 1024, false)
	ctx := context.Background()
	big, _ := r.conn.OpenStream(ctx, protocol.ClassChat)
	// Larger than one chunk: queued for the writer, which blocks on the
	// pipe the raw peer does not read yet.
	payload := bytes.Repeat([]byte{'b'}, 20_000)
	if _, err := big.Write(payload); err != nil {
		t.Fatal(err)
	}
	small, _ := r.conn.OpenStream(ctx, protocol.ClassChat)
	if _, err := small.(nowWriter).WriteNow([]byte("after")); err != nil {
		t.Fatal(err)
	}
	r.startReading()
	r.waitFrame(func(f rawFrame) bool { return f.h.StreamID == small.ID() })
	r.mu.Lock()
	defer r.mu.Unlock()
	bigBytes := 0
	for _, f := range r.frames {
		switch f.h.StreamID {
		case big.ID():
			bigBytes += len(f.payload)
		case small.ID():
			if bigBytes != len(payload) {
				t.Fatalf("the later Write arrived after %d of the %d bytes written before it", bigBytes, len(payload))
			}
		}
	}
	if st := r.conn.Stats(); st.WritesThrough != 0 {
		t.Fatalf("WritesThrough = %d with the writer busy, want 0", st.WritesThrough)
	}
}

// TestWriteThroughKeepsShortDeadlines checks that a stream whose write
// deadline is sooner than the link's WriteTimeout queues its frame, so that
// its WriteNow returns at once instead of blocking on a peer that reads
// nothing.
func TestWriteThroughKeepsShortDeadlines(t *testing.T) {
	r := newRaw(t, mux.Config{}, true, 16, false)
	s, _ := r.conn.OpenStream(context.Background(), protocol.ClassChat)
	s.SetWriteDeadline(time.Now().Add(time.Second))
	done := make(chan error, 1)
	go func() {
		_, err := s.(nowWriter).WriteNow(bytes.Repeat([]byte{'x'}, 500)) // more than the pipe holds
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a WriteNow with a 1 s deadline blocked on the peer")
	}
	if st := r.conn.Stats(); st.WritesThrough != 0 {
		t.Fatalf("WritesThrough = %d, want 0", st.WritesThrough)
	}
}

// waitWrites waits until the link has made n writes.
func waitWrites(t *testing.T, c *mux.Conn, n uint64) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); c.Stats().Writes < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes, want %d", c.Stats().Writes, n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}
