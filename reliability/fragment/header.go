package fragment

import (
	"github.com/jetstreamproto/jsp/wire"
)

// The fragment header's bytes are defined once, in package wire
// (wire.FragmentHeader); this file adapts it to the package's types.

// MsgID identifies one fragmented message among a sender's datagrams.
type MsgID uint64

// MaxFragments is the largest fragment count of one message (JSP §5.13).
const MaxFragments = wire.MaxFragments

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

// ErrBadCount is returned by ParseHeader when count is 0 or above
// MaxFragments, or index >= count (JSP §5.13). Varint faults are wire's
// sentinel errors (wire.ErrTruncated, wire.ErrNonMinimalVarint).
var ErrBadCount = wire.ErrBadFragment

// Len returns the encoded header length.
func (h Header) Len() int { return h.wire().Len() }

func (h Header) wire() wire.FragmentHeader {
	return wire.FragmentHeader{MsgID: uint64(h.ID), Index: uint16(h.Index), Count: uint16(h.Count)}
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
	return wire.AppendFragmentHeader(b, h.wire())
}

// ParseHeader decodes a header from the front of b and returns it with the
// number of bytes consumed; the fragment data is b[n:]. Varints must be in
// shortest form (JSP §3.1).
func ParseHeader(b []byte) (Header, int, error) {
	wh, n, err := wire.ParseFragmentHeader(b)
	if err != nil {
		return Header{}, 0, err
	}
	return Header{ID: MsgID(wh.MsgID), Index: int(wh.Index), Count: int(wh.Count)}, n, nil
}
