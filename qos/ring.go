package qos

// ring is a FIFO of items on a growable circular buffer. It grows by
// doubling, so a queue that stays under its cap stops allocating.
type ring[T any] struct {
	buf  []T
	head int
	n    int
}

func (r *ring[T]) len() int { return r.n }

func (r *ring[T]) push(v T) {
	if r.n == len(r.buf) {
		nb := make([]T, max(8, 2*len(r.buf)))
		for i := 0; i < r.n; i++ {
			nb[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = nb, 0
	}
	r.buf[(r.head+r.n)%len(r.buf)] = v
	r.n++
}

// front returns the oldest element; the ring must not be empty.
func (r *ring[T]) front() *T { return &r.buf[r.head] }

// pop removes and returns the oldest element; the ring must not be empty.
func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero // drop the reference so the value can be collected
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	return v
}

// filter keeps the elements for which keep returns true, in order.
func (r *ring[T]) filter(keep func(*T) bool) {
	var zero T
	w := 0
	for i := 0; i < r.n; i++ {
		v := r.buf[(r.head+i)%len(r.buf)]
		if keep(&v) {
			r.buf[(r.head+w)%len(r.buf)] = v
			w++
		}
	}
	for i := w; i < r.n; i++ {
		r.buf[(r.head+i)%len(r.buf)] = zero
	}
	r.n = w
}
