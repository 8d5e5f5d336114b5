package replay

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Defaults for a zero [NonceConfig] field.
const (
	// DefaultMaxSkew is the clock difference allowed between a signed
	// message's timestamp and the receiver's clock, either way.
	DefaultMaxSkew = 30 * time.Second
	// DefaultBucketWidth is the span of timestamps whose nonces share one
	// bucket.
	DefaultBucketWidth = 5 * time.Second
	// DefaultMaxNonces caps the nonces remembered at once.
	DefaultMaxNonces = 100_000
	// DefaultMaxNonceLen caps the length of one nonce.
	DefaultMaxNonceLen = 32
)

// MinNonceLen is the shortest nonce accepted: shorter random values collide
// by chance often enough to reject genuine messages as replays.
const MinNonceLen = 8

// Errors returned by [NonceChecker.Check]. A signed message that fails the
// check proves nothing about its sender (JSP §4), hence UNAUTHENTICATED;
// a full nonce memory is a load condition the sender may retry, hence
// RATE_LIMITED.
var (
	// ErrStale: the timestamp is outside the allowed clock skew.
	ErrStale = jsperr.New(jsperr.Unauthenticated, "replay: timestamp outside the allowed clock skew")
	// ErrReplayed: the nonce was already seen with a timestamp in the same
	// bucket.
	ErrReplayed = jsperr.New(jsperr.Unauthenticated, "replay: nonce already seen")
	// ErrBadNonce: the nonce is shorter than MinNonceLen or longer than
	// the configured maximum.
	ErrBadNonce = jsperr.New(jsperr.Unauthenticated, "replay: nonce length out of range")
	// ErrNonceMemoryFull: MaxNonces are remembered already. Forgetting one
	// to make room would let its message be replayed, so the checker
	// refuses new messages until old buckets expire.
	ErrNonceMemoryFull = jsperr.New(jsperr.RateLimited, "replay: nonce memory full")
)

// NonceConfig configures a [NonceChecker]. The zero value is valid: each
// zero field takes its documented default.
type NonceConfig struct {
	// MaxSkew is how far a timestamp may lie from the receiver's clock,
	// into the past or the future. Default DefaultMaxSkew.
	MaxSkew time.Duration
	// BucketWidth is the span of timestamps grouped in one bucket. Memory
	// is released a whole bucket at a time, so a bucket is kept until its
	// newest timestamp is stale: narrower buckets free memory sooner,
	// wider ones mean fewer map operations. Default DefaultBucketWidth,
	// capped at MaxSkew.
	BucketWidth time.Duration
	// MaxNonces caps the nonces remembered across all buckets. Default
	// DefaultMaxNonces.
	MaxNonces int
	// MaxNonceLen caps the length of a nonce in bytes. Default
	// DefaultMaxNonceLen.
	MaxNonceLen int
}

func (c *NonceConfig) setDefaults() {
	if c.MaxSkew == 0 {
		c.MaxSkew = DefaultMaxSkew
	}
	if c.BucketWidth == 0 {
		c.BucketWidth = min(DefaultBucketWidth, c.MaxSkew)
	}
	if c.MaxNonces == 0 {
		c.MaxNonces = DefaultMaxNonces
	}
	if c.MaxNonceLen == 0 {
		c.MaxNonceLen = DefaultMaxNonceLen
	}
}

func (c *NonceConfig) validate() error {
	switch {
	case c.MaxSkew < 0:
		return fmt.Errorf("replay: MaxSkew %v is negative", c.MaxSkew)
	case c.BucketWidth < 0 || c.BucketWidth > c.MaxSkew:
		return fmt.Errorf("replay: BucketWidth %v outside (0, MaxSkew=%v]", c.BucketWidth, c.MaxSkew)
	case c.MaxNonces < 0:
		return fmt.Errorf("replay: MaxNonces %d is negative", c.MaxNonces)
	case c.MaxNonceLen < MinNonceLen:
		return fmt.Errorf("replay: MaxNonceLen %d is below the minimum %d", c.MaxNonceLen, MinNonceLen)
	}
	return nil
}

// NonceStats counts the outcomes of [NonceChecker.Check].
type NonceStats struct {
	Accepted uint64 // fresh messages
	Stale    uint64 // timestamps outside the skew window
	Replayed uint64 // nonces seen before
	BadNonce uint64 // nonces of a wrong length
	Full     uint64 // refused because the nonce memory was full
}

// NonceChecker accepts each (timestamp, nonce) pair of a signed message once
// while its timestamp is within MaxSkew of the receiver's clock.
//
// Nonces are stored in buckets keyed by the timestamp they came with. A
// replay repeats the timestamp, so it lands in the same bucket and is found;
// and once every timestamp a bucket can hold is stale, a replay of any of
// them is rejected by the clock check alone, so the whole bucket is
// forgotten. Memory is therefore bounded by the traffic of 2*MaxSkew plus
// two buckets, and never more than MaxNonces.
type NonceChecker struct {
	cfg     NonceConfig
	buckets map[int64]map[string]struct{}
	count   int
	stats   NonceStats
}

// NewNonceChecker returns a checker with the given configuration.
func NewNonceChecker(cfg NonceConfig) (*NonceChecker, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &NonceChecker{cfg: cfg, buckets: make(map[int64]map[string]struct{})}, nil
}

// Check accepts the message with timestamp ts and nonce if it is fresh and
// not seen before, and remembers it; now is the receiver's clock. It
// returns ErrStale, ErrReplayed, ErrBadNonce or ErrNonceMemoryFull (wrapped
// with context) otherwise.
func (c *NonceChecker) Check(ts time.Time, nonce []byte, now time.Time) error {
	c.expire(now)
	if len(nonce) < MinNonceLen || len(nonce) > c.cfg.MaxNonceLen {
		c.stats.BadNonce++
		return fmt.Errorf("replay: nonce of %d bytes: %w", len(nonce), ErrBadNonce)
	}
	if skew := ts.Sub(now); skew > c.cfg.MaxSkew || skew < -c.cfg.MaxSkew {
		c.stats.Stale++
		return fmt.Errorf("replay: timestamp %v off by %v: %w", ts.UTC(), skew, ErrStale)
	}
	idx := c.bucketOf(ts)
	b := c.buckets[idx]
	if _, seen := b[string(nonce)]; seen {
		c.stats.Replayed++
		return fmt.Errorf("replay: nonce %x at %v: %w", nonce, ts.UTC(), ErrReplayed)
	}
	if c.count >= c.cfg.MaxNonces {
		c.stats.Full++
		return fmt.Errorf("replay: %d nonces remembered: %w", c.count, ErrNonceMemoryFull)
	}
	if b == nil {
		b = make(map[string]struct{})
		c.buckets[idx] = b
	}
	b[string(nonce)] = struct{}{}
	c.count++
	c.stats.Accepted++
	return nil
}

// Len returns the number of nonces remembered.
func (c *NonceChecker) Len() int { return c.count }

// Buckets returns the number of buckets held.
func (c *NonceChecker) Buckets() int { return len(c.buckets) }

// Stats returns the outcome counters.
func (c *NonceChecker) Stats() NonceStats { return c.stats }

// bucketOf returns the bucket index of ts: floor(ts / BucketWidth) since the
// Unix epoch.
func (c *NonceChecker) bucketOf(ts time.Time) int64 {
	w := int64(c.cfg.BucketWidth)
	n := ts.UnixNano()
	q := n / w
	if n%w < 0 {
		q-- // floor, not truncation, for times before 1970
	}
	return q
}

// expire drops every bucket whose newest possible timestamp is older than
// now - MaxSkew: any message with such a timestamp is rejected as stale, so
// its nonce need not be remembered.
func (c *NonceChecker) expire(now time.Time) {
	oldest := now.Add(-c.cfg.MaxSkew).UnixNano()
	w := int64(c.cfg.BucketWidth)
	for idx, b := range c.buckets {
		// The bucket covers [idx*w, (idx+1)*w); its newest timestamp is
		// (idx+1)*w - 1.
		if (idx+1)*w-1 < oldest {
			c.count -= len(b)
			delete(c.buckets, idx)
		}
	}
}
