package wire

// FragmentHeader starts the payload of every DATAGRAM frame (JSP §5.13). It
// is not CBOR: datagrams are small and hot, so it is three varints.
//
//	+-------------+-----------+-----------+------------------+
//	| msg id (vi) | index (vi)| count (vi)| data (rest)      |
//	+-------------+-----------+-----------+------------------+
//
// A datagram message that fits in one datagram has index 0 and count 1.
// Larger messages (up to Limits.MaxDatagramMessage) are cut into count
// fragments, 1 <= count <= MaxFragments, sharing the sender-chosen msg id;
// index < count orders them for reassembly.
type FragmentHeader struct {
	MsgID uint64
	Index uint16
	Count uint16
}

// Len returns the encoded length of h.
func (h FragmentHeader) Len() int {
	return VarintLen(h.MsgID) + VarintLen(uint64(h.Index)) + VarintLen(uint64(h.Count))
}

// AppendFragmentHeader appends the encoding of h to b (JSP §5.13).
func AppendFragmentHeader(b []byte, h FragmentHeader) []byte {
	b = AppendVarint(b, h.MsgID)
	b = AppendVarint(b, uint64(h.Index))
	return AppendVarint(b, uint64(h.Count))
}

// ParseFragmentHeader decodes a fragment header from the front of b and
// returns it with the bytes consumed; the fragment data is b[n:]. A count of
// 0 or above MaxFragments, or an index not below the count, is
// MALFORMED_FRAME (JSP §5.13).
func ParseFragmentHeader(b []byte) (FragmentHeader, int, error) {
	id, n1, err := ParseVarint(b)
	if err != nil {
		return FragmentHeader{}, 0, err
	}
	idx, n2, err := ParseVarint(b[n1:])
	if err != nil {
		return FragmentHeader{}, 0, err
	}
	cnt, n3, err := ParseVarint(b[n1+n2:])
	if err != nil {
		return FragmentHeader{}, 0, err
	}
	if cnt == 0 || cnt > MaxFragments || idx >= cnt {
		return FragmentHeader{}, 0, ErrBadFragment
	}
	return FragmentHeader{MsgID: id, Index: uint16(idx), Count: uint16(cnt)}, n1 + n2 + n3, nil
}

// Datagram is the payload of a DATAGRAM frame: a fragment header and the
// fragment's data (JSP §5.13). The flow it belongs to is the frame header's
// stream id field (see FlowID), not part of the payload.
type Datagram struct {
	Fragment FragmentHeader
	Data     []byte
}

// FrameType returns FrameDatagram.
func (m *Datagram) FrameType() FrameType { return FrameDatagram }

// Append appends the payload encoding of m to b.
func (m *Datagram) Append(b []byte) []byte {
	return append(AppendFragmentHeader(b, m.Fragment), m.Data...)
}

// Len returns the length of m's encoding.
func (m *Datagram) Len() int { return m.Fragment.Len() + len(m.Data) }

// ParseDatagram decodes a whole DATAGRAM payload: the data is the rest of b,
// so the bytes consumed are always len(b). Data is copied out of b.
func ParseDatagram(b []byte) (Datagram, int, error) {
	h, n, err := ParseFragmentHeader(b)
	if err != nil {
		return Datagram{}, 0, err
	}
	return Datagram{Fragment: h, Data: append([]byte(nil), b[n:]...)}, len(b), nil
}
