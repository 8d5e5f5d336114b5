// Package wire encodes and decodes JSP/1 frames, message envelopes and
// session-message bodies (JSP §3-§6).
//
// Every unit JSP sends is a frame:
//
//	+------------+---------+----------------+------------+-------------+
//	| type (vi)  | flags 8 | stream id (vi) | length(vi) | payload ... |
//	+------------+---------+----------------+------------+-------------+
//
// (vi = QUIC-style varint, shortest form). Link frames (types 0x01-0x0f)
// multiplex streams and datagrams over one TLS-over-TCP or WebSocket
// connection; session frames (0x10-0x3f) carry HELLO, WELCOME, PING and the
// application messages on any transport. A session starts with HELLO on the
// control stream (the first stream the client opens) and WELCOME in reply;
// after that both sides exchange session frames on the control stream and on
// application streams, and DATAGRAM frames in transport datagrams.
//
// Frame payloads of the session frames are deterministic CBOR (JSP §6),
// encoded and decoded by this package's own minimal CBOR codec
// (AppendCBOR*, CBORDecoder). Every message type has the same codec shape:
//
//	func (m *X) Append(b []byte) []byte   // appends the encoding to b
//	func (m *X) Len() int                 // length Append adds
//	func ParseX(b []byte) (X, int, error) // decodes from the front of b
//
// ParseX uses DefaultLimits, checks bounds before every read, never
// allocates from a length it has not checked against a limit, returns
// sentinel *jsperr.Error values (no allocation on the error path), and
// returns values that never alias b. DecodeMessage dispatches a frame
// payload by frame type; Limits.DecodeMessage does the same with negotiated
// limits. The message types are Envelope (carried as EnvelopeFrame), Hello,
// Welcome, ErrorMessage, Ping, Pong, Goaway, Ack, Nack, Subscribe,
// Unsubscribe, StreamOpen, Datagram and Announce; link frame payloads have
// AppendVarintPayload/ParseVarintPayload and AppendLinkClose/ParseLinkClose.
//
// This package imports only the standard library and the project's leaf
// packages jsperr and internal/protocol.
package wire

import (
	"fmt"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// FrameType identifies a frame (JSP §3.3).
type FrameType uint64

// Link frame types (JSP §7.2): only on TCP/TLS and WebSocket links, where JSP
// itself multiplexes streams.
const (
	// FrameStream carries stream data.
	//   stream id = the stream; flags: class, FIN = last data on this stream
	//   payload   = stream bytes (may be empty with FIN)
	FrameStream FrameType = 0x01
	// FrameWindowUpdate grants flow-control credit.
	//   stream id = the stream (0 = connection window)
	//   payload   = increment (vi), in bytes
	FrameWindowUpdate FrameType = 0x02
	// FrameResetStream abandons the sending side of a stream.
	//   stream id = the stream; payload = error code (vi)
	FrameResetStream FrameType = 0x03
	// FrameStopSending asks the peer to stop sending on a stream.
	//   stream id = the stream; payload = error code (vi)
	FrameStopSending FrameType = 0x04
	// FrameLinkDatagram carries one unreliable datagram over a link.
	//   stream id = 0; flags: class; payload = datagram bytes
	FrameLinkDatagram FrameType = 0x05
	// FrameLinkClose closes the whole link.
	//   stream id = 0; payload = error code (vi) | reason (UTF-8, rest)
	FrameLinkClose FrameType = 0x06
)

// Session frame types (JSP §5). Unless noted, the payload is one CBOR map
// with small unsigned keys (spec/jsp.cddl) and the stream id is the stream
// the frame travels on (0 on QUIC, where the transport has its own ids).
const (
	// FrameHello opens a session: client -> server, first frame on the
	// control stream. payload = Hello {1 versions, 2 client_name, ...}.
	FrameHello FrameType = 0x10
	// FrameWelcome accepts a HELLO: server -> client.
	// payload = Welcome {1 version, 2 session_id, ...}.
	FrameWelcome FrameType = 0x11
	// FrameError reports an error, either way; on the control stream it
	// ends the session. payload = ErrorMessage {1 code, 2 reason, ...}.
	FrameError FrameType = 0x12
	// FramePing asks for a PONG, either way. payload = Ping {1 id, 2 ts}.
	FramePing FrameType = 0x13
	// FramePong answers a PING with its id and ts. payload = Pong {1 id, 2 ts}.
	FramePong FrameType = 0x14
	// FrameGoaway announces a graceful shutdown: server -> client.
	// payload = Goaway {1 code, 2 reason, 3 alternatives, 4 grace_ms}.
	FrameGoaway FrameType = 0x15
	// FrameAck acknowledges message ids or channel positions.
	// payload = Ack {1 ids, 2 cursors}.
	FrameAck FrameType = 0x16
	// FrameNack lists missing media sequence numbers.
	// payload = Nack {1 flow, 2 seqs}.
	FrameNack FrameType = 0x17
	// FrameSubscribe subscribes to a channel: client -> server.
	// payload = Subscribe {1 channel, 2 since, 3 req}.
	FrameSubscribe FrameType = 0x18
	// FrameUnsubscribe ends a subscription: client -> server.
	// payload = Unsubscribe {1 channel, 3 req}.
	FrameUnsubscribe FrameType = 0x19
	// FramePublish publishes an event: client -> server.
	// payload = Envelope of kind event.
	FramePublish FrameType = 0x1a
	// FrameEvent delivers an event on a subscription: server -> client.
	// payload = Envelope of kind event.
	FrameEvent FrameType = 0x1b
	// FrameCommand sends a request, either way. payload = Envelope of kind command.
	FrameCommand FrameType = 0x1c
	// FrameReply answers a COMMAND. payload = Envelope of kind reply.
	FrameReply FrameType = 0x1d
	// FrameNotify pushes a notification: server -> client.
	// payload = Envelope of kind notification.
	FrameNotify FrameType = 0x1e
	// FrameMessage carries a Mixed API message, either way (JSP §12).
	// payload = Envelope of any kind.
	FrameMessage FrameType = 0x1f
	// FrameStreamOpen is the first frame on a Stream API stream.
	// payload = StreamOpen {1 class, 2 label, 3 metadata}.
	FrameStreamOpen FrameType = 0x20
	// FrameDatagram carries an application datagram or one fragment of it.
	//   stream id = flow id (0 Datagram API, 1 Mixed API unreliable)
	//   payload   = msg id (vi) | index (vi) | count (vi) | data (rest)
	FrameDatagram FrameType = 0x21
	// FrameAnnounce tells the server what the client is about to use
	// besides the control stream: client -> server, on the control stream,
	// only while the `announce` capability is in effect (JSP §5.14).
	// payload = Announce {1 uses}: bit 1 streams, bit 2 datagrams.
	FrameAnnounce FrameType = 0x22
)

// Flags is the flags byte of a frame header (JSP §3.2).
//
//	bit 0-1  QoS class (0 system, 1 media, 2 chat, 3 bulk)
//	bit 2    FIN        last frame of a stream or message
//	bit 3    COMPRESSED payload is zstd-compressed
//	bit 4    SIGNED     envelope carries a signature
//	bit 5-7  reserved: sent as 0, ignored on receipt (kept when re-encoding)
type Flags uint8

// Flag bits (JSP §3.2).
const (
	FlagFIN        Flags = 1 << 2
	FlagCompressed Flags = 1 << 3
	FlagSigned     Flags = 1 << 4
	flagClassMask  Flags = 0x03
)

// Class returns the QoS class bits.
func (f Flags) Class() protocol.Class { return protocol.Class(f & flagClassMask) }

// WithClass returns f with its class bits set to c.
func (f Flags) WithClass(c protocol.Class) Flags {
	return f&^flagClassMask | Flags(c)&flagClassMask
}

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Header is a decoded frame header (JSP §3.1).
type Header struct {
	Type     FrameType
	Flags    Flags
	StreamID protocol.StreamID
	Length   uint64 // payload length in bytes
}

// MaxHeaderLen is the longest possible encoded header.
const MaxHeaderLen = 8 + 1 + 8 + 8

// Len returns the encoded length of h.
func (h Header) Len() int {
	return VarintLen(uint64(h.Type)) + 1 + VarintLen(uint64(h.StreamID)) + VarintLen(h.Length)
}

// String formats h for logs.
func (h Header) String() string {
	return fmt.Sprintf("%s flags=0x%02x stream=%d len=%d", h.Type, uint8(h.Flags), h.StreamID, h.Length)
}

// AppendHeader appends the encoding of h to b.
func AppendHeader(b []byte, h Header) []byte {
	b = AppendVarint(b, uint64(h.Type))
	b = append(b, byte(h.Flags))
	b = AppendVarint(b, uint64(h.StreamID))
	return AppendVarint(b, h.Length)
}

// ParseHeader decodes a frame header from the front of b. It checks the
// declared length against maxPayload (JSP §9) before anything is allocated
// for the payload; the payload itself need not be in b yet.
func ParseHeader(b []byte, maxPayload uint64) (Header, int, error) {
	var h Header
	t, n, err := ParseVarint(b)
	if err != nil {
		return h, 0, err
	}
	off := n
	if off >= len(b) {
		return h, 0, ErrTruncated
	}
	h.Type, h.Flags = FrameType(t), Flags(b[off])
	off++
	sid, n, err := ParseVarint(b[off:])
	if err != nil {
		return h, 0, err
	}
	off += n
	l, n, err := ParseVarint(b[off:])
	if err != nil {
		return h, 0, err
	}
	off += n
	if l > maxPayload {
		return h, 0, ErrFrameTooLarge
	}
	h.StreamID, h.Length = protocol.StreamID(sid), l
	return h, off, nil
}

// AppendFrame appends a whole frame: the header for payload (Length is taken
// from len(payload)) and the payload.
func AppendFrame(b []byte, t FrameType, f Flags, sid protocol.StreamID, payload []byte) []byte {
	b = AppendHeader(b, Header{Type: t, Flags: f, StreamID: sid, Length: uint64(len(payload))})
	return append(b, payload...)
}

// ParseFrame decodes one whole frame from the front of b and returns its
// header, its payload (aliasing b) and the bytes consumed.
func ParseFrame(b []byte, maxPayload uint64) (Header, []byte, int, error) {
	h, n, err := ParseHeader(b, maxPayload)
	if err != nil {
		return h, nil, 0, err
	}
	if uint64(len(b)-n) < h.Length {
		return h, nil, 0, ErrTruncated
	}
	end := n + int(h.Length)
	return h, b[n:end], end, nil
}

var frameNames = map[FrameType]string{
	FrameStream: "STREAM", FrameWindowUpdate: "WINDOW_UPDATE", FrameResetStream: "RESET_STREAM",
	FrameStopSending: "STOP_SENDING", FrameLinkDatagram: "LINK_DATAGRAM", FrameLinkClose: "LINK_CLOSE",
	FrameHello: "HELLO", FrameWelcome: "WELCOME", FrameError: "ERROR", FramePing: "PING",
	FramePong: "PONG", FrameGoaway: "GOAWAY", FrameAck: "ACK", FrameNack: "NACK",
	FrameSubscribe: "SUBSCRIBE", FrameUnsubscribe: "UNSUBSCRIBE", FramePublish: "PUBLISH",
	FrameEvent: "EVENT", FrameCommand: "COMMAND", FrameReply: "REPLY", FrameNotify: "NOTIFY",
	FrameMessage: "MESSAGE", FrameStreamOpen: "STREAM_OPEN", FrameDatagram: "DATAGRAM",
	FrameAnnounce: "ANNOUNCE",
}

// String returns the spec name of t, or UNKNOWN(0x..).
func (t FrameType) String() string {
	if s, ok := frameNames[t]; ok {
		return s
	}
	return fmt.Sprintf("UNKNOWN(0x%x)", uint64(t))
}

// Known reports whether t is a frame type of JSP/1. Receivers skip unknown
// frame types (JSP §8.3) so that later minor versions can add frames.
func (t FrameType) Known() bool { _, ok := frameNames[t]; return ok }
