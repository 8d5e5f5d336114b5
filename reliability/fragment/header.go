package fragment

import (
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// MsgID identifies one fragmented message among a sender's datagrams.
type MsgID uint64

// MaxFragments is the largest fragment count of one message (JSP §5.13).
const MaxFragments = 64

// Header is the fragment header (JSP §5.13):
//
//	+--------------+------------+------------+------+
//	| msg id (vi)  | index (vi) | count (vi) | data |
//	+--------------+------------+------------+------+
//
// with 1 <= count <= MaxFragments and index < count.
type Header struct {
	ID    MsgID
	Index int
	Count int
}

// Decoding errors. Sentinel values, so that rejecting a fragment never
// allocates.
var (
	// ErrBadCount: count is 0 or above MaxFragments, or index >= count.
	ErrBadCount = jsperr.New(jsperr.MalformedFrame, "fragment: index/count out of range")
)

// Len returns the encoded header length.
func (h Header) Len() int {
	return wire.VarintLen(uint64(h.ID)) + wire.VarintLen(uint64(h.Index)) + wire.VarintLen(uint64(h.Count))
}

// valid reports whether the index and count satisfy JSP §5.13.
func (h Header) valid() bool {
	return h.Count >= 1 && h.Count <= MaxFragments && h.Index >= 0 && h.Index < h.Count
}

// AppendHeader appends h to b. An invalid index or count, or an id above
// wire.MaxVarint, is a programming error and panics, as the encoder has no
// way to report it.
func AppendHeader(b []byte, h Header) []byte {
	if !h.valid() {
		panic("fragment: invalid header index/count")
	}
	b = wire.AppendVarint(b, uint64(h.ID))
	b = wire.AppendVarint(b, uint64(h.Index))
	return wire.AppendVarint(b, uint64(h.Count))
}

// ParseHeader decodes a header from the front of b and returns it with the
// number of bytes consumed; the fragment data is b[n:]. Varints must be in
// shortest form (JSP §3.1).
func ParseHeader(b []byte) (Header, int, error) {
	id, n1, err := wire.ParseVarint(b)
	if err != nil {
		return Header{}, 0, err
	}
	idx, n2, err := wire.ParseVarint(b[n1:])
	if err != nil {
		return Header{}, 0, err
	}
	cnt, n3, err := wire.ParseVarint(b[n1+n2:])
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
