// Package nack implements negative acknowledgement for media datagrams
// (JSP §13; the NACK message itself is JSP §5.6).
//
// The flow:
//
//	sender                                   receiver
//	  |-- media seq 41 ---------------------->|  Receiver.OnPacket(41)
//	  |-- media seq 42 ----X (lost)           |
//	  |-- media seq 43 ---------------------->|  OnPacket(43): gap, 42 missing
//	  |<-------------------- NACK [42] -------|  Receiver.Nacks(now)
//	  |  Cache.Resend(42): still useful?      |
//	  |-- media seq 42 (retransmission) ----->|  OnPacket(42): recovered
//
// The [Receiver] tracks which sequence numbers of a bounded window have
// arrived, lists the missing ones for NACKs, repeats a NACK no sooner than
// about one round trip later (with backoff) and a bounded number of times,
// and gives up on a packet once it can no longer arrive in time. The sender
// keeps recent packets in a [Cache], bounded in count and bytes, and
// retransmits one only while it can still reach the receiver before its
// deadline.
//
// Both are pure state machines: no I/O, no goroutines, time passed in. They
// work on extended sequence numbers ([protocol.MediaSeq]); the 16-bit wire
// numbers are extended by reliability/mediapkt.
package nack

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Receiver defaults, used for zero [ReceiverConfig] fields.
const (
	// DefaultWindow is how many sequence numbers behind the newest the
	// receiver tracks.
	DefaultWindow = 1024
	// DefaultMaxRetries is how many NACKs are sent for one packet.
	DefaultMaxRetries = 3
	// DefaultMinInterval is the shortest wait between two NACKs of one
	// packet, whatever the RTT estimate says.
	DefaultMinInterval = 10 * time.Millisecond
	// DefaultBackoff multiplies the wait before each further NACK of one
	// packet.
	DefaultBackoff = 1.5
	// DefaultMaxDelay is how long after a gap is detected the receiver
	// still cares about the packet.
	DefaultMaxDelay = 500 * time.Millisecond
	// DefaultInitialRTT is the RTT assumed until SetRTT is called.
	DefaultInitialRTT = 100 * time.Millisecond
	// DefaultMaxBatch caps the sequence numbers returned by one Nacks
	// call, so that one NACK message stays small.
	DefaultMaxBatch = 256
)

// MaxWindow caps ReceiverConfig.Window.
const MaxWindow = 1 << 16

// ReceiverConfig configures a [Receiver]. Zero fields take their defaults.
type ReceiverConfig struct {
	// Window is how many sequence numbers behind the newest are tracked.
	// A packet older than that is reported TooOld; a gap the window
	// slides past is abandoned. Default DefaultWindow, at most MaxWindow.
	Window int
	// MaxRetries is how many times one packet is NACKed. Default
	// DefaultMaxRetries.
	MaxRetries int
	// MinInterval is the floor of the wait between NACKs of one packet.
	// Default DefaultMinInterval.
	MinInterval time.Duration
	// Backoff multiplies the wait before each further NACK: the n-th
	// repeat waits max(RTT, MinInterval) * Backoff^(n-1). Default
	// DefaultBackoff; must be at least 1.
	Backoff float64
	// MaxDelay is how long a missing packet stays of interest after its
	// gap was detected: no NACK is sent that could not be answered within
	// it, and at its end the packet is abandoned. Default
	// DefaultMaxDelay.
	MaxDelay time.Duration
	// InitialRTT is the RTT estimate used until SetRTT. Default
	// DefaultInitialRTT.
	InitialRTT time.Duration
	// MaxBatch caps the sequence numbers one Nacks call returns, oldest
	// first. Default DefaultMaxBatch.
	MaxBatch int
	// ReorderTolerance is how long a gap must last before its first
	// NACK, so that a packet merely overtaken by a later one is not
	// requested again. Set it to about the path's jitter. Default 0: NACK
	// as soon as a gap is seen.
	ReorderTolerance time.Duration
}

func (c *ReceiverConfig) setDefaults() {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MinInterval == 0 {
		c.MinInterval = DefaultMinInterval
	}
	if c.Backoff == 0 {
		c.Backoff = DefaultBackoff
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultMaxDelay
	}
	if c.InitialRTT == 0 {
		c.InitialRTT = DefaultInitialRTT
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
}

func (c *ReceiverConfig) validate() error {
	switch {
	case c.Window < 2 || c.Window > MaxWindow:
		return fmt.Errorf("nack: Window %d outside 2..%d", c.Window, MaxWindow)
	case c.MaxRetries < 1:
		return fmt.Errorf("nack: MaxRetries %d below 1", c.MaxRetries)
	case c.MinInterval < 0 || c.MaxDelay < 0 || c.InitialRTT < 0 || c.ReorderTolerance < 0:
		return fmt.Errorf("nack: negative duration in receiver config")
	case !(c.Backoff >= 1) || math.IsInf(c.Backoff, 0):
		return fmt.Errorf("nack: Backoff %v must be a finite number >= 1", c.Backoff)
	case c.MaxBatch < 1:
		return fmt.Errorf("nack: MaxBatch %d below 1", c.MaxBatch)
	}
	return nil
}

// Arrival classifies a packet given to [Receiver.OnPacket].
type Arrival uint8

// Arrival outcomes.
const (
	// ArrivalNew: the newest packet so far, or one inside the window that
	// was neither seen nor missed yet (only possible before the first
	// packet moves the window).
	ArrivalNew Arrival = iota
	// ArrivalRecovered: a packet that was missing (by retransmission, FEC
	// or plain reordering).
	ArrivalRecovered
	// ArrivalDuplicate: already received.
	ArrivalDuplicate
	// ArrivalLate: missing, but abandoned before it arrived.
	ArrivalLate
	// ArrivalTooOld: behind the window; the receiver cannot tell.
	ArrivalTooOld
)

var arrivalNames = [...]string{"new", "recovered", "duplicate", "late", "too-old"}

// String returns the outcome's name.
func (a Arrival) String() string {
	if int(a) < len(arrivalNames) {
		return arrivalNames[a]
	}
	return fmt.Sprintf("arrival(%d)", uint8(a))
}

// ReceiverStats counts what a [Receiver] saw and did.
type ReceiverStats struct {
	Received   uint64 // distinct packets received (new and recovered)
	Duplicates uint64 // packets received again
	TooOld     uint64 // packets behind the window
	Missing    uint64 // packets detected missing (gaps)
	Recovered  uint64 // missing packets that arrived later
	Nacked     uint64 // sequence numbers put in NACK lists, repeats included
	Abandoned  uint64 // missing packets given up
	Late       uint64 // packets that arrived after being abandoned
}

// slot states of the receive window.
const (
	slotUnknown   uint8 = iota // never seen nor missed (before the first packet)
	slotReceived               // arrived
	slotMissing                // gap, in r.missing
	slotAbandoned              // gap, given up
)

type gap struct {
	seq      protocol.MediaSeq
	detected time.Time
	last     time.Time // last NACK
	retries  int       // NACKs sent
}

// Receiver tracks the packets of one media flow and decides what to NACK.
// It is not safe for concurrent use.
type Receiver struct {
	cfg     ReceiverConfig
	rtt     time.Duration
	slots   []uint8 // state of seq s at s % Window, for s in (highest-Window, highest]
	highest protocol.MediaSeq
	started bool
	missing []gap // sorted by seq; every entry's slot is slotMissing
	stats   ReceiverStats
}

// NewReceiver returns a receiver with the given configuration.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Receiver{cfg: cfg, rtt: cfg.InitialRTT, slots: make([]uint8, cfg.Window)}, nil
}

// SetRTT updates the round-trip estimate that spaces repeated NACKs.
func (r *Receiver) SetRTT(rtt time.Duration) {
	if rtt > 0 {
		r.rtt = rtt
	}
}

// Stats returns the receiver's counters.
func (r *Receiver) Stats() ReceiverStats { return r.stats }

// Pending returns the number of missing packets still tracked. It never
// exceeds the window.
func (r *Receiver) Pending() int { return len(r.missing) }

// Highest returns the newest sequence number received, and false before the
// first packet.
func (r *Receiver) Highest() (protocol.MediaSeq, bool) { return r.highest, r.started }

func (r *Receiver) slot(s protocol.MediaSeq) *uint8 {
	return &r.slots[uint64(s)%uint64(len(r.slots))]
}

// OnPacket records the arrival of seq at time now, whether an original, a
// retransmission or a packet rebuilt by FEC, and reports what it was. A gap
// between the previous newest packet and seq is recorded as missing, to be
// NACKed.
func (r *Receiver) OnPacket(seq protocol.MediaSeq, now time.Time) Arrival {
	w := protocol.MediaSeq(len(r.slots))
	if !r.started {
		r.started = true
		r.highest = seq
		*r.slot(seq) = slotReceived
		r.stats.Received++
		return ArrivalNew
	}
	if seq > r.highest {
		r.advance(seq, now)
		r.stats.Received++
		return ArrivalNew
	}
	if r.highest-seq >= w {
		r.stats.TooOld++
		return ArrivalTooOld
	}
	sl := r.slot(seq)
	switch *sl {
	case slotReceived:
		r.stats.Duplicates++
		return ArrivalDuplicate
	case slotAbandoned:
		*sl = slotReceived
		r.stats.Late++
		return ArrivalLate
	case slotMissing:
		*sl = slotReceived
		r.removeGap(seq)
		r.stats.Received++
		r.stats.Recovered++
		return ArrivalRecovered
	default: // slotUnknown: older than the first packet, still in the window
		*sl = slotReceived
		r.stats.Received++
		return ArrivalNew
	}
}

// advance moves the window so that seq is the newest packet, marking the
// numbers skipped over as missing.
func (r *Receiver) advance(seq protocol.MediaSeq, now time.Time) {
	w := protocol.MediaSeq(len(r.slots))
	// Numbers that fall out of the window: a gap among them is abandoned.
	var lowest protocol.MediaSeq // lowest number still in the window after the move
	if seq >= w-1 {
		lowest = seq - (w - 1)
	}
	n := 0
	for n < len(r.missing) && r.missing[n].seq < lowest {
		n++
	}
	r.stats.Abandoned += uint64(n)
	r.missing = slices.Delete(r.missing, 0, n)

	first := r.highest + 1
	if skipped := lowest; skipped > first {
		// A jump past the whole window: the numbers that never entered
		// it are missing and abandoned at once, without a loop over
		// them.
		r.stats.Missing += uint64(skipped - first)
		r.stats.Abandoned += uint64(skipped - first)
		first = skipped
	}
	// Only reset the slots the window is moving across: at most Window.
	for s := first; s < seq; s++ {
		*r.slot(s) = slotMissing
		r.missing = append(r.missing, gap{seq: s, detected: now})
		r.stats.Missing++
	}
	*r.slot(seq) = slotReceived
	r.highest = seq
}

func (r *Receiver) removeGap(seq protocol.MediaSeq) {
	i, ok := slices.BinarySearchFunc(r.missing, seq, func(g gap, s protocol.MediaSeq) int {
		switch {
		case g.seq < s:
			return -1
		case g.seq > s:
			return 1
		}
		return 0
	})
	if ok {
		r.missing = slices.Delete(r.missing, i, i+1)
	}
}

// due returns when the next NACK of g may be sent.
func (r *Receiver) due(g gap) time.Time {
	if g.retries == 0 {
		return g.detected.Add(r.cfg.ReorderTolerance)
	}
	return g.last.Add(r.interval(g.retries))
}

// interval returns the wait before the NACK that follows the retries-th.
func (r *Receiver) interval(retries int) time.Duration {
	base := max(r.rtt, r.cfg.MinInterval)
	return time.Duration(float64(base) * math.Pow(r.cfg.Backoff, float64(retries-1)))
}

// Nacks appends to dst the sequence numbers to NACK now, oldest first, and
// records that they were NACKed. A packet is NACKed at most MaxRetries
// times, the first only after ReorderTolerance, a repeat only after its
// backoff interval, and never when the answer could not arrive before the
// packet's deadline (detection + MaxDelay), judged from the RTT estimate. Packets whose deadline has passed are
// abandoned.
func (r *Receiver) Nacks(now time.Time, dst []protocol.MediaSeq) []protocol.MediaSeq {
	batch := 0
	keep := r.missing[:0]
	for _, g := range r.missing {
		deadline := g.detected.Add(r.cfg.MaxDelay)
		if !now.Before(deadline) {
			*r.slot(g.seq) = slotAbandoned
			r.stats.Abandoned++
			continue
		}
		due := !now.Before(r.due(g))
		useful := !now.Add(r.rtt).After(deadline)
		if batch < r.cfg.MaxBatch && g.retries < r.cfg.MaxRetries && due && useful {
			dst = append(dst, g.seq)
			g.retries++
			g.last = now
			batch++
			r.stats.Nacked++
		}
		keep = append(keep, g)
	}
	// Clear the tail so the dropped entries' memory is not reachable.
	clear(r.missing[len(keep):])
	r.missing = keep
	return dst
}

// NextNack returns the earliest time from now on at which Nacks has
// something to do (a NACK falls due or a gap is abandoned), and false when
// nothing is missing. A caller can arm a timer for it instead of polling;
// after Nacks(now) it is later than now unless MaxBatch cut the list short.
func (r *Receiver) NextNack(now time.Time) (time.Time, bool) {
	var next time.Time
	found := false
	for _, g := range r.missing {
		deadline := g.detected.Add(r.cfg.MaxDelay)
		t := deadline
		if g.retries < r.cfg.MaxRetries {
			due := r.due(g)
			if due.Before(now) {
				due = now
			}
			// A NACK that could not be answered in time is never
			// sent, so it is not worth waking up for.
			if !due.Add(r.rtt).After(deadline) && due.Before(t) {
				t = due
			}
		}
		if !found || t.Before(next) {
			next, found = t, true
		}
	}
	return next, found
}
