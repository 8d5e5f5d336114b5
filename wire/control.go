package wire

import (
	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Ping is the body of a PING frame (JSP §5.4, §11.2). The receiver answers
// with a PONG carrying the same values, so the sender measures the round
// trip with its own clock. CBOR map keys:
//
//	1 id uint   sender-chosen, echoed
//	2 ts uint   sender's clock in microseconds, echoed
type Ping struct {
	ID        uint64
	Timestamp uint64 // microseconds, sender's clock
}

// Pong is the body of a PONG frame: the values of the PING it answers (JSP
// §5.4). Its encoding is the same as Ping's.
type Pong Ping

// FrameType returns FramePing.
func (m *Ping) FrameType() FrameType { return FramePing }

// Append appends the deterministic encoding of m to b (JSP §5.4).
func (m *Ping) Append(b []byte) []byte { return appendPing(b, m.ID, m.Timestamp) }

// Len returns the length of m's encoding.
func (m *Ping) Len() int { return pingLen(m.ID, m.Timestamp) }

// FrameType returns FramePong.
func (m *Pong) FrameType() FrameType { return FramePong }

// Append appends the deterministic encoding of m to b (JSP §5.4).
func (m *Pong) Append(b []byte) []byte { return appendPing(b, m.ID, m.Timestamp) }

// Len returns the length of m's encoding.
func (m *Pong) Len() int { return pingLen(m.ID, m.Timestamp) }

func appendPing(b []byte, id, ts uint64) []byte {
	b, at := beginBody(b)
	n := 0
	if id != 0 {
		b, n = appendUintField(b, 1, id), n+1
	}
	if ts != 0 {
		b, n = appendUintField(b, 2, ts), n+1
	}
	return endBody(b, at, n)
}

func pingLen(id, ts uint64) int {
	n := 1
	if id != 0 {
		n += uintFieldLen(1, id)
	}
	if ts != 0 {
		n += uintFieldLen(2, ts)
	}
	return n
}

// ParsePing decodes a PING body from the front of b (JSP §5.4).
func ParsePing(b []byte) (Ping, int, error) {
	var m Ping
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Ping{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Ping{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			m.ID, err = d.optUint()
		case 2:
			m.Timestamp, err = d.optUint()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Ping{}, 0, err
		}
	}
	return m, d.Offset(), nil
}

// ParsePong decodes a PONG body from the front of b (JSP §5.4).
func ParsePong(b []byte) (Pong, int, error) {
	m, n, err := ParsePing(b)
	return Pong(m), n, err
}

// Goaway is the body of a GOAWAY frame (JSP §5.5, §11.6): the server is
// closing the session and the client should reconnect, preferably to one of
// the alternatives, within the grace period. CBOR map keys:
//
//	1 code         uint    registry code, usually GOING_AWAY
//	2 reason       text ..1024
//	3 alternatives [text]  1..16 gateway addresses, each 1..256 bytes
//	4 grace_ms     uint    how long the server keeps serving
type Goaway struct {
	Code         jsperr.Code
	Reason       string
	Alternatives []string
	GraceMS      uint64
}

// FrameType returns FrameGoaway.
func (m *Goaway) FrameType() FrameType { return FrameGoaway }

// Append appends the deterministic encoding of m to b (JSP §5.5).
func (m *Goaway) Append(b []byte) []byte {
	b, at := beginBody(b)
	n := 0
	if m.Code != 0 {
		b, n = appendUintField(b, 1, uint64(m.Code)), n+1
	}
	if m.Reason != "" {
		b, n = appendTextField(b, 2, m.Reason), n+1
	}
	if len(m.Alternatives) != 0 {
		b = AppendCBORUint(b, 3)
		b, n = appendTextList(b, m.Alternatives), n+1
	}
	if m.GraceMS != 0 {
		b, n = appendUintField(b, 4, m.GraceMS), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Goaway) Len() int {
	n := 1
	if m.Code != 0 {
		n += uintFieldLen(1, uint64(m.Code))
	}
	if m.Reason != "" {
		n += strFieldLen(2, len(m.Reason))
	}
	if len(m.Alternatives) != 0 {
		n += 1 + textListLen(m.Alternatives)
	}
	if m.GraceMS != 0 {
		n += uintFieldLen(4, m.GraceMS)
	}
	return n
}

// ParseGoaway decodes a GOAWAY body from the front of b (JSP §5.5).
func ParseGoaway(b []byte) (Goaway, int, error) {
	var m Goaway
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Goaway{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Goaway{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			var v uint64
			v, err = d.optUint()
			m.Code = jsperr.Code(v)
		case 2:
			m.Reason, err = d.optText(MaxReasonLen)
		case 3:
			m.Alternatives, err = d.textList(MaxGateways, MaxNameLen)
		case 4:
			m.GraceMS, err = d.optUint()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Goaway{}, 0, err
		}
	}
	return m, d.Offset(), nil
}

// Cursor is a subscriber's position in a channel: the highest sequence
// number it has processed (JSP §5.6), encoded as [channel, seq].
type Cursor struct {
	Channel string
	Seq     uint64
}

// Ack acknowledges messages (JSP §5.6): the server acknowledges client
// message ids after durable commit; a client acknowledges channel positions.
// CBOR map keys:
//
//	1 ids     [bytes]           1..1024 ids, each 1..64 bytes
//	2 cursors [[text, uint]]    1..256 [channel, seq] pairs
type Ack struct {
	IDs     [][]byte
	Cursors []Cursor
}

// FrameType returns FrameAck.
func (m *Ack) FrameType() FrameType { return FrameAck }

// Append appends the deterministic encoding of m to b (JSP §5.6).
func (m *Ack) Append(b []byte) []byte {
	b, at := beginBody(b)
	n := 0
	if len(m.IDs) != 0 {
		b = AppendCBORUint(b, 1)
		b = AppendCBORArrayHeader(b, len(m.IDs))
		for _, id := range m.IDs {
			b = AppendCBORBytes(b, id)
		}
		n++
	}
	if len(m.Cursors) != 0 {
		b = AppendCBORUint(b, 2)
		b = AppendCBORArrayHeader(b, len(m.Cursors))
		for _, c := range m.Cursors {
			b = AppendCBORArrayHeader(b, 2)
			b = AppendCBORText(b, c.Channel)
			b = AppendCBORUint(b, c.Seq)
		}
		n++
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Ack) Len() int {
	n := 1
	if len(m.IDs) != 0 {
		n += 1 + cborHeadLen(uint64(len(m.IDs)))
		for _, id := range m.IDs {
			n += cborStrLen(len(id))
		}
	}
	if len(m.Cursors) != 0 {
		n += 1 + cborHeadLen(uint64(len(m.Cursors)))
		for _, c := range m.Cursors {
			n += 1 + cborStrLen(len(c.Channel)) + cborHeadLen(c.Seq)
		}
	}
	return n
}

// ParseAck decodes an ACK body from the front of b (JSP §5.6).
func ParseAck(b []byte) (Ack, int, error) {
	var m Ack
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Ack{}, 0, err
	}
	idBytes := 0
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Ack{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			m.IDs, idBytes, err = d.idList()
		case 2:
			m.Cursors, err = d.cursors()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Ack{}, 0, err
		}
	}
	a := make(arena, 0, idBytes)
	for i := range m.IDs {
		m.IDs[i] = a.clone(m.IDs[i])
	}
	return m, d.Offset(), nil
}

// idList reads 1..MaxAckIDs ids of 1..MaxIDLen bytes each, aliasing the
// input, and returns their total length.
func (d *CBORDecoder) idList() ([][]byte, int, error) {
	n, err := d.ArrayHeader(MaxAckIDs)
	if err != nil {
		return nil, 0, err
	}
	if n == 0 {
		return nil, 0, ErrNonCanonical
	}
	ids, total := make([][]byte, n), 0
	for i := range ids {
		id, err := d.Bytes(MaxIDLen)
		if err != nil {
			return nil, 0, err
		}
		if len(id) == 0 {
			return nil, 0, ErrFieldRange
		}
		ids[i], total = id, total+len(id)
	}
	return ids, total, nil
}

// cursors reads 1..MaxAckCursors [channel, seq] pairs.
func (d *CBORDecoder) cursors() ([]Cursor, error) {
	n, err := d.ArrayHeader(MaxAckCursors)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrNonCanonical
	}
	cs := make([]Cursor, n)
	for i := range cs {
		k, err := d.ArrayHeader(2)
		if err != nil {
			return nil, err
		}
		if k != 2 {
			return nil, ErrFieldRange
		}
		ch, err := d.TextBytes(MaxRouteNameLen)
		if err != nil {
			return nil, err
		}
		if len(ch) == 0 {
			return nil, ErrFieldRange
		}
		seq, err := d.Uint()
		if err != nil {
			return nil, err
		}
		cs[i] = Cursor{Channel: string(ch), Seq: seq}
	}
	return cs, nil
}

// FlowID names a datagram flow: the stream id field of a DATAGRAM frame
// header (JSP §5.13).
type FlowID uint64

// Datagram flows defined by JSP/1 (JSP §5.13). Other ids carry media flows
// that the media layer assigns.
const (
	FlowDatagramAPI     FlowID = 0 // the Datagram API
	FlowMixedUnreliable FlowID = 1 // Mixed API messages in unreliable mode (JSP §12)
)

// Nack is the body of a NACK frame (JSP §5.6, §13): the receiver of a media
// flow lists sequence numbers it has not received, and the sender resends
// them from its cache while their deadline allows. CBOR map keys:
//
//	1 flow uint     the datagram flow; absent = 0
//	2 seqs [uint]   required, 1..1024 sequence numbers
type Nack struct {
	Flow FlowID
	Seqs []uint64
}

// FrameType returns FrameNack.
func (m *Nack) FrameType() FrameType { return FrameNack }

// Append appends the deterministic encoding of m to b (JSP §5.6).
func (m *Nack) Append(b []byte) []byte {
	b, at := beginBody(b)
	n := 1
	if m.Flow != 0 {
		b, n = appendUintField(b, 1, uint64(m.Flow)), n+1
	}
	b = AppendCBORUint(b, 2)
	b = AppendCBORArrayHeader(b, len(m.Seqs))
	for _, s := range m.Seqs {
		b = AppendCBORUint(b, s)
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Nack) Len() int {
	n := 1 + 1 + cborHeadLen(uint64(len(m.Seqs)))
	if m.Flow != 0 {
		n += uintFieldLen(1, uint64(m.Flow))
	}
	for _, s := range m.Seqs {
		n += cborHeadLen(s)
	}
	return n
}

// ParseNack decodes a NACK body from the front of b (JSP §5.6).
func ParseNack(b []byte) (Nack, int, error) {
	var m Nack
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Nack{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Nack{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			var v uint64
			v, err = d.optUint()
			m.Flow = FlowID(v)
		case 2:
			m.Seqs, err = d.seqList()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Nack{}, 0, err
		}
	}
	if !mp.Has(2) {
		return Nack{}, 0, ErrMissingField
	}
	return m, d.Offset(), nil
}

// seqList reads 1..MaxNackSeqs unsigned integers.
func (d *CBORDecoder) seqList() ([]uint64, error) {
	n, err := d.ArrayHeader(MaxNackSeqs)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrFieldRange
	}
	l := make([]uint64, n)
	for i := range l {
		if l[i], err = d.Uint(); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// Subscribe asks the server for a channel's events (JSP §5.7). CBOR map
// keys:
//
//	1 channel text 1..256   required
//	2 since   uint          replay events with seq > since; absent = live only
//	3 req     bytes 1..64   request id, echoed in the ACK or ERROR ref
//
// Since is the one field where 0 differs from absence (0 = replay the whole
// retained history), so its presence is a separate field.
type Subscribe struct {
	Channel  string
	Since    uint64
	HasSince bool
	ReqID    []byte
}

// FrameType returns FrameSubscribe.
func (m *Subscribe) FrameType() FrameType { return FrameSubscribe }

// Append appends the deterministic encoding of m to b (JSP §5.7).
func (m *Subscribe) Append(b []byte) []byte {
	b, at := beginBody(b)
	b = appendTextField(b, 1, m.Channel)
	n := 1
	if m.HasSince {
		b, n = appendUintField(b, 2, m.Since), n+1
	}
	if len(m.ReqID) != 0 {
		b, n = appendBytesField(b, 3, m.ReqID), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Subscribe) Len() int {
	n := 1 + strFieldLen(1, len(m.Channel))
	if m.HasSince {
		n += uintFieldLen(2, m.Since)
	}
	if len(m.ReqID) != 0 {
		n += strFieldLen(3, len(m.ReqID))
	}
	return n
}

// ParseSubscribe decodes a SUBSCRIBE body from the front of b (JSP §5.7).
func ParseSubscribe(b []byte) (Subscribe, int, error) {
	var m Subscribe
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Subscribe{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Subscribe{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			m.Channel, err = d.channel()
		case 2:
			m.Since, err = d.Uint()
			m.HasSince = true
		case 3:
			m.ReqID, err = d.optBytes(MaxIDLen)
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Subscribe{}, 0, err
		}
	}
	if !mp.Has(1) {
		return Subscribe{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.ReqID))
	m.ReqID = a.clone(m.ReqID)
	return m, d.Offset(), nil
}

// channel reads a required channel name of 1..MaxRouteNameLen bytes.
func (d *CBORDecoder) channel() (string, error) {
	p, err := d.TextBytes(MaxRouteNameLen)
	if err != nil {
		return "", err
	}
	if len(p) == 0 {
		return "", ErrFieldRange
	}
	return string(p), nil
}

// Unsubscribe ends a subscription (JSP §5.7). CBOR map keys (2 is unused so
// the keys match SUBSCRIBE's):
//
//	1 channel text 1..256   required
//	3 req     bytes 1..64   request id
type Unsubscribe struct {
	Channel string
	ReqID   []byte
}

// FrameType returns FrameUnsubscribe.
func (m *Unsubscribe) FrameType() FrameType { return FrameUnsubscribe }

// Append appends the deterministic encoding of m to b (JSP §5.7).
func (m *Unsubscribe) Append(b []byte) []byte {
	b, at := beginBody(b)
	b = appendTextField(b, 1, m.Channel)
	n := 1
	if len(m.ReqID) != 0 {
		b, n = appendBytesField(b, 3, m.ReqID), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *Unsubscribe) Len() int {
	n := 1 + strFieldLen(1, len(m.Channel))
	if len(m.ReqID) != 0 {
		n += strFieldLen(3, len(m.ReqID))
	}
	return n
}

// ParseUnsubscribe decodes an UNSUBSCRIBE body from the front of b (JSP §5.7).
func ParseUnsubscribe(b []byte) (Unsubscribe, int, error) {
	var m Unsubscribe
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return Unsubscribe{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return Unsubscribe{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			m.Channel, err = d.channel()
		case 3:
			m.ReqID, err = d.optBytes(MaxIDLen)
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return Unsubscribe{}, 0, err
		}
	}
	if !mp.Has(1) {
		return Unsubscribe{}, 0, ErrMissingField
	}
	a := make(arena, 0, len(m.ReqID))
	m.ReqID = a.clone(m.ReqID)
	return m, d.Offset(), nil
}

// StreamOpen is the first frame on every Stream API stream (JSP §5.12). CBOR
// map keys:
//
//	1 class    uint 0..3        QoS class of the stream; absent = system
//	2 label    text ..256       application name for the stream
//	3 metadata {text => text}   at most 64 entries, as envelope headers
type StreamOpen struct {
	Class    protocol.Class
	Label    string
	Metadata map[string]string
}

// FrameType returns FrameStreamOpen.
func (m *StreamOpen) FrameType() FrameType { return FrameStreamOpen }

// Append appends the deterministic encoding of m to b (JSP §5.12).
func (m *StreamOpen) Append(b []byte) []byte {
	b, at := beginBody(b)
	n := 0
	if m.Class != 0 {
		b, n = appendUintField(b, 1, uint64(m.Class)), n+1
	}
	if m.Label != "" {
		b, n = appendTextField(b, 2, m.Label), n+1
	}
	if len(m.Metadata) != 0 {
		b = AppendCBORUint(b, 3)
		b, n = appendTextMap(b, m.Metadata), n+1
	}
	return endBody(b, at, n)
}

// Len returns the length of m's encoding.
func (m *StreamOpen) Len() int {
	n := 1
	if m.Class != 0 {
		n += uintFieldLen(1, uint64(m.Class))
	}
	if m.Label != "" {
		n += strFieldLen(2, len(m.Label))
	}
	if len(m.Metadata) != 0 {
		n += 1 + textMapLen(m.Metadata)
	}
	return n
}

// ParseStreamOpen decodes a STREAM_OPEN body from the front of b (JSP §5.12).
func ParseStreamOpen(b []byte) (StreamOpen, int, error) {
	var m StreamOpen
	d := NewCBORDecoder(b)
	mp, err := d.Map(maxBodyFields)
	if err != nil {
		return StreamOpen{}, 0, err
	}
	for {
		key, ok, err := mp.Next()
		if err != nil {
			return StreamOpen{}, 0, err
		}
		if !ok {
			break
		}
		switch key {
		case 1:
			var v uint64
			v, err = d.optUint()
			if err == nil && v >= protocol.NumClasses {
				err = ErrFieldRange
			}
			m.Class = protocol.Class(v)
		case 2:
			m.Label, err = d.optText(MaxNameLen)
		case 3:
			m.Metadata, err = d.textMap()
		default:
			err = d.Skip() // JSP §8.3
		}
		if err != nil {
			return StreamOpen{}, 0, err
		}
	}
	return m, d.Offset(), nil
}
