package wire

import (
	"bytes"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

// Sample values shared by the table tests, the vectors and the fuzz seeds.

func seqBytes(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// parseFunc adapts a typed ParseX to a common shape.
type parseFunc func([]byte) (Message, int, error)

func wrap[T any, P interface {
	*T
	Message
}](f func([]byte) (T, int, error)) parseFunc {
	return func(b []byte) (Message, int, error) {
		v, n, err := f(b)
		if err != nil {
			return nil, n, err
		}
		return P(&v), n, nil
	}
}

// parsers maps each vector/message type name to its decoder.
var parsers = map[string]parseFunc{
	"hello":       wrap(ParseHello),
	"welcome":     wrap(ParseWelcome),
	"error":       wrap(ParseErrorMessage),
	"ping":        wrap(ParsePing),
	"pong":        wrap(ParsePong),
	"goaway":      wrap(ParseGoaway),
	"ack":         wrap(ParseAck),
	"nack":        wrap(ParseNack),
	"subscribe":   wrap(ParseSubscribe),
	"unsubscribe": wrap(ParseUnsubscribe),
	"stream_open": wrap(ParseStreamOpen),
	"datagram":    wrap(ParseDatagram),
	"announce":    wrap(ParseAnnounce),
	"envelope": func(b []byte) (Message, int, error) {
		v, n, err := ParseEnvelope(b)
		if err != nil {
			return nil, n, err
		}
		return &EnvelopeFrame{Type: FrameMessage, Envelope: v}, n, nil
	},
}

// typeName maps a message to its parser name.
func typeName(m Message) string {
	switch m.(type) {
	case *Hello:
		return "hello"
	case *Welcome:
		return "welcome"
	case *ErrorMessage:
		return "error"
	case *Ping:
		return "ping"
	case *Pong:
		return "pong"
	case *Goaway:
		return "goaway"
	case *Ack:
		return "ack"
	case *Nack:
		return "nack"
	case *Subscribe:
		return "subscribe"
	case *Unsubscribe:
		return "unsubscribe"
	case *StreamOpen:
		return "stream_open"
	case *Datagram:
		return "datagram"
	case *Announce:
		return "announce"
	case *EnvelopeFrame:
		return "envelope"
	}
	panic("unknown message type")
}

type sample struct {
	name string
	msg  Message
}

func env(e Envelope) *EnvelopeFrame { return &EnvelopeFrame{Type: FrameMessage, Envelope: e} }

// samples returns valid messages covering every field of every type.
func samples() []sample {
	sig := seqBytes(SignatureLen, 0x40)
	return []sample{
		{"envelope_minimal", env(Envelope{ID: []byte{1}, Route: Route{Kind: RouteChannel, Name: "general"}})},
		{"envelope_chat_event", env(Envelope{
			ID: []byte("m-0001"), Route: Route{Name: "room.42"}, Class: protocol.ClassChat,
			Timestamp: 1767225600000, Body: []byte("hello, world"),
		})},
		{"envelope_command", env(Envelope{
			ID: seqBytes(16, 0xa0), Route: Route{Kind: RouteService, Name: "chat.history"}, Kind: KindCommand,
			Class: protocol.ClassSystem, Timestamp: 1767225600123, TTL: 5000, Body: []byte{0xa1, 0x01, 0x18, 0x32},
		})},
		{"envelope_reply_error", env(Envelope{
			ID: []byte("r-1"), Route: Route{Kind: RouteUser, Name: "alice"}, Kind: KindReply,
			ReplyTo: seqBytes(16, 0xa0), ErrCode: jsperr.NotFound, ErrReason: "no such channel",
		})},
		{"envelope_notification", env(Envelope{
			ID: []byte("n-7"), Route: Route{Kind: RouteUser, Name: "bob"}, Kind: KindNotification,
			Class: protocol.ClassBulk, Sender: "system", Seq: 0x1_0000_0000,
		})},
		{"envelope_signed_headers", env(Envelope{
			ID: []byte("s-1"), Route: Route{Name: "room.1"}, Class: protocol.ClassMedia, Timestamp: 1767225600000,
			Sender: "alice", Seq: 300, Nonce: seqBytes(16, 0x10), Signature: sig,
			Headers: map[string]string{"content-type": "text/plain", "a": "1", "zz": "", "lang": "en"},
			Body:    []byte("signed"),
		})},
		{"hello_minimal", &Hello{Versions: []protocol.Version{1}}},
		{"hello_full", &Hello{
			Versions: []protocol.Version{2, 1}, ClientName: "jsp-go", ClientVersion: "0.1.0", Platform: "linux/amd64",
			Auth: []byte("token.v1.abc"), Resume: &Resume{SessionID: seqBytes(16, 1), Token: seqBytes(32, 0x80)},
			Caps: []string{"zstd", "batch"}, HeartbeatMS: 15000, MaxFrame: 1 << 20, Battery: true,
		}},
		{"welcome_minimal", &Welcome{Version: 1, SessionID: seqBytes(16, 1)}},
		{"welcome_full", &Welcome{
			Version: 1, SessionID: seqBytes(16, 1), ResumeToken: seqBytes(32, 0x80), HeartbeatMS: 15000,
			IdleTimeoutMS: 45000, Limits: DefaultLimits(), ServerTime: 1767225600000,
			Caps: []string{"zstd"}, Gateways: []string{"quic://gw2.example.net:4433", "tls://gw2.example.net:443"},
			Resumed: true,
		}},
		// The live gateways of a cluster, as a gateway lists them from its
		// registry (JSP §5.2): the other gateway's URL per transport.
		{"welcome_gateways", &Welcome{Version: 1, SessionID: seqBytes(16, 1), Gateways: []string{
			"jsp+quic://gw2.example.net:7400", "jsp+tcp://gw2.example.net:7400", "wss://gw2.example.net:7401/jsp"}}},
		{"welcome_partial_limits", &Welcome{Version: 1, SessionID: []byte{9}, Limits: Limits{MaxMessage: 4096}}},
		{"error_minimal", &ErrorMessage{Code: jsperr.ProtocolViolation}},
		{"error_unsupported_version", &ErrorMessage{
			Code: jsperr.UnsupportedVersion, Reason: "no common version", Supported: []protocol.Version{1},
		}},
		{"error_rate_limited", &ErrorMessage{
			Code: jsperr.RateLimited, Reason: "slow down", RetryAfterMS: 1500, Ref: []byte("m-0001"),
		}},
		{"error_recovery_impossible", &ErrorMessage{
			Code: jsperr.RecoveryImpossible, Reason: "events after 17 trimmed", Channel: "room.42",
		}},
		{"ping", &Ping{ID: 7, Timestamp: 1767225600000123}},
		{"ping_empty", &Ping{}},
		{"pong", &Pong{ID: 7, Timestamp: 1767225600000123}},
		{"goaway", &Goaway{
			Code: jsperr.GoingAway, Reason: "maintenance", Alternatives: []string{"quic://gw3.example.net:4433"},
			GraceMS: 30000,
		}},
		{"goaway_empty", &Goaway{}},
		{"ack_ids", &Ack{IDs: [][]byte{[]byte("m-0001"), []byte("m-0002")}}},
		{"ack_cursors", &Ack{Cursors: []Cursor{{Channel: "room.42", Seq: 17}, {Channel: "room.7", Seq: 1000}}}},
		{"nack", &Nack{Flow: 5, Seqs: []uint64{10, 11, 14, 65536}}},
		{"nack_flow0", &Nack{Seqs: []uint64{0}}},
		{"subscribe_live", &Subscribe{Channel: "room.42", ReqID: []byte{1, 2}}},
		{"subscribe_since_zero", &Subscribe{Channel: "room.42", HasSince: true}},
		{"subscribe_since", &Subscribe{Channel: "room.42", Since: 1234, HasSince: true, ReqID: []byte("q1")}},
		{"unsubscribe", &Unsubscribe{Channel: "room.42", ReqID: []byte("q2")}},
		{"stream_open", &StreamOpen{Class: protocol.ClassBulk, Label: "upload",
			Metadata: map[string]string{"name": "photo.jpg", "size": "52311"}}},
		{"stream_open_empty", &StreamOpen{}},
		{"announce_streams_datagrams", &Announce{Uses: UsesStreams | UsesDatagrams}},
		{"announce_datagrams", &Announce{Uses: UsesDatagrams}},
		{"announce_empty", &Announce{}},
		{"datagram_single", &Datagram{Fragment: FragmentHeader{MsgID: 1, Index: 0, Count: 1}, Data: []byte("pos:1,2")}},
		{"datagram_fragment", &Datagram{Fragment: FragmentHeader{MsgID: 70000, Index: 2, Count: 3},
			Data: bytes.Repeat([]byte{0xee}, 20)}},
	}
}
