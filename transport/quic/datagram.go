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
// without bound). One goroutine, run, feeds the stack, and only while
// datagrams are queued: push starts it when none runs, and it ends when the
// queue is empty, so a connection that sends no datagrams holds neither the
// goroutine nor the ring (decision D27).
type datagramQueue struct {
	// send hands one datagram to the QUIC stack; it may block while the
	// stack's queue is full and returns an error once the connection ends.
	send  func([]byte) error
	limit int
	wg    sync.WaitGroup // joins run; Add under mu while !stopped

	mu      sync.Mutex
	ring    [][]byte // guarded by mu; fixed capacity limit, allocated by the first push; ring[head] is the oldest
	head    int      // guarded by mu
	n       int      // guarded by mu
	running bool     // guarded by mu: a run goroutine exists
	stopped bool     // guarded by mu: close was called; start no run

	sent    atomic.Uint64 // accepted by the QUIC stack
	dropped atomic.Uint64 // evicted by a newer datagram or refused by the stack
}

func newDatagramQueue(limit int, send func([]byte) error) *datagramQueue {
	return &datagramQueue{send: send, limit: limit}
}

// push queues a copy of b, evicting the oldest datagram when full, and
// starts run if none runs.
func (q *datagramQueue) push(b []byte) {
	// Copy before taking the lock: the caller may reuse b right away.
	c := make([]byte, len(b))
	copy(c, b)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ring == nil {
		q.ring = make([][]byte, q.limit)
	}
	if q.n == len(q.ring) {
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
		q.dropped.Add(1)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = c
	q.n++
	if !q.running && !q.stopped {
		q.running = true
		q.wg.Add(1)
		go q.run()
	}
}

// pop removes and returns the oldest datagram. When the queue is empty it
// clears running under the same lock push takes, so run ends knowing that
// the next push starts another.
func (q *datagramQueue) pop() ([]byte, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		q.running = false
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

// run feeds queued datagrams to the QUIC stack until the queue is empty.
func (q *datagramQueue) run() {
	defer q.wg.Done()
	for {
		b, ok := q.pop()
		if !ok {
			return
		}
		if err := q.send(b); err != nil {
			// Either the connection ended (every later send fails too and
			// the queue drains) or the stack found the datagram too large
			// for the current path; both lose this datagram only.
			q.dropped.Add(1)
			continue
		}
		q.sent.Add(1)
	}
}

// close keeps later pushes from starting run and waits for a running one,
// which ends once the connection has closed (send then fails at once).
func (q *datagramQueue) close() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.wg.Wait()
}
