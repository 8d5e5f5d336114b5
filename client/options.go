package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport/mux"
	"github.com/jetstreamproto/jsp/transport/quic"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// Options configure Dial. The zero value is valid: it verifies the server
// against the system roots and uses every documented default.
type Options struct {
	// TLS is the base TLS configuration. It is cloned and raised to the JSP
	// requirements (TLS 1.3, ALPN jsp/1, JSP §7.4); the fields below are
	// applied on top. Default: an empty configuration. ServerName defaults
	// to the URL's host.
	TLS *tls.Config
	// RootCAsFile names a PEM file of CA certificates that replace the
	// system roots.
	RootCAsFile string
	// RootCAs replaces the system roots (and RootCAsFile).
	RootCAs *x509.CertPool
	// Pins are SPKI SHA-256 fingerprints; when set, the server's key must
	// match one of them or Dial fails with ErrPinMismatch. Without a CA
	// (RootCAsFile, RootCAs or TLS.RootCAs) the pins are the only trust
	// anchor, as for a self-signed development certificate.
	Pins []tlsconf.Fingerprint
	// InsecureSkipVerify accepts any server certificate (pins, if any, are
	// still checked). For development only.
	InsecureSkipVerify bool

	// Info is sent in HELLO (JSP §5.1). Default Name: "jsp-go".
	Info session.ClientInfo
	// Session configures the session layer; see session.Config for its
	// defaults. Its Logger defaults to Logger. The media FEC capability
	// (media.CapFEC) is added to Session.Capabilities unless
	// DisableMediaFEC is set.
	Session session.Config
	// DisableMediaFEC stops the client from offering the media FEC
	// capability (JSP §13.5). Default false: the capability is offered, so
	// media flows (voice rooms) carry forward error correction when both
	// sides offer it; its strength follows the loss the receiver reports
	// and is zero on a clean path.
	DisableMediaFEC bool
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock used for timing the handshake. Default: time.Now.
	Now func() time.Time

	// DialTimeout bounds the connection and the JSP handshake, on top of
	// the caller's context. Default: 15 s.
	DialTimeout time.Duration
	// HappyEyeballsDelay is the head start QUIC gets over TCP in automatic
	// mode (jsp://): TCP starts after it, or at once if QUIC fails first.
	// Default: 250 ms.
	HappyEyeballsDelay time.Duration
	// QUIC configures the QUIC transport; see quic.Config for defaults.
	// Its PacketConn, when set, carries QUIC instead of a socket of the
	// client's own; the caller keeps ownership and closes it after Close.
	QUIC quic.Config
	// Link configures the link layer of the TCP and WebSocket transports;
	// see mux.Config for defaults.
	Link mux.Config

	// CommandTimeout is the deadline Command applies when the caller's
	// context has none. Default: 30 s.
	CommandTimeout time.Duration
	// HandlerQueueLength caps the messages queued for each handler (each
	// subscription, the notification handler, the message handler).
	// Default: 256.
	HandlerQueueLength int
	// HandlerPatience is how long the dispatch waits for room in a full
	// handler queue before it drops the message and marks the handler
	// stalled; while stalled, the handler's messages are dropped without
	// waiting until its queue drains. Drops are counted in Stats.
	// Default: 1 s.
	HandlerPatience time.Duration

	// Credentials, when set, returns the HELLO auth bytes for each new
	// connection from its TLS state, replacing Info.Auth: a token, a device
	// proof bound to the connection's TLS exporter (JSP §7.4), or both, in
	// the format the server's authenticator defines; with the gateway's
	// authenticator (server/auth) that is
	//
	//	func(ctx context.Context, cs tls.ConnectionState) ([]byte, error) {
	//		return credential.ForConnection(tokenText, deviceKey, cs)
	//	}
	//
	// (package security/credential). Default: Info.Auth.
	Credentials func(ctx context.Context, tls tls.ConnectionState) ([]byte, error)
	// TokenSource, when set, supplies tokens: the Client refreshes the
	// session's token in place (JSP §5.9.1, Client.RefreshToken) at two
	// thirds of each token's lifetime, so the server never closes the
	// session with TOKEN_EXPIRED. Without Credentials, HELLO also carries
	// a token from it (on every reconnect, a fresh one). It is called from
	// the Client's goroutines and must be safe for concurrent use.
	// Default: nil, no refresh.
	TokenSource func(ctx context.Context) (Token, error)

	// Reconnect configures automatic reconnection; off by default. See
	// ReconnectOptions.
	Reconnect ReconnectOptions

	// SigningKey, when set, signs every Publish with this device key
	// (JSP §4.3; see signatures.go). It should be the key the session
	// authenticates with: the server refuses an envelope signed by another
	// device with SIGNER_MISMATCH. Default: publishes are not signed.
	SigningKey devicekey.PrivateKey
	// Verify configures the verification of incoming signed events; off
	// by default. See VerifyOptions.
	Verify VerifyOptions
	// Recovery configures session resumption, ordered delivery with gap
	// repair, ACK cursors and the resending of unacknowledged PUBLISHes.
	// See RecoveryOptions.
	Recovery RecoveryOptions
	// RateLimitRetry configures the automatic retry of calls refused with
	// RATE_LIMITED after their retry-after; on by default. See
	// RateLimitRetry.
	RateLimitRetry RateLimitRetry
}

// Defaults for zero Options fields.
const (
	DefaultClientName         = "jsp-go"
	DefaultDialTimeout        = 15 * time.Second
	DefaultHappyEyeballsDelay = 250 * time.Millisecond
	DefaultCommandTimeout     = 30 * time.Second
	DefaultHandlerQueueLength = 256
	DefaultHandlerPatience    = time.Second
)

// setDefaults fills every zero field with its default.
func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Session.Logger == nil {
		o.Session.Logger = o.Logger
	}
	if !o.DisableMediaFEC && !slices.Contains(o.Session.Capabilities, media.CapFEC) {
		// A copy: the caller's slice is not written to.
		o.Session.Capabilities = append(slices.Clip(o.Session.Capabilities), media.CapFEC)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Info.Name == "" {
		o.Info.Name = DefaultClientName
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.HappyEyeballsDelay == 0 {
		o.HappyEyeballsDelay = DefaultHappyEyeballsDelay
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.HandlerQueueLength == 0 {
		o.HandlerQueueLength = DefaultHandlerQueueLength
	}
	if o.HandlerPatience == 0 {
		o.HandlerPatience = DefaultHandlerPatience
	}
	o.Reconnect.setDefaults()
	o.Verify.setDefaults()
	o.setEarlyDefaults()
	o.Recovery.setDefaults()
	o.RateLimitRetry.setDefaults()
}

// validate reports option values that cannot work.
func (o *Options) validate() error {
	switch {
	case o.DialTimeout < 0, o.HappyEyeballsDelay < 0, o.CommandTimeout < 0, o.HandlerPatience < 0:
		return errors.New("client: negative duration in Options")
	case o.HandlerQueueLength < 0:
		return errors.New("client: negative HandlerQueueLength")
	case o.RootCAsFile != "" && o.RootCAs != nil:
		return errors.New("client: set RootCAsFile or RootCAs, not both")
	}
	if err := o.Verify.validate(); err != nil {
		return err
	}
	if err := o.Recovery.validate(); err != nil {
		return err
	}
	if err := o.RateLimitRetry.validate(); err != nil {
		return err
	}
	return o.Reconnect.validate()
}
