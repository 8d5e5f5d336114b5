// Package pubsub is the gateway's local fan-out point (JSP §5.7, §5.8): an
// in-memory hub from channel names to the local subscribers of each
// channel.
//
// The flow:
//
//	session A --SUBSCRIBE room.1--> Subscriber(A).Subscribe("room.1")
//	session B --SUBSCRIBE room.1--> Subscriber(B).Subscribe("room.1")
//	session C --PUBLISH room.1----> Hub.Publish("room.1", msg)
//	                                  seq := Sequencer.NextSeq("room.1")
//	                                  A.queue <- {room.1, seq, msg}
//	                                  B.queue <- {room.1, seq, msg}
//	A's owner: Subscriber.Next -> EVENT{seq} to session A
//
// A subscriber made with [Hub.NewSinkSubscriber] has no queue: the hub
// hands each delivery to its sink on the publishing goroutine, and the
// gateway's sink queues the EVENT on the session itself.
//
// There is one hub entry per channel, however many local sessions listen to
// it; a later message bus subscribes once per channel through
// [Config.OnChannel] and hands what arrives to [Hub.Publish]. Sequence
// numbers come from a [Sequencer], so durable storage can assign them at
// commit; the default [MemorySequencer] keeps them in memory.
//
// Each subscriber has one bounded delivery queue. Publishing never blocks: a
// subscriber whose queue is full is dropped with SLOW_CONSUMER and the other
// subscribers are unaffected. Its owner sees the error on [Subscriber.Done]
// and [Subscriber.Err] and closes its session.
//
// Lock order: Hub.mu before channel.mu. Publish holds Hub.mu for reading, so
// publishes to different channels run in parallel; publishes to one channel
// are serialized by channel.mu, which makes every subscriber see a channel's
// sequence numbers in increasing order.
package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Default limits; each is what a zero Config field means.
const (
	// DefaultQueueLength caps deliveries waiting for one subscriber.
	DefaultQueueLength = 1024
	// DefaultMaxChannels caps channels that have at least one local
	// subscriber.
	DefaultMaxChannels = 1 << 16
	// DefaultMaxSubscriptions caps the channels one subscriber may join.
	DefaultMaxSubscriptions = 1024
	// DefaultMaxChannelNameLen caps a channel name in bytes.
	DefaultMaxChannelNameLen = 256
	// DefaultFanOutSplit is the subscribers of one channel a publish
	// hands to one goroutine (Config.FanOutSplit).
	DefaultFanOutSplit = 1024
)

// ErrClosed is returned (wrapped) by operations on a closed subscriber.
var ErrClosed = errors.New("pubsub: subscriber closed")

// Config configures a Hub. The zero value is valid: every zero field means
// the documented default.
type Config struct {
	// QueueLength caps deliveries waiting for one subscriber; when it is
	// full the subscriber is dropped with SLOW_CONSUMER.
	// Default: DefaultQueueLength.
	QueueLength int
	// MaxChannels caps channels with at least one subscriber. Subscribing to
	// a new channel beyond it fails with LIMIT_EXCEEDED.
	// Default: DefaultMaxChannels.
	MaxChannels int
	// MaxSubscriptions caps the channels one subscriber may join; beyond it
	// Subscribe fails with LIMIT_EXCEEDED. Default: DefaultMaxSubscriptions.
	MaxSubscriptions int
	// MaxChannelNameLen caps a channel name in bytes.
	// Default: DefaultMaxChannelNameLen.
	MaxChannelNameLen int
	// Sequencer assigns per-channel sequence numbers.
	// Default: NewMemorySequencer(DefaultMaxSequencedChannels).
	Sequencer Sequencer
	// OnChannel, when set, is called with active=true when a channel gets
	// its first local subscriber and active=false when it loses its last
	// one, in that order for each channel. It runs with the hub locked, so
	// it must not block or call back into the hub; a message bus uses it to
	// queue its own subscribe and unsubscribe requests.
	OnChannel func(channel string, active bool)
	// FanOutSplit is how many subscribers of one channel a publish hands
	// to one goroutine: a channel with at least twice as many is
	// delivered by several goroutines at once, up to FanOutWorkers, each
	// with its own part of the subscribers, and the publish returns when
	// all are done (decision D50). Sinks that write to their sockets
	// themselves then use every core for a large channel. Negative: one
	// goroutine always. Default: DefaultFanOutSplit.
	FanOutSplit int
	// FanOutWorkers caps the goroutines that deliver one publish.
	// Default: runtime.GOMAXPROCS(0) when the hub is made.
	FanOutWorkers int
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.QueueLength == 0 {
		c.QueueLength = DefaultQueueLength
	}
	if c.MaxChannels == 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.MaxChannelNameLen == 0 {
		c.MaxChannelNameLen = DefaultMaxChannelNameLen
	}
	if c.Sequencer == nil {
		c.Sequencer = NewMemorySequencer(DefaultMaxSequencedChannels)
	}
	if c.FanOutSplit == 0 {
		c.FanOutSplit = DefaultFanOutSplit
	}
	if c.FanOutWorkers == 0 {
		c.FanOutWorkers = runtime.GOMAXPROCS(0)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	switch {
	case c.QueueLength < 0:
		return fmt.Errorf("pubsub: negative QueueLength %d", c.QueueLength)
	case c.MaxChannels < 0:
		return fmt.Errorf("pubsub: negative MaxChannels %d", c.MaxChannels)
	case c.MaxSubscriptions < 0:
		return fmt.Errorf("pubsub: negative MaxSubscriptions %d", c.MaxSubscriptions)
	case c.MaxChannelNameLen < 0:
		return fmt.Errorf("pubsub: negative MaxChannelNameLen %d", c.MaxChannelNameLen)
	case c.FanOutWorkers < 0:
		return fmt.Errorf("pubsub: negative FanOutWorkers %d", c.FanOutWorkers)
	}
	return nil
}

// Delivery is one published message as a subscriber receives it.
type Delivery[T any] struct {
	// Channel is the channel the message was published on.
	Channel string
	// Seq is the channel's sequence number of the message.
	Seq uint64
	// Msg is the published value. It is shared by every subscriber of the
	// channel and must be treated as read-only.
	Msg T
}

// Stats are counters of a hub.
type Stats struct {
	Channels    int    // channels with at least one subscriber
	Subscribers int    // open subscribers
	Published   uint64 // successful Publish calls
	Delivered   uint64 // deliveries queued to subscribers
	Dropped     uint64 // subscribers dropped as slow consumers
}

// Hub fans messages out from channels to their local subscribers. It is safe
// for concurrent use and owns no goroutines.
type Hub[T any] struct {
	cfg Config

	mu       sync.RWMutex
	channels map[string]*channel[T]      // guarded by mu
	subs     map[*Subscriber[T]]struct{} // guarded by mu

	published atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
}

// channel is the hub entry of one channel with local subscribers.
type channel[T any] struct {
	mu   sync.Mutex
	subs map[*Subscriber[T]]struct{} // guarded by mu (and Hub.mu held for reading at least)
}

// New returns an empty hub.
func New[T any](cfg Config) (*Hub[T], error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Hub[T]{
		cfg:      cfg,
		channels: map[string]*channel[T]{},
		subs:     map[*Subscriber[T]]struct{}{},
	}, nil
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub[T]) Stats() Stats {
	h.mu.RLock()
	nch, nsub := len(h.channels), len(h.subs)
	h.mu.RUnlock()
	return Stats{
		Channels:    nch,
		Subscribers: nsub,
		Published:   h.published.Load(),
		Delivered:   h.delivered.Load(),
		Dropped:     h.dropped.Load(),
	}
}

// Channels returns the names of the channels with local subscribers, sorted.
func (h *Hub[T]) Channels() []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	names := make([]string, 0, len(h.channels))
	for n := range h.channels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// checkName validates a channel name (JSP §5.7: a channel route name is
// 1..MaxChannelNameLen bytes).
func (h *Hub[T]) checkName(name string) error {
	if name == "" {
		return jsperr.New(jsperr.BadRequest, "empty channel name")
	}
	if len(name) > h.cfg.MaxChannelNameLen {
		return jsperr.Newf(jsperr.BadRequest, "channel name of %d bytes over limit %d", len(name), h.cfg.MaxChannelNameLen)
	}
	return nil
}

// Publish assigns the channel's next sequence number to msg and queues it
// to every subscriber of the channel, without blocking. A subscriber whose
// queue is full is dropped with SLOW_CONSUMER. Publishing to a channel
// without subscribers still consumes a sequence number, so that numbers
// stay those of the channel, not of its audience.
func (h *Hub[T]) Publish(name string, msg T) (seq uint64, err error) {
	if err := h.checkName(name); err != nil {
		return 0, err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	ch := h.channels[name]
	if ch == nil {
		seq, err := h.cfg.Sequencer.NextSeq(name)
		if err != nil {
			return 0, fmt.Errorf("pubsub: sequence for %q: %w", name, err)
		}
		h.published.Add(1)
		return seq, nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	// The number is taken under the channel lock so that queue order and
	// sequence order agree for every subscriber.
	seq, err = h.cfg.Sequencer.NextSeq(name)
	if err != nil {
		return 0, fmt.Errorf("pubsub: sequence for %q: %w", name, err)
	}
	h.deliverLocked(ch, Delivery[T]{Channel: name, Seq: seq, Msg: msg})
	return seq, nil
}

// PublishSeq queues msg with a sequence number assigned elsewhere (by
// storage at commit, ARCHITECTURE §1) to every subscriber of the channel,
// without blocking and without touching the Sequencer. The caller keeps
// each channel's numbers in order: a message bus delivers one channel's
// events in commit order. A channel without subscribers is a no-op.
func (h *Hub[T]) PublishSeq(name string, seq uint64, msg T) error {
	if err := h.checkName(name); err != nil {
		return err
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	ch := h.channels[name]
	if ch == nil {
		return nil
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	h.deliverLocked(ch, Delivery[T]{Channel: name, Seq: seq, Msg: msg})
	return nil
}

// deliverLocked queues d to every subscriber of ch; h.mu must be held for
// reading and ch.mu held.
func (h *Hub[T]) deliverLocked(ch *channel[T], d Delivery[T]) {
	if w := h.fanOutWorkers(len(ch.subs)); w > 1 {
		h.deliverSplitLocked(ch, d, w)
		return
	}
	for s := range ch.subs {
		if !h.deliverTo(s, d) {
			delete(ch.subs, s)
		}
	}
	h.published.Add(1)
}

// deliverTo hands d to s and reports whether s stays subscribed: false
// when s was dropped (by a publish on another channel, to be pruned here,
// or now as a slow consumer).
func (h *Hub[T]) deliverTo(s *Subscriber[T], d Delivery[T]) bool {
	if s.dropped.Load() {
		// Dropped by a publish on another channel; its owner's Close
		// removes it from the hub's other tables.
		return false
	}
	if s.push(d) {
		h.delivered.Add(1)
		return true
	}
	h.dropped.Add(1)
	s.fail(s.slowErr(d.Channel))
	h.cfg.Logger.Warn("pubsub: dropped slow subscriber", "subscriber", s.name, "channel", d.Channel, "queue", s.limit)
	return false
}

// fanOutWorkers returns how many goroutines deliver a publish to n
// subscribers: one per FanOutSplit of them, at most FanOutWorkers.
func (h *Hub[T]) fanOutWorkers(n int) int {
	if h.cfg.FanOutSplit <= 0 {
		return 1
	}
	return min(n/h.cfg.FanOutSplit, h.cfg.FanOutWorkers)
}

// deliverSplitLocked delivers d to the channel's subscribers from w
// goroutines, this one included, each with its own contiguous part of
// them, and returns once all are done: a subscriber still gets one
// channel's deliveries one at a time and in order, since the next
// publish waits for the channel's lock.
func (h *Hub[T]) deliverSplitLocked(ch *channel[T], d Delivery[T], w int) {
	subs := make([]*Subscriber[T], 0, len(ch.subs))
	for s := range ch.subs {
		subs = append(subs, s)
	}
	// Part i is subs[i*n/w : (i+1)*n/w]: the parts differ by one at most
	// and none is empty, as w <= n. Parts of ceil(n/w) would leave the
	// last ones past the end (n = 5, w = 4: 2, 2, 1 and [6:5]).
	gone := make([][]*Subscriber[T], w)
	var wg sync.WaitGroup
	run := func(i int) {
		for _, s := range subs[i*len(subs)/w : (i+1)*len(subs)/w] {
			if !h.deliverTo(s, d) {
				gone[i] = append(gone[i], s)
			}
		}
	}
	for i := 1; i < w; i++ {
		wg.Go(func() { run(i) })
	}
	run(0)
	wg.Wait()
	for _, g := range gone {
		for _, s := range g {
			delete(ch.subs, s)
		}
	}
	h.published.Add(1)
}

// NewSubscriber registers a subscriber with its own bounded delivery queue.
// The name identifies it in logs and errors. Its owner must call Close.
func (h *Hub[T]) NewSubscriber(name string) *Subscriber[T] {
	return h.newSubscriber(name, nil)
}

func (h *Hub[T]) newSubscriber(name string, sink func(Delivery[T]) bool) *Subscriber[T] {
	s := &Subscriber[T]{
		hub:   h,
		name:  name,
		sink:  sink,
		limit: h.cfg.QueueLength,
		done:  make(chan struct{}),
	}
	if sink == nil {
		// Only a queue's reader waits on wake; a sink subscriber, one per
		// session on a gateway, holds none, and its channel set is made
		// by its first Subscribe.
		s.wake = make(chan struct{}, 1)
	}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Subscriber receives the messages of the channels it joined, in one
// bounded queue. Subscribe, Unsubscribe and Close may be called from any
// goroutine; Next and C are meant for one reader.
type Subscriber[T any] struct {
	hub   *Hub[T]
	name  string
	limit int // QueueLength
	// sink, when set, takes each delivery instead of the queue (sink.go).
	sink func(Delivery[T]) bool

	// Lock order: hub.mu, then a channel's mu, then qmu.
	qmu   sync.Mutex
	queue ring[Delivery[T]] // guarded by qmu
	// wake holds a token when deliveries may be waiting; a push leaves
	// one, so a reader that found the queue empty and then waits on wake
	// cannot miss a delivery queued in between.
	wake chan struct{}

	done    chan struct{} // closed by fail
	once    sync.Once
	err     error // written before done is closed
	dropped atomic.Bool

	channels map[string]struct{} // guarded by hub.mu
	closed   bool                // guarded by hub.mu
}

// Name returns the name given to NewSubscriber.
func (s *Subscriber[T]) Name() string { return s.name }

// fail ends the subscriber with err, once.
func (s *Subscriber[T]) fail(err error) {
	s.once.Do(func() {
		s.err = err
		s.dropped.Store(true)
		close(s.done)
	})
}

// Done is closed when the subscriber is dropped or closed.
func (s *Subscriber[T]) Done() <-chan struct{} { return s.done }

// Err returns why the subscriber ended (SLOW_CONSUMER when it was dropped,
// ErrClosed after Close), or nil while it is open.
func (s *Subscriber[T]) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// push queues d unless the queue is full; a sink subscriber hands it to
// its sink instead.
func (s *Subscriber[T]) push(d Delivery[T]) bool {
	if s.sink != nil {
		return s.sink(d)
	}
	s.qmu.Lock()
	if s.queue.len() >= s.limit {
		s.qmu.Unlock()
		return false
	}
	s.queue.push(d)
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default: // a token is already waiting
	}
	return true
}

// pop takes the oldest queued delivery.
func (s *Subscriber[T]) pop() (Delivery[T], bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.queue.pop()
}

// Len returns the number of deliveries waiting in the queue.
func (s *Subscriber[T]) Len() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.queue.len()
}

// Next returns the next delivery. It fails when ctx ends or the subscriber
// has ended; after a drop, deliveries still queued are not returned, since
// the owner is about to close its session anyway.
func (s *Subscriber[T]) Next(ctx context.Context) (Delivery[T], error) {
	for {
		select {
		case <-s.done:
			return Delivery[T]{}, s.err
		default:
		}
		if d, ok := s.pop(); ok {
			return d, nil
		}
		select {
		case <-s.wake:
		case <-s.done:
			return Delivery[T]{}, s.err
		case <-ctx.Done():
			return Delivery[T]{}, ctx.Err()
		}
	}
}

// Subscribe joins a channel. Joining a channel twice is not an error.
func (s *Subscriber[T]) Subscribe(name string) error {
	h := s.hub
	if err := h.checkName(name); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed || s.dropped.Load() {
		return s.closedErr()
	}
	if _, ok := s.channels[name]; ok {
		return nil
	}
	if len(s.channels) >= h.cfg.MaxSubscriptions {
		return jsperr.Newf(jsperr.LimitExceeded, "subscriber %s: subscription limit %d reached", s.name, h.cfg.MaxSubscriptions)
	}
	ch := h.channels[name]
	if ch == nil {
		if len(h.channels) >= h.cfg.MaxChannels {
			return jsperr.Newf(jsperr.LimitExceeded, "channel limit %d reached", h.cfg.MaxChannels)
		}
		ch = &channel[T]{subs: map[*Subscriber[T]]struct{}{}}
		h.channels[name] = ch
		if h.cfg.OnChannel != nil {
			h.cfg.OnChannel(name, true)
		}
	}
	ch.mu.Lock()
	ch.subs[s] = struct{}{}
	ch.mu.Unlock()
	if s.channels == nil {
		s.channels = map[string]struct{}{}
	}
	s.channels[name] = struct{}{}
	return nil
}

// closedErr is the error for operations after the subscriber ended;
// h.mu must be held.
func (s *Subscriber[T]) closedErr() error {
	if err := s.Err(); err != nil && !errors.Is(err, ErrClosed) {
		return err
	}
	return fmt.Errorf("%w: %s", ErrClosed, s.name)
}

// Unsubscribe leaves a channel. Leaving a channel the subscriber is not in
// is not an error, so a client may repeat it.
func (s *Subscriber[T]) Unsubscribe(name string) error {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return s.closedErr()
	}
	s.leaveLocked(name)
	return nil
}

// leaveLocked removes s from one channel and drops the channel entry when it
// becomes empty; h.mu must be held for writing.
func (s *Subscriber[T]) leaveLocked(name string) {
	h := s.hub
	if _, ok := s.channels[name]; !ok {
		return
	}
	delete(s.channels, name)
	ch := h.channels[name]
	if ch == nil {
		return
	}
	ch.mu.Lock()
	delete(ch.subs, s)
	empty := len(ch.subs) == 0
	ch.mu.Unlock()
	if !empty {
		return
	}
	// Pruning in Publish may have removed other dropped subscribers
	// without deleting the entry; they still hold the name in their own
	// tables and will find the entry gone, which leaveLocked tolerates.
	delete(h.channels, name)
	if h.cfg.OnChannel != nil {
		h.cfg.OnChannel(name, false)
	}
}

// Channels returns the channels the subscriber is in, sorted.
func (s *Subscriber[T]) Channels() []string {
	s.hub.mu.RLock()
	defer s.hub.mu.RUnlock()
	names := make([]string, 0, len(s.channels))
	for n := range s.channels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Close leaves every channel and unregisters the subscriber. It is
// idempotent. Err keeps reporting SLOW_CONSUMER if the subscriber had been
// dropped before.
func (s *Subscriber[T]) Close() {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for name := range s.channels {
		s.leaveLocked(name)
	}
	delete(h.subs, s)
	s.fail(fmt.Errorf("%w: %s", ErrClosed, s.name))
}
