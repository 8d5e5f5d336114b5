package qos

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Outcome says what a [RecvQueues.Push] did under its class's policy.
type Outcome uint8

// Push outcomes (JSP §11.3).
const (
	// Accepted: the item was queued and nothing was dropped.
	Accepted Outcome = iota
	// AcceptedDroppedOldest: the item was queued and the oldest item of its
	// class (media) was dropped to make room.
	AcceptedDroppedOldest
	// Refused: the queue was full and the policy refused the item (chat
	// backpressure, bulk throttling, system past its large cap), or the
	// queues were closed.
	Refused
)

// String names the outcome.
func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case AcceptedDroppedOldest:
		return "accepted-dropped-oldest"
	case Refused:
		return "refused"
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// RecvQueues are bounded per-class FIFOs for received items (JSP §11.3),
// safe for concurrent use: typically one goroutine pushes what the network
// delivers and workers Pop. Pop serves classes in the Scheduler's order:
// system first, then media, chat and bulk by weighted fair share; items past
// their deadline are dropped, never delivered.
type RecvQueues[T any] struct {
	now func() time.Time
	// ready holds one token while items may be queued or the queues are
	// closed; Pop waits on it and passes it on to the next waiter.
	ready chan struct{}

	mu     sync.Mutex
	s      *Scheduler[T] // guarded by mu
	closed bool          // guarded by mu
}

// NewRecvQueues returns empty queues. Zero QueueLength entries default to
// protocol.DefaultRecvQueueLength (times SystemQueueFactor for system). It
// panics if cfg fails [Config.Validate], which is a programming error.
func NewRecvQueues[T any](cfg Config) *RecvQueues[T] {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.setDefaults(protocol.DefaultRecvQueueLength)
	s := &Scheduler[T]{cfg: cfg, fresh: true}
	return &RecvQueues[T]{now: cfg.Now, ready: make(chan struct{}, 1), s: s}
}

// OnExpire sets fn to be called with every item dropped because its
// deadline passed. fn runs with the queues' lock held and must not call
// back into them.
func (q *RecvQueues[T]) OnExpire(fn func(Item[T])) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.s.OnExpire(fn)
}

// Push queues it without blocking and reports the policy's outcome. A
// media item that displaced the oldest one returns AcceptedDroppedOldest
// and the dropped item; a refused item returns Refused and a QUEUE_FULL
// *jsperr.Error (or ErrClosed after Close).
func (q *RecvQueues[T]) Push(it Item[T]) (Outcome, []Item[T], error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return Refused, nil, ErrClosed
	}
	dropped, err := q.s.Push(it)
	if err != nil {
		return Refused, nil, err
	}
	q.signal()
	if len(dropped) > 0 {
		return AcceptedDroppedOldest, dropped, nil
	}
	return Accepted, nil, nil
}

// signal leaves a token for a waiting Pop; never blocks.
func (q *RecvQueues[T]) signal() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// Pop waits for the next item in priority order. It returns ctx's error if
// ctx ends first, and ErrClosed once the queues are closed and drained.
func (q *RecvQueues[T]) Pop(ctx context.Context) (Item[T], error) {
	for {
		q.mu.Lock()
		it, ok := q.s.Pop(q.now())
		closed := q.closed
		more := q.s.Len() > 0
		q.mu.Unlock()
		if ok || closed {
			if more || closed {
				// Pass the token on: other waiters have work, or must see
				// the close.
				q.signal()
			}
			if ok {
				return it, nil
			}
			return Item[T]{}, ErrClosed
		}
		select {
		case <-q.ready:
		case <-ctx.Done():
			return Item[T]{}, fmt.Errorf("qos: waiting for a received item: %w", ctx.Err())
		}
	}
}

// TryPop returns the next item without waiting, or false.
func (q *RecvQueues[T]) TryPop() (Item[T], bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Pop(q.now())
}

// Close refuses further pushes and wakes every Pop; queued items can still
// be popped.
func (q *RecvQueues[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

// Len returns the number of queued items.
func (q *RecvQueues[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Len()
}

// LenClass returns the number of queued items of class c.
func (q *RecvQueues[T]) LenClass(c protocol.Class) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.LenClass(c)
}

// Bytes returns the total Size of the queued items.
func (q *RecvQueues[T]) Bytes() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Bytes()
}

// Stats returns the counters of every class, indexed by class; Sent counts
// items handed out by Pop.
func (q *RecvQueues[T]) Stats() [protocol.NumClasses]ClassStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.s.Stats()
}
