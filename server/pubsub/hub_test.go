package pubsub

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func quietConfig(c Config) Config {
	c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	return c
}

func newHub(t *testing.T, c Config) *Hub[string] {
	t.Helper()
	h, err := New[string](quietConfig(c))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return h
}

func next(t *testing.T, s *Subscriber[string]) Delivery[string] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("%s Next: %v", s.Name(), err)
	}
	return d
}

func noDelivery(t *testing.T, s *Subscriber[string]) {
	t.Helper()
	if d, ok := s.pop(); ok {
		t.Fatalf("%s got unexpected delivery %+v", s.Name(), d)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, true},
		{"negative queue", Config{QueueLength: -1}, false},
		{"negative channels", Config{MaxChannels: -1}, false},
		{"negative subscriptions", Config{MaxSubscriptions: -1}, false},
		{"negative name length", Config{MaxChannelNameLen: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New[int](tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("New(%+v) err = %v, want ok=%v", tt.cfg, err, tt.ok)
			}
		})
	}
	h := newHub(t, Config{})
	if h.cfg.QueueLength != DefaultQueueLength || h.cfg.MaxChannels != DefaultMaxChannels ||
		h.cfg.MaxSubscriptions != DefaultMaxSubscriptions || h.cfg.MaxChannelNameLen != DefaultMaxChannelNameLen ||
		h.cfg.Sequencer == nil {
		t.Fatalf("defaults not applied: %+v", h.cfg)
	}
}

func TestFanOutAndSequence(t *testing.T) {
	h := newHub(t, Config{})
	a, b, c := h.NewSubscriber("a"), h.NewSubscriber("b"), h.NewSubscriber("c")
	defer a.Close()
	defer b.Close()
	defer c.Close()
	for _, s := range []*Subscriber[string]{a, b} {
		if err := s.Subscribe("room.1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Subscribe("room.2"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		channel string
		msg     string
		seq     uint64
		to      []*Subscriber[string]
	}{
		{"room.1", "m1", 1, []*Subscriber[string]{a, b}},
		{"room.2", "m2", 1, []*Subscriber[string]{c}},
		{"room.1", "m3", 2, []*Subscriber[string]{a, b}},
		{"room.3", "nobody", 1, nil},
		{"room.3", "nobody again", 2, nil},
	}
	for _, tt := range tests {
		seq, err := h.Publish(tt.channel, tt.msg)
		if err != nil || seq != tt.seq {
			t.Fatalf("Publish(%s, %s) = %d, %v; want seq %d", tt.channel, tt.msg, seq, err, tt.seq)
		}
		for _, s := range tt.to {
			d := next(t, s)
			want := Delivery[string]{Channel: tt.channel, Seq: tt.seq, Msg: tt.msg}
			if d != want {
				t.Fatalf("%s got %+v, want %+v", s.Name(), d, want)
			}
		}
		for _, s := range []*Subscriber[string]{a, b, c} {
			noDelivery(t, s)
		}
	}
	st := h.Stats()
	if st.Published != 5 || st.Delivered != 5 || st.Channels != 2 || st.Subscribers != 3 || st.Dropped != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestUnsubscribe(t *testing.T) {
	var events []string
	h := newHub(t, Config{OnChannel: func(ch string, active bool) { events = append(events, fmt.Sprintf("%s:%v", ch, active)) }})
	a, b := h.NewSubscriber("a"), h.NewSubscriber("b")
	defer b.Close()
	for _, s := range []*Subscriber[string]{a, b} {
		if err := s.Subscribe("x"); err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe("x"); err != nil { // repeated: no error, no second entry
			t.Fatal(err)
		}
	}
	if err := a.Unsubscribe("x"); err != nil {
		t.Fatal(err)
	}
	if err := a.Unsubscribe("never-joined"); err != nil {
		t.Fatalf("Unsubscribe of an unknown channel: %v", err)
	}
	if _, err := h.Publish("x", "m"); err != nil {
		t.Fatal(err)
	}
	noDelivery(t, a)
	if d := next(t, b); d.Msg != "m" {
		t.Fatalf("b got %+v", d)
	}
	if err := b.Unsubscribe("x"); err != nil {
		t.Fatal(err)
	}
	if got := h.Channels(); len(got) != 0 {
		t.Fatalf("channels after last unsubscribe = %v", got)
	}
	if err := a.Subscribe("x"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	a.Close() // idempotent
	if !errors.Is(a.Err(), ErrClosed) {
		t.Fatalf("Err after Close = %v", a.Err())
	}
	if err := a.Subscribe("y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close = %v", err)
	}
	if err := a.Unsubscribe("y"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Unsubscribe after Close = %v", err)
	}
	want := []string{"x:true", "x:false", "x:true", "x:false"}
	if !slices.Equal(events, want) {
		t.Fatalf("OnChannel events = %v, want %v", events, want)
	}
	if st := h.Stats(); st.Subscribers != 1 || st.Channels != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSlowConsumerDropped(t *testing.T) {
	const queue = 4
	h := newHub(t, Config{QueueLength: queue})
	slow, fast := h.NewSubscriber("slow"), h.NewSubscriber("fast")
	defer fast.Close()
	for _, s := range []*Subscriber[string]{slow, fast} {
		for _, ch := range []string{"a", "b"} {
			if err := s.Subscribe(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The fast subscriber reads everything; the slow one reads nothing and
	// overflows on publish queue+1.
	for i := range queue + 3 {
		seq, err := h.Publish("a", fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		if d := next(t, fast); d.Seq != seq || d.Msg != fmt.Sprint(i) {
			t.Fatalf("fast got %+v, want seq %d", d, seq)
		}
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber not dropped")
	}
	if code := jsperr.CodeOf(slow.Err()); code != jsperr.SlowConsumer {
		t.Fatalf("slow Err = %v, want SLOW_CONSUMER", slow.Err())
	}
	if _, err := slow.Next(context.Background()); jsperr.CodeOf(err) != jsperr.SlowConsumer {
		t.Fatalf("Next after drop = %v", err)
	}
	if err := slow.Subscribe("c"); jsperr.CodeOf(err) != jsperr.SlowConsumer {
		t.Fatalf("Subscribe after drop = %v", err)
	}
	// A publish on the other channel prunes the dropped subscriber there and
	// still reaches the fast one.
	if _, err := h.Publish("b", "on b"); err != nil {
		t.Fatal(err)
	}
	if d := next(t, fast); d.Msg != "on b" {
		t.Fatalf("fast got %+v", d)
	}
	if st := h.Stats(); st.Dropped != 1 {
		t.Fatalf("Dropped = %d, want 1", st.Dropped)
	}
	slow.Close()
	if jsperr.CodeOf(slow.Err()) != jsperr.SlowConsumer {
		t.Fatalf("Close replaced the drop reason: %v", slow.Err())
	}
	if got := h.Channels(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("channels = %v", got)
	}
}

func TestLimits(t *testing.T) {
	t.Run("channels", func(t *testing.T) {
		h := newHub(t, Config{MaxChannels: 2})
		s := h.NewSubscriber("s")
		defer s.Close()
		for _, ch := range []string{"a", "b"} {
			if err := s.Subscribe(ch); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Subscribe("c"); jsperr.CodeOf(err) != jsperr.LimitExceeded {
			t.Fatalf("third channel: %v, want LIMIT_EXCEEDED", err)
		}
		if err := s.Unsubscribe("a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe("c"); err != nil {
			t.Fatalf("after freeing a channel: %v", err)
		}
	})
	t.Run("subscriptions", func(t *testing.T) {
		h := newHub(t, Config{MaxSubscriptions: 1})
		s, o := h.NewSubscriber("s"), h.NewSubscriber("o")
		defer s.Close()
		defer o.Close()
		if err := s.Subscribe("a"); err != nil {
			t.Fatal(err)
		}
		if err := s.Subscribe("b"); jsperr.CodeOf(err) != jsperr.LimitExceeded {
			t.Fatalf("second subscription: %v, want LIMIT_EXCEEDED", err)
		}
		if err := o.Subscribe("b"); err != nil {
			t.Fatalf("limit is per subscriber: %v", err)
		}
	})
	t.Run("name length", func(t *testing.T) {
		h := newHub(t, Config{MaxChannelNameLen: 3})
		s := h.NewSubscriber("s")
		defer s.Close()
		tests := []struct {
			name string
			code jsperr.Code
		}{{"", jsperr.BadRequest}, {"abc", jsperr.NoError}, {"abcd", jsperr.BadRequest}}
		for _, tt := range tests {
			if err := s.Subscribe(tt.name); jsperr.CodeOf(err) != tt.code {
				t.Errorf("Subscribe(%q) = %v, want %s", tt.name, err, tt.code)
			}
			if _, err := h.Publish(tt.name, "m"); jsperr.CodeOf(err) != tt.code {
				t.Errorf("Publish(%q) = %v, want %s", tt.name, err, tt.code)
			}
		}
	})
	t.Run("sequencer", func(t *testing.T) {
		h := newHub(t, Config{Sequencer: NewMemorySequencer(1)})
		if seq, err := h.Publish("a", "m"); err != nil || seq != 1 {
			t.Fatalf("Publish a = %d, %v", seq, err)
		}
		if _, err := h.Publish("b", "m"); jsperr.CodeOf(err) != jsperr.LimitExceeded {
			t.Fatalf("Publish to a second channel: %v, want LIMIT_EXCEEDED", err)
		}
		if seq, err := h.Publish("a", "m"); err != nil || seq != 2 {
			t.Fatalf("Publish a again = %d, %v", seq, err)
		}
	})
}

func TestMemorySequencer(t *testing.T) {
	m := NewMemorySequencer(0)
	if m.max != DefaultMaxSequencedChannels {
		t.Fatalf("default max = %d", m.max)
	}
	for want := uint64(1); want <= 3; want++ {
		if got, err := m.NextSeq("c"); err != nil || got != want {
			t.Fatalf("NextSeq = %d, %v; want %d", got, err, want)
		}
	}
	if m.Last("c") != 3 || m.Last("other") != 0 {
		t.Fatalf("Last = %d, %d", m.Last("c"), m.Last("other"))
	}
}

// TestConcurrent runs publishers, subscribers joining and leaving, and
// readers at once; under -race it checks the locking, and it checks that
// every reader sees each channel's numbers in increasing order.
func TestConcurrent(t *testing.T) {
	h := newHub(t, Config{QueueLength: 1 << 14})
	channels := []string{"c0", "c1", "c2"}
	const readers, publishers, perPublisher = 4, 3, 300
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	subs := make([]*Subscriber[string], readers)
	for i := range subs {
		subs[i] = h.NewSubscriber(fmt.Sprint("r", i))
		for _, ch := range channels {
			if err := subs[i].Subscribe(ch); err != nil {
				t.Fatal(err)
			}
		}
	}
	errs := make(chan error, readers)
	for _, s := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := map[string]uint64{}
			for {
				d, err := s.Next(ctx)
				if err != nil {
					return
				}
				if d.Seq <= last[d.Channel] {
					errs <- fmt.Errorf("%s: channel %s seq %d after %d", s.Name(), d.Channel, d.Seq, last[d.Channel])
					return
				}
				last[d.Channel] = d.Seq
			}
		}()
	}
	// A churner joins and leaves channels throughout.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c := h.NewSubscriber("churn")
		defer c.Close()
		for i := 0; ctx.Err() == nil; i++ {
			ch := channels[i%len(channels)]
			_ = c.Subscribe(ch)
			_ = c.Unsubscribe(ch)
			if i%50 == 0 {
				_ = h.Stats()
			}
		}
	}()
	var pwg sync.WaitGroup
	for p := range publishers {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			for i := range perPublisher {
				if _, err := h.Publish(channels[(p+i)%len(channels)], "m"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	pwg.Wait()
	// Publishing is done; let the readers drain their queues.
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range subs {
		for s.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, s := range subs {
		s.Close()
	}
	if st := h.Stats(); st.Dropped != 0 || st.Subscribers != 0 || st.Channels != 0 {
		t.Fatalf("final stats = %+v", st)
	}
}

// PublishSeq delivers the caller's numbers, leaves the sequencer alone and
// is a no-op for a channel without subscribers.
func TestPublishSeq(t *testing.T) {
	seqr := NewMemorySequencer(0)
	h := newHub(t, Config{Sequencer: seqr})
	a := h.NewSubscriber("a")
	defer a.Close()
	if err := a.Subscribe("room"); err != nil {
		t.Fatal(err)
	}
	if err := h.PublishSeq("nobody", 9, "x"); err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{7, 8} {
		if err := h.PublishSeq("room", seq, fmt.Sprint("m", seq)); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range []uint64{7, 8} {
		d := next(t, a)
		if d.Seq != want || d.Msg != fmt.Sprint("m", want) || d.Channel != "room" {
			t.Fatalf("delivery %+v, want seq %d", d, want)
		}
	}
	if seqr.Last("room") != 0 || seqr.Last("nobody") != 0 {
		t.Fatal("PublishSeq consumed sequencer numbers")
	}
	if err := h.PublishSeq("", 1, "x"); jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("empty name: %v", err)
	}
	if st := h.Stats(); st.Published != 2 || st.Delivered != 2 {
		t.Fatalf("stats %+v", st)
	}
}
