package wire

import (
	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Message is a decoded session frame payload (JSP §5): *Hello, *Welcome,
// *ErrorMessage, *Ping, *Pong, *Goaway, *Ack, *Nack, *Subscribe,
// *Unsubscribe, *EnvelopeFrame, *StreamOpen, *Datagram or *Announce.
//
// Every codec in this package has the same shape: Append appends the
// deterministic encoding to a caller-supplied slice and returns it, Len
// returns the encoded length without encoding, and a package function
// ParseX(b) (X, int, error) decodes an X from the front of b with the
// default limits and returns it with the number of bytes consumed. Decoded
// values never alias b.
type Message interface {
	// FrameType is the type of the frame that carries the message.
	FrameType() FrameType
	// Append appends the encoded payload to b.
	Append(b []byte) []byte
	// Len returns the length Append adds.
	Len() int
}

// EnvelopeFrame is an envelope together with the frame type that carries it:
// PUBLISH, EVENT, COMMAND, REPLY, NOTIFY or MESSAGE (JSP §5.8-§5.11). The
// frame type says where the envelope is going (client to server or back);
// the envelope's Kind says what it is.
type EnvelopeFrame struct {
	Type     FrameType
	Envelope Envelope
}

// FrameType returns the carrying frame type.
func (m *EnvelopeFrame) FrameType() FrameType { return m.Type }

// Append appends the envelope's encoding to b.
func (m *EnvelopeFrame) Append(b []byte) []byte { return m.Envelope.Append(b) }

// Len returns the length of the envelope's encoding.
func (m *EnvelopeFrame) Len() int { return m.Envelope.Len() }

// envelopeKinds gives the envelope kind each envelope-carrying frame type
// requires; MESSAGE (JSP §5.11) carries any kind and is absent here.
var envelopeKinds = map[FrameType]Kind{
	FramePublish: KindEvent,
	FrameEvent:   KindEvent,
	FrameCommand: KindCommand,
	FrameReply:   KindReply,
	FrameNotify:  KindNotification,
}

// AppendMessage appends a whole frame carrying m: the header (type from
// m.FrameType(), length from m.Len()) and the payload.
func AppendMessage(b []byte, f Flags, sid protocol.StreamID, m Message) []byte {
	b = AppendHeader(b, Header{Type: m.FrameType(), Flags: f, StreamID: sid, Length: uint64(m.Len())})
	return m.Append(b)
}

// DecodeMessage decodes the payload of a session frame of type t with the
// default limits. See Limits.DecodeMessage.
func DecodeMessage(t FrameType, payload []byte) (Message, error) {
	return decodeMessage(t, payload, &defaultLimits)
}

// DecodeMessage decodes the payload of a session frame of type t (JSP §5).
// The payload must be exactly one message; trailing bytes are
// MALFORMED_FRAME. Envelope-carrying frames decode to *EnvelopeFrame and
// their envelope kind must match the frame type.
//
// A frame type JSP/1 does not define returns ErrUnknownFrame, which is not
// a protocol error: the receiver skips the frame (JSP §8.3). A link frame
// returns ErrNotSessionFrame.
func (l *Limits) DecodeMessage(t FrameType, payload []byte) (Message, error) {
	c := l.withDefaults()
	return decodeMessage(t, payload, &c)
}

// decodeAs runs a ParseX function and returns the decoded value as a
// Message (a pointer to X), so decodeMessage dispatches with one line per
// frame type.
func decodeAs[T any, PT interface {
	*T
	Message
}](parse func([]byte) (T, int, error), p []byte) (Message, int, error) {
	v, n, err := parse(p)
	if err != nil {
		return nil, n, err
	}
	return PT(&v), n, nil
}

func decodeMessage(t FrameType, p []byte, l *Limits) (Message, error) {
	var (
		m   Message
		n   int
		err error
	)
	switch t {
	case FrameHello:
		m, n, err = decodeAs(ParseHello, p)
	case FrameWelcome:
		m, n, err = decodeAs(ParseWelcome, p)
	case FrameError:
		m, n, err = decodeAs(ParseErrorMessage, p)
	case FramePing:
		m, n, err = decodeAs(ParsePing, p)
	case FramePong:
		m, n, err = decodeAs(ParsePong, p)
	case FrameGoaway:
		m, n, err = decodeAs(ParseGoaway, p)
	case FrameAck:
		m, n, err = decodeAs(ParseAck, p)
	case FrameNack:
		m, n, err = decodeAs(ParseNack, p)
	case FrameSubscribe:
		m, n, err = decodeAs(ParseSubscribe, p)
	case FrameUnsubscribe:
		m, n, err = decodeAs(ParseUnsubscribe, p)
	case FramePublish, FrameEvent, FrameCommand, FrameReply, FrameNotify, FrameMessage:
		v := &EnvelopeFrame{Type: t}
		v.Envelope, n, err = parseEnvelope(p, l)
		if err == nil {
			if k, ok := envelopeKinds[t]; ok && v.Envelope.Kind != k {
				return nil, ErrKindMismatch
			}
		}
		m = v
	case FrameStreamOpen:
		m, n, err = decodeAs(ParseStreamOpen, p)
	case FrameAnnounce:
		m, n, err = decodeAs(ParseAnnounce, p)
	case FrameDatagram:
		if len(p) > int(l.MaxDatagram) {
			return nil, ErrDatagramTooLarge
		}
		m, n, err = decodeAs(ParseDatagram, p)
	case FrameStream, FrameWindowUpdate, FrameResetStream, FrameStopSending, FrameLinkDatagram, FrameLinkClose:
		return nil, ErrNotSessionFrame
	default:
		return nil, ErrUnknownFrame
	}
	if err != nil {
		return nil, err
	}
	if n != len(p) {
		return nil, ErrTrailingBytes
	}
	return m, nil
}
