package nack

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Cache defaults, used for zero [CacheConfig] fields.
const (
	// DefaultCachePackets caps the packets a cache holds.
	DefaultCachePackets = 1024
	// DefaultCacheBytes caps the bytes of packet data a cache holds.
	DefaultCacheBytes protocol.ByteCount = 2 << 20
	// DefaultCacheMaxDelay is how long after capture a packet is still
	// worth delivering.
	DefaultCacheMaxDelay = 500 * time.Millisecond
)

// CacheConfig configures a [Cache]. Zero fields take their defaults.
type CacheConfig struct {
	// MaxPackets caps the packets held; the oldest is evicted first.
	// Default DefaultCachePackets.
	MaxPackets int
	// MaxBytes caps the packet bytes held. Default DefaultCacheBytes.
	MaxBytes protocol.ByteCount
	// MaxDelay is the media deadline: a packet captured at c is useless
	// to the receiver after c + MaxDelay, so it is not resent when it
	// could not arrive by then and is dropped once that time has passed.
	// Default DefaultCacheMaxDelay.
	MaxDelay time.Duration
}

func (c *CacheConfig) setDefaults() {
	if c.MaxPackets == 0 {
		c.MaxPackets = DefaultCachePackets
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultCacheBytes
	}
	if c.MaxDelay == 0 {
		c.MaxDelay = DefaultCacheMaxDelay
	}
}

func (c *CacheConfig) validate() error {
	switch {
	case c.MaxPackets < 1:
		return fmt.Errorf("nack: cache MaxPackets %d below 1", c.MaxPackets)
	case c.MaxBytes < 1:
		return fmt.Errorf("nack: cache MaxBytes %d below 1", c.MaxBytes)
	case c.MaxDelay < 0:
		return fmt.Errorf("nack: cache MaxDelay %v is negative", c.MaxDelay)
	}
	return nil
}

// ResendStatus says what [Cache.Resend] did.
type ResendStatus uint8

// Resend outcomes.
const (
	// Resent: the packet is returned for retransmission.
	Resent ResendStatus = iota
	// NotCached: the packet was never added or has been evicted.
	NotCached
	// TooLate: the packet is cached but a retransmission would arrive
	// after its deadline.
	TooLate
)

var resendNames = [...]string{"resent", "not-cached", "too-late"}

// String returns the outcome's name.
func (s ResendStatus) String() string {
	if int(s) < len(resendNames) {
		return resendNames[s]
	}
	return fmt.Sprintf("resend(%d)", uint8(s))
}

// CacheStats counts what a [Cache] did.
type CacheStats struct {
	Added     uint64 // packets added
	Evicted   uint64 // evicted by the count or byte bound
	Expired   uint64 // dropped after their deadline
	Resent    uint64 // retransmissions handed out
	NotCached uint64 // NACKed packets not in the cache
	TooLate   uint64 // NACKed packets that could no longer arrive in time
}

type cached struct {
	seq     protocol.MediaSeq
	capture time.Time
	data    []byte
}

// Cache is the sender's store of recent media packets for retransmission.
// Packets are added in increasing sequence order, so the cache is a ring
// sorted by sequence number: lookups are a binary search and eviction takes
// from the front. It is not safe for concurrent use.
type Cache struct {
	cfg   CacheConfig
	ring  []cached
	head  int // index of the oldest entry
	n     int
	bytes protocol.ByteCount
	stats CacheStats
}

// NewCache returns a cache with the given configuration.
func NewCache(cfg CacheConfig) (*Cache, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Cache{cfg: cfg, ring: make([]cached, cfg.MaxPackets)}, nil
}

// Len returns the number of packets held.
func (c *Cache) Len() int { return c.n }

// Bytes returns the packet bytes held.
func (c *Cache) Bytes() protocol.ByteCount { return c.bytes }

// Stats returns the cache's counters.
func (c *Cache) Stats() CacheStats { return c.stats }

func (c *Cache) at(i int) *cached { return &c.ring[(c.head+i)%len(c.ring)] }

// Add stores a copy of pkt, the media packet with sequence number seq
// captured at capture. Sequence numbers must increase from one Add to the
// next. The capture time also serves as the current time: packets whose
// deadline has passed by then are dropped, and then the oldest packets go
// until the count and byte bounds hold. A packet larger than MaxBytes on its
// own is not stored.
func (c *Cache) Add(seq protocol.MediaSeq, pkt []byte, capture time.Time) error {
	if c.n > 0 {
		if last := c.at(c.n - 1).seq; seq <= last {
			return fmt.Errorf("nack: cache add of seq %d after %d: sequence numbers must increase", seq, last)
		}
	}
	c.stats.Added++
	c.expire(capture)
	size := protocol.ByteCount(len(pkt))
	if size > c.cfg.MaxBytes {
		c.stats.Evicted++
		return nil
	}
	for c.n == len(c.ring) || c.bytes+size > c.cfg.MaxBytes {
		c.popFront()
		c.stats.Evicted++
	}
	*c.at(c.n) = cached{seq: seq, capture: capture, data: append([]byte(nil), pkt...)}
	c.n++
	c.bytes += size
	return nil
}

func (c *Cache) popFront() {
	e := c.at(0)
	c.bytes -= protocol.ByteCount(len(e.data))
	*e = cached{}
	c.head = (c.head + 1) % len(c.ring)
	c.n--
}

// expire drops packets whose deadline is before now.
func (c *Cache) expire(now time.Time) {
	for c.n > 0 && c.at(0).capture.Add(c.cfg.MaxDelay).Before(now) {
		c.popFront()
		c.stats.Expired++
	}
}

// Get returns the cached packet seq without counting it as a
// retransmission nor expiring anything, for a caller that forwards cached
// packets again (an SFU starting a subscriber at a key frame whose first
// packet came late). The slice belongs to the cache and must not be
// modified; the cache never writes to a stored packet.
func (c *Cache) Get(seq protocol.MediaSeq) ([]byte, bool) {
	i, ok := c.find(seq)
	if !ok {
		return nil, false
	}
	return c.at(i).data, true
}

// find returns the index of seq in the ring.
func (c *Cache) find(seq protocol.MediaSeq) (int, bool) {
	lo, hi := 0, c.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if c.at(mid).seq < seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, lo < c.n && c.at(lo).seq == seq
}

// Resend answers a NACK for seq at time now, given the current RTT
// estimate. It returns the packet if it is cached and a retransmission sent
// now can reach the receiver (after about rtt/2) by the packet's deadline.
// The returned slice belongs to the cache: send it before the next Add.
func (c *Cache) Resend(seq protocol.MediaSeq, now time.Time, rtt time.Duration) ([]byte, ResendStatus) {
	c.expire(now)
	i, ok := c.find(seq)
	if !ok {
		c.stats.NotCached++
		return nil, NotCached
	}
	e := c.at(i)
	if now.Add(rtt / 2).After(e.capture.Add(c.cfg.MaxDelay)) {
		c.stats.TooLate++
		return nil, TooLate
	}
	c.stats.Resent++
	return e.data, Resent
}
