package fragment

import (
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/wire"
)

// Split cuts payload into at most MaxFragments fragments of message id,
// each at most maxSize bytes including its header, and returns them in
// index order. The fragments share one allocation. Data is spread evenly,
// so no fragment is much smaller than the others; an empty payload gives
// one fragment with no data.
//
// It fails with a DATAGRAM_TOO_LARGE *jsperr.Error when payload needs more
// than MaxFragments fragments, or when maxSize leaves no room for data after
// the header.
func Split(id MsgID, payload []byte, maxSize int) ([][]byte, error) {
	count, err := fragmentCount(id, len(payload), maxSize)
	if err != nil {
		return nil, err
	}
	// Even spread: the first len%count fragments carry one byte more.
	base, extra := len(payload)/count, len(payload)%count
	total := 0
	for i := range count {
		total += Header{ID: id, Index: i, Count: count}.Len()
	}
	buf := make([]byte, 0, total+len(payload))
	out := make([][]byte, count)
	off := 0
	for i := range count {
		n := base
		if i < extra {
			n++
		}
		start := len(buf)
		buf = AppendHeader(buf, Header{ID: id, Index: i, Count: count})
		buf = append(buf, payload[off:off+n]...)
		// Full slice expression: appending to one fragment must not
		// overwrite the next.
		out[i] = buf[start:len(buf):len(buf)]
		off += n
	}
	return out, nil
}

// fragmentCount returns how many fragments a payload of n bytes needs.
func fragmentCount(id MsgID, n, maxSize int) (int, error) {
	idLen := wire.VarintLen(uint64(id))
	// Index and count below 64 take one varint byte each; a count of
	// exactly 64 takes two (RFC 9000 §16), so the largest header is one
	// byte longer. Sizing every fragment by the header of its own count
	// keeps all of them within maxSize.
	for _, countLen := range []int{1, 2} {
		per := maxSize - idLen - 1 - countLen
		if per <= 0 {
			break
		}
		count := max(1, (n+per-1)/per)
		maxCount := 63
		if countLen == 2 {
			maxCount = MaxFragments
		}
		if count <= maxCount {
			return count, nil
		}
	}
	return 0, jsperr.Newf(jsperr.DatagramTooLarge,
		"fragment: %d-byte message does not fit %d fragments of %d bytes", n, MaxFragments, maxSize)
}
