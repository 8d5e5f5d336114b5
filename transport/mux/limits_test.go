package mux_test

import (
	"context"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/wire"
)

func TestSendQueueLengthBoundsQueuedData(t *testing.T) {
	// The peer reads nothing: small writes pile up until the class queue
	// is full, then the writer waits instead of queueing more.
	cfg := mux.Config{SendQueueLength: 8}
	r := newRaw(t, cfg, true, 1024, false)
	s, _ := r.conn.OpenStream(context.Background(), protocol.ClassChat)
	s.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	for i := 0; i < 1000; i++ {
		if _, err := s.Write([]byte("tiny")); err != nil {
			break
		}
	}
	st := r.conn.Stats()
	if q := st.Queues[protocol.ClassChat]; q.Len > cfg.SendQueueLength {
		t.Fatalf("%d chat frames queued, over SendQueueLength %d", q.Len, cfg.SendQueueLength)
	}
	if st.WritesBlockedOnCredit == 0 {
		t.Fatal("the writer never waited for queue room")
	}
}

func TestChunkAndBatchSizes(t *testing.T) {
	cfg := mux.Config{MaxChunk: 1000, MaxWriteBatch: 4000}
	r := newRaw(t, cfg, true, 0, true)
	s, _ := r.conn.OpenStream(context.Background(), protocol.ClassBulk)
	s.Write(make([]byte, 100_000))
	s.Close()
	r.waitFrame(func(f rawFrame) bool { return f.h.Flags.Has(wire.FlagFIN) })
	r.mu.Lock()
	for _, f := range r.frames {
		if len(f.payload) > 1000 {
			t.Errorf("STREAM frame of %d bytes, over MaxChunk", len(f.payload))
		}
	}
	r.mu.Unlock()
	st := r.conn.Stats()
	// A batch stops growing once it holds MaxWriteBatch bytes, so it is at
	// most that plus one frame.
	if limit := uint64(4000 + 1000 + wire.MaxHeaderLen); st.BytesWritten > st.Writes*limit {
		t.Fatalf("%d bytes in %d writes: a write exceeded %d bytes", st.BytesWritten, st.Writes, limit)
	}
	if st.Writes < 100_000/(4000+1000+wire.MaxHeaderLen) {
		t.Fatalf("only %d writes for 100000 bytes", st.Writes)
	}
}

func TestCloseTimeoutBoundsLinger(t *testing.T) {
	// A peer that never closes its side: Close must still return, after
	// lingering at most CloseTimeout.
	a, b := memtransportPipe()
	defer b.Close()
	c := mux.New(a, mux.Config{CloseTimeout: 50 * time.Millisecond}, true)
	done := make(chan struct{})
	go func() {
		c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return although the peer never closed")
	}
}
