package sfu

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrClosed is returned by a closed DownTrack's Receive.
var ErrClosed = errors.New("sfu: down track closed")

// queue is a bounded FIFO of packets that drops its oldest packet when
// full: the media QoS class's policy (JSP §11.3), and the reason a slow
// subscriber never slows the publisher or other subscribers: pushing never
// waits.
type queue struct {
	mu      sync.Mutex
	buf     [][]byte // ring, guarded by mu
	head    int      // guarded by mu
	n       int      // guarded by mu
	dropped uint64   // guarded by mu
	closed  bool     // guarded by mu
	notify  chan struct{}
}

func newQueue(size int) *queue {
	return &queue{buf: make([][]byte, size), notify: make(chan struct{}, 1)}
}

// push appends b, dropping the oldest packet if the queue is full. It
// reports whether a packet was dropped.
func (q *queue) push(b []byte) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	drop := q.n == len(q.buf)
	if drop {
		q.buf[q.head] = nil
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
	}
	q.buf[(q.head+q.n)%len(q.buf)] = b
	q.n++
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
	return drop
}

func (q *queue) tryPop() ([]byte, bool, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, false, q.closed
	}
	b := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	return b, true, false
}

// pop waits for a packet, the queue's close, or ctx.
func (q *queue) pop(ctx context.Context) ([]byte, error) {
	for {
		b, ok, closed := q.tryPop()
		if ok {
			return b, nil
		}
		if closed {
			return nil, ErrClosed
		}
		select {
		case <-q.notify:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// wait returns when a packet may be queued, after d, or with ctx's cause.
func (q *queue) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-q.notify:
		// The caller pops next: one reader per queue (the subscriber's
		// writer), so the signal is not passed on.
	case <-t.C:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *queue) drops() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.notify <- struct{}{}:
	default:
	}
}
