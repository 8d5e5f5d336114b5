package media

import (
	"context"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// CapFEC is the HELLO/WELCOME capability that allows FEC parity packets on
// media flows (JSP §13.5). A sender emits parity, and a receiver sends
// receiver reports and decodes parity, only when it is in effect.
const CapFEC = "fec"

// Frame is one encoded media frame handed to a [Sender]: an audio frame
// (tens of bytes of Opus, usually one packet) or a video frame (one or many
// packets).
type Frame struct {
	// Timestamp is the capture time in the flow's media clock (for
	// example 48 kHz audio, 90 kHz video). All packets of the frame carry
	// it (JSP §13.3).
	Timestamp uint32
	// KeyFrame marks an independently decodable frame; every packet of it
	// carries the K flag.
	KeyFrame bool
	// AudioLevel, when HasAudioLevel is set, is sent in every packet of
	// the frame (RFC 6464 semantics, JSP §13.1).
	AudioLevel    mediapkt.AudioLevel
	HasAudioLevel bool
	// Payload is the encoded frame. The sender copies what it needs; the
	// caller may reuse the slice after WriteFrame returns.
	Payload []byte
}

// ReceivedFrame is a whole frame delivered by a [Receiver], in order.
type ReceivedFrame struct {
	Frame
	// FirstSeq is the extended sequence number of the frame's first
	// packet.
	FirstSeq protocol.MediaSeq
	// Packets is the number of packets the frame was carried in.
	Packets int
	// Repaired is set when at least one packet came from an FEC rebuild
	// or a retransmission.
	Repaired bool
	// Discontinuity is set when packets were lost (or frames dropped)
	// between the previous delivered frame and this one: a video decoder
	// should wait for a key frame, an audio decoder conceal the gap.
	Discontinuity bool
	// PlayedAt is when the frame's last packet left the jitter buffer.
	PlayedAt time.Time
}

// Session is what the media layer needs from a session; *session.Session
// implements it. Tests may substitute their own.
type Session interface {
	// SendFlow sends one datagram on a media flow (JSP §5.13).
	SendFlow(flow wire.FlowID, b []byte, class protocol.Class) error
	// ReceiveFlow returns the next datagram of any media flow.
	ReceiveFlow(ctx context.Context) (session.FlowDatagram, error)
	// SendNack sends NACK feedback (JSP §5.6).
	SendNack(n *wire.Nack) error
	// ReceiveNack returns the next NACK from the peer.
	ReceiveNack(ctx context.Context) (*wire.Nack, error)
	// RTT returns the smoothed and last round-trip time, zero before the
	// first measurement.
	RTT() (smoothed, last time.Duration)
	// Ping measures one round trip.
	Ping(ctx context.Context) (time.Duration, error)
	// HasCapability reports whether a capability is in effect.
	HasCapability(c string) bool
	// Conn is the transport connection, for its datagram size.
	Conn() transport.Conn
}

var _ Session = (*session.Session)(nil)

// MediaPacketRoom returns the largest media packet (header included) that
// travels in one transport datagram of maxDatagram bytes on flow: what is
// left after the DATAGRAM frame header and the largest fragment header the
// session may write (JSP §5.13). A larger packet would be fragmented by the
// session, and the loss of any fragment would lose it whole.
func MediaPacketRoom(maxDatagram int, flow wire.FlowID) int {
	fh := wire.Header{Type: wire.FrameDatagram, StreamID: protocol.StreamID(flow), Length: uint64(maxDatagram)}.Len()
	// The session numbers its datagram messages with a counter; budget
	// for the longest varint so the room never shrinks mid-flow.
	frag := wire.FragmentHeader{MsgID: wire.MaxVarint, Index: 0, Count: 1}.Len()
	return maxDatagram - fh - frag
}
