package bus

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// ChannelFanout gives a gateway one bus subscription per channel however
// many local sessions listen to it (ARCHITECTURE.md §1): the first local
// sink of a channel subscribes to the channel subject, the last one to
// leave unsubscribes, and every message that arrives is handed to each
// local sink of the channel.
//
// Lock order: ChannelFanout.mu, then the bus's own locks (Subscribe and
// Unsubscribe run with mu held, so a channel is never subscribed twice).
// Delivery takes no lock: each channel's sinks are a copy-on-write slice.
type ChannelFanout struct {
	bus     Bus
	subject func(channel string) (string, error)

	mu       sync.Mutex
	channels map[string]*fanoutChannel // guarded by mu
	closed   bool                      // guarded by mu

	subscribes   atomic.Uint64
	unsubscribes atomic.Uint64
	delivered    atomic.Uint64
}

type fanoutChannel struct {
	name  string
	sub   Subscription                  // set under ChannelFanout.mu
	sinks atomic.Pointer[[]*FanoutSink] // copy-on-write, written under ChannelFanout.mu
}

// Sink receives the messages of one channel for one local subscriber. It
// runs on the channel's bus delivery goroutine and must not block: a sink
// that blocks delays every local subscriber of the channel. Typically it
// queues the message for its session (pubsub.Hub.Publish never blocks).
type Sink func(channel string, m *Msg)

// FanoutSink is one local subscription of a ChannelFanout.
type FanoutSink struct {
	f       *ChannelFanout
	ch      *fanoutChannel
	deliver Sink
	closed  bool // guarded by f.mu
}

// FanoutStats are counters of a ChannelFanout.
type FanoutStats struct {
	Channels     int    // channels with at least one local sink
	Sinks        int    // local sinks
	Subscribes   uint64 // bus subscriptions made
	Unsubscribes uint64 // bus subscriptions ended
	Delivered    uint64 // messages handed to sinks
}

// NewChannelFanout returns a fan-out over b; subject maps a channel name to
// its bus subject, usually Subjects.Channel.
func NewChannelFanout(b Bus, subject func(channel string) (string, error)) *ChannelFanout {
	return &ChannelFanout{bus: b, subject: subject, channels: map[string]*fanoutChannel{}}
}

// Subscribe adds a local sink for channel, subscribing the bus if it is the
// channel's first.
func (f *ChannelFanout) Subscribe(channel string, sink Sink) (*FanoutSink, error) {
	if sink == nil {
		return nil, fmt.Errorf("fanout subscribe %q: nil sink", channel)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, fmt.Errorf("fanout subscribe %q: %w", channel, ErrClosed)
	}
	ch := f.channels[channel]
	if ch == nil {
		subj, err := f.subject(channel)
		if err != nil {
			return nil, fmt.Errorf("fanout subscribe %q: %w", channel, err)
		}
		ch = &fanoutChannel{name: channel}
		ch.sinks.Store(&[]*FanoutSink{})
		sub, err := f.bus.Subscribe(subj, func(m *Msg) { f.dispatch(ch, m) })
		if err != nil {
			return nil, fmt.Errorf("fanout subscribe %q: %w", channel, err)
		}
		f.subscribes.Add(1)
		ch.sub = sub
		f.channels[channel] = ch
	}
	s := &FanoutSink{f: f, ch: ch, deliver: sink}
	old := *ch.sinks.Load()
	next := make([]*FanoutSink, len(old), len(old)+1)
	copy(next, old)
	next = append(next, s)
	ch.sinks.Store(&next)
	return s, nil
}

func (f *ChannelFanout) dispatch(ch *fanoutChannel, m *Msg) {
	sinks := *ch.sinks.Load()
	for _, s := range sinks {
		s.deliver(ch.name, m)
	}
	f.delivered.Add(uint64(len(sinks)))
}

// Close removes the sink, unsubscribing the bus if it was the channel's
// last. Safe to call more than once and from inside a Sink.
func (s *FanoutSink) Close() error {
	f := s.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	old := *s.ch.sinks.Load()
	next := make([]*FanoutSink, 0, len(old))
	for _, o := range old {
		if o != s {
			next = append(next, o)
		}
	}
	s.ch.sinks.Store(&next)
	if len(next) > 0 || f.channels[s.ch.name] != s.ch {
		return nil
	}
	delete(f.channels, s.ch.name)
	f.unsubscribes.Add(1)
	if err := s.ch.sub.Unsubscribe(); err != nil {
		return fmt.Errorf("fanout unsubscribe %q: %w", s.ch.name, err)
	}
	return nil
}

// Close unsubscribes every channel and refuses new sinks. Sinks already
// handed a message may still be running when it returns.
func (f *ChannelFanout) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	var first error
	for name, ch := range f.channels {
		for _, s := range *ch.sinks.Load() {
			s.closed = true
		}
		ch.sinks.Store(&[]*FanoutSink{})
		delete(f.channels, name)
		f.unsubscribes.Add(1)
		if err := ch.sub.Unsubscribe(); err != nil && first == nil {
			first = fmt.Errorf("fanout close: unsubscribe %q: %w", name, err)
		}
	}
	return first
}

// Stats returns a snapshot of the fan-out's counters.
func (f *ChannelFanout) Stats() FanoutStats {
	f.mu.Lock()
	st := FanoutStats{Channels: len(f.channels)}
	for _, ch := range f.channels {
		st.Sinks += len(*ch.sinks.Load())
	}
	f.mu.Unlock()
	st.Subscribes = f.subscribes.Load()
	st.Unsubscribes = f.unsubscribes.Load()
	st.Delivered = f.delivered.Load()
	return st
}
