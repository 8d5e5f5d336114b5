// Package replay rejects replayed messages (JSP §13, ARCHITECTURE §5
// "Replay"). It holds two filters, both pure state machines with no I/O:
//
//   - [Window], a sliding bitmap window over 64-bit counters, for anything
//     numbered by its sender: a counter is accepted once, and only while it
//     is no older than the window;
//   - [NonceChecker], for signed messages that carry a timestamp and a
//     random nonce (JSP §4): a message is accepted once, and only while its
//     timestamp is within the allowed clock skew of the receiver's clock.
//
// Neither filter is safe for concurrent use: each belongs to the one
// goroutine that owns its session or flow.
package replay

import "fmt"

// DefaultWindowSize is the number of counters a zero-size [Window] tracks
// behind the newest one.
const DefaultWindowSize = 2048

// MaxWindowSize caps the window so its bitmap stays small (128 KiB).
const MaxWindowSize = 1 << 20

const blockBits = 64

// Window is a sliding-window replay filter over 64-bit counters, in the
// manner of the IPsec anti-replay window (RFC 4303, Section 3.4.3).
//
// The window remembers which of the newest Size counters it has accepted.
// A counter newer than every one seen slides the window forward; one inside
// the window is accepted if its bit is clear; one behind the window is
// rejected, since the filter no longer knows whether it was seen.
//
// Check and Accept are separate so that a receiver can drop an obvious
// replay before spending work on authentication and mark the counter only
// once the message has proved genuine.
type Window struct {
	// ring holds the bitmap in 64-bit blocks: counter c lives in block
	// (c/64) mod len(ring), bit c mod 64. Sliding forward clears whole
	// blocks instead of shifting bits, so a slide costs at most one store
	// per block whatever the distance.
	ring    []uint64
	size    uint64 // counters tracked behind the newest: (len(ring)-1)*64
	newest  uint64
	started bool
}

// NewWindow returns a filter that tracks size counters behind the newest one
// (0 means [DefaultWindowSize]). size is rounded up to a multiple of 64.
func NewWindow(size int) (*Window, error) {
	if size == 0 {
		size = DefaultWindowSize
	}
	if size < 0 || size > MaxWindowSize {
		return nil, fmt.Errorf("replay: window size %d outside 1..%d", size, MaxWindowSize)
	}
	blocks := (size + blockBits - 1) / blockBits
	// One block more than the window needs: the block holding the newest
	// counter is only partly inside the window, so a full extra block keeps
	// at least size counters behind it.
	return &Window{ring: make([]uint64, blocks+1), size: uint64(blocks * blockBits)}, nil
}

// Size returns the number of counters the window tracks behind the newest.
func (w *Window) Size() int { return int(w.size) }

// Newest returns the highest counter accepted so far, and false before the
// first.
func (w *Window) Newest() (uint64, bool) { return w.newest, w.started }

// Check reports whether c would be accepted, without recording it.
func (w *Window) Check(c uint64) bool {
	if !w.started || c > w.newest {
		return true
	}
	if w.newest-c >= w.size {
		return false
	}
	blk, bit := w.pos(c)
	return w.ring[blk]&bit == 0
}

// Accept records c and reports whether it was new: true the first time a
// counter within the window is seen, false for a replay or a counter behind
// the window.
func (w *Window) Accept(c uint64) bool {
	if !w.Check(c) {
		return false
	}
	if !w.started || c > w.newest {
		w.slide(c)
	}
	blk, bit := w.pos(c)
	w.ring[blk] |= bit
	return true
}

// slide moves the window so that c is the newest counter, clearing the
// blocks that enter it.
func (w *Window) slide(c uint64) {
	n := uint64(len(w.ring))
	if !w.started {
		w.started = true
		w.newest = c
		return
	}
	from, to := w.newest/blockBits, c/blockBits
	steps := to - from
	if steps > n {
		steps = n
	}
	for i := uint64(1); i <= steps; i++ {
		w.ring[(from+i)%n] = 0
	}
	w.newest = c
}

func (w *Window) pos(c uint64) (int, uint64) {
	return int((c / blockBits) % uint64(len(w.ring))), 1 << (c % blockBits)
}

// Count returns how many counters inside the window have been accepted; it
// is meant for tests and debugging.
func (w *Window) Count() int {
	if !w.started {
		return 0
	}
	total := 0
	for c := w.newest; ; c-- {
		blk, bit := w.pos(c)
		if w.ring[blk]&bit != 0 {
			total++
		}
		if w.newest-c == w.size-1 || c == 0 {
			break
		}
	}
	return total
}
