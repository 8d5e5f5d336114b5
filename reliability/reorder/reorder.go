// Package reorder is the receiver's jitter and reorder buffer for media
// datagrams (JSP §13).
//
// Packets go in as they arrive, with their sequence number and the sender's
// media time; they come out in sequence order, each at its playout time:
//
//	playout(p) = base + sent(p) + delay
//
// where base maps the sender's clock onto the receiver's (the smallest
// transit time seen recently, so the fastest packet waits exactly delay) and
// delay is the target delay. The target adapts to the measured interarrival
// jitter with the estimator of RFC 3550, Section 6.4.1:
//
//	D(i-1, i) = (arrival(i) - arrival(i-1)) - (sent(i) - sent(i-1))
//	J        += (|D(i-1, i)| - J) / 16
//	delay     = clamp(JitterFactor * J, MinDelay, MaxDelay)
//
// A packet that has not arrived when the next one's playout time comes is
// declared lost, and the next one is released with LostBefore telling how
// many numbers were skipped, so a decoder can conceal them. A packet that
// arrives after its place was passed is late: counted and dropped. A packet
// repaired by retransmission or FEC is pushed with [Buffer.PushRecovered]:
// it takes its place in the order but does not feed the jitter estimate,
// since its extra delay is the repair's, not the network's.
//
// The buffer holds at most MaxPackets packets; when full it drops the
// oldest, as the media class does everywhere (JSP §11.3). It is a pure state
// machine: no I/O, no goroutines, time passed in.
package reorder

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Defaults for zero [Config] fields.
const (
	// DefaultMinDelay is the floor of the target delay.
	DefaultMinDelay = 20 * time.Millisecond
	// DefaultMaxDelay is the ceiling of the target delay.
	DefaultMaxDelay = 400 * time.Millisecond
	// DefaultJitterFactor multiplies the jitter estimate into a target
	// delay. The RFC 3550 estimate is a mean deviation; three of them
	// cover nearly all of a roughly normal spread of delays.
	DefaultJitterFactor = 3.0
	// DefaultMaxPackets caps the packets held.
	DefaultMaxPackets = 512
	// DefaultBaseWindow is how far back the smallest transit time is
	// looked for, so that the clock mapping follows route changes and
	// clock drift.
	DefaultBaseWindow = 10 * time.Second
)

// Config configures a [Buffer]. Zero fields take their defaults.
type Config struct {
	// MinDelay is the floor of the target delay. To give NACK
	// retransmissions a chance, set it to at least one RTT plus the
	// receiver's NACK delay. Default DefaultMinDelay.
	MinDelay time.Duration
	// MaxDelay is the ceiling of the target delay. Default
	// DefaultMaxDelay.
	MaxDelay time.Duration
	// JitterFactor turns the jitter estimate into a target delay.
	// Default DefaultJitterFactor.
	JitterFactor float64
	// MaxPackets caps the packets held. Default DefaultMaxPackets.
	MaxPackets int
	// BaseWindow is how long the smallest transit time is remembered.
	// Default DefaultBaseWindow.
	BaseWindow time.Duration
}

func (c *Config) setDefaults() {
	if c.MinDelay == 0 {
		c.MinDelay = DefaultMinDelay
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = max(DefaultMaxDelay, c.MinDelay)
	}
	if c.JitterFactor == 0 {
		c.JitterFactor = DefaultJitterFactor
	}
	if c.MaxPackets == 0 {
		c.MaxPackets = DefaultMaxPackets
	}
	if c.BaseWindow == 0 {
		c.BaseWindow = DefaultBaseWindow
	}
}

func (c *Config) validate() error {
	switch {
	case c.MinDelay < 0 || c.MaxDelay < c.MinDelay:
		return fmt.Errorf("reorder: delays must satisfy 0 <= MinDelay (%v) <= MaxDelay (%v)", c.MinDelay, c.MaxDelay)
	case !(c.JitterFactor > 0) || math.IsInf(c.JitterFactor, 0):
		return fmt.Errorf("reorder: JitterFactor %v must be a positive number", c.JitterFactor)
	case c.MaxPackets < 1:
		return fmt.Errorf("reorder: MaxPackets %d below 1", c.MaxPackets)
	case c.BaseWindow < 0:
		return fmt.Errorf("reorder: BaseWindow %v is negative", c.BaseWindow)
	}
	return nil
}

// Verdict says what [Buffer.Push] did with a packet.
type Verdict uint8

// Push outcomes.
const (
	// Accepted: the packet is buffered.
	Accepted Verdict = iota
	// Late: its place in the order was already passed; dropped.
	Late
	// Duplicate: the same sequence number is already buffered; dropped.
	Duplicate
	// Overflowed: the buffer was full and this packet was older than
	// every one held, so it was the one dropped.
	Overflowed
)

var verdictNames = [...]string{"accepted", "late", "duplicate", "overflowed"}

// String returns the verdict's name.
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// Item is a packet released by the buffer.
type Item[T any] struct {
	Seq   protocol.MediaSeq
	Value T
	// LostBefore is the number of sequence numbers just before Seq that
	// will never be released: declared lost, or dropped when the buffer
	// overflowed.
	LostBefore uint64
}

// Stats counts what a [Buffer] did.
type Stats struct {
	Pushed    uint64 // packets accepted, original and repaired
	Repaired  uint64 // of those, pushed with PushRecovered
	Released  uint64 // packets released
	Lost      uint64 // sequence numbers declared lost (never pushed)
	Late      uint64 // packets dropped because their place had passed
	Duplicate uint64 // packets dropped as duplicates
	Overflow  uint64 // packets dropped because the buffer was full
}

type entry[T any] struct {
	seq  protocol.MediaSeq
	sent time.Duration
	v    T
}

// Buffer is a jitter and reorder buffer for one media flow. It is not safe
// for concurrent use.
type Buffer[T any] struct {
	cfg Config
	buf []entry[T] // sorted by seq

	next       protocol.MediaSeq // lowest sequence number not yet passed
	started    bool              // next is valid: something was released or dropped
	pendingGap uint64            // numbers dropped on overflow, reported with the next release

	// Clock mapping: base = arrival - sent of the fastest recent packet,
	// kept as the minimum of the current and the previous half-window.
	curMin, prevMin time.Time
	curStart        time.Time
	haveBase        bool

	// RFC 3550 jitter estimate, in nanoseconds.
	jitter      float64
	lastTransit time.Duration
	epoch       time.Time // arrival time of the first packet; transit is measured from it
	haveTransit bool

	stats Stats
}

// New returns a buffer with the given configuration.
func New[T any](cfg Config) (*Buffer[T], error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Buffer[T]{cfg: cfg}, nil
}

// Stats returns the buffer's counters.
func (b *Buffer[T]) Stats() Stats { return b.stats }

// Len returns the number of packets held.
func (b *Buffer[T]) Len() int { return len(b.buf) }

// Jitter returns the current interarrival jitter estimate.
func (b *Buffer[T]) Jitter() time.Duration { return time.Duration(b.jitter) }

// Delay returns the current target delay.
func (b *Buffer[T]) Delay() time.Duration {
	d := time.Duration(b.cfg.JitterFactor * b.jitter)
	return min(max(d, b.cfg.MinDelay), b.cfg.MaxDelay)
}

// Push adds a packet as it arrived from the network: sequence number seq,
// the sender's media time sent (the media timestamp, extended and converted
// to a duration), its arrival time and its value. It updates the jitter
// estimate and the clock mapping.
func (b *Buffer[T]) Push(seq protocol.MediaSeq, sent time.Duration, arrival time.Time, v T) Verdict {
	verdict := b.insert(seq, sent, v)
	if verdict != Accepted {
		return verdict
	}
	b.observe(sent, arrival)
	return Accepted
}

// PushRecovered adds a packet rebuilt by FEC or retransmitted after a NACK,
// at time arrival. It is ordered and released like any other but leaves the
// jitter estimate alone, and moves the clock mapping only if no original
// packet has set it yet (so that a flow whose first packets were all
// repaired still gets playout times).
func (b *Buffer[T]) PushRecovered(seq protocol.MediaSeq, sent time.Duration, arrival time.Time, v T) Verdict {
	verdict := b.insert(seq, sent, v)
	if verdict != Accepted {
		return verdict
	}
	b.stats.Repaired++
	if !b.haveBase {
		b.curMin, b.prevMin, b.curStart, b.haveBase = arrival.Add(-sent), arrival.Add(-sent), arrival, true
	}
	return Accepted
}

func (b *Buffer[T]) insert(seq protocol.MediaSeq, sent time.Duration, v T) Verdict {
	if b.started && seq < b.next {
		b.stats.Late++
		return Late
	}
	i, found := slices.BinarySearchFunc(b.buf, seq, func(e entry[T], s protocol.MediaSeq) int {
		switch {
		case e.seq < s:
			return -1
		case e.seq > s:
			return 1
		}
		return 0
	})
	if found {
		b.stats.Duplicate++
		return Duplicate
	}
	if len(b.buf) >= b.cfg.MaxPackets {
		if i == 0 {
			// Older than everything held: it would be the one dropped.
			b.dropHead(seq, true)
			return Overflowed
		}
		b.dropHead(b.buf[0].seq, false)
		i--
	}
	b.buf = slices.Insert(b.buf, i, entry[T]{seq: seq, sent: sent, v: v})
	b.stats.Pushed++
	return Accepted
}

// dropHead drops the oldest packet (or, with incoming, the arriving one that
// would have been oldest) to make room, and moves next past it.
func (b *Buffer[T]) dropHead(seq protocol.MediaSeq, incoming bool) {
	if !incoming {
		var zero entry[T]
		b.buf[0] = zero
		b.buf = b.buf[1:]
	}
	if b.started {
		gap := uint64(seq - b.next) // insert rejected seq < next as late
		b.pendingGap += gap
		b.stats.Lost += gap
	}
	b.pendingGap++
	b.next, b.started = seq+1, true
	b.stats.Overflow++
}

// observe updates the clock mapping and the jitter estimate with an
// original arrival.
func (b *Buffer[T]) observe(sent time.Duration, arrival time.Time) {
	cand := arrival.Add(-sent)
	half := b.cfg.BaseWindow / 2
	switch {
	case !b.haveBase:
		b.curMin, b.prevMin, b.curStart, b.haveBase = cand, cand, arrival, true
	case arrival.Sub(b.curStart) >= half:
		// Start a new half-window; the old one still counts until the
		// next rotation, so the minimum always covers at least half a
		// window of arrivals.
		b.prevMin, b.curMin, b.curStart = b.curMin, cand, arrival
	case cand.Before(b.curMin):
		b.curMin = cand
	}

	if !b.haveTransit {
		b.epoch, b.haveTransit = arrival, true
		b.lastTransit = -sent
		return
	}
	transit := arrival.Sub(b.epoch) - sent
	d := transit - b.lastTransit
	b.lastTransit = transit
	b.jitter += (math.Abs(float64(d)) - b.jitter) / 16
}

// base returns the clock mapping: the receiver time of sender time zero
// for the fastest recent packet.
func (b *Buffer[T]) base() time.Time {
	if b.prevMin.Before(b.curMin) {
		return b.prevMin
	}
	return b.curMin
}

// playout returns the release time of a packet sent at sent.
func (b *Buffer[T]) playout(sent time.Duration) time.Time {
	return b.base().Add(sent + b.Delay())
}

// NextRelease returns when the oldest held packet is due, and false when
// the buffer is empty. The target delay may change with the next arrival,
// so a caller asks again after each Push.
func (b *Buffer[T]) NextRelease() (time.Time, bool) {
	if len(b.buf) == 0 {
		return time.Time{}, false
	}
	return b.playout(b.buf[0].sent), true
}

// Pop releases the oldest held packet if its playout time has come by now.
// Numbers missing before it are declared lost and reported in LostBefore.
func (b *Buffer[T]) Pop(now time.Time) (Item[T], bool) {
	if len(b.buf) == 0 {
		return Item[T]{}, false
	}
	e := b.buf[0]
	if now.Before(b.playout(e.sent)) {
		return Item[T]{}, false
	}
	var zero entry[T]
	b.buf[0] = zero
	b.buf = b.buf[1:]
	lost := b.pendingGap
	if b.started {
		gap := uint64(e.seq - b.next)
		lost += gap
		b.stats.Lost += gap
	}
	b.pendingGap = 0
	b.next, b.started = e.seq+1, true
	b.stats.Released++
	return Item[T]{Seq: e.seq, Value: e.v, LostBefore: lost}, true
}

// Release appends to dst every packet due by now, in order.
func (b *Buffer[T]) Release(now time.Time, dst []Item[T]) []Item[T] {
	for {
		it, ok := b.Pop(now)
		if !ok {
			return dst
		}
		dst = append(dst, it)
	}
}
