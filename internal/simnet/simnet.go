// Package simnet simulates a lossy one-way network link for tests: random
// and bursty (Gilbert-Elliott) loss, delay with jitter, reordering,
// duplication and a rate limit with a bounded queue.
//
// A [Link] has no goroutines and no clock of its own. A test drives it with a
// virtual clock: it calls [Link.Send] with the time a packet leaves and
// [Link.Deliver] with the current time to collect the packets that have
// arrived by then. Every random choice comes from a generator seeded by
// [Config.Seed], so a given seed and call sequence always produce the same
// deliveries, whatever the machine or its load: tests about protocol
// behaviour under loss assert on the algorithm, not on timing.
//
// A two-way path is two Links with different seeds.
package simnet

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"
)

// Defaults for zero [Config] fields.
const (
	// DefaultReorderDelay is the extra delay of a packet picked for
	// reordering.
	DefaultReorderDelay = 10 * time.Millisecond
	// DefaultQueueDelay is the longest a packet waits for the rate
	// limiter before the link tail-drops it.
	DefaultQueueDelay = 200 * time.Millisecond
	// DefaultMaxInFlight caps packets held by the link at once; a Send
	// past it is dropped and counted, so a test that never calls Deliver
	// cannot grow memory without bound.
	DefaultMaxInFlight = 100_000
)

// GilbertElliott is the two-state burst-loss model: the link is in a Good or
// a Bad state, changes state before each packet with the given
// probabilities, and loses the packet with the loss probability of the
// state it is in. The mean burst (time in Bad) lasts 1/PBadToGood packets,
// and the long-run share of packets sent in Bad is
// PGoodToBad / (PGoodToBad + PBadToGood).
type GilbertElliott struct {
	PGoodToBad float64 // chance per packet of entering Bad
	PBadToGood float64 // chance per packet of leaving Bad
	LossGood   float64 // loss probability in Good
	LossBad    float64 // loss probability in Bad
}

// MeanLoss returns the long-run loss rate of the model.
func (g GilbertElliott) MeanLoss() float64 {
	if g.PGoodToBad+g.PBadToGood == 0 {
		return g.LossGood
	}
	bad := g.PGoodToBad / (g.PGoodToBad + g.PBadToGood)
	return bad*g.LossBad + (1-bad)*g.LossGood
}

// Config describes a link. The zero value is a perfect link: no loss, no
// delay, no rate limit.
type Config struct {
	// Seed seeds the link's random generator.
	Seed uint64
	// Loss is the probability that a packet is lost, independently of
	// every other packet.
	Loss float64
	// Burst, if set, adds Gilbert-Elliott burst loss on top of Loss.
	Burst *GilbertElliott
	// Delay is the fixed one-way propagation delay.
	Delay time.Duration
	// Jitter adds a uniform random delay in [0, Jitter) to each packet.
	// Packets sent closer together than the jitter may overtake each
	// other, as on a multi-path network.
	Jitter time.Duration
	// Reorder is the probability that a packet is held back by an extra
	// ReorderDelay, so that later packets overtake it.
	Reorder float64
	// ReorderDelay is the hold-back of a reordered packet. Default
	// DefaultReorderDelay.
	ReorderDelay time.Duration
	// Duplicate is the probability that a packet is delivered twice; the
	// copy gets its own jitter.
	Duplicate float64
	// Rate limits the link to this many bytes per second (0 = unlimited).
	// Packets are serialised one after another; a packet that would wait
	// longer than QueueDelay is tail-dropped.
	Rate int64
	// QueueDelay bounds the rate limiter's queue, in time. Default
	// DefaultQueueDelay.
	QueueDelay time.Duration
	// MaxInFlight caps packets held at once. Default DefaultMaxInFlight.
	MaxInFlight int
}

func (c *Config) setDefaults() {
	if c.ReorderDelay == 0 {
		c.ReorderDelay = DefaultReorderDelay
	}
	if c.QueueDelay == 0 {
		c.QueueDelay = DefaultQueueDelay
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
}

func (c *Config) validate() error {
	type prob struct {
		name string
		p    float64
	}
	probs := []prob{{"Loss", c.Loss}, {"Reorder", c.Reorder}, {"Duplicate", c.Duplicate}}
	if g := c.Burst; g != nil {
		probs = append(probs, prob{"Burst.PGoodToBad", g.PGoodToBad}, prob{"Burst.PBadToGood", g.PBadToGood},
			prob{"Burst.LossGood", g.LossGood}, prob{"Burst.LossBad", g.LossBad})
	}
	for _, p := range probs {
		if !(p.p >= 0 && p.p <= 1) {
			return fmt.Errorf("simnet: %s = %v is not a probability", p.name, p.p)
		}
	}
	switch {
	case c.Delay < 0 || c.Jitter < 0 || c.ReorderDelay < 0 || c.QueueDelay < 0:
		return fmt.Errorf("simnet: negative delay in %+v", *c)
	case c.Rate < 0:
		return fmt.Errorf("simnet: negative rate %d", c.Rate)
	case c.MaxInFlight < 0:
		return fmt.Errorf("simnet: negative MaxInFlight %d", c.MaxInFlight)
	}
	return nil
}

// Packet is a packet delivered by a [Link].
type Packet struct {
	Data []byte    // a copy of what was sent
	Sent time.Time // when Send was called
	At   time.Time // when it arrived
}

// Stats counts what a [Link] did with the packets sent into it.
type Stats struct {
	Sent        uint64 // packets given to Send
	Delivered   uint64 // packets returned by Deliver, duplicates included
	Lost        uint64 // dropped by independent random loss
	BurstLost   uint64 // dropped by the Gilbert-Elliott model
	QueueDrops  uint64 // tail-dropped by the rate limiter
	Overflow    uint64 // dropped because MaxInFlight packets were held
	Duplicated  uint64 // extra copies made
	Reordered   uint64 // delivered after a packet sent later
	BytesOnWire uint64 // bytes that passed the rate limiter
}

// Link is a simulated one-way link. It is not safe for concurrent use.
type Link struct {
	cfg     Config
	rng     *rand.Rand
	bad     bool      // Gilbert-Elliott state
	busy    time.Time // when the rate limiter finishes its queue
	pending pktHeap
	nextID  uint64
	pushes  uint64
	maxID   uint64 // highest send id delivered, for Reordered
	anyOut  bool
	stats   Stats
}

// NewLink returns a link with the given configuration.
func NewLink(cfg Config) (*Link, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	// Two PCG words from one seed; the constant only keeps the streams of
	// seeds 0 and 1 apart.
	return &Link{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}, nil
}

// Send puts a copy of pkt on the link at time now. It reports whether the
// packet (or at least one copy of it) will be delivered; a test normally
// ignores this and looks at what arrives.
func (l *Link) Send(pkt []byte, now time.Time) bool {
	l.stats.Sent++
	id := l.nextID
	l.nextID++

	depart := now
	if l.cfg.Rate > 0 {
		start := now
		if l.busy.After(start) {
			start = l.busy
		}
		if start.Sub(now) > l.cfg.QueueDelay {
			l.stats.QueueDrops++
			return false
		}
		l.busy = start.Add(time.Duration(int64(len(pkt)) * int64(time.Second) / l.cfg.Rate))
		depart = l.busy
		l.stats.BytesOnWire += uint64(len(pkt))
	}

	// The burst state advances for every packet, lost or not, so that
	// burst lengths are counted in packets as the model defines them.
	if g := l.cfg.Burst; g != nil {
		if l.bad {
			l.bad = l.rng.Float64() >= g.PBadToGood
		} else {
			l.bad = l.rng.Float64() < g.PGoodToBad
		}
		p := g.LossGood
		if l.bad {
			p = g.LossBad
		}
		if l.rng.Float64() < p {
			l.stats.BurstLost++
			return false
		}
	}
	if l.cfg.Loss > 0 && l.rng.Float64() < l.cfg.Loss {
		l.stats.Lost++
		return false
	}
	copies := 1
	if l.cfg.Duplicate > 0 && l.rng.Float64() < l.cfg.Duplicate {
		copies = 2
		l.stats.Duplicated++
	}
	queued := false
	for range copies {
		if len(l.pending) >= l.cfg.MaxInFlight {
			l.stats.Overflow++
			continue
		}
		at := depart.Add(l.cfg.Delay)
		if l.cfg.Jitter > 0 {
			at = at.Add(time.Duration(l.rng.Int64N(int64(l.cfg.Jitter))))
		}
		if l.cfg.Reorder > 0 && l.rng.Float64() < l.cfg.Reorder {
			at = at.Add(l.cfg.ReorderDelay)
		}
		l.pushes++
		heap.Push(&l.pending, &inflight{at: at, id: id, seq: l.pushes, sent: now, data: append([]byte(nil), pkt...)})
		queued = true
	}
	return queued
}

// Deliver returns, in arrival order, every packet that has arrived by now.
func (l *Link) Deliver(now time.Time) []Packet {
	var out []Packet
	for len(l.pending) > 0 && !l.pending[0].at.After(now) {
		p := heap.Pop(&l.pending).(*inflight)
		if l.anyOut && p.id < l.maxID {
			l.stats.Reordered++
		}
		if !l.anyOut || p.id > l.maxID {
			l.maxID, l.anyOut = p.id, true
		}
		l.stats.Delivered++
		out = append(out, Packet{Data: p.data, Sent: p.sent, At: p.at})
	}
	return out
}

// NextDelivery returns the arrival time of the next packet in flight, and
// false when nothing is in flight.
func (l *Link) NextDelivery() (time.Time, bool) {
	if len(l.pending) == 0 {
		return time.Time{}, false
	}
	return l.pending[0].at, true
}

// InFlight returns the number of packets on the link.
func (l *Link) InFlight() int { return len(l.pending) }

// Stats returns the link's counters.
func (l *Link) Stats() Stats { return l.stats }

type inflight struct {
	at   time.Time
	id   uint64 // send order, shared by duplicates
	seq  uint64 // push order, unique: breaks ties deterministically
	sent time.Time
	data []byte
}

// pktHeap orders packets by arrival time, then by push order, so that equal
// arrival times come out the same way on every run.
type pktHeap []*inflight

func (h pktHeap) Len() int { return len(h) }
func (h pktHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h pktHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pktHeap) Push(x any)   { *h = append(*h, x.(*inflight)) }
func (h *pktHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return p
}
