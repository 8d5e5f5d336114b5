package bwe

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Arrival feedback (JSP §13.14) tells a media sender when each of its
// source packets arrived, which is what the delay-based estimator reads.
// It is a control packet (JSP §13.7) sent by a flow's receiver:
//
//	FEEDBACK (type 0x04):
//	  0xFF 0x04 | base seq u16 | count u16 | reference µs u64 |
//	  received bitmap, ceil(count/8) bytes, bit 7 of byte 0 = base seq |
//	  for each received packet in order: arrival delta i16, 250 µs units
//
// The first received packet's delta is from the reference time (the
// receiver's clock); each later one is from the previous received packet,
// and may be negative when packets were reordered. Numbers are the flow's
// 16-bit source sequence numbers (JSP §13.2); the sender extends them
// against the newest number it sent.
const (
	// TypeFeedback is the control type of arrival feedback.
	TypeFeedback byte = 0x04
	// FeedbackHeaderLen is the fixed part of a FEEDBACK packet.
	FeedbackHeaderLen = 2 + 2 + 2 + 8
	// FeedbackTick is the unit of arrival deltas.
	FeedbackTick = 250 * time.Microsecond
	// MaxFeedbackCount caps the numbers one FEEDBACK covers, so that it
	// fits one datagram with every packet received (14 + 63 + 2 x 500 =
	// 1,077 bytes, under the 1,085-byte room, JSP §13.10).
	MaxFeedbackCount = 500
	// DefaultFeedbackInterval is how often a receiver sends feedback.
	DefaultFeedbackInterval = 50 * time.Millisecond
	// DefaultMaxPending caps the arrivals a recorder holds between
	// feedbacks, and DefaultHistoryPackets the sent packets a history
	// remembers: several seconds at video packet rates.
	DefaultMaxPending     = 4096
	DefaultHistoryPackets = 8192
)

// Feedback is one decoded FEEDBACK packet.
type Feedback struct {
	// Base is the first sequence number covered.
	Base mediapkt.Seq
	// Arrivals holds, for Base, Base+1, ..., the arrival time on the
	// receiver's clock, or the zero time for a packet not received.
	Arrivals []time.Time
}

// reference time base: arrival times are carried as microseconds since
// the Unix epoch on the receiver's clock; only differences matter.
func toMicros(t time.Time) uint64 { return uint64(t.UnixMicro()) }

// AppendFeedback encodes f and appends it to b. Deltas that do not fit 16
// bits of 250 µs (about ±8 s) are an error: the recorder never builds one.
func AppendFeedback(b []byte, f Feedback) ([]byte, error) {
	n := len(f.Arrivals)
	if n < 1 || n > MaxFeedbackCount {
		return b, fmt.Errorf("bwe: feedback of %d numbers, want 1..%d: %w", n, MaxFeedbackCount, ErrProbeMalformed)
	}
	var ref time.Time
	for _, a := range f.Arrivals {
		if !a.IsZero() {
			ref = a
			break
		}
	}
	if ref.IsZero() {
		return b, fmt.Errorf("bwe: feedback with no packet received: %w", ErrProbeMalformed)
	}
	start := len(b)
	b = append(b, controlMarker, TypeFeedback)
	b = binary.BigEndian.AppendUint16(b, uint16(f.Base))
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	// The reference is truncated to whole ticks so that decoding gives
	// back exactly the times encoded.
	refTicks := toMicros(ref) / uint64(FeedbackTick/time.Microsecond)
	b = binary.BigEndian.AppendUint64(b, refTicks*uint64(FeedbackTick/time.Microsecond))
	bm := len(b)
	b = append(b, make([]byte, (n+7)/8)...)
	prev := int64(refTicks)
	for i, a := range f.Arrivals {
		if a.IsZero() {
			continue
		}
		b[bm+i/8] |= 0x80 >> (i % 8)
		t := int64(toMicros(a) / uint64(FeedbackTick/time.Microsecond))
		d := t - prev
		if d < -32768 || d > 32767 {
			return b[:start], fmt.Errorf("bwe: arrival delta of %d ticks: %w", d, ErrProbeMalformed)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(int16(d)))
		prev = t
	}
	return b, nil
}

// ParseFeedback decodes a FEEDBACK packet. Arrival times come back at
// FeedbackTick precision.
func ParseFeedback(b []byte) (Feedback, error) {
	var f Feedback
	if len(b) < 2 || b[0] != controlMarker || b[1] != TypeFeedback {
		return f, ErrNotProbe
	}
	if len(b) < FeedbackHeaderLen {
		return f, fmt.Errorf("bwe: feedback of %d bytes: %w", len(b), ErrProbeMalformed)
	}
	f.Base = mediapkt.Seq(binary.BigEndian.Uint16(b[2:]))
	n := int(binary.BigEndian.Uint16(b[4:]))
	ref := int64(binary.BigEndian.Uint64(b[6:]))
	if n < 1 || n > MaxFeedbackCount {
		return f, fmt.Errorf("bwe: feedback count %d: %w", n, ErrProbeMalformed)
	}
	bm := b[FeedbackHeaderLen:]
	if len(bm) < (n+7)/8 {
		return f, fmt.Errorf("bwe: feedback bitmap truncated: %w", ErrProbeMalformed)
	}
	deltas := bm[(n+7)/8:]
	bm = bm[:(n+7)/8]
	// Unused bitmap bits must be zero: one encoding per feedback.
	if n%8 != 0 && bm[len(bm)-1]&(0xFF>>(n%8)) != 0 {
		return f, fmt.Errorf("bwe: feedback bitmap padding set: %w", ErrProbeMalformed)
	}
	recv := 0
	for i := range n {
		if bm[i/8]&(0x80>>(i%8)) != 0 {
			recv++
		}
	}
	if recv == 0 || len(deltas) != 2*recv {
		return f, fmt.Errorf("bwe: feedback with %d received and %d delta bytes: %w", recv, len(deltas), ErrProbeMalformed)
	}
	tick := int64(FeedbackTick / time.Microsecond)
	// A reference past 2^62 µs (146,000 years) or off the tick grid is
	// malformed: it keeps the arithmetic below far from overflow and
	// gives each feedback one encoding.
	if ref < 0 || ref > 1<<62 || ref%tick != 0 {
		return f, fmt.Errorf("bwe: feedback reference %d µs: %w", ref, ErrProbeMalformed)
	}
	f.Arrivals = make([]time.Time, n)
	t := ref / tick
	for i := range n {
		if bm[i/8]&(0x80>>(i%8)) == 0 {
			continue
		}
		t += int64(int16(binary.BigEndian.Uint16(deltas)))
		deltas = deltas[2:]
		if t < 0 {
			return f, fmt.Errorf("bwe: feedback arrival before the epoch: %w", ErrProbeMalformed)
		}
		f.Arrivals[i] = time.UnixMicro(t * tick)
	}
	return f, nil
}

// FeedbackRecorder collects a flow's arrivals on the receiving side and
// builds FEEDBACK packets. It is not safe for concurrent use.
type FeedbackRecorder struct {
	max     int
	unwrap  mediapkt.Unwrapper
	arr     map[protocol.MediaSeq]time.Time
	next    protocol.MediaSeq // first number not yet reported
	started bool
	dropped uint64
}

// NewFeedbackRecorder returns a recorder holding at most maxPending
// arrivals (0: DefaultMaxPending).
func NewFeedbackRecorder(maxPending int) (*FeedbackRecorder, error) {
	if maxPending == 0 {
		maxPending = DefaultMaxPending
	}
	if maxPending < 1 {
		return nil, fmt.Errorf("bwe: maxPending %d below 1", maxPending)
	}
	return &FeedbackRecorder{max: maxPending, arr: map[protocol.MediaSeq]time.Time{}}, nil
}

// Record notes that source packet seq arrived at t. Retransmissions and
// parity should not be recorded: their timing is not the path's.
func (r *FeedbackRecorder) Record(seq mediapkt.Seq, t time.Time) {
	ext := r.unwrap.Unwrap(seq)
	if !r.started {
		r.started, r.next = true, ext
	}
	if ext < r.next {
		return // already reported (as lost): too late to matter
	}
	if len(r.arr) >= r.max {
		// Too much unreported: give up the oldest span rather than grow.
		r.dropped++
		r.skipTo(ext)
	}
	r.arr[ext] = t
}

func (r *FeedbackRecorder) skipTo(ext protocol.MediaSeq) {
	for q := range r.arr {
		if q < ext {
			delete(r.arr, q)
		}
	}
	r.next = ext
}

// Dropped returns how often the recorder overflowed.
func (r *FeedbackRecorder) Dropped() uint64 { return r.dropped }

// Build returns the FEEDBACK packets for everything up to the newest
// arrival: numbers from the last feedback on, each either with its arrival
// or as lost. Call it every DefaultFeedbackInterval.
func (r *FeedbackRecorder) Build() [][]byte {
	hi, ok := r.unwrap.Highest()
	if !ok || hi < r.next {
		return nil
	}
	var out [][]byte
	for r.next <= hi {
		n := min(int(hi-r.next)+1, MaxFeedbackCount)
		f := Feedback{Base: mediapkt.SeqOf(r.next), Arrivals: make([]time.Time, n)}
		any := false
		for i := range n {
			q := r.next + protocol.MediaSeq(i)
			if a, ok := r.arr[q]; ok {
				f.Arrivals[i], any = a, true
				delete(r.arr, q)
			}
		}
		r.next += protocol.MediaSeq(n)
		if !any {
			continue // a span with nothing received says only "lost"; the next one covers it
		}
		b, err := AppendFeedback(nil, f)
		if err != nil {
			// Arrival deltas beyond ±8 s: the clock jumped. Drop the
			// span; the estimator sees a gap in feedback, no bad data.
			continue
		}
		out = append(out, b)
	}
	return out
}

type sentPacket struct {
	seq  protocol.MediaSeq
	at   time.Time
	size int
	ok   bool
}

// SendHistory remembers when a sender sent its source packets, to turn
// FEEDBACK into [PacketResult]s. It is not safe for concurrent use.
type SendHistory struct {
	ring    []sentPacket
	newest  protocol.MediaSeq
	started bool
}

// NewSendHistory returns a history of at most packets entries (0:
// DefaultHistoryPackets).
func NewSendHistory(packets int) (*SendHistory, error) {
	if packets == 0 {
		packets = DefaultHistoryPackets
	}
	if packets < 1 {
		return nil, fmt.Errorf("bwe: history of %d packets", packets)
	}
	return &SendHistory{ring: make([]sentPacket, packets)}, nil
}

// OnSent records a source packet's first transmission; seq is the
// sender's extended number.
func (h *SendHistory) OnSent(seq protocol.MediaSeq, at time.Time, size int) {
	h.ring[uint64(seq)%uint64(len(h.ring))] = sentPacket{seq: seq, at: at, size: size, ok: true}
	if !h.started || seq > h.newest {
		h.newest, h.started = seq, true
	}
}

// Results matches a feedback against the history, in sequence order, for
// [Estimator.OnFeedback]. Numbers the history no longer (or never) holds
// are left out.
func (h *SendHistory) Results(f Feedback) []PacketResult {
	if !h.started {
		return nil
	}
	base := mediapkt.Extend(h.newest, f.Base)
	out := make([]PacketResult, 0, len(f.Arrivals))
	for i, a := range f.Arrivals {
		q := base + protocol.MediaSeq(i)
		e := h.ring[uint64(q)%uint64(len(h.ring))]
		if !e.ok || e.seq != q {
			continue
		}
		out = append(out, PacketResult{SendTime: e.at, Arrival: a, Size: e.size})
	}
	return out
}
