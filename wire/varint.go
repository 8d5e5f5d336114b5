package wire

import (
	"github.com/jetstreamproto/jsp/jsperr"
)

// MaxVarint is the largest value a varint can carry (2^62-1, RFC 9000 §16).
const MaxVarint = 1<<62 - 1

// Decoding errors shared by every decoder in this package. They are sentinel
// values so that decoding never allocates on the error path either.
var (
	// ErrTruncated: input ended inside a field (JSP §3.1).
	ErrTruncated = jsperr.New(jsperr.Truncated, "wire: input truncated")
	// ErrNonMinimalVarint: a varint used more bytes than needed (JSP §3.1).
	ErrNonMinimalVarint = jsperr.New(jsperr.NonMinimalVarint, "wire: varint not in shortest form")
	// ErrFrameTooLarge: a declared frame length is over the limit (JSP §9).
	ErrFrameTooLarge = jsperr.New(jsperr.FrameTooLarge, "wire: frame length over limit")
)

// VarintLen returns the encoded length of v: 1, 2, 4 or 8 bytes. Values above
// MaxVarint are a programming error and panic, as the encoder has no way to
// report them.
func VarintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	case v <= MaxVarint:
		return 8
	}
	panic("wire: varint value over 2^62-1")
}

// AppendVarint appends v in the shortest QUIC varint form (RFC 9000 §16; JSP
// §3.1) and returns the extended slice.
func AppendVarint(b []byte, v uint64) []byte {
	switch VarintLen(v) {
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

// ParseVarint decodes one varint from the front of b and returns the value and
// the number of bytes consumed. JSP requires the shortest form (JSP §3.1) so
// that every value has exactly one encoding, which signatures and byte-exact
// test vectors rely on.
func ParseVarint(b []byte) (uint64, int, error) {
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
	if n > 1 && VarintLen(v) != n {
		return 0, 0, ErrNonMinimalVarint
	}
	return v, n, nil
}
