// Package ratelimit implements token-bucket rate limits keyed by IP
// address, connection, user, channel and command (JSP §9, §10), with
// bounded memory.
//
// A [Limiter] holds one bucket per key. A bucket holds up to Burst tokens
// and refills at Rate tokens per second; a request of cost n takes n
// tokens or is refused with RATE_LIMITED and the time after which n tokens
// will be there (jsperr.Error.RetryAfter). A refused request takes
// nothing, so a client that waits RetryAfter succeeds.
//
// Memory is bounded by MaxKeys: buckets sit in least-recently-used order
// and the least recently used one is dropped when a new key arrives at the
// cap. Dropping a bucket that has refilled completely loses nothing (a new
// bucket starts full); dropping a partly drained one forgives that key its
// debt, so MaxKeys should exceed the number of keys active within a refill
// period. [Limiter.Sweep] drops full buckets early.
//
// A [Set] applies the per-scope limiters to one request, all or nothing.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
)

// DefaultMaxKeys caps the buckets of one Limiter.
const DefaultMaxKeys = 100_000

// shardedFrom is the MaxKeys from which a Limiter splits its buckets into
// numShards independently locked shards; below it one shard keeps the LRU
// order exact.
const (
	shardedFrom = 1024
	numShards   = 16
)

// Config configures a Limiter.
type Config struct {
	// Name of the scope, used in refusals, e.g. "ip" or "user".
	Name string
	// Rate is the refill rate in tokens per second. Required (> 0).
	Rate float64
	// Burst is the bucket size: the most a key can use at once after a
	// quiet period. Zero means max(1, ceil(Rate)).
	Burst int
	// MaxKeys caps the buckets held. Zero means DefaultMaxKeys.
	MaxKeys int
	// Now is the clock. Zero means time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	var errs []error
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("Rate %v is not a positive number", c.Rate))
	}
	if c.Burst < 0 {
		errs = append(errs, fmt.Errorf("Burst %d is negative", c.Burst))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("MaxKeys %d is negative", c.MaxKeys))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("ratelimit: invalid config %q: %w", c.Name, err)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.Burst == 0 {
		c.Burst = max(1, int(math.Ceil(c.Rate)))
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = DefaultMaxKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Stats counts a Limiter's decisions.
type Stats struct {
	Allowed uint64
	Limited uint64
	// Evicted counts buckets dropped at the MaxKeys cap.
	Evicted uint64
	// Keys is the number of buckets held.
	Keys int
}

// bucket is one key's tokens, linked into its shard's LRU list.
type bucket struct {
	key        string
	tokens     float64
	last       time.Time
	prev, next *bucket
}

type shard struct {
	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
	lru     bucket             // guarded by mu; sentinel: lru.next is the most recent
	max     int
}

// Limiter is a set of token buckets, one per key. It is safe for
// concurrent use.
type Limiter struct {
	cfg    Config
	seed   maphash.Seed
	shards []shard

	allowed, limited, evicted atomic.Uint64
}

// New returns a Limiter.
func New(cfg Config) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	n := 1
	if cfg.MaxKeys >= shardedFrom {
		n = numShards
	}
	l := &Limiter{cfg: cfg, seed: maphash.MakeSeed(), shards: make([]shard, n)}
	for i := range l.shards {
		s := &l.shards[i]
		s.buckets = map[string]*bucket{}
		s.lru.next, s.lru.prev = &s.lru, &s.lru
		// Floor, so that the shards together never exceed MaxKeys.
		s.max = cfg.MaxKeys / n
	}
	return l, nil
}

func (l *Limiter) shardFor(key string) *shard {
	if len(l.shards) == 1 {
		return &l.shards[0]
	}
	return &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
}

// Allow takes one token for key.
func (l *Limiter) Allow(key string) error { return l.AllowN(key, 1) }

// AllowN takes n tokens for key, or refuses with a RATE_LIMITED
// *jsperr.Error whose RetryAfter says when n tokens will be available. A
// cost above Burst can never be met and is refused without RetryAfter.
func (l *Limiter) AllowN(key string, n int) error {
	if n <= 0 {
		return nil
	}
	if n > l.cfg.Burst {
		l.limited.Add(1)
		return jsperr.Newf(jsperr.RateLimited, "%s rate limit: cost %d exceeds burst %d", l.cfg.Name, n, l.cfg.Burst)
	}
	now := l.cfg.Now()
	s := l.shardFor(key)
	s.mu.Lock()
	b := l.bucketLocked(s, key, now)
	need := float64(n)
	if b.tokens >= need {
		b.tokens -= need
		s.mu.Unlock()
		l.allowed.Add(1)
		return nil
	}
	wait := time.Duration(math.Ceil((need - b.tokens) / l.cfg.Rate * float64(time.Second)))
	s.mu.Unlock()
	l.limited.Add(1)
	e := jsperr.Newf(jsperr.RateLimited, "%s rate limit: %g per second, burst %d", l.cfg.Name, l.cfg.Rate, l.cfg.Burst)
	e.RetryAfter = wait
	return e
}

// refund gives back n tokens taken by AllowN, for a Set whose later scope
// refused the request.
func (l *Limiter) refund(key string, n int) {
	s := l.shardFor(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[key]; ok {
		b.tokens = min(b.tokens+float64(n), float64(l.cfg.Burst))
	}
}

// bucketLocked returns key's bucket refilled to now, creating it (full)
// and evicting the least recently used bucket at the cap.
func (l *Limiter) bucketLocked(s *shard, key string, now time.Time) *bucket {
	b, ok := s.buckets[key]
	if ok {
		// A clock that steps back refills nothing rather than going
		// negative.
		if elapsed := now.Sub(b.last); elapsed > 0 {
			b.tokens = min(b.tokens+elapsed.Seconds()*l.cfg.Rate, float64(l.cfg.Burst))
		}
		b.last = now
		unlink(b)
		pushFront(&s.lru, b)
		return b
	}
	if len(s.buckets) >= s.max {
		old := s.lru.prev
		unlink(old)
		delete(s.buckets, old.key)
		l.evicted.Add(1)
	}
	b = &bucket{key: key, tokens: float64(l.cfg.Burst), last: now}
	s.buckets[key] = b
	pushFront(&s.lru, b)
	return b
}

func unlink(b *bucket) {
	b.prev.next, b.next.prev = b.next, b.prev
	b.prev, b.next = nil, nil
}

func pushFront(head, b *bucket) {
	b.prev, b.next = head, head.next
	head.next.prev = b
	head.next = b
}

// Sweep drops buckets that have refilled completely; they are equivalent
// to a new bucket. It returns how many it dropped. Owners may call it
// periodically to give memory back early; the MaxKeys cap holds without
// it.
func (l *Limiter) Sweep() int {
	now := l.cfg.Now()
	dropped := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for key, b := range s.buckets {
			if b.tokens+now.Sub(b.last).Seconds()*l.cfg.Rate >= float64(l.cfg.Burst) {
				unlink(b)
				delete(s.buckets, key)
				dropped++
			}
		}
		s.mu.Unlock()
	}
	return dropped
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Stats returns the counters.
func (l *Limiter) Stats() Stats {
	return Stats{Allowed: l.allowed.Load(), Limited: l.limited.Load(), Evicted: l.evicted.Load(), Keys: l.Len()}
}

// Config returns the limiter's configuration with defaults filled in.
func (l *Limiter) Config() Config { return l.cfg }
