package mediapkt

import "github.com/jetstreamproto/jsp/internal/protocol"

// Seq is the 16-bit sequence number carried in a media datagram header
// (JSP §13). It wraps from 65535 to 0; compare two values with [Seq.Newer]
// or [Seq.Diff], never with < or >.
type Seq uint16

// seqHalf is the distance at which two sequence numbers stop being
// comparable: serial-number arithmetic (RFC 1982) orders a and b only when
// they are less than half the number space apart.
const seqHalf = 1 << 15

// Diff returns the signed distance s - t in the circular sequence space, in
// [-32768, 32767]. A positive result means s is newer than t.
func (s Seq) Diff(t Seq) int {
	// The subtraction wraps modulo 2^16; reading the result as int16 maps
	// it onto the nearest signed distance, which is the serial-number
	// comparison of RFC 1982.
	return int(int16(s - t))
}

// Newer reports whether s comes after t, allowing for wraparound: 0 is newer
// than 65535. Two numbers exactly half the space apart (32768) are not
// ordered: neither is newer than the other.
func (s Seq) Newer(t Seq) bool {
	d := s - t
	return d != 0 && d < seqHalf
}

// Older reports whether s comes before t, allowing for wraparound.
func (s Seq) Older(t Seq) bool { return t.Newer(s) }

// Add returns s advanced by n (n may be negative), wrapping modulo 2^16.
func (s Seq) Add(n int) Seq { return s + Seq(uint16(n)) }

// SeqOf returns the wire sequence number of an extended one: its low 16 bits.
func SeqOf(x protocol.MediaSeq) Seq { return Seq(uint16(x)) }

// Extend returns the extended sequence number whose low 16 bits are s and
// which lies nearest to ref, the newest extended number known so far. A
// value that would fall below zero (s older than ref while ref is still in
// the first lap) is taken from the next lap instead, since an extended number
// is never negative.
//
// Extension is exact while reordering and loss stay under half the 16-bit
// space (32,768 packets), which at 2,000 packets per second is 16 seconds:
// far longer than any media deadline.
func Extend(ref protocol.MediaSeq, s Seq) protocol.MediaSeq {
	d := int64(s.Diff(SeqOf(ref)))
	if d < 0 && uint64(-d) > uint64(ref) {
		d += 1 << 16
	}
	return protocol.MediaSeq(int64(ref) + d)
}

// Unwrapper extends the 16-bit sequence numbers of one flow, as received,
// into [protocol.MediaSeq] values (the extended sequence number of RFC 3550,
// Appendix A.1). The zero value is ready to use: the first number it sees is
// taken as-is in the first lap.
type Unwrapper struct {
	highest protocol.MediaSeq
	started bool
}

// Unwrap extends s relative to the newest number seen so far and, when s is
// newer, remembers it as the new reference.
func (u *Unwrapper) Unwrap(s Seq) protocol.MediaSeq {
	if !u.started {
		u.started = true
		u.highest = protocol.MediaSeq(s)
		return u.highest
	}
	x := Extend(u.highest, s)
	if x > u.highest {
		u.highest = x
	}
	return x
}

// Highest returns the newest extended number seen, and false before the
// first call to Unwrap.
func (u *Unwrapper) Highest() (protocol.MediaSeq, bool) { return u.highest, u.started }

// ExtendTimestamp is [Extend] for the 32-bit media timestamp: it returns the
// 64-bit timestamp whose low 32 bits are ts and which lies nearest to ref,
// never below zero.
func ExtendTimestamp(ref uint64, ts uint32) uint64 {
	d := int64(int32(ts - uint32(ref)))
	if d < 0 && uint64(-d) > ref {
		d += 1 << 32
	}
	return uint64(int64(ref) + d)
}
