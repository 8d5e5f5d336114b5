package pubsub

// ring is a FIFO queue that grows by doubling and gives its memory back
// when it empties. A subscriber's queue used to be a channel with room for
// QueueLength deliveries, allocated up front: 32 KiB per session at the
// default 1024, most of an idle session's footprint on a busy gateway
// (docs/benchmarks.md, idle connections). Most queues hold a handful of
// deliveries at a time, so the ring starts empty and only a burst makes
// it grow; the cap is enforced by the caller.
type ring[T any] struct {
	buf  []T
	head int // index of the oldest element
	n    int // number of elements
}

// ringMinCap is the first allocation; ringKeepCap is the largest buffer
// kept once the queue is empty again.
const (
	ringMinCap  = 8
	ringKeepCap = 64
)

// len returns the number of queued elements.
func (r *ring[T]) len() int { return r.n }

// push appends v.
func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(ringMinCap, 2*len(r.buf)))
		// Unroll the wrapped contents into the new buffer, oldest first.
		k := copy(nb, r.buf[r.head:])
		copy(nb[k:], r.buf[:r.head])
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// pop removes and returns the oldest element.
func (r *ring[T]) pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero // drop the reference for the GC
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > ringKeepCap {
			// A burst is over: do not keep its buffer for an idle session.
			r.buf = nil
		}
	}
	return v, true
}
