// Package mediapkt encodes and decodes the media datagram header (JSP §13):
// the few bytes at the front of a DATAGRAM frame's data on a media flow
// (JSP §5.13) that let the receiver detect loss, ask for retransmission,
// repair with FEC and play out in order. The flow itself is identified
// outside this header, by the frame's stream id.
//
// # Layout
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-------+-------------------------------+---------------+
//	|K|E|F|L|R|rsvd |        sequence number        |   timestamp   :
//	+-+-+-+-+-------+-------------------------------+---------------+
//	:          timestamp (cont., 24 bits)           | [audio level] :
//	+-----------------------------------------------+---------------+
//	: [FEC: base seq 16 | k 8 | m 8 | index 8]  :  payload ...
//	+-------------------------------------------+----------------------
//
//	byte 0      flags
//	              bit 7 K  key frame: the packet belongs to an independently
//	                       decodable frame
//	              bit 6 E  end of frame: last packet of its media frame
//	              bit 5 F  FEC parity packet: the payload is a Reed-Solomon
//	                       parity shard (reliability/fec)
//	              bit 4 L  an audio-level byte follows the timestamp
//	              bit 3 R  retransmission: resent after a NACK
//	              bit 0-2  reserved, sent as 0; a packet with any set is
//	                       dropped (see below)
//	bytes 1-2   sequence number, uint16 big-endian, wraps (see [Seq])
//	bytes 3-6   media timestamp, uint32 big-endian, in the flow's media clock
//	            units (e.g. 48 kHz audio, 90 kHz video), wraps
//	[L] 1 byte  audio level as in RFC 6464: bit 7 = voice activity,
//	            bits 0-6 = level in -dBov, 0 (loudest) to 127 (silence)
//	[F] 5 bytes FEC group: base seq (uint16, first source packet of the
//	            group), k (source packets, >= 1), m (parity packets, >= 1),
//	            index (this parity shard, < m); k + m <= 255
//	rest        payload
//
// A header is 7 to 13 bytes. Source packets and parity packets number their
// sequence separately: a parity packet's sequence number counts in the
// flow's repair space, so a lost parity packet never shows up as a gap among
// source packets and is never NACKed. A parity packet carries the timestamp
// of its group's newest source packet and no other flag (JSP §13).
//
// The R bit lets the receiver keep retransmissions out of its loss and
// jitter measurements (their delay is the repair's, not the network's). It
// is the one bit a sender changes when it resends a cached packet, and FEC
// protects packets as first sent, so a receiver clears it (with
// [SetRetransmission]) before handing a retransmitted packet to the FEC
// decoder.
//
// # Why a 16-bit sequence number
//
// The header travels in every media datagram, and audio datagrams are small
// (tens of bytes of Opus), so each byte counts. 16 bits, as in RTP, wrap
// after 65,536 packets (33 seconds at 2,000 packets per second), but the
// receiver extends them into a 64-bit [protocol.MediaSeq] with [Unwrapper]
// (RFC 3550, Appendix A.1), and extension is exact while reordering and loss
// stay under 32,768 packets, far beyond any media deadline. A 32-bit field
// would cost two more bytes per packet for no gain, and a varint would cost
// as much after the first 16,384 packets while making the header length
// drift over a flow's life. Keeping RTP's width also lets a gateway forward
// to and from RTP without renumbering.
//
// # Unknown bits
//
// Reserved flag bits must be zero: a later version may give one of them a
// field of its own, and a receiver that skipped the bit would then misread
// the payload. Such extensions are announced in the HELLO capabilities
// (JSP §8.2), so a peer never sends one that was not agreed; a packet that
// still has a reserved bit set is malformed and dropped.
package mediapkt

import (
	"encoding/binary"
	"fmt"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Flags is the first byte of a media datagram header.
type Flags uint8

// Flag bits (JSP §13).
const (
	// FlagKeyFrame marks a packet of an independently decodable frame.
	FlagKeyFrame Flags = 1 << 7
	// FlagEndOfFrame marks the last packet of a media frame.
	FlagEndOfFrame Flags = 1 << 6
	// FlagFEC marks a parity packet; [Header.FEC] is present.
	FlagFEC Flags = 1 << 5
	// FlagAudioLevel says [Header.AudioLevel] is present.
	FlagAudioLevel Flags = 1 << 4
	// FlagRetransmission marks a packet resent after a NACK.
	FlagRetransmission Flags = 1 << 3

	flagsReserved Flags = 0x07
)

// Has reports whether every bit of g is set in f.
func (f Flags) Has(g Flags) bool { return f&g == g }

// Sizes of the header and its optional parts.
const (
	// FixedHeaderLen is the length of the mandatory part: flags, sequence
	// number and timestamp.
	FixedHeaderLen = 1 + 2 + 4
	// AudioLevelLen is the length of the optional audio-level byte.
	AudioLevelLen = 1
	// FECInfoLen is the length of the optional FEC group information.
	FECInfoLen = 2 + 1 + 1 + 1
	// MaxHeaderLen is the longest header: every optional part present.
	MaxHeaderLen = FixedHeaderLen + AudioLevelLen + FECInfoLen
)

// MaxAudioLevel is the quietest level, in -dBov (RFC 6464: 127 = silence).
const MaxAudioLevel = 127

// MaxFECShards caps k + m of one FEC group: Reed-Solomon over GF(2^8) has at
// most 255 nonzero evaluation points, and the fields are 8 bits each.
const MaxFECShards = 255

// AudioLevel is the RFC 6464 audio level of the packet's audio.
type AudioLevel struct {
	// Voice is the voice-activity bit: the sender's detector heard speech.
	Voice bool
	// Level is the level in -dBov, 0 (loudest) to [MaxAudioLevel]
	// (silence).
	Level uint8
}

// FECInfo locates a parity packet within its FEC group (JSP §13): the group
// protects the source packets Base, Base+1, ..., Base+K-1.
type FECInfo struct {
	// Base is the sequence number of the group's first source packet.
	Base Seq
	// K is the number of source packets in the group, at least 1.
	K uint8
	// M is the number of parity packets in the group, at least 1.
	M uint8
	// Index is this packet's parity shard, 0 to M-1.
	Index uint8
}

// Header is a decoded media datagram header (JSP §13).
type Header struct {
	// Flags holds the K, E, F, L and R bits. F and L decide whether FEC and
	// AudioLevel are encoded; the fields are ignored when their bit is
	// clear.
	Flags Flags
	// Seq is the sequence number: in the source space for media packets,
	// in the repair space for parity packets.
	Seq Seq
	// Timestamp is the media timestamp in the flow's clock units.
	Timestamp uint32
	// AudioLevel is present when Flags has FlagAudioLevel.
	AudioLevel AudioLevel
	// FEC is present when Flags has FlagFEC.
	FEC FECInfo
}

// Errors returned by [ParseHeader] and [Header.Append]. Each carries a
// JSP error code; a receiver drops the offending datagram.
var (
	// ErrTruncated: the datagram ends inside the header.
	ErrTruncated = jsperr.New(jsperr.Truncated, "mediapkt: header truncated")
	// ErrReservedFlags: a reserved flag bit is set.
	ErrReservedFlags = jsperr.New(jsperr.MalformedFrame, "mediapkt: reserved flag bits set")
	// ErrBadFEC: FEC group information is out of range, or a parity packet
	// has media flags.
	ErrBadFEC = jsperr.New(jsperr.MalformedFrame, "mediapkt: invalid FEC group information")
	// ErrBadAudioLevel: an audio level above 127 (only on encoding; seven
	// bits cannot carry more).
	ErrBadAudioLevel = jsperr.New(jsperr.MalformedFrame, "mediapkt: audio level over 127")
)

// Len returns the encoded length of h.
func (h *Header) Len() int {
	n := FixedHeaderLen
	if h.Flags.Has(FlagAudioLevel) {
		n += AudioLevelLen
	}
	if h.Flags.Has(FlagFEC) {
		n += FECInfoLen
	}
	return n
}

// Validate checks h against the rules of JSP §13 that the layout alone does
// not enforce.
func (h *Header) Validate() error {
	if h.Flags&flagsReserved != 0 {
		return ErrReservedFlags
	}
	if h.Flags.Has(FlagAudioLevel) && h.AudioLevel.Level > MaxAudioLevel {
		return ErrBadAudioLevel
	}
	if h.Flags.Has(FlagFEC) {
		f := h.FEC
		// JSP §13: a parity packet describes a group, not a frame, so
		// the media flags have no meaning on it; allowing them would
		// give one packet two encodings.
		if h.Flags&(FlagKeyFrame|FlagEndOfFrame|FlagAudioLevel|FlagRetransmission) != 0 {
			return ErrBadFEC
		}
		if f.K == 0 || f.M == 0 || f.Index >= f.M || int(f.K)+int(f.M) > MaxFECShards {
			return ErrBadFEC
		}
	}
	return nil
}

// Append validates h and appends its encoding to b.
func (h *Header) Append(b []byte) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return b, fmt.Errorf("mediapkt: encoding seq %d: %w", h.Seq, err)
	}
	b = append(b, byte(h.Flags))
	b = binary.BigEndian.AppendUint16(b, uint16(h.Seq))
	b = binary.BigEndian.AppendUint32(b, h.Timestamp)
	if h.Flags.Has(FlagAudioLevel) {
		lv := h.AudioLevel.Level
		if h.AudioLevel.Voice {
			lv |= 0x80
		}
		b = append(b, lv)
	}
	if h.Flags.Has(FlagFEC) {
		b = binary.BigEndian.AppendUint16(b, uint16(h.FEC.Base))
		b = append(b, h.FEC.K, h.FEC.M, h.FEC.Index)
	}
	return b, nil
}

// AppendPacket appends the header h followed by payload to b: one complete
// media datagram.
func AppendPacket(b []byte, h *Header, payload []byte) ([]byte, error) {
	b, err := h.Append(b)
	if err != nil {
		return b, err
	}
	return append(b, payload...), nil
}

// ParseHeader decodes a media datagram header from the front of b and returns
// it with the number of bytes consumed; the payload is b[n:]. Every read is
// bounds-checked, nothing is allocated, and a header is accepted only if
// [Header.Validate] would accept it, so that each header has exactly one
// encoding.
func ParseHeader(b []byte) (Header, int, error) {
	var h Header
	if len(b) < FixedHeaderLen {
		return h, 0, ErrTruncated
	}
	h.Flags = Flags(b[0])
	if h.Flags&flagsReserved != 0 {
		return h, 0, ErrReservedFlags
	}
	h.Seq = Seq(binary.BigEndian.Uint16(b[1:3]))
	h.Timestamp = binary.BigEndian.Uint32(b[3:7])
	n := FixedHeaderLen
	if h.Flags.Has(FlagAudioLevel) {
		if len(b) < n+AudioLevelLen {
			return h, 0, ErrTruncated
		}
		h.AudioLevel = AudioLevel{Voice: b[n]&0x80 != 0, Level: b[n] & 0x7f}
		n += AudioLevelLen
	}
	if h.Flags.Has(FlagFEC) {
		if len(b) < n+FECInfoLen {
			return h, 0, ErrTruncated
		}
		h.FEC = FECInfo{
			Base:  Seq(binary.BigEndian.Uint16(b[n : n+2])),
			K:     b[n+2],
			M:     b[n+3],
			Index: b[n+4],
		}
		n += FECInfoLen
	}
	if err := h.Validate(); err != nil {
		return h, 0, err
	}
	return h, n, nil
}

// Parse decodes a whole media datagram: its header and payload. The payload
// aliases b.
func Parse(b []byte) (Header, []byte, error) {
	h, n, err := ParseHeader(b)
	if err != nil {
		return h, nil, err
	}
	return h, b[n:], nil
}

// SetRetransmission sets or clears the R bit of an encoded media datagram in
// place. A sender sets it on a cached packet it resends; a receiver clears
// it before giving the packet to the FEC decoder, which protects packets as
// first sent. It returns ErrTruncated for an empty packet.
func SetRetransmission(pkt []byte, on bool) error {
	if len(pkt) == 0 {
		return ErrTruncated
	}
	if on {
		pkt[0] |= byte(FlagRetransmission)
	} else {
		pkt[0] &^= byte(FlagRetransmission)
	}
	return nil
}
