package membus

import (
	"fmt"
	"sync"

	"github.com/jetstreamproto/jsp/server/bus"
)

// noEchoConn is a connection of a Bus opened by OpenNoEcho: it shares the
// bus's subjects, queues, logs and buckets, and its subscriptions do not
// receive the messages published through it (NATS no-echo), which is what
// a gateway's channel subscriptions rely on (decision D44).
type noEchoConn struct {
	*Bus
	id   uint64
	name string

	mu     sync.Mutex
	closed bool // guarded by mu
}

var (
	_ bus.Bus          = (*noEchoConn)(nil)
	_ bus.NoEchoOpener = (*Bus)(nil)
)

// OpenNoEcho implements bus.NoEchoOpener. The connection's goroutines
// belong to b: b.Close also ends them.
func (b *Bus) OpenNoEcho(name string) (bus.Bus, error) {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("membus: open no-echo connection %q: %w", name, bus.ErrClosed)
	}
	return &noEchoConn{Bus: b, id: b.conns.Add(1), name: name}, nil
}

// Publish implements bus.Bus, skipping this connection's subscriptions.
func (c *noEchoConn) Publish(subject string, m bus.Msg) error {
	if err := c.check(); err != nil {
		return fmt.Errorf("membus: publish to %q: %w", subject, err)
	}
	_, err := c.Bus.publishAs(subject, "", c.id, m)
	return err
}

// Subscribe implements bus.Bus.
func (c *noEchoConn) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	return c.subscribe(subject, "", h)
}

// QueueSubscribe implements bus.Bus.
func (c *noEchoConn) QueueSubscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if !validQueue(queue) {
		return nil, fmt.Errorf("membus: queue subscribe %q: queue group %q: %w", subject, queue, bus.ErrInvalidName)
	}
	return c.subscribe(subject, queue, h)
}

func (c *noEchoConn) subscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	// Held across the bus's subscribe so that Close cannot miss it.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("membus: subscribe %q on %s: %w", subject, c.name, bus.ErrClosed)
	}
	return c.Bus.subscribeAs(subject, queue, c.id, h)
}

func (c *noEchoConn) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return bus.ErrClosed
	}
	return nil
}

// Close ends this connection's subscriptions, letting them handle what
// they hold, and leaves the bus open. Safe to call more than once.
func (c *noEchoConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	// The bus's table holds the subscriptions not yet ended (by
	// Unsubscribe or Bus.Close, which take them out of it).
	var subs []*subscription
	c.Bus.mu.Lock()
	for s := range c.Bus.subs {
		if s.conn == c.id {
			delete(c.Bus.subs, s)
			subs = append(subs, s)
		}
	}
	c.Bus.mu.Unlock()
	for _, s := range subs {
		close(s.drain) // like Bus.Close: finish what is queued
	}
	return nil
}
