package wire

import (
	"fmt"
	"math"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Fixed limits of JSP/1 (JSP §9). Unlike the fields of Limits they are not
// negotiated: every implementation enforces exactly these values, and a
// field outside its range is INVALID_CBOR (ErrFieldRange) unless noted.
const (
	// MaxIDLen caps message ids, reply_to and request ids (JSP §4).
	MaxIDLen = 64
	// MaxRouteNameLen caps a route name and a channel name (JSP §4.1).
	MaxRouteNameLen = 256
	// MaxSenderLen caps the envelope sender (JSP §4).
	MaxSenderLen = 256
	// MaxNonceLen caps the envelope nonce (JSP §4.3).
	MaxNonceLen = 32
	// SignatureLen is the exact length of an Ed25519 signature (JSP §4.3).
	SignatureLen = 64
	// MaxHeaders caps the entries of an envelope's headers and of a
	// STREAM_OPEN's metadata (JSP §4, §5.12).
	MaxHeaders = 64
	// MaxHeaderKeyLen caps a header or metadata key; keys are never empty.
	MaxHeaderKeyLen = 128
	// MaxHeaderValueLen caps a header or metadata value.
	MaxHeaderValueLen = 1024
	// MaxReasonLen caps human-readable reasons in ERROR, GOAWAY and
	// envelopes (JSP §5.3).
	MaxReasonLen = 1024
	// MaxCloseReasonLen caps the reason of a LINK_CLOSE frame (JSP §3.4).
	MaxCloseReasonLen = 1024
	// MaxVersions caps the version lists of HELLO and ERROR (JSP §8.2).
	MaxVersions = 16
	// MaxCaps caps capability lists (JSP §5.1).
	MaxCaps = 32
	// MaxCapLen caps one capability name.
	MaxCapLen = 64
	// MaxNameLen caps client name, client version, platform, stream label
	// and gateway addresses (JSP §5.1, §5.2, §5.12).
	MaxNameLen = 256
	// MaxAuthLen caps the opaque auth token of HELLO (JSP §5.1).
	MaxAuthLen = 8192
	// MaxTokenLen caps session ids and resume tokens (JSP §5.1, §5.2).
	MaxTokenLen = 256
	// MaxGateways caps the gateway list of WELCOME and the alternatives
	// of GOAWAY (JSP §5.2, §5.5).
	MaxGateways = 16
	// MaxAckIDs caps the message ids of one ACK (JSP §5.6).
	MaxAckIDs = 1024
	// MaxAckCursors caps the channel cursors of one ACK (JSP §5.6).
	MaxAckCursors = 256
	// MaxNackSeqs caps the sequence numbers of one NACK (JSP §5.6).
	MaxNackSeqs = 1024
	// MaxFragments caps the fragments of one datagram message (JSP §5.13).
	MaxFragments = 64
	// maxBodyFields caps the entries of a message-level map. JSP/1 defines
	// at most 15 keys per body; the slack leaves room for later minor
	// versions, whose unknown keys receivers skip (JSP §8.3).
	maxBodyFields = 64
)

// Limits are the negotiable size limits of a session (JSP §9). WELCOME
// carries the server's values (JSP §5.2); decoders enforce them. A zero field
// means the default from internal/protocol, as DefaultLimits shows.
type Limits struct {
	// MaxFrame caps a frame's payload length.
	// Default protocol.DefaultMaxFrameSize (1 MiB + 64 KiB).
	MaxFrame protocol.ByteCount
	// MaxMessage caps an envelope body. Default
	// protocol.DefaultMaxMessageSize (1 MiB).
	MaxMessage protocol.ByteCount
	// MaxStreams caps concurrent peer-opened streams. Default
	// protocol.DefaultMaxStreams (256).
	MaxStreams int
	// MaxDatagram caps one DATAGRAM frame payload (fragment header and
	// data). Default protocol.DefaultMaxDatagramPayload (1100).
	MaxDatagram protocol.ByteCount
	// MaxDatagramMessage caps a datagram message before fragmentation.
	// Default protocol.DefaultMaxDatagramMessage (64 KiB).
	MaxDatagramMessage protocol.ByteCount
}

// DefaultLimits returns the default limits of JSP/1 (JSP §9).
func DefaultLimits() Limits {
	return Limits{
		MaxFrame:           protocol.DefaultMaxFrameSize,
		MaxMessage:         protocol.DefaultMaxMessageSize,
		MaxStreams:         protocol.DefaultMaxStreams,
		MaxDatagram:        protocol.DefaultMaxDatagramPayload,
		MaxDatagramMessage: protocol.DefaultMaxDatagramMessage,
	}
}

// setDefaults replaces every zero field with its default.
func (l *Limits) setDefaults() {
	d := DefaultLimits()
	if l.MaxFrame == 0 {
		l.MaxFrame = d.MaxFrame
	}
	if l.MaxMessage == 0 {
		l.MaxMessage = d.MaxMessage
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = d.MaxStreams
	}
	if l.MaxDatagram == 0 {
		l.MaxDatagram = d.MaxDatagram
	}
	if l.MaxDatagramMessage == 0 {
		l.MaxDatagramMessage = d.MaxDatagramMessage
	}
}

// withDefaults returns a copy of l (nil = all defaults) with defaults filled in.
func (l *Limits) withDefaults() Limits {
	var c Limits
	if l != nil {
		c = *l
	}
	c.setDefaults()
	return c
}

// Validate reports whether the limits, with defaults filled in, are usable:
// no negative values, a message fits in a frame, a datagram message holds at
// least one datagram, and nothing exceeds what a varint can carry.
func (l *Limits) Validate() error {
	c := l.withDefaults()
	switch {
	case c.MaxFrame < 0 || c.MaxMessage < 0 || c.MaxStreams < 0 || c.MaxDatagram < 0 || c.MaxDatagramMessage < 0:
		return fmt.Errorf("wire: limits must not be negative: %+v", c)
	case c.MaxFrame > MaxVarint:
		return fmt.Errorf("wire: MaxFrame %d over the varint range", c.MaxFrame)
	case c.MaxMessage >= c.MaxFrame:
		return fmt.Errorf("wire: MaxMessage %d must be below MaxFrame %d to leave room for the envelope", c.MaxMessage, c.MaxFrame)
	case c.MaxDatagram > c.MaxDatagramMessage:
		return fmt.Errorf("wire: MaxDatagram %d above MaxDatagramMessage %d", c.MaxDatagram, c.MaxDatagramMessage)
	case c.MaxDatagram > c.MaxFrame:
		return fmt.Errorf("wire: MaxDatagram %d above MaxFrame %d", c.MaxDatagram, c.MaxFrame)
	case uint64(c.MaxStreams) > math.MaxInt32:
		return fmt.Errorf("wire: MaxStreams %d over 2^31-1", c.MaxStreams)
	}
	return nil
}

// defaultLimits backs the package-level decoders.
var defaultLimits = DefaultLimits()
