package wire

// Uses is the bit set an ANNOUNCE frame carries: what the client is about
// to use besides the control stream (JSP §5.14). Bits this version does
// not define are kept when re-encoding and ignored by receivers (§8.3).
type Uses uint64

// Uses bits (JSP §5.14).
const (
	// UsesStreams: the client is about to open application streams
	// (Stream API, Mixed API message streams).
	UsesStreams Uses = 1 << 0
	// UsesDatagrams: the client is about to send datagrams (DATAGRAM
	// frames of any flow, NACKs in datagrams).
	UsesDatagrams Uses = 1 << 1
)

// Has reports whether every bit of v is set in u.
func (u Uses) Has(v Uses) bool { return u&v == v }

// Announce is the body of an ANNOUNCE frame (JSP §5.14): client -> server,
// on the control stream, sent before the client opens its first
// application stream or sends its first datagram when the `announce`
// capability is in effect (§8.2). The server starts taking streams and
// datagrams from the transport only then, so a session that never uses
// them costs no reader for them (§7.1). CBOR map keys:
//
//	1 uses uint   bit set: 1 streams, 2 datagrams; other bits reserved.
//	              Omitted when 0 (§6.2): such an ANNOUNCE announces nothing.
type Announce struct {
	Uses Uses
}

// FrameType returns FrameAnnounce.
func (m *Announce) FrameType() FrameType { return FrameAnnounce }

// Append appends the deterministic encoding of m to b (JSP §5.14).
func (m *Announce) Append(b []byte) []byte {
	b, at := beginBody(b)
	n := 0
	if m.Uses != 0 {
		b, n = appendUintField(b, 1, uint64(m.Uses)), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Announce) Len() int {
	if m.Uses == 0 {
		return 1
	}
	return 1 + uintFieldLen(1, uint64(m.Uses))
}

// ParseAnnounce decodes an ANNOUNCE body from the front of b (JSP §5.14).
func ParseAnnounce(b []byte) (Announce, int, error) {
	var m Announce
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Announce{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Announce{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			var v uint64
			v, err = d.optUint()
			m.Uses = Uses(v)
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Announce{}, 0, err
		}
	}
	return m, d.Offset(), nil
}
