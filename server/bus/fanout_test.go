package bus_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/membus"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// countingBus counts the subscriptions made through it.
type countingBus struct {
	bus.Bus
	subscribes, active atomic.Int64
}

type countedSub struct {
	bus.Subscription
	b    *countingBus
	once sync.Once
}

func (s *countedSub) Unsubscribe() error {
	s.once.Do(func() { s.b.active.Add(-1) })
	return s.Subscription.Unsubscribe()
}

func (c *countingBus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	s, err := c.Bus.Subscribe(subject, h)
	if err != nil {
		return nil, err
	}
	c.subscribes.Add(1)
	c.active.Add(1)
	return &countedSub{Subscription: s, b: c}, nil
}

func newFanout(t *testing.T) (*bus.ChannelFanout, *countingBus, bus.Subjects) {
	t.Helper()
	mb, err := membus.New(membus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mb.Close() })
	s, err := bus.NewSubjects("test")
	if err != nil {
		t.Fatal(err)
	}
	cb := &countingBus{Bus: mb}
	return bus.NewChannelFanout(cb, s.Channel), cb, s
}

type inbox struct {
	mu  sync.Mutex
	got []string
}

func (i *inbox) sink(channel string, m *bus.Msg) {
	i.mu.Lock()
	i.got = append(i.got, channel+":"+string(m.Data))
	i.mu.Unlock()
}

func (i *inbox) len() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return len(i.got)
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFanoutOneBusSubscriptionPerChannel is the gateway rule of
// ARCHITECTURE.md §1: N local subscribers of a channel cause exactly one bus
// subscription, and each gets every message once.
func TestFanoutOneBusSubscriptionPerChannel(t *testing.T) {
	f, cb, s := newFanout(t)
	const n = 50
	inboxes := make([]*inbox, n)
	sinks := make([]*bus.FanoutSink, n)
	for i := range n {
		inboxes[i] = &inbox{}
		var err error
		if sinks[i], err = f.Subscribe("room.1", inboxes[i].sink); err != nil {
			t.Fatal(err)
		}
	}
	if got := cb.subscribes.Load(); got != 1 {
		t.Fatalf("%d local subscribers made %d bus subscriptions, want 1", n, got)
	}
	subj, _ := s.Channel("room.1")
	if err := cb.Publish(subj, bus.Msg{Data: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	for i, in := range inboxes {
		waitUntil(t, fmt.Sprintf("sink %d", i), func() bool { return in.len() == 1 })
		if in.got[0] != "room.1:hi" {
			t.Fatalf("sink %d got %q", i, in.got[0])
		}
	}
	if st := f.Stats(); st.Channels != 1 || st.Sinks != n || st.Subscribes != 1 || st.Delivered != n {
		t.Fatalf("stats %+v", st)
	}
	for i := range n - 1 {
		if err := sinks[i].Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := cb.active.Load(); got != 1 {
		t.Fatalf("bus subscription ended while a local subscriber remains (active %d)", got)
	}
	if err := sinks[n-1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := sinks[n-1].Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if got := cb.active.Load(); got != 0 {
		t.Fatalf("last local subscriber left, %d bus subscriptions remain", got)
	}
	if st := f.Stats(); st.Channels != 0 || st.Unsubscribes != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A new local subscriber subscribes again.
	again := &inbox{}
	if _, err := f.Subscribe("room.1", again.sink); err != nil {
		t.Fatal(err)
	}
	if got := cb.subscribes.Load(); got != 2 {
		t.Fatalf("resubscribe made %d subscriptions in total, want 2", got)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := cb.active.Load(); got != 0 {
		t.Fatalf("Close left %d bus subscriptions", got)
	}
	if _, err := f.Subscribe("room.2", again.sink); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("subscribe after close: %v", err)
	}
}

func TestFanoutChannelsAreSeparate(t *testing.T) {
	f, cb, s := newFanout(t)
	a, b := &inbox{}, &inbox{}
	if _, err := f.Subscribe("a", a.sink); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Subscribe("b", b.sink); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Subscribe("", a.sink); !errors.Is(err, bus.ErrInvalidName) {
		t.Fatalf("empty channel name: %v", err)
	}
	if _, err := f.Subscribe("c", nil); err == nil {
		t.Fatal("nil sink accepted")
	}
	for _, ch := range []string{"a", "b", "b"} {
		subj, _ := s.Channel(ch)
		if err := cb.Publish(subj, bus.Msg{Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	waitUntil(t, "deliveries", func() bool { return a.len() == 1 && b.len() == 2 })
	if cb.subscribes.Load() != 2 {
		t.Fatalf("%d bus subscriptions for 2 channels", cb.subscribes.Load())
	}
}

// TestFanoutConcurrent churns local subscribers of a few channels from many
// goroutines while messages flow; at the end no bus subscription is left
// and there never was more than one per channel.
func TestFanoutConcurrent(t *testing.T) {
	f, cb, s := newFanout(t)
	channels := []string{"c0", "c1", "c2"}
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			subj, _ := s.Channel(channels[i%len(channels)])
			_ = cb.Publish(subj, bus.Msg{Data: []byte("m")})
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				sk, err := f.Subscribe(channels[(w+i)%len(channels)], func(string, *bus.Msg) {})
				if err != nil {
					t.Error(err)
					return
				}
				if a := cb.active.Load(); a > int64(len(channels)) {
					t.Errorf("%d bus subscriptions for %d channels", a, len(channels))
				}
				if err := sk.Close(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	pubWG.Wait()
	if a := cb.active.Load(); a != 0 {
		t.Fatalf("%d bus subscriptions left after every local subscriber left", a)
	}
	if st := f.Stats(); st.Channels != 0 || st.Sinks != 0 || st.Subscribes != st.Unsubscribes {
		t.Fatalf("stats %+v", st)
	}
}
