// Package fragment splits a datagram message that is larger than one
// transport datagram into fragments and reassembles them (JSP §5.13, §13).
//
// Flow:
//
//	sender:   Split(id, msg, maxDatagram) ──> fragments, each sent as one datagram
//	receiver: Reassembler.Add(fragment, now) ──> the whole message once every
//	          index 0..count-1 has arrived, in any order
//
// Each fragment starts with a header (see Header): message id, index and
// count as varints. Datagrams may be lost, duplicated (by retransmission
// after a NACK) or reordered, so the Reassembler ignores duplicates, drops
// messages whose fragments stop arriving after Config.Timeout, and bounds
// its memory: at most Config.MaxPartial messages in progress of at most
// Config.MaxMessageSize bytes each.
//
// The package has no goroutines and reads no clock: the caller passes the
// current time to Add and Expire. It imports only the standard library and
// the project's pure packages jsperr, internal/protocol and wire (varints).
package fragment

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Defaults for a zero Config field.
const (
	// DefaultMaxPartial is how many messages may be in reassembly at once.
	DefaultMaxPartial = 32
	// DefaultTimeout is how long a message may take from its first
	// fragment to its last. Long enough for a NACK round trip on a slow
	// path; a real-time message older than this is useless anyway.
	DefaultTimeout = time.Second
	// DefaultRecentIDs is how many completed message ids are remembered,
	// so that a late duplicate fragment does not start a message that can
	// never complete.
	DefaultRecentIDs = 128
)

// Errors returned by Add. Sentinel values, so that rejecting a fragment
// never allocates.
var (
	// ErrInconsistent: a fragment's count differs from the count the
	// message's earlier fragments gave (JSP §5.13).
	ErrInconsistent = jsperr.New(jsperr.MalformedFrame, "fragment: count differs from earlier fragments of the message")
	// ErrTooLarge: the fragments of a message add up to more than
	// Config.MaxMessageSize (JSP §9).
	ErrTooLarge = jsperr.New(jsperr.DatagramTooLarge, "fragment: message over the size limit")
)

// Config bounds a Reassembler. Zero fields mean the named defaults.
type Config struct {
	// MaxPartial caps messages in reassembly at once. When a fragment of a
	// new message arrives at the cap, the oldest partial message is
	// dropped: in real-time traffic the newest is worth most. Zero means
	// DefaultMaxPartial.
	MaxPartial int
	// MaxMessageSize caps one reassembled message. Zero means
	// protocol.DefaultMaxDatagramMessage (64 KiB).
	MaxMessageSize protocol.ByteCount
	// Timeout drops a message this long after its first fragment arrived
	// unless it completed. Zero means DefaultTimeout.
	Timeout time.Duration
	// RecentIDs is how many completed message ids are remembered to ignore
	// late duplicates. Zero means DefaultRecentIDs.
	RecentIDs int
}

func (c *Config) validate() error {
	if c.MaxPartial < 0 || c.MaxMessageSize < 0 || c.Timeout < 0 || c.RecentIDs < 0 {
		return fmt.Errorf("fragment: invalid config %+v: negative limit", *c)
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.MaxPartial == 0 {
		c.MaxPartial = DefaultMaxPartial
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = protocol.DefaultMaxDatagramMessage
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RecentIDs == 0 {
		c.RecentIDs = DefaultRecentIDs
	}
}

// Stats counts what a Reassembler did. Every message that started
// reassembly ends in exactly one of Completed, TimedOut or Dropped, or is
// still in progress.
type Stats struct {
	// Completed counts reassembled messages, one-fragment ones included.
	Completed uint64
	// TimedOut counts messages dropped because Timeout passed.
	TimedOut uint64
	// Dropped counts messages discarded before completion: evicted at the
	// MaxPartial cap, over MaxMessageSize, or given inconsistent counts.
	Dropped uint64
	// Duplicates counts fragments ignored because their index had already
	// arrived or their message had already completed.
	Duplicates uint64
	// Malformed counts fragments whose header did not parse.
	Malformed uint64
}

// Message is a reassembled message.
type Message struct {
	ID   MsgID
	Data []byte
}

// partial is a message in reassembly.
type partial struct {
	id      MsgID
	count   int
	have    uint64 // bit i set: fragment i arrived
	size    int    // bytes of data received so far
	started time.Time
	frags   [MaxFragments][]byte // copies; only indexes < count are used
}

// Reassembler collects fragments into messages. It is not safe for
// concurrent use: the goroutine reading datagrams owns it.
type Reassembler struct {
	cfg Config

	// order holds the partial messages oldest first, so that eviction and
	// expiry look only at the front. It has at most MaxPartial entries,
	// small enough that removal from the middle by copying is cheaper
	// than a linked structure.
	order []*partial
	byID  map[MsgID]*partial

	// recent is a ring of the last RecentIDs completed ids, with a set for
	// lookup.
	recent    []MsgID
	recentPos int
	recentSet map[MsgID]struct{}

	buffered int // bytes held across all partial messages
	stats    Stats
}

// NewReassembler returns an empty Reassembler for cfg.
func NewReassembler(cfg Config) (*Reassembler, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	return &Reassembler{
		cfg:       cfg,
		order:     make([]*partial, 0, cfg.MaxPartial),
		byID:      make(map[MsgID]*partial, cfg.MaxPartial),
		recent:    make([]MsgID, 0, cfg.RecentIDs),
		recentSet: make(map[MsgID]struct{}, cfg.RecentIDs),
	}, nil
}

// Add processes one fragment received at now. It returns the message and
// true when frag completes one. A duplicate fragment is ignored (false, nil
// error). Errors are *jsperr.Error values: a header that does not parse
// (the fragment is ignored), ErrInconsistent or ErrTooLarge (the message is
// dropped as well).
//
// The returned Data never aliases frag, except for a one-fragment message,
// whose Data is frag's data as is: the common unfragmented case costs no
// copy.
func (r *Reassembler) Add(frag []byte, now time.Time) (Message, bool, error) {
	r.Expire(now)
	h, n, err := ParseHeader(frag)
	if err != nil {
		r.stats.Malformed++
		return Message{}, false, err
	}
	data := frag[n:]
	if _, done := r.recentSet[h.ID]; done {
		r.stats.Duplicates++
		return Message{}, false, nil
	}
	p := r.byID[h.ID]
	if p == nil {
		if len(data) > int(r.cfg.MaxMessageSize) {
			r.stats.Dropped++
			return Message{}, false, ErrTooLarge
		}
		if h.Count == 1 {
			r.complete(h.ID)
			return Message{ID: h.ID, Data: data}, true, nil
		}
		p = r.start(h, now)
	}
	if h.Count != p.count {
		r.drop(p)
		return Message{}, false, ErrInconsistent
	}
	bit := uint64(1) << h.Index
	if p.have&bit != 0 {
		r.stats.Duplicates++
		return Message{}, false, nil
	}
	if p.size+len(data) > int(r.cfg.MaxMessageSize) {
		r.drop(p)
		return Message{}, false, ErrTooLarge
	}
	// Copy: the caller reuses its receive buffer for the next datagram.
	p.frags[h.Index] = append([]byte(nil), data...)
	p.have |= bit
	p.size += len(data)
	r.buffered += len(data)
	if bits.OnesCount64(p.have) < p.count {
		return Message{}, false, nil
	}
	msg := make([]byte, 0, p.size)
	for _, f := range p.frags[:p.count] {
		msg = append(msg, f...)
	}
	r.remove(p)
	r.complete(p.id)
	return Message{ID: p.id, Data: msg}, true, nil
}

// Expire drops every partial message whose Timeout has passed at now and
// returns how many it dropped. Add calls it too; a receiver that may go
// quiet calls it from its timer to release memory.
func (r *Reassembler) Expire(now time.Time) int {
	n := 0
	for len(r.order) > 0 && now.Sub(r.order[0].started) >= r.cfg.Timeout {
		r.remove(r.order[0])
		r.stats.TimedOut++
		n++
	}
	return n
}

// NextDeadline returns when the oldest partial message times out, and false
// when none is in progress; a receiver sets its timer to it.
func (r *Reassembler) NextDeadline() (time.Time, bool) {
	if len(r.order) == 0 {
		return time.Time{}, false
	}
	return r.order[0].started.Add(r.cfg.Timeout), true
}

// Partial returns the number of messages in reassembly.
func (r *Reassembler) Partial() int { return len(r.order) }

// Buffered returns the bytes held by messages in reassembly.
func (r *Reassembler) Buffered() int { return r.buffered }

// Stats returns the counters.
func (r *Reassembler) Stats() Stats { return r.stats }

// start begins a partial message, evicting the oldest at the cap.
func (r *Reassembler) start(h Header, now time.Time) *partial {
	if len(r.order) >= r.cfg.MaxPartial {
		r.drop(r.order[0])
	}
	p := &partial{id: h.ID, count: h.Count, started: now}
	r.order = append(r.order, p)
	r.byID[h.ID] = p
	return p
}

// drop discards an unfinished message and counts it.
func (r *Reassembler) drop(p *partial) {
	r.remove(p)
	r.stats.Dropped++
}

// remove forgets p and releases its bytes.
func (r *Reassembler) remove(p *partial) {
	for i, q := range r.order {
		if q == p {
			copy(r.order[i:], r.order[i+1:])
			r.order[len(r.order)-1] = nil
			r.order = r.order[:len(r.order)-1]
			break
		}
	}
	delete(r.byID, p.id)
	r.buffered -= p.size
}

// complete counts a finished message and remembers its id.
func (r *Reassembler) complete(id MsgID) {
	r.stats.Completed++
	if len(r.recent) < cap(r.recent) {
		r.recent = append(r.recent, id)
	} else {
		delete(r.recentSet, r.recent[r.recentPos])
		r.recent[r.recentPos] = id
		r.recentPos = (r.recentPos + 1) % len(r.recent)
	}
	r.recentSet[id] = struct{}{}
}
