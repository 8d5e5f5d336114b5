package quic

import (
	"sync"
	"sync/atomic"
)

// datagramQueue decouples SendDatagram from the QUIC stack's own datagram
// queue. quic-go v0.65 keeps up to 32 outgoing DATAGRAM frames and then
// blocks the sender until congestion control lets one out; a media sender
// must never block, so this queue absorbs bursts and, when full, drops the
// oldest datagram (transport.Conn: stale datagrams are dropped, never queued
// without bound). One goroutine, run, feeds the stack.
type datagramQueue struct {
	// send hands one datagram to the QUIC stack; it may block while the
	// stack's queue is full and returns an error once the connection ends.
	send func([]byte) error
	wake chan struct{} // capacity 1: "the queue may be non-empty"

	mu   sync.Mutex
	ring [][]byte // fixed capacity; ring[head] is the oldest
	head int
	n    int

	sent    atomic.Uint64 // accepted by the QUIC stack
	dropped atomic.Uint64 // evicted by a newer datagram or refused by the stack
}

func newDatagramQueue(limit int, send func([]byte) error) *datagramQueue {
	return &datagramQueue{
		send: send,
		wake: make(chan struct{}, 1),
		ring: make([][]byte, limit),
	}
}

// push queues a copy of b, evicting the oldest datagram when full.
func (q *datagramQueue) push(b []byte) {
	// Copy before taking the lock: the caller may reuse b right away.
	c := make([]byte, len(b))
	copy(c, b)
	q.mu.Lock()
	if q.n == len(q.ring) {
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.dropped.Add(1)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = c
	q.n++
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

// pop removes and returns the oldest datagram.
func (q *datagramQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, false
	}
	b := q.ring[q.head]
	q.ring[q.head] = nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	return b, true
}

// len returns the number of queued datagrams.
func (q *datagramQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// run feeds queued datagrams to the QUIC stack until stop is closed. The
// connection that owns the queue starts it and waits for it in Close.
func (q *datagramQueue) run(stop <-chan struct{}) {
	for {
		b, ok := q.pop()
		if !ok {
			select {
			case <-stop:
				return
			case <-q.wake:
				continue
			}
		}
		if err := q.send(b); err != nil {
			// Either the connection ended (stop closes next) or the stack
			// found the datagram too large for the current path; both lose
			// this datagram only.
			q.dropped.Add(1)
			continue
		}
		q.sent.Add(1)
	}
}
