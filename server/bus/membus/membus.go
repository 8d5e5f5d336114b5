// Package membus is an in-memory [bus.Bus] for unit tests of packages that
// use the bus (gateway, core, services): subjects with NATS wildcard
// rules, queue groups, request/reply, work queues with acknowledgements,
// backoff and redelivery, an event log and KV buckets with revisions,
// TTLs and watches, all without a NATS server. It aims at the behaviour of
// natsbus (the conformance suite in package bustest runs against both),
// not at its performance or durability: nothing survives Close.
//
// Every subscription, consumer and watcher owns one goroutine; Close stops
// them all and waits for them.
package membus

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
)

// DefaultPendingLimit caps messages queued for one subscription; beyond it
// new messages for that subscription are dropped, like a NATS slow
// consumer.
const DefaultPendingLimit = 65536

// Config configures a Bus. The zero value is valid.
type Config struct {
	// PendingLimit caps messages queued for one subscription.
	// Default: DefaultPendingLimit.
	PendingLimit int
	// Now is the clock for work queue, event log and KV timestamps and
	// TTLs. Default: time.Now.
	Now func() time.Time
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.PendingLimit == 0 {
		c.PendingLimit = DefaultPendingLimit
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *Config) validate() error {
	if c.PendingLimit < 0 {
		return fmt.Errorf("membus: negative PendingLimit %d", c.PendingLimit)
	}
	return nil
}

// Stats are counters of a Bus.
type Stats struct {
	Subscriptions int    // active subscriptions
	Published     uint64 // Publish calls that were accepted
	Delivered     uint64 // messages queued to subscriptions
	Dropped       uint64 // messages dropped because a subscription was full
}

// Bus is an in-memory bus.Bus. It is safe for concurrent use.
type Bus struct {
	cfg Config

	mu     sync.Mutex
	subs   map[*subscription]struct{} // guarded by mu
	queues map[string]*workQueue      // guarded by mu; by stream name
	logs   map[string]*eventLog       // guarded by mu; by stream name
	kvs    map[string]*kvBucket       // guarded by mu; by bucket name
	closed bool                       // guarded by mu
	// stoppers are the consumers and watchers to stop on Close.
	stoppers map[stopper]struct{} // guarded by mu

	wg        sync.WaitGroup // every goroutine the bus started
	rr        atomic.Uint64  // queue group round robin
	inbox     atomic.Uint64
	conns     atomic.Uint64 // numbers the no-echo connections
	published atomic.Uint64
	delivered atomic.Uint64
	dropped   atomic.Uint64
}

type stopper interface{ Stop() }

var _ bus.Bus = (*Bus)(nil)

// New returns an empty bus.
func New(cfg Config) (*Bus, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Bus{
		cfg:      cfg,
		subs:     map[*subscription]struct{}{},
		queues:   map[string]*workQueue{},
		logs:     map[string]*eventLog{},
		kvs:      map[string]*kvBucket{},
		stoppers: map[stopper]struct{}{},
	}, nil
}

// Stats returns a snapshot of the bus's counters.
func (b *Bus) Stats() Stats {
	b.mu.Lock()
	n := len(b.subs)
	b.mu.Unlock()
	return Stats{Subscriptions: n, Published: b.published.Load(), Delivered: b.delivered.Load(), Dropped: b.dropped.Load()}
}

type subscription struct {
	b       *Bus
	subject string
	queue   string
	conn    uint64 // the no-echo connection that made it; 0: the bus itself
	h       bus.Handler
	ch      chan *bus.Msg
	stop    chan struct{} // closed by Unsubscribe: drop what is queued
	drain   chan struct{} // closed by Bus.Close: finish what is queued
	once    sync.Once
}

func (s *subscription) Subject() string { return s.subject }

func (s *subscription) Unsubscribe() error {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	s.once.Do(func() { close(s.stop) })
	return nil
}

func (s *subscription) run() {
	defer s.b.wg.Done()
	for {
		select {
		case <-s.stop:
			return
		case m := <-s.ch:
			s.h(m)
		case <-s.drain:
			for {
				select {
				case <-s.stop:
					return
				case m := <-s.ch:
					s.h(m)
				default:
					return
				}
			}
		}
	}
}

func validQueue(q string) bool {
	return q != "" && bus.ValidateSubject(q) == nil && bus.IsLiteral(q) && len(q) <= bus.MaxTokenLen
}

func (b *Bus) subscribe(subject, queue string, h bus.Handler) (*subscription, error) {
	return b.subscribeAs(subject, queue, 0, h)
}

// subscribeAs subscribes for the connection conn (0: the bus itself).
func (b *Bus) subscribeAs(subject, queue string, conn uint64, h bus.Handler) (*subscription, error) {
	if err := bus.ValidateSubject(subject); err != nil {
		return nil, fmt.Errorf("membus: subscribe: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("membus: subscribe %q: nil handler", subject)
	}
	s := &subscription{
		b: b, subject: subject, queue: queue, conn: conn, h: h,
		ch:    make(chan *bus.Msg, b.cfg.PendingLimit),
		stop:  make(chan struct{}),
		drain: make(chan struct{}),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("membus: subscribe %q: %w", subject, bus.ErrClosed)
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	go s.run()
	return s, nil
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	return b.subscribe(subject, "", h)
}

// QueueSubscribe implements bus.Bus.
func (b *Bus) QueueSubscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if !validQueue(queue) {
		return nil, fmt.Errorf("membus: queue subscribe %q: queue group %q: %w", subject, queue, bus.ErrInvalidName)
	}
	return b.subscribe(subject, queue, h)
}

func cloneMsg(subject, reply string, m bus.Msg) *bus.Msg {
	out := &bus.Msg{Subject: subject, Reply: reply}
	if m.Data != nil {
		out.Data = append([]byte(nil), m.Data...)
	}
	if m.Header != nil {
		out.Header = make(bus.Header, len(m.Header))
		for k, v := range m.Header {
			out.Header[k] = append([]string(nil), v...)
		}
	}
	return out
}

// publish delivers to matching subscriptions and returns how many received
// the message.
func (b *Bus) publish(subject, reply string, m bus.Msg) (int, error) {
	return b.publishAs(subject, reply, 0, m)
}

// publishAs is publish from the connection conn (0: the bus itself): the
// subscriptions of a no-echo connection do not receive its own messages.
func (b *Bus) publishAs(subject, reply string, conn uint64, m bus.Msg) (int, error) {
	if !bus.IsLiteral(subject) {
		return 0, fmt.Errorf("membus: publish to %q: %w", subject, bus.ErrInvalidSubject)
	}
	msg := cloneMsg(subject, reply, m)
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, fmt.Errorf("membus: publish to %q: %w", subject, bus.ErrClosed)
	}
	var targets []*subscription
	var groups map[string][]*subscription
	for s := range b.subs {
		if !bus.MatchSubject(s.subject, subject) || (conn != 0 && s.conn == conn) {
			continue
		}
		if s.queue == "" {
			targets = append(targets, s)
			continue
		}
		if groups == nil {
			groups = map[string][]*subscription{}
		}
		groups[s.queue] = append(groups[s.queue], s)
	}
	b.mu.Unlock()
	for _, members := range groups {
		targets = append(targets, members[b.rr.Add(1)%uint64(len(members))])
	}
	b.published.Add(1)
	for _, s := range targets {
		select {
		case s.ch <- msg:
			b.delivered.Add(1)
		default:
			b.dropped.Add(1)
			b.cfg.Logger.Warn("membus: slow consumer, message dropped", "subject", subject, "subscription", s.subject)
		}
	}
	return len(targets), nil
}

// Publish implements bus.Bus.
func (b *Bus) Publish(subject string, m bus.Msg) error {
	_, err := b.publish(subject, "", m)
	return err
}

// Request implements bus.Bus.
func (b *Bus) Request(ctx context.Context, subject string, m bus.Msg) (*bus.Msg, error) {
	inbox := "_INBOX.membus." + strconv.FormatUint(b.inbox.Add(1), 10)
	replies := make(chan *bus.Msg, 1)
	sub, err := b.subscribe(inbox, "", func(r *bus.Msg) {
		select {
		case replies <- r:
		default: // only the first reply counts
		}
	})
	if err != nil {
		return nil, fmt.Errorf("membus: request %q: %w", subject, err)
	}
	defer sub.Unsubscribe()
	n, err := b.publish(subject, inbox, m)
	if err != nil {
		return nil, fmt.Errorf("membus: request: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("membus: request %q: %w", subject, bus.ErrNoResponders)
	}
	select {
	case r := <-replies:
		r.Subject = inbox
		return r, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("membus: request %q: %w", subject, context.Cause(ctx))
	}
}

func (b *Bus) addStopper(s stopper) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	b.stoppers[s] = struct{}{}
	return nil
}

func (b *Bus) removeStopper(s stopper) {
	b.mu.Lock()
	delete(b.stoppers, s)
	b.mu.Unlock()
}

// Close implements bus.Bus: it stops consumers and watchers, lets every
// subscription handle what it has queued, and waits for all goroutines.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	stoppers := maps.Clone(b.stoppers)
	subs := maps.Clone(b.subs)
	b.subs = map[*subscription]struct{}{}
	b.mu.Unlock()
	for s := range stoppers {
		s.Stop()
	}
	for s := range subs {
		close(s.drain)
	}
	b.wg.Wait()
	return nil
}

// now returns the bus clock; truncated to what the tests can compare.
func (b *Bus) now() time.Time { return b.cfg.Now() }

// broadcast is a channel closed and replaced on every change, so any number
// of waiters can block on "something changed" without a lock held.
type broadcast struct{ ch chan struct{} }

func newBroadcast() broadcast { return broadcast{ch: make(chan struct{})} }

// notifyLocked wakes every waiter; the caller holds the lock guarding b.
func (b *broadcast) notifyLocked() {
	close(b.ch)
	b.ch = make(chan struct{})
}
