package fragment

import "github.com/jetstreamproto/jsp/jsperr"

// This file is the only place that knows the fragment header's bytes. It
// carries its own varint because the pure packages may not import wire
// (internal/archtest); the tests check it byte for byte against
// wire.AppendFragmentHeader / wire.ParseFragmentHeader, so the two can be
// folded into one.

// MsgID identifies one fragmented message among a sender's datagrams.
type MsgID uint64

// MaxFragments is the largest fragment count of one message (JSP §5.13).
const MaxFragments = 64

// maxVarint is the largest varint value (RFC 9000 §16; JSP §3.1).
const maxVarint = 1<<62 - 1

// Header is the fragment header (JSP §5.13):
//
//	+--------------+------------+------------+------+
//	| msg id (vi)  | index (vi) | count (vi) | data |
//	+--------------+------------+------------+------+
//
// with 1 <= count <= MaxFragments and index < count; vi = QUIC varint,
// shortest form.
type Header struct {
	ID    MsgID
	Index int
	Count int
}

// Decoding errors. Sentinel values, so that rejecting a fragment never
// allocates. Their codes match the wire package's for the same faults.
var (
	// ErrBadCount: count is 0 or above MaxFragments, or index >= count.
	ErrBadCount = jsperr.New(jsperr.MalformedFrame, "fragment: index/count out of range")
	// ErrTruncated: the header ends inside a varint (JSP §3.1).
	ErrTruncated = jsperr.New(jsperr.Truncated, "fragment: header truncated")
	// ErrNonMinimalVarint: a varint used more bytes than needed (JSP §3.1).
	ErrNonMinimalVarint = jsperr.New(jsperr.NonMinimalVarint, "fragment: varint not in shortest form")
)

// Len returns the encoded header length.
func (h Header) Len() int {
	return varintLen(uint64(h.ID)) + varintLen(uint64(h.Index)) + varintLen(uint64(h.Count))
}

// valid reports whether the index and count satisfy JSP §5.13.
func (h Header) valid() bool {
	return h.Count >= 1 && h.Count <= MaxFragments && h.Index >= 0 && h.Index < h.Count
}

// AppendHeader appends h to b. An invalid index or count, or an id above
// 2^62-1, is a programming error and panics, as the encoder has no way to
// report it.
func AppendHeader(b []byte, h Header) []byte {
	if !h.valid() {
		panic("fragment: invalid header index/count")
	}
	b = appendVarint(b, uint64(h.ID))
	b = appendVarint(b, uint64(h.Index))
	return appendVarint(b, uint64(h.Count))
}

// ParseHeader decodes a header from the front of b and returns it with the
// number of bytes consumed; the fragment data is b[n:].
func ParseHeader(b []byte) (Header, int, error) {
	id, n1, err := parseVarint(b)
	if err != nil {
		return Header{}, 0, err
	}
	idx, n2, err := parseVarint(b[n1:])
	if err != nil {
		return Header{}, 0, err
	}
	cnt, n3, err := parseVarint(b[n1+n2:])
	if err != nil {
		return Header{}, 0, err
	}
	// Compare as uint64 before converting: a huge varint must not wrap
	// into a valid-looking int.
	if cnt < 1 || cnt > MaxFragments || idx >= cnt {
		return Header{}, 0, ErrBadCount
	}
	return Header{ID: MsgID(id), Index: int(idx), Count: int(cnt)}, n1 + n2 + n3, nil
}

func varintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	case v <= maxVarint:
		return 8
	}
	panic("fragment: varint value over 2^62-1")
}

// appendVarint appends v in the shortest QUIC varint form: the top two bits
// of the first byte give the length (1, 2, 4 or 8 bytes).
func appendVarint(b []byte, v uint64) []byte {
	switch varintLen(v) {
	case 1:
		return append(b, byte(v))
	case 2:
		return append(b, byte(v>>8)|0x40, byte(v))
	case 4:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(b, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// parseVarint decodes one shortest-form varint from the front of b.
func parseVarint(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, ErrTruncated
	}
	n := 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, ErrTruncated
	}
	v := uint64(b[0] & 0x3f)
	for i := 1; i < n; i++ {
		v = v<<8 | uint64(b[i])
	}
	if varintLen(v) != n {
		return 0, 0, ErrNonMinimalVarint
	}
	return v, n, nil
}
