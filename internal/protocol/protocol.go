// Package protocol holds the typed units and default limits shared by every
// layer of JSP/1 (JSP §3, §9). It imports only the standard library so that
// the pure packages (wire, qos, reliability) may depend on it.
package protocol

import "fmt"

// Version is a JSP protocol version number carried in HELLO and WELCOME (JSP §8).
type Version uint32

// Version1 is JSP/1, the version this implementation speaks.
const Version1 Version = 1

// SupportedVersions lists the versions this implementation speaks, highest first.
var SupportedVersions = []Version{Version1}

// ALPN is the TLS application protocol name for JSP/1 over QUIC and TCP (JSP §7).
const ALPN = "jsp/1"

// WebSocketSubprotocol is the WebSocket subprotocol name for JSP/1 (JSP §7.3).
const WebSocketSubprotocol = "jsp.1"

// StreamID identifies a stream within one connection (JSP §3.1).
type StreamID uint64

// ByteCount is a number of bytes.
type ByteCount int64

// Class is a QoS class (JSP §3.2). Lower values have higher priority.
type Class uint8

// The QoS classes, in priority order (JSP §3.2).
const (
	ClassSystem Class = 0 // handshake, heartbeat, control: never dropped
	ClassMedia  Class = 1 // real-time media: deadline, drop oldest
	ClassChat   Class = 2 // chat messages: backpressure, never dropped
	ClassBulk   Class = 3 // file transfer and sync: throttled
)

// NumClasses is the number of QoS classes.
const NumClasses = 4

// String returns the lower-case class name used in the spec and in configs.
func (c Class) String() string {
	switch c {
	case ClassSystem:
		return "system"
	case ClassMedia:
		return "media"
	case ClassChat:
		return "chat"
	case ClassBulk:
		return "bulk"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass parses a class name as written by [Class.String].
func ParseClass(s string) (Class, error) {
	for c := Class(0); c < NumClasses; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("protocol: unknown QoS class %q (want system, media, chat or bulk)", s)
}

// Default limits (JSP §9). Each one is configurable where it is enforced; the
// value here is what a zero Config field means.
const (
	// DefaultMaxFrameSize caps the payload length of one frame.
	DefaultMaxFrameSize ByteCount = 1<<20 + 64<<10
	// DefaultMaxMessageSize caps the body of one application message.
	DefaultMaxMessageSize ByteCount = 1 << 20
	// DefaultMaxDatagramPayload caps one unfragmented datagram payload. It fits
	// in a 1,200-byte QUIC packet with headers to spare.
	DefaultMaxDatagramPayload ByteCount = 1100
	// DefaultMaxDatagramMessage caps a datagram message before fragmentation.
	DefaultMaxDatagramMessage ByteCount = 64 << 10
	// DefaultMaxStreams caps concurrent peer-opened streams per connection.
	DefaultMaxStreams = 256
	// DefaultStreamWindow is the initial per-stream flow-control window of the
	// TCP/WebSocket link layer.
	DefaultStreamWindow ByteCount = 256 << 10
	// DefaultMaxLinkChunk caps the data carried by one link STREAM frame so that
	// frames of other streams interleave.
	DefaultMaxLinkChunk ByteCount = 16 << 10
	// DefaultSendQueueLength caps queued outgoing session frames per class.
	DefaultSendQueueLength = 1024
	// DefaultRecvQueueLength caps queued incoming messages per class.
	DefaultRecvQueueLength = 1024
)
