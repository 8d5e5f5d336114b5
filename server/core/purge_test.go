package core_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
)

// purgeCounter counts the Purge calls that reach a store and what they
// removed.
type purgeCounter struct {
	storage.Store
	calls, dedup atomic.Int64
}

func (p *purgeCounter) Purge(ctx context.Context) (storage.PurgeStats, error) {
	st, err := p.Store.Purge(ctx)
	p.calls.Add(1)
	p.dedup.Add(st.Dedup)
	return st, err
}

// The core purges expired de-duplication entries periodically, so the
// table stays bounded by the store's DedupWindow (JSP §4.4).
func TestPurgeLoop(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	st, err := storage.Open(context.Background(), "sqlite::memory:", storage.Config{Logger: quiet, Now: clock, DedupWindow: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pc := &purgeCounter{Store: st}
	c, err := core.New(core.Config{Bus: newMemBus(t), Store: pc, Logger: quiet, PurgeInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := st.AppendMessage(context.Background(), "ch", storage.Message{Sender: "u", ClientID: "k1", Body: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	now.Add(int64(2 * time.Minute))
	deadline := time.Now().Add(10 * time.Second)
	for pc.dedup.Load() < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("purge calls %d removed %d, want the expired entry removed", pc.calls.Load(), pc.dedup.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Later purges find nothing more: the entry was removed once, not
	// brought back and removed again by each purge.
	calls := pc.calls.Load()
	for pc.calls.Load() < calls+3 {
		if time.Now().After(deadline) {
			t.Fatalf("purge calls %d, want 3 more after %d", pc.calls.Load(), calls)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := pc.dedup.Load(); n != 1 {
		t.Fatalf("purges removed %d entries in all, want 1", n)
	}
}
