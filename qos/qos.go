// Package qos schedules JSP traffic by QoS class (JSP §11.3). It does no I/O:
// callers own the queues' goroutines and locks.
//
// Four classes exist (JSP §3.2), in priority order: system, media, chat and
// bulk. On the sending side a [Scheduler] decides which queued frame goes out
// next:
//
//   - system has strict priority: while a system item is queued nothing else
//     is sent;
//   - media, chat and bulk share the rest by deficit round robin over bytes,
//     with weights 4, 2 and 1 by default, so a bulk transfer cannot starve
//     chat and chat cannot starve media;
//   - an item whose deadline has passed is dropped when it would be sent,
//     never sent late (media frames and link datagrams carry deadlines).
//
// Each class queue is bounded and has a named policy for a full queue:
//
//	system  never drop: its cap is [SystemQueueFactor] times larger than
//	        the others; past that the push fails (a local bug or a peer
//	        that stopped reading: the caller closes the connection)
//	media   drop oldest: the new item is queued, the oldest is dropped
//	chat    backpressure: the push fails with QUEUE_FULL, the caller waits
//	bulk    throttle: the push fails with QUEUE_FULL, the caller slows down
//
// [RecvQueues] applies the same classes, order and policies to the
// receiving side, where one goroutine reads from the network and others
// process messages.
//
// This package imports only the standard library and the project's leaf
// packages internal/protocol and jsperr.
package qos

import (
	"errors"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Item is one schedulable unit: a frame, a message or a datagram.
type Item[T any] struct {
	// Class selects the queue and the policy.
	Class protocol.Class
	// Size is the item's length in bytes; the weighted share counts bytes.
	Size int
	// Deadline, when not zero, is the time after which the item is dropped
	// instead of delivered. Any class may carry one; reliable data simply
	// leaves it zero.
	Deadline time.Time
	// Value is the caller's payload.
	Value T
}

// expired reports whether it has a deadline that now has passed.
func (it *Item[T]) expired(now time.Time) bool {
	return !it.Deadline.IsZero() && now.After(it.Deadline)
}

// Policy names what a full class queue does with a new item (JSP §11.3).
type Policy uint8

// The drop policies, one per class.
const (
	// PolicyNeverDrop (system): nothing is dropped; the cap is large and
	// exceeding it is an error.
	PolicyNeverDrop Policy = iota
	// PolicyDropOldest (media): the oldest queued item makes room.
	PolicyDropOldest
	// PolicyBackpressure (chat): the push fails; the caller waits.
	PolicyBackpressure
	// PolicyThrottle (bulk): the push fails; the caller slows down.
	PolicyThrottle
)

// PolicyOf returns the policy of class c.
func PolicyOf(c protocol.Class) Policy {
	switch c {
	case protocol.ClassSystem:
		return PolicyNeverDrop
	case protocol.ClassMedia:
		return PolicyDropOldest
	case protocol.ClassChat:
		return PolicyBackpressure
	default:
		return PolicyThrottle
	}
}

// String returns the policy's name as the spec writes it.
func (p Policy) String() string {
	switch p {
	case PolicyNeverDrop:
		return "never-drop"
	case PolicyDropOldest:
		return "drop-oldest"
	case PolicyBackpressure:
		return "backpressure"
	case PolicyThrottle:
		return "throttle"
	}
	return fmt.Sprintf("policy(%d)", uint8(p))
}

// Default weights of the weighted fair share (JSP §11.3).
const (
	DefaultWeightMedia = 4
	DefaultWeightChat  = 2
	DefaultWeightBulk  = 1
)

// SystemQueueFactor multiplies the default queue length for the system
// class. System frames are few and small (handshake, heartbeats, window
// updates, close), so a much larger cap costs little and makes "never drop"
// hold for every well-behaved connection.
const SystemQueueFactor = 16

// ErrClosed is returned by a closed [RecvQueues].
var ErrClosed = errors.New("qos: queues closed")

// Config tunes a [Scheduler] or [RecvQueues]. The zero value is valid and
// means the documented defaults.
type Config struct {
	// Weights are the shares of media, chat and bulk, indexed by class. The
	// system entry is ignored: system has strict priority. Zero entries mean
	// DefaultWeightMedia, DefaultWeightChat and DefaultWeightBulk.
	Weights [protocol.NumClasses]int
	// Quantum is the byte credit one unit of weight earns per round. Zero
	// means protocol.DefaultMaxLinkChunk, so that in each round bulk may send
	// one full link chunk, chat two and media four.
	Quantum int
	// QueueLength caps the queued items per class, indexed by class. Zero
	// means protocol.DefaultSendQueueLength for a Scheduler and
	// protocol.DefaultRecvQueueLength for RecvQueues, times
	// SystemQueueFactor for the system class.
	QueueLength [protocol.NumClasses]int
	// Now is the clock RecvQueues uses for deadlines. Nil means time.Now.
	// A Scheduler takes the time as an argument of Pop instead.
	Now func() time.Time
}

// Validate reports a configuration that no default can fix.
func (c *Config) Validate() error {
	for cl, w := range c.Weights {
		if w < 0 {
			return fmt.Errorf("qos: negative weight %d for class %s", w, protocol.Class(cl))
		}
	}
	if c.Quantum < 0 {
		return fmt.Errorf("qos: negative quantum %d", c.Quantum)
	}
	for cl, l := range c.QueueLength {
		if l < 0 {
			return fmt.Errorf("qos: negative queue length %d for class %s", l, protocol.Class(cl))
		}
	}
	return nil
}

// setDefaults fills zero fields; defLen is the default queue length of the
// non-system classes.
func (c *Config) setDefaults(defLen int) {
	defW := [protocol.NumClasses]int{0, DefaultWeightMedia, DefaultWeightChat, DefaultWeightBulk}
	for cl := range c.Weights {
		if c.Weights[cl] == 0 {
			c.Weights[cl] = defW[cl]
		}
	}
	if c.Quantum == 0 {
		c.Quantum = int(protocol.DefaultMaxLinkChunk)
	}
	for cl := range c.QueueLength {
		if c.QueueLength[cl] == 0 {
			c.QueueLength[cl] = defLen
			if protocol.Class(cl) == protocol.ClassSystem {
				c.QueueLength[cl] = defLen * SystemQueueFactor
			}
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// ClassStats counts what happened to one class's items.
type ClassStats struct {
	Queued  uint64 // items accepted by Push
	Sent    uint64 // items handed out by Pop
	Dropped uint64 // items discarded: overflow under drop-oldest, or expired
	Expired uint64 // the part of Dropped whose deadline had passed
	Refused uint64 // pushes refused because the queue was full
	Len     int    // items queued now
	Bytes   int    // bytes queued now
}

func queueFull(c protocol.Class, limit int) *jsperr.Error {
	return jsperr.Newf(jsperr.QueueFull, "qos: %s queue full (%d items, policy %s)", c, limit, PolicyOf(c))
}

func checkItem(c protocol.Class, size int) error {
	if c >= protocol.NumClasses {
		return fmt.Errorf("qos: invalid class %d", uint8(c))
	}
	if size < 0 {
		return fmt.Errorf("qos: negative item size %d", size)
	}
	return nil
}
