package gateway

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/transport"
)

// touchCounter is a session store that counts single and batched touches.
type touchCounter struct {
	storage.SessionStore
	batched interface {
		TouchSessions(ctx context.Context, ids []string) error
	}

	mu      sync.Mutex
	singles int
	batches [][]string
}

func (c *touchCounter) TouchSession(ctx context.Context, id string) error {
	c.mu.Lock()
	c.singles++
	c.mu.Unlock()
	return c.SessionStore.TouchSession(ctx, id)
}

func (c *touchCounter) TouchSessions(ctx context.Context, ids []string) error {
	c.mu.Lock()
	c.batches = append(c.batches, ids)
	c.mu.Unlock()
	return c.batched.TouchSessions(ctx, ids)
}

// TestTouchSessionsBatched checks that the gateway touches its live
// sessions' records with one batched call when the store offers it (D36),
// not one transaction per session.
func TestTouchSessionsBatched(t *testing.T) {
	b, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	f := newClusterFixture(t, b)
	batched, ok := f.store.(interface {
		TouchSessions(ctx context.Context, ids []string) error
	})
	if !ok {
		t.Skip("store without TouchSessions")
	}
	tc := &touchCounter{SessionStore: f.store, batched: batched}
	g := startGateway(t, Config{Bus: f.bus, Sessions: tc, NodeID: "gw"})
	for range 3 {
		g.dial(t, transport.KindMem)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := len(g.hosts)
		g.mu.Unlock()
		if n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions hosted, want 3", n)
		}
		time.Sleep(time.Millisecond)
	}
	g.touchSessions(context.Background())
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.singles != 0 || len(tc.batches) != 1 || len(tc.batches[0]) != 3 {
		t.Fatalf("%d single touches and batches %v; want one batch of 3", tc.singles, tc.batches)
	}
}
