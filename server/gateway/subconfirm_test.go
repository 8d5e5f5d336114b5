package gateway

import (
	"context"
	"sync"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/transport"
)

// lateSubBus is a bus whose plain subscriptions take effect only at the
// next Flush, as NATS's do at the server in the worst case: Subscribe
// sends SUB and returns, and a message published through another
// connection before the server read the SUB misses it.
type lateSubBus struct {
	bus.Bus
	mu      sync.Mutex
	pending []*lateSub
	flushes int
}

type lateSub struct {
	b       *lateSubBus
	subject string
	h       bus.Handler
	real    bus.Subscription // set at Flush
	gone    bool
}

func (b *lateSubBus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	s := &lateSub{b: b, subject: subject, h: h}
	b.mu.Lock()
	b.pending = append(b.pending, s)
	b.mu.Unlock()
	return s, nil
}

func (b *lateSubBus) Flush(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushes++
	for _, s := range b.pending {
		if s.gone {
			continue
		}
		real, err := b.Bus.Subscribe(s.subject, s.h)
		if err != nil {
			return err
		}
		s.real = real
	}
	b.pending = nil
	return nil
}

func (s *lateSub) Unsubscribe() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.gone = true
	if s.real != nil {
		return s.real.Unsubscribe()
	}
	return nil
}

// TestSubscribeAckMeansInEffect checks that a SUBSCRIBE is acknowledged
// only once the channel's bus subscription is in effect: a message
// committed right after the ACK reaches the subscriber. Without the wait,
// that one message was lost for it (a later one showed the gap and had
// it replayed), which a loaded machine showed on embedded NATS.
func TestSubscribeAckMeansInEffect(t *testing.T) {
	mb, err := membus.New(membus.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mb.Close() })
	b := &lateSubBus{Bus: mb}
	f := newClusterFixture(t, b)
	g := f.gateway(t, "gw-a")
	const ch = "room.confirm"
	sub := g.dial(t, transport.KindMem)
	subscribe(t, sub, ch)
	// A second subscriber of the same channel waits no more round trips.
	b.mu.Lock()
	flushes := b.flushes
	b.mu.Unlock()
	subscribe(t, g.dial(t, transport.KindMem), ch)
	b.mu.Lock()
	if b.flushes != flushes {
		t.Errorf("%d flushes for a channel already in effect, want none", b.flushes-flushes)
	}
	b.mu.Unlock()
	pub := g.dial(t, transport.KindMem)
	if err := publishAcked(t, pub, ch, "id0", "m0"); err != nil {
		t.Fatal(err)
	}
	wantEvents(t, sub, ch, 1, "m0")
}

func (s *lateSub) Subject() string { return s.subject }
