package gateway

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/files"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/mux"
	jspquic "github.com/jetstreamproto/jsp/transport/quic"
)

// Default listen addresses (docs/decisions.md D6): QUIC on UDP 7400, TLS
// over TCP on TCP 7400, WebSocket over HTTPS on TCP 7401.
const (
	DefaultQUICAddr = ":7400"
	DefaultTCPAddr  = ":7400"
	DefaultWSAddr   = ":7401"
	DefaultWSPath   = "/jsp"
	DefaultDataDir  = ".jsp-data"
)

// Off disables a listener when given as its address.
const Off = "off"

// Default limits; each is what a zero Config field means.
const (
	// DefaultDrainGrace is how long Shutdown lets clients move after GOAWAY
	// before their sessions are closed (JSP §11.6).
	DefaultDrainGrace = 10 * time.Second
	// DefaultMaxSessions caps connections, handshaking or established.
	DefaultMaxSessions = 10000
	// DefaultMaxConnsPerIP caps connections from one IP address.
	DefaultMaxConnsPerIP = 128
	// DefaultMaxHandshakes caps handshakes in progress at once.
	DefaultMaxHandshakes = 256
	// DefaultMaxInflight caps the commands and Mixed API echoes one session
	// has in progress; a command beyond it is answered with QUEUE_FULL.
	DefaultMaxInflight = 32
	// DefaultPublishWindow caps the PUBLISHes of one session committed in
	// one core request in bus mode, and those queued behind it (D23); the
	// core's limit, since one commit round trip per window bounds a
	// publishing session's rate (D26).
	DefaultPublishWindow = core.DefaultMaxPublishBatch
	// DefaultPublishRounds is how many publish windows of PUBLISHes one
	// session may have taken and not yet answered (D36).
	DefaultPublishRounds = 4
	// DefaultMaxStreamHandlers caps application streams one session has
	// being served; a stream beyond it is reset with STREAM_LIMIT.
	DefaultMaxStreamHandlers = 64
	// DefaultMaxRefusalHandshakes caps the refused connections the gateway
	// completes a handshake with at once, only to tell them why they are
	// refused (BLOCKED, TOO_MANY_CONNECTIONS, ...). Beyond it a refused
	// connection is dropped before its handshake, without a code.
	DefaultMaxRefusalHandshakes = 16
	// DefaultRefusalLogRate caps the log lines per second about refused
	// connections and rate-limited messages, per reason; the lines left out
	// are counted in the next line of that reason ("suppressed"), so that a
	// flood cannot flood the log nor hide other refusals.
	DefaultRefusalLogRate = 20
	// DefaultCoreTimeout bounds one request to a core (a PUBLISH commit, a
	// history page) and one session-record write.
	DefaultCoreTimeout = 10 * time.Second
	// DefaultMaxReplay caps the messages one SUBSCRIBE with Since replays;
	// a client that missed more sees the gap and pages history itself.
	DefaultMaxReplay = 10000
	// DefaultSessionTouchInterval is how often the records of live
	// sessions are touched in Sessions.
	DefaultSessionTouchInterval = time.Minute
	// DefaultDeviceCheckInterval is how often live sessions' device keys
	// are checked against the registry when Session.HeartbeatInterval is
	// not set: the session layer's default heartbeat.
	DefaultDeviceCheckInterval = 15 * time.Second
)

// Config configures a Gateway. The zero value is valid: every zero field
// means the documented default.
type Config struct {
	// QUICAddr is the UDP address of the QUIC listener (JSP §7.1).
	// Default: DefaultQUICAddr. Off disables it.
	QUICAddr string
	// TCPAddr is the TCP address of the TLS-over-TCP listener (JSP §7.2).
	// Default: DefaultTCPAddr. Off disables it.
	TCPAddr string
	// WSAddr is the TCP address of the HTTPS server that carries WebSocket
	// (JSP §7.3), /healthz and /metrics. Default: DefaultWSAddr. Off
	// disables it.
	WSAddr string
	// WSPath is the WebSocket endpoint's path. Default: DefaultWSPath.
	WSPath string
	// WSBehindTLSProxy serves WSAddr (WebSocket, /healthz, /metrics) over
	// plain HTTP, for a gateway behind a proxy or load balancer that
	// terminates TLS 1.3 for it (JSP §7.4 then holds between the client
	// and the proxy). Sessions on it have no TLS state of their own, so
	// device-key proofs bound to the TLS exporter cannot be checked.
	// Default false: HTTPS with the gateway's certificate. Never expose a
	// plaintext listener directly: New refuses it unless WSAddr binds a
	// loopback address or WSTrustedProxies is set (docs/decisions.md D32).
	WSBehindTLSProxy bool
	// WSTrustedProxies are the address prefixes of the TLS-terminating
	// proxies in front of a WSBehindTLSProxy listener. Only they may open
	// WebSocket sessions on it (others get 403), and only their
	// X-Forwarded-For header names the client: the session's remote
	// address (session records, logs, the block list) is the right-most
	// address in that header that is not itself a trusted proxy.
	// Default: none; then, on a loopback WSAddr only, loopback peers are
	// the trusted proxies.
	WSTrustedProxies []netip.Prefix
	// WSOriginPatterns are the host patterns (path.Match syntax) allowed in
	// a browser's Origin header besides the server's own host. Default:
	// none, so pages from other origins cannot connect.
	WSOriginPatterns []string

	// DataDir holds the development certificate and the files service's
	// store. Default: DefaultDataDir.
	DataDir string
	// Certificate is the server certificate. Default: CertFile/KeyFile when
	// set, else a development certificate created in DataDir on first run
	// (tlsconf.LoadOrCreateDevCert), which clients trust by its SPKI pin.
	Certificate *tls.Certificate
	// CertFile and KeyFile name a PEM certificate chain and key to load
	// when Certificate is nil. Both or neither.
	CertFile, KeyFile string
	// DevCertHosts are extra names and addresses for the development
	// certificate (it always names localhost, 127.0.0.1 and ::1).
	DevCertHosts []string

	// Session configures every session.
	Session session.Config
	// QUIC configures the QUIC listener.
	QUIC jspquic.Config
	// Link configures the TCP and WebSocket link layer.
	Link mux.Config
	// Hub configures the pub/sub hub.
	Hub pubsub.Config
	// ExtraListeners are served besides the built-in ones, e.g. an
	// in-memory listener in tests or a listener an embedding program
	// built. Once New succeeds the gateway owns them and closes them on
	// Shutdown or Close. Their connections go through the connection
	// filter (DDoS, RateLimits.ConnAttemptsPerIP) after Accept, when their
	// remote address has an IP.
	ExtraListeners []transport.Listener
	// Authenticate checks each HELLO (server/auth builds one from tokens
	// and device keys). Default: everyone is accepted.
	Authenticate session.Authenticator
	// Refresh checks a token a live session sends to extend its
	// credential (JSP §5.9.1) and returns the refreshed identity;
	// auth.Authenticator.Refresh is one. Default: nil, refresh is
	// refused with REFRESH_UNSUPPORTED.
	Refresh func(ctx context.Context, cur session.Identity, token string) (session.Identity, error)
	// Devices is the device-key registry. When set, the gateway checks the
	// device of every live session that proved one every
	// DeviceCheckInterval, and closes the sessions of a revoked (or
	// removed) device with DEVICE_REVOKED; DeviceRevoked does it at once.
	// Default: none.
	Devices devicekey.Registry
	// Signatures configures the check of signed envelopes on ingress
	// (JSP §4.3, signatures.go): the clock-skew window and the bounds of
	// the replay memory. Zero fields take package msgsig's defaults; Now
	// defaults to Config.Now. Signed envelopes are verified against
	// Devices; without Devices they are refused with SIGNER_UNKNOWN.
	Signatures msgsig.GuardConfig
	// DeviceCheckInterval is how often live sessions' devices are checked.
	// Default: Session.HeartbeatInterval, or DefaultDeviceCheckInterval
	// when that is not set, so that a revoked device is gone within one
	// heartbeat interval.
	DeviceCheckInterval time.Duration

	// DDoS configures the connection filter in front of every listener
	// (ARCHITECTURE §5): CIDR block and allow lists, per-address caps on
	// connections and handshakes, global caps, and QUIC Retry under load.
	// Zero fields take package ddos's defaults, except MaxConnsPerIP
	// (default: Config.MaxConnsPerIP), MaxConns (default:
	// Config.MaxSessions) and Now (default: Config.Now).
	DDoS ddos.Config
	// MaxRefusalHandshakes caps refused connections that are still given
	// a handshake so that they can be told their refusal code. Default:
	// DefaultMaxRefusalHandshakes; negative: none, every refused connection
	// is dropped before its handshake.
	MaxRefusalHandshakes int
	// RateLimits are the token-bucket limits on connection attempts and
	// messages.
	RateLimits RateLimits
	// RefusalLogRate caps log lines about refusals per second, for each
	// reason (message and error code) apart. Default:
	// DefaultRefusalLogRate; negative: every refusal is logged.
	RefusalLogRate float64
	// Services answers commands and streams. Default: echo, notify and
	// files (storing under DataDir/files, capped at MaxFileSize).
	Services *services.Registry
	// MaxFileSize caps one file of the default files service.
	// Default: files.DefaultMaxFileSize (1 GiB).
	MaxFileSize int64

	// Bus connects the gateway to the cluster's cores (ARCHITECTURE §1).
	// When set, a PUBLISH is committed by the core of its channel's shard
	// and ACKed after the commit, subscribers receive the committed events
	// with their storage sequence numbers through one bus subscription per
	// channel, and SUBSCRIBE with Since replays the missed messages.
	// Default: nil, the in-memory hub numbers and delivers messages inside
	// this gateway only.
	Bus bus.Bus
	// Cluster names the cluster on the bus (bus.NewSubjects). Default:
	// core.DefaultCluster.
	Cluster string
	// CoreShards is the number of core command subjects; it must match the
	// cores'. Default: core.DefaultShards.
	CoreShards int
	// BusCodec encodes the gateway's requests to the cores and the live
	// events it publishes (D42); events and replies are read in either
	// encoding. core.CodecJSON serves nodes of a release that reads only
	// JSON during a rolling upgrade. Default: core.CodecBinary.
	BusCodec core.Codec
	// CoreTimeout bounds one core request, one session-record write, and
	// the wait for a channel's first bus subscription to be in effect.
	// Default: DefaultCoreTimeout.
	CoreTimeout time.Duration
	// MaxReplay caps the messages replayed for one SUBSCRIBE with Since.
	// Default: DefaultMaxReplay.
	MaxReplay int
	// Resume configures session resumption in bus mode (resume.go).
	Resume ResumeConfig
	// Sessions, when set, keeps a storage record of every session: upserted
	// on connect, touched every SessionTouchInterval, closed on disconnect;
	// New closes the records an earlier run of NodeID left open.
	// Default: none.
	Sessions storage.SessionStore
	// Breakers are the circuit breakers guarding this process's storage
	// and bus calls (core.GuardStore, core.GuardBus); /metrics reports
	// their state and counters. Default: none.
	Breakers []*breaker.Breaker
	// SessionTouchInterval is how often live session records are touched.
	// Default: DefaultSessionTouchInterval.
	SessionTouchInterval time.Duration
	// NodeID names this gateway in session records and logs. Default: the
	// host name.
	NodeID string

	// Alternatives are addresses of other gateways, announced in WELCOME
	// and in GOAWAY when draining, before the live ones from the gateway
	// registry (registry.go). Default: none.
	Alternatives []string
	// PublicURLs are this gateway's client URLs as other gateways announce
	// them (registry.go). Default: the bound addresses (Addrs.URLs).
	PublicURLs []string
	// RegistryHeartbeat is how often, with a Bus, the gateway refreshes its
	// own registry entry in NATS KV; it expires after RegistryTTLBeats
	// heartbeats, and the gateway's sessions' entries (written on change
	// only, D39) count while it is there. Default:
	// DefaultRegistryHeartbeat.
	RegistryHeartbeat time.Duration
	// AwayAfter is the idle time after which a session's user counts as
	// away in presence queries. Default: DefaultAwayAfter.
	AwayAfter time.Duration
	// SessionRetention is how long closed session records stay in
	// Sessions before the janitor deletes them. Default:
	// DefaultSessionRetention.
	SessionRetention time.Duration
	// DrainGrace is how long Shutdown waits after GOAWAY before closing the
	// sessions that have not left. Default: DefaultDrainGrace.
	DrainGrace time.Duration
	// MaxSessions caps connections, handshaking or established.
	// Default: DefaultMaxSessions.
	MaxSessions int
	// MaxConnsPerIP caps connections, handshaking or established, from
	// one IP address (one IPv6 /64 by default, see DDoS.IPv6Prefix); one
	// more is refused with TOO_MANY_CONNECTIONS. Default:
	// DefaultMaxConnsPerIP.
	MaxConnsPerIP int
	// MaxHandshakes caps handshakes in progress. Default: DefaultMaxHandshakes.
	MaxHandshakes int
	// MaxInflight caps the commands and message echoes one session has in
	// progress. Default: DefaultMaxInflight.
	MaxInflight int
	// PublishWindow caps the PUBLISHes one session has being committed in
	// bus mode: up to this many queued PUBLISHes go to the core in one
	// request and share its commit, and as many more may wait behind them
	// before the session's reader is held back. Default:
	// DefaultPublishWindow; it must not exceed core.DefaultMaxPublishBatch.
	PublishWindow int
	// PublishRounds caps the PUBLISHes one session has taken and not yet
	// answered in bus mode at PublishRounds × PublishWindow (D36). Each
	// channel has one core request in flight and the next takes what
	// waits for it, up to PublishWindow messages, so a slow channel does
	// not hold back the session's others; ACKs keep the order of
	// arrival. Default: DefaultPublishRounds.
	PublishRounds int
	// MaxStreamHandlers caps the application streams one session has being
	// served. Default: DefaultMaxStreamHandlers.
	MaxStreamHandlers int
	// LiveChannels names the live channels (decision D43): with a Bus, a
	// PUBLISH to one of them is fanned out at once, without a commit, a
	// sequence number or history, and acknowledged once it is on the bus
	// (at most once: for typing indicators, cursors, presence pings). An
	// entry is a channel name, or a prefix followed by "*" ("typing.*"
	// matches "typing.room1"). Every gateway of a cluster needs the same
	// list. Default: none.
	LiveChannels []string
	// LiveAuthTTL is how long a session's permission to publish to a live
	// channel, asked from a core once, is reused before it is asked again;
	// a core's control event that drops the user from the channel ends it
	// at once. Default: DefaultLiveAuthTTL.
	LiveAuthTTL time.Duration

	// ReadyChecks are checked by /readyz, by name (the bus, the
	// database): the gateway is ready only while every check passes.
	// Default: none.
	ReadyChecks map[string]ReadyCheck

	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Rand is the randomness for notification ids and the registry's
	// incarnation (D39). Default: crypto/rand.
	Rand io.Reader
}

func (c *Config) setDefaults() {
	if c.LiveAuthTTL == 0 {
		c.LiveAuthTTL = DefaultLiveAuthTTL
	}
	if c.QUICAddr == "" {
		c.QUICAddr = DefaultQUICAddr
	}
	if c.TCPAddr == "" {
		c.TCPAddr = DefaultTCPAddr
	}
	if c.WSAddr == "" {
		c.WSAddr = DefaultWSAddr
	}
	if c.WSPath == "" {
		c.WSPath = DefaultWSPath
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = files.DefaultMaxFileSize
	}
	if c.DrainGrace == 0 {
		c.DrainGrace = DefaultDrainGrace
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = DefaultMaxSessions
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = DefaultMaxConnsPerIP
	}
	if c.MaxHandshakes == 0 {
		c.MaxHandshakes = DefaultMaxHandshakes
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = DefaultMaxInflight
	}
	if c.PublishWindow == 0 {
		c.PublishWindow = DefaultPublishWindow
	}
	if c.PublishRounds == 0 {
		c.PublishRounds = DefaultPublishRounds
	}
	if c.MaxStreamHandlers == 0 {
		c.MaxStreamHandlers = DefaultMaxStreamHandlers
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	// Sessions log and time through the gateway's logger and clock unless
	// configured otherwise.
	if c.Session.Logger == nil {
		c.Session.Logger = c.Logger
	}
	if c.Session.Now == nil {
		c.Session.Now = c.Now
	}
	if c.Hub.Logger == nil {
		c.Hub.Logger = c.Logger
	}
	if c.DeviceCheckInterval == 0 {
		c.DeviceCheckInterval = c.Session.HeartbeatInterval
		if c.DeviceCheckInterval == 0 {
			c.DeviceCheckInterval = DefaultDeviceCheckInterval
		}
	}
	if c.DDoS.MaxConnsPerIP == 0 {
		c.DDoS.MaxConnsPerIP = c.MaxConnsPerIP
	}
	if c.DDoS.MaxConns == 0 {
		c.DDoS.MaxConns = c.MaxSessions
	}
	if c.DDoS.Now == nil {
		c.DDoS.Now = c.Now
	}
	if c.MaxRefusalHandshakes == 0 {
		c.MaxRefusalHandshakes = DefaultMaxRefusalHandshakes
	}
	if c.Cluster == "" {
		c.Cluster = core.DefaultCluster
	}
	if c.CoreShards == 0 {
		c.CoreShards = core.DefaultShards
	}
	if c.CoreTimeout == 0 {
		c.CoreTimeout = DefaultCoreTimeout
	}
	if c.MaxReplay == 0 {
		c.MaxReplay = DefaultMaxReplay
	}
	c.Resume.setDefaults()
	if c.SessionTouchInterval == 0 {
		c.SessionTouchInterval = DefaultSessionTouchInterval
	}
	c.setRegistryDefaults()
	if c.NodeID == "" {
		c.NodeID, _ = os.Hostname()
		if c.NodeID == "" {
			c.NodeID = "gateway"
		}
	}
	if c.Hub.QueueLength == 0 {
		// The replay buffer of a channel is bounded by the same length.
		c.Hub.QueueLength = pubsub.DefaultQueueLength
	}
	if c.RefusalLogRate == 0 {
		c.RefusalLogRate = DefaultRefusalLogRate
	}
	c.RateLimits.setDefaults()
}

func (c *Config) validate() error {
	if c.QUICAddr == Off && c.TCPAddr == Off && c.WSAddr == Off && len(c.ExtraListeners) == 0 {
		return errors.New("gateway: every listener is off")
	}
	if c.WSPath != "" && !strings.HasPrefix(c.WSPath, "/") || c.WSPath == "/healthz" || c.WSPath == "/metrics" {
		return fmt.Errorf("gateway: WSPath %q must start with / and differ from /healthz and /metrics", c.WSPath)
	}
	if err := c.Resume.validate(); err != nil {
		return err
	}
	if err := checkPlaintextAddr(c); err != nil {
		return err
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("gateway: CertFile and KeyFile go together")
	}
	switch {
	case c.DrainGrace < 0:
		return fmt.Errorf("gateway: negative DrainGrace %v", c.DrainGrace)
	case c.MaxSessions < 0, c.MaxConnsPerIP < 0, c.MaxHandshakes < 0, c.MaxInflight < 0, c.MaxStreamHandlers < 0, c.PublishWindow < 0, c.PublishRounds < 0:
		return errors.New("gateway: negative limit in config")
	case c.PublishWindow > core.DefaultMaxPublishBatch:
		return fmt.Errorf("gateway: PublishWindow %d over the core's limit %d", c.PublishWindow, core.DefaultMaxPublishBatch)
	case c.MaxFileSize < 0:
		return fmt.Errorf("gateway: negative MaxFileSize %d", c.MaxFileSize)
	case c.CoreShards < 0, c.CoreTimeout < 0, c.MaxReplay < 0, c.SessionTouchInterval < 0:
		return errors.New("gateway: negative CoreShards, CoreTimeout, MaxReplay or SessionTouchInterval")
	case c.RegistryHeartbeat < 0, c.AwayAfter < 0, c.SessionRetention < 0:
		return errors.New("gateway: negative RegistryHeartbeat, AwayAfter or SessionRetention")
	case c.LiveAuthTTL < 0:
		return fmt.Errorf("gateway: negative LiveAuthTTL %v", c.LiveAuthTTL)
	case c.DeviceCheckInterval < 0:
		return fmt.Errorf("gateway: negative DeviceCheckInterval %v", c.DeviceCheckInterval)
	case c.BusCodec != core.CodecBinary && c.BusCodec != core.CodecJSON:
		return fmt.Errorf("gateway: unknown BusCodec %d", c.BusCodec)
	case c.QUIC.VerifySourceAddress != nil || c.QUIC.ConnContext != nil:
		return errors.New("gateway: QUIC.VerifySourceAddress and QUIC.ConnContext belong to the gateway's filter")
	}
	if err := validateLiveChannels(c.LiveChannels); err != nil {
		return err
	}
	return c.RateLimits.validate()
}
