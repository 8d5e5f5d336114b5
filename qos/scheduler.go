package qos

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// fairOrder is the round-robin order of the weighted classes.
var fairOrder = [...]protocol.Class{protocol.ClassMedia, protocol.ClassChat, protocol.ClassBulk}

// Scheduler orders outgoing items by class (JSP §11.3): strict priority for
// system, deficit round robin by bytes among media, chat and bulk. It is not
// safe for concurrent use; its owner holds the lock that guards it.
type Scheduler[T any] struct {
	cfg      Config
	queues   [protocol.NumClasses]ring[Item[T]]
	bytes    [protocol.NumClasses]int
	stats    [protocol.NumClasses]ClassStats
	deficit  [protocol.NumClasses]int
	cur      int  // index into fairOrder of the class being served
	fresh    bool // cur has not yet received its quantum for this visit
	onExpire func(Item[T])
}

// New returns an empty scheduler. It panics if cfg fails [Config.Validate],
// which is a programming error.
func New[T any](cfg Config) *Scheduler[T] {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg.setDefaults(protocol.DefaultSendQueueLength)
	return &Scheduler[T]{cfg: cfg, fresh: true}
}

// OnExpire sets fn to be called, from Pop or Expire, with every item dropped
// because its deadline passed. Items dropped by a full media queue are
// returned by Push instead.
func (s *Scheduler[T]) OnExpire(fn func(Item[T])) { s.onExpire = fn }

// Cap returns the queue length limit of class c.
func (s *Scheduler[T]) Cap(c protocol.Class) int { return s.cfg.QueueLength[c] }

// Push queues it under its class's policy (JSP §11.3). When the class queue
// is full, media drops its oldest item and returns it in dropped; chat, bulk
// and system refuse the item with a QUEUE_FULL *jsperr.Error.
func (s *Scheduler[T]) Push(it Item[T]) (dropped []Item[T], err error) {
	if err := checkItem(it.Class, it.Size); err != nil {
		return nil, err
	}
	c := it.Class
	q := &s.queues[c]
	if q.len() >= s.cfg.QueueLength[c] {
		if PolicyOf(c) != PolicyDropOldest {
			s.stats[c].Refused++
			return nil, queueFull(c, s.cfg.QueueLength[c])
		}
		old := q.pop()
		s.bytes[c] -= old.Size
		s.stats[c].Dropped++
		dropped = append(dropped, old)
	}
	q.push(it)
	s.bytes[c] += it.Size
	s.stats[c].Queued++
	return dropped, nil
}

// Pop returns the next item to send at time now, or false when nothing is
// queued. Items whose deadline is before now are dropped on the way and
// reported to the OnExpire hook.
func (s *Scheduler[T]) Pop(now time.Time) (Item[T], bool) {
	if it, ok := s.popHead(protocol.ClassSystem, now); ok {
		return it, true
	}
	visits := 0
	for idle := 0; idle < len(fairOrder); {
		c := fairOrder[s.cur]
		s.dropExpiredHead(c, now)
		q := &s.queues[c]
		if q.len() == 0 {
			// An empty class keeps no credit (DRR): it must not save up a
			// burst while idle.
			s.deficit[c] = 0
			s.advance()
			idle++
			continue
		}
		idle = 0
		if s.fresh {
			s.deficit[c] += s.cfg.Quantum * s.cfg.Weights[c]
			s.fresh = false
		}
		if q.front().Size <= s.deficit[c] {
			it := s.take(c)
			s.deficit[c] -= it.Size
			if q.len() == 0 {
				s.deficit[c] = 0
				s.advance()
			}
			return it, true
		}
		// The head is larger than the credit: the next class's turn. The
		// credit carries over, so a large item goes out after enough rounds.
		s.advance()
		if visits++; visits%len(fairOrder) == 0 {
			s.fastForward()
		}
	}
	return Item[T]{}, false
}

// fastForward credits at once the rounds that would pass before any queued
// head fits its deficit, so that Pop costs O(1) rounds however large an
// item is compared with the quantum.
func (s *Scheduler[T]) fastForward() {
	rounds := -1
	for _, c := range fairOrder {
		q := &s.queues[c]
		if q.len() == 0 {
			continue
		}
		per := s.cfg.Quantum * s.cfg.Weights[c]
		need := (q.front().Size - s.deficit[c] + per - 1) / per
		if rounds < 0 || need < rounds {
			rounds = need
		}
	}
	if rounds <= 1 {
		return
	}
	for _, c := range fairOrder {
		if s.queues[c].len() > 0 {
			s.deficit[c] += (rounds - 1) * s.cfg.Quantum * s.cfg.Weights[c]
		}
	}
}

func (s *Scheduler[T]) advance() {
	s.cur = (s.cur + 1) % len(fairOrder)
	s.fresh = true
}

// popHead pops the first unexpired item of class c.
func (s *Scheduler[T]) popHead(c protocol.Class, now time.Time) (Item[T], bool) {
	s.dropExpiredHead(c, now)
	if s.queues[c].len() == 0 {
		return Item[T]{}, false
	}
	return s.take(c), true
}

func (s *Scheduler[T]) take(c protocol.Class) Item[T] {
	it := s.queues[c].pop()
	s.bytes[c] -= it.Size
	s.stats[c].Sent++
	return it
}

func (s *Scheduler[T]) dropExpiredHead(c protocol.Class, now time.Time) {
	q := &s.queues[c]
	for q.len() > 0 && q.front().expired(now) {
		s.expire(q.pop())
	}
}

func (s *Scheduler[T]) expire(it Item[T]) {
	s.bytes[it.Class] -= it.Size
	s.stats[it.Class].Dropped++
	s.stats[it.Class].Expired++
	if s.onExpire != nil {
		s.onExpire(it)
	}
}

// Expire drops every queued item whose deadline is before now, wherever it
// sits in its queue, reports each to the OnExpire hook and returns how many
// were dropped. Pop only looks at queue heads; Expire is for a caller that
// must make room before anything is popped.
func (s *Scheduler[T]) Expire(now time.Time) int {
	n := 0
	for c := range s.queues {
		s.queues[c].filter(func(it *Item[T]) bool {
			if it.expired(now) {
				s.expire(*it)
				n++
				return false
			}
			return true
		})
	}
	return n
}

// Len returns the number of queued items.
func (s *Scheduler[T]) Len() int {
	n := 0
	for c := range s.queues {
		n += s.queues[c].len()
	}
	return n
}

// LenClass returns the number of queued items of class c.
func (s *Scheduler[T]) LenClass(c protocol.Class) int {
	if c >= protocol.NumClasses {
		return 0
	}
	return s.queues[c].len()
}

// Bytes returns the total Size of the queued items.
func (s *Scheduler[T]) Bytes() int {
	n := 0
	for _, b := range s.bytes {
		n += b
	}
	return n
}

// Stats returns the counters of every class, indexed by class.
func (s *Scheduler[T]) Stats() [protocol.NumClasses]ClassStats {
	st := s.stats
	for c := range st {
		st[c].Len = s.queues[c].len()
		st[c].Bytes = s.bytes[c]
	}
	return st
}

// Dropped returns the number of items dropped in every class, by overflow
// or by deadline.
func (s *Scheduler[T]) Dropped() uint64 {
	var n uint64
	for _, st := range s.stats {
		n += st.Dropped
	}
	return n
}

// String summarises the queue lengths for logs.
func (s *Scheduler[T]) String() string {
	return fmt.Sprintf("qos: system=%d media=%d chat=%d bulk=%d bytes=%d",
		s.queues[0].len(), s.queues[1].len(), s.queues[2].len(), s.queues[3].len(), s.Bytes())
}
