package session

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Config configures one side of a session. The zero value is valid: every
// zero field means the documented default.
type Config struct {
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Rand is the randomness for ids and tokens. Default: crypto/rand.Reader.
	Rand io.Reader

	// HandshakeTimeout bounds the wait for HELLO (server) or WELCOME
	// (client), and for the first frame on a new stream (JSP §11.1).
	// Default: 10 s.
	HandshakeTimeout time.Duration
	// HeartbeatInterval is the PING period (JSP §11.2). The client requests
	// it in HELLO; the server's value wins. Default: 15 s.
	HeartbeatInterval time.Duration
	// BatteryHeartbeatInterval is the PING period in battery mode.
	// Default: 60 s.
	BatteryHeartbeatInterval time.Duration
	// IdleTimeout closes a session from which nothing arrived for this long.
	// Default: 3 x the largest heartbeat interval in use.
	IdleTimeout time.Duration

	// MaxFrameSize caps a received frame's payload (JSP §9).
	// Default: protocol.DefaultMaxFrameSize.
	MaxFrameSize protocol.ByteCount
	// MaxMessageSize caps an application message body (JSP §9).
	// Default: protocol.DefaultMaxMessageSize.
	MaxMessageSize protocol.ByteCount
	// MaxDatagramMessage caps a datagram payload before fragmentation.
	// Default: protocol.DefaultMaxDatagramMessage.
	MaxDatagramMessage protocol.ByteCount
	// SendQueueLength caps queued outgoing frames per QoS class.
	// Default: protocol.DefaultSendQueueLength.
	SendQueueLength int
	// RecvQueueLength caps queued incoming messages per QoS class.
	// Default: protocol.DefaultRecvQueueLength.
	RecvQueueLength int
	// AcceptQueueLength caps peer-opened application streams waiting for
	// AcceptStream, and received datagrams waiting for ReceiveDatagram.
	// Default: 64.
	AcceptQueueLength int
	// WriteTimeout bounds one write on the control stream. A peer that reads
	// nothing for this long is closed with SLOW_CONSUMER. Default: 10 s.
	WriteTimeout time.Duration
	// MaxFlows caps the media flows (datagram flows >= FirstMediaFlow) a
	// peer may use at once; datagrams of further flows are dropped.
	// Default: 64.
	MaxFlows int
	// MediaDeadline is how long a media-class frame may wait in the send
	// queue before it is dropped instead of sent (JSP §11.3). Default: 150 ms.
	MediaDeadline time.Duration

	// DisableCompression stops offering (client) or accepting (server) zstd.
	DisableCompression bool
	// CompressThreshold is the smallest payload that is compressed.
	// Default: DefaultCompressThreshold.
	CompressThreshold int

	// DisableBatching writes every frame with its own write call instead of
	// coalescing queued frames (JSP §11.5). For measurements and tests.
	DisableBatching bool
	// FlushDelay is how long the writer waits for more frames of a class
	// before writing, in normal mode. System and media never wait.
	// Default: chat 0, bulk 2 ms (coalescing of what queued during the
	// previous write always happens).
	FlushDelay [protocol.NumClasses]time.Duration
	// BatteryFlushDelay is FlushDelay in battery mode.
	// Default: chat 50 ms, bulk 500 ms.
	BatteryFlushDelay [protocol.NumClasses]time.Duration
	// MaxBatchBytes caps the bytes coalesced into one write. Default: 64 KiB.
	MaxBatchBytes int

	// Capabilities are extra capability strings offered in HELLO/WELCOME.
	Capabilities []string
	// DisableAnnounce stops offering (client) or accepting (server) the
	// capability CapAnnounce (JSP §5.14). Default: offered by clients;
	// accepted by servers on transports that cannot report arriving
	// streams and datagrams by callback (QUIC), where a session then
	// reads neither until the client announces it (D38).
	DisableAnnounce bool
}

const (
	defaultHandshakeTimeout = 10 * time.Second
	defaultHeartbeat        = 15 * time.Second
	defaultBatteryHeartbeat = 60 * time.Second
	defaultAcceptQueue      = 64
	defaultMediaDeadline    = 150 * time.Millisecond
	defaultMaxBatchBytes    = 64 << 10
	defaultWriteTimeout     = 10 * time.Second
)

// withDefaults returns a copy of c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = defaultHandshakeTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = defaultHeartbeat
	}
	if c.BatteryHeartbeatInterval == 0 {
		c.BatteryHeartbeatInterval = defaultBatteryHeartbeat
	}
	if c.MaxFrameSize == 0 {
		c.MaxFrameSize = protocol.DefaultMaxFrameSize
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = protocol.DefaultMaxMessageSize
	}
	if c.MaxDatagramMessage == 0 {
		c.MaxDatagramMessage = protocol.DefaultMaxDatagramMessage
	}
	if c.SendQueueLength == 0 {
		c.SendQueueLength = protocol.DefaultSendQueueLength
	}
	if c.RecvQueueLength == 0 {
		c.RecvQueueLength = protocol.DefaultRecvQueueLength
	}
	if c.AcceptQueueLength == 0 {
		c.AcceptQueueLength = defaultAcceptQueue
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = defaultWriteTimeout
	}
	if c.MaxFlows == 0 {
		c.MaxFlows = 64
	}
	if c.MediaDeadline == 0 {
		c.MediaDeadline = defaultMediaDeadline
	}
	if c.CompressThreshold == 0 {
		c.CompressThreshold = DefaultCompressThreshold
	}
	if c.FlushDelay == ([protocol.NumClasses]time.Duration{}) {
		c.FlushDelay[protocol.ClassBulk] = 2 * time.Millisecond
	}
	if c.BatteryFlushDelay == ([protocol.NumClasses]time.Duration{}) {
		c.BatteryFlushDelay[protocol.ClassChat] = 50 * time.Millisecond
		c.BatteryFlushDelay[protocol.ClassBulk] = 500 * time.Millisecond
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = defaultMaxBatchBytes
	}
	return c
}

// validate reports configuration values that cannot work.
func (c Config) validate() error {
	switch {
	case c.HandshakeTimeout < 0, c.HeartbeatInterval < 0, c.BatteryHeartbeatInterval < 0, c.IdleTimeout < 0,
		c.WriteTimeout < 0, c.MediaDeadline < 0:
		return fmt.Errorf("session: negative timeout in config")
	case c.MaxMessageSize > c.MaxFrameSize:
		return fmt.Errorf("session: MaxMessageSize %d exceeds MaxFrameSize %d", c.MaxMessageSize, c.MaxFrameSize)
	case c.SendQueueLength < 0, c.RecvQueueLength < 0, c.AcceptQueueLength < 0:
		return fmt.Errorf("session: negative queue length in config")
	}
	for cl, d := range c.FlushDelay {
		if d < 0 || c.BatteryFlushDelay[cl] < 0 {
			return fmt.Errorf("session: negative flush delay for class %s", protocol.Class(cl))
		}
	}
	return nil
}
