package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// ClientInfo describes the client in HELLO (JSP §5.1).
type ClientInfo struct {
	Name     string
	Version  string
	Platform string
	// Auth is an opaque credential (a token) checked by the server.
	Auth []byte
	// Battery asks for battery mode from the start.
	Battery bool
	// Versions overrides the offered versions (tests of negotiation).
	// Default: protocol.SupportedVersions.
	Versions []protocol.Version
	// Resume names an earlier session to resume (JSP §5.1 key 6,
	// §11.1 item 4): its id and the resume token of its last WELCOME.
	// Nil starts a new session.
	Resume *wire.Resume
}

// Dial runs the client side of the handshake on conn (JSP §11.1): it opens
// the control stream, sends HELLO and waits for WELCOME. On ERROR it closes
// conn and returns the remote *jsperr.Error (for UNSUPPORTED_VERSION with the
// server's versions in Supported).
func Dial(ctx context.Context, conn transport.Conn, info ClientInfo, cfg Config) (*Session, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	ctl, err := conn.OpenStream(hctx, protocol.ClassSystem)
	if err != nil {
		return nil, fmt.Errorf("session: open control stream: %w", err)
	}
	versions := info.Versions
	if len(versions) == 0 {
		versions = protocol.SupportedVersions
	}
	hello := &wire.Hello{
		ClientName:    info.Name,
		ClientVersion: info.Version,
		Platform:      info.Platform,
		Auth:          info.Auth,
		HeartbeatMS:   uint64(cfg.HeartbeatInterval.Milliseconds()),
		MaxFrame:      uint64(cfg.MaxFrameSize),
		Battery:       info.Battery,
		Caps:          offeredCaps(cfg),
		Resume:        info.Resume,
	}
	hello.Versions = versions
	if err := writeFrame(ctl, hello, cfg.HandshakeTimeout, cfg.Now); err != nil {
		return nil, fmt.Errorf("session: send HELLO: %w", err)
	}
	fr := wire.NewFrameReader(ctl, uint64(cfg.MaxFrameSize))
	m, err := readHandshakeFrame(hctx, ctl, fr, cfg)
	if err != nil {
		_ = conn.CloseWithError(jsperr.CodeOf(err), err.Error())
		return nil, fmt.Errorf("session: waiting for WELCOME: %w", err)
	}
	switch m := m.(type) {
	case *wire.Welcome:
		if !supported(m.Version, versions) {
			err := jsperr.Newf(jsperr.UnsupportedVersion, "server chose version %d, which was not offered", m.Version)
			_ = conn.CloseWithError(err.Code, err.Reason)
			return nil, err
		}
		s := newSession(conn, ctl, RoleClient, &cfg)
		s.version, s.id, s.hello, s.welcome = m.Version, m.SessionID, hello, m
		s.zstd = !cfg.DisableCompression && hasCap(m.Caps, CapZstd)
		s.ann.on = !cfg.DisableAnnounce && hasCap(m.Caps, CapAnnounce)
		s.heartbeat.Store(int64(s.negotiatedHeartbeat()))
		s.start(fr)
		if info.Battery {
			s.SetBatteryMode(true)
		}
		return s, nil
	case *wire.ErrorMessage:
		rerr := m.Err()
		_ = conn.CloseWithError(jsperr.NoError, "")
		return nil, fmt.Errorf("session: server refused HELLO: %w", rerr)
	default:
		err := jsperr.Newf(jsperr.ProtocolViolation, "expected WELCOME or ERROR, got %s", m.FrameType())
		_ = conn.CloseWithError(err.Code, err.Reason)
		return nil, err
	}
}

// Identity is who a session belongs to, as the server authenticated it
// (zero trust: every message that reaches the core carries it).
type Identity struct {
	// User is the authenticated user id; empty for anonymous sessions.
	User string
	// Device is the device id (a device key's id) when one was proven.
	Device string
	// Scopes are the permissions the credential grants.
	Scopes []string
	// Expires is when the credential stops being valid; zero = never.
	Expires time.Time
}

// Authenticator decides whether a HELLO is accepted and who the client is.
// It returns an error (ideally a *jsperr.Error such as UNAUTHENTICATED or a
// TOKEN_* code) to refuse the client.
type Authenticator func(ctx context.Context, hello *wire.Hello, conn transport.Conn) (Identity, error)

// ServerOptions are per-server extras for Accept.
type ServerOptions struct {
	// Authenticate checks HELLO. Nil accepts everyone.
	Authenticate Authenticator
	// Gateways are alternative addresses announced in WELCOME.
	Gateways []string
	// SessionID returns the id for a new session. Default: 16 random bytes.
	SessionID func() []byte
	// Resume, when set, turns resumption on (JSP §11.1 item 4): every
	// WELCOME then carries a fresh resume token of ResumeTokenLen random
	// bytes (Session.ResumeToken), and a HELLO with `resume` is passed
	// to Resume after authentication. Resume returns the state the
	// session continues with (Session.ResumeState), and the session
	// keeps the resumed id and answers WELCOME with `resumed`; an error
	// (normally SESSION_NOT_FOUND) refuses the HELLO with that code.
	// Without Resume, a HELLO with `resume` starts a new session.
	Resume func(ctx context.Context, r *wire.Resume, ident Identity) (state any, err error)
}

// ResumeTokenLen is the length of the resume tokens a server issues: 256
// bits, so that a token cannot be guessed.
const ResumeTokenLen = 32

// Accept runs the server side of the handshake on conn (JSP §11.1): it waits
// for the control stream and HELLO, negotiates the version and answers
// WELCOME, or ERROR and a close.
func Accept(ctx context.Context, conn transport.Conn, cfg Config, opts ServerOptions) (*Session, error) {
	a, err := NewAcceptor(cfg)
	if err != nil {
		return nil, err
	}
	return a.Accept(ctx, conn, opts)
}

// Acceptor runs the server side of handshakes for sessions that share one
// Config. Each session refers to the Acceptor's copy of the Config instead
// of holding its own, some 256 bytes per session (D34). It is safe for
// concurrent use.
type Acceptor struct {
	cfg *Config
}

// NewAcceptor returns an Acceptor for sessions configured by cfg, with
// defaults filled in; it fails if cfg is invalid.
func NewAcceptor(cfg Config) (*Acceptor, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Acceptor{cfg: &cfg}, nil
}

// Accept runs the server side of the handshake on conn, as the package's
// Accept does.
func (a *Acceptor) Accept(ctx context.Context, conn transport.Conn, opts ServerOptions) (*Session, error) {
	cfgp := a.cfg
	cfg := *cfgp
	hctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
	defer cancel()
	refuse := func(err error) error {
		_ = conn.CloseWithError(jsperr.CodeOf(err), truncate(err.Error(), 256))
		return err
	}
	ctl, err := conn.AcceptStream(hctx)
	if err != nil {
		if hctx.Err() != nil {
			return nil, refuse(jsperr.New(jsperr.HandshakeTimeout, "no control stream before the handshake timeout"))
		}
		return nil, fmt.Errorf("session: accept control stream: %w", err)
	}
	fr := wire.NewFrameReader(ctl, uint64(cfg.MaxFrameSize))
	m, err := readHandshakeFrame(hctx, ctl, fr, cfg)
	if err != nil {
		return nil, refuse(fmt.Errorf("session: waiting for HELLO: %w", err))
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, refuse(jsperr.Newf(jsperr.ProtocolViolation, "first frame is %s, not HELLO", m.FrameType()))
	}
	// JSP §8.2: the highest version both sides speak.
	var chosen protocol.Version
	for _, v := range hello.Versions {
		if supported(v, protocol.SupportedVersions) && v > chosen {
			chosen = v
		}
	}
	if chosen == 0 {
		e := &wire.ErrorMessage{Code: jsperr.UnsupportedVersion,
			Reason:    fmt.Sprintf("offered versions %v, supported %v", hello.Versions, protocol.SupportedVersions),
			Supported: protocol.SupportedVersions}
		return nil, refuseWith(conn, ctl, e, cfg)
	}
	var ident Identity
	if opts.Authenticate != nil {
		id, err := opts.Authenticate(hctx, hello, conn)
		ident = id
		if err != nil {
			code := jsperr.CodeOf(err)
			if code == jsperr.Internal {
				code = jsperr.Unauthenticated
			}
			_ = refuseWith(conn, ctl, &wire.ErrorMessage{Code: code, Reason: truncate(err.Error(), 256)}, cfg)
			return nil, jsperr.Wrap(code, err)
		}
	}
	var (
		resumed     bool
		resumeState any
	)
	if opts.Resume != nil && hello.Resume != nil {
		st, err := opts.Resume(hctx, hello.Resume, ident)
		if err != nil {
			code := jsperr.CodeOf(err)
			if code == jsperr.Internal {
				code = jsperr.SessionNotFound
			}
			_ = refuseWith(conn, ctl, &wire.ErrorMessage{Code: code, Reason: truncate(err.Error(), 256)}, cfg)
			return nil, jsperr.Wrap(code, err)
		}
		resumed, resumeState = true, st
	}
	s := newSession(conn, ctl, RoleServer, cfgp)
	s.identity = ident
	s.resumeState = resumeState
	switch {
	case resumed:
		s.id = append([]byte(nil), hello.Resume.SessionID...)
	case opts.SessionID != nil:
		s.id = opts.SessionID()
	default:
		s.id = s.newID()
	}
	hb := cfg.HeartbeatInterval
	if hello.Battery {
		hb = cfg.BatteryHeartbeatInterval
	}
	welcome := &wire.Welcome{
		Version:     chosen,
		SessionID:   s.id,
		HeartbeatMS: uint64(hb.Milliseconds()),
		Limits: wire.Limits{
			MaxFrame:           cfg.MaxFrameSize,
			MaxMessage:         cfg.MaxMessageSize,
			MaxStreams:         protocol.DefaultMaxStreams,
			MaxDatagram:        protocol.ByteCount(conn.MaxDatagramSize()),
			MaxDatagramMessage: cfg.MaxDatagramMessage,
		},
		ServerTime: uint64(cfg.Now().UnixMilli()),
		Gateways:   opts.Gateways,
		Resumed:    resumed,
	}
	if opts.Resume != nil {
		tok := make([]byte, ResumeTokenLen)
		if _, err := io.ReadFull(cfg.Rand, tok); err != nil {
			return nil, refuse(jsperr.Wrap(jsperr.Internal, fmt.Errorf("session: resume token: %w", err)))
		}
		welcome.ResumeToken = tok
	}
	if !cfg.DisableCompression && hasCap(hello.Caps, CapZstd) {
		welcome.Caps = append(welcome.Caps, CapZstd)
		s.zstd = true
	}
	if hasCap(hello.Caps, CapAnnounce) && acceptsAnnounce(cfgp, conn) {
		// JSP §5.14: streams and datagrams are taken once announced.
		welcome.Caps = append(welcome.Caps, CapAnnounce)
		s.unannounced = wire.UsesStreams | wire.UsesDatagrams
	}
	// Capabilities in effect are those both sides offered (JSP §8.2).
	for _, c := range cfg.Capabilities {
		if c != CapZstd && c != CapAnnounce && hasCap(hello.Caps, c) && !hasCap(welcome.Caps, c) {
			welcome.Caps = append(welcome.Caps, c)
		}
	}
	// Kept without what the handshake consumed (versions, capabilities,
	// the credential, the resume request): an idle session holds no more
	// of its HELLO than Hello reports (D34).
	s.version, s.welcome = chosen, welcome
	s.hello = &wire.Hello{
		ClientName:    hello.ClientName,
		ClientVersion: hello.ClientVersion,
		Platform:      hello.Platform,
		HeartbeatMS:   hello.HeartbeatMS,
		MaxFrame:      hello.MaxFrame,
		Battery:       hello.Battery,
	}
	welcome.IdleTimeoutMS = uint64(s.idleTimeout().Milliseconds())
	s.heartbeat.Store(int64(hb))
	if err := writeFrame(ctl, welcome, cfg.HandshakeTimeout, cfg.Now); err != nil {
		return nil, refuse(fmt.Errorf("session: send WELCOME: %w", err))
	}
	s.start(fr)
	return s, nil
}

// errorLinger bounds how long a refusing server waits for the client to
// read ERROR and hang up before it closes the connection itself.
const errorLinger = 2 * time.Second

// refuseWith sends ERROR on the control stream and closes the connection
// once the client has hung up or errorLinger passed. Closing at once could
// discard the ERROR still in flight (both QUIC and the link layer drop unsent
// stream data on close), and the client would learn only the close code, not
// the reason or the supported versions.
func refuseWith(conn transport.Conn, ctl transport.Stream, e *wire.ErrorMessage, cfg Config) error {
	_ = writeFrame(ctl, e, cfg.HandshakeTimeout, cfg.Now)
	_ = ctl.Close()
	t := time.NewTimer(min(errorLinger, cfg.HandshakeTimeout))
	defer t.Stop()
	select {
	case <-conn.Context().Done():
	case <-t.C:
	}
	err := e.Err()
	err.Remote = false
	_ = conn.CloseWithError(err.Code, truncate(err.Reason, 256))
	return err
}

func offeredCaps(cfg Config) []string {
	var caps []string
	if !cfg.DisableCompression {
		caps = append(caps, CapZstd)
	}
	if !cfg.DisableAnnounce {
		caps = append(caps, CapAnnounce)
	}
	for _, c := range cfg.Capabilities {
		if !hasCap(caps, c) {
			caps = append(caps, c)
		}
	}
	return caps
}

func supported(v protocol.Version, list []protocol.Version) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// writeFrame writes one session message directly (handshake only; after it
// the sender owns the control stream).
func writeFrame(st transport.Stream, m wire.Message, timeout time.Duration, now func() time.Time) error {
	_ = st.SetWriteDeadline(now().Add(timeout))
	defer st.SetWriteDeadline(time.Time{})
	payload := m.Append(nil)
	_, err := st.Write(wire.AppendFrame(nil, m.FrameType(), 0, 0, payload))
	return err
}

// readHandshakeFrame reads the first known frame from the control stream
// within the handshake timeout, skipping unknown frame types (JSP §8.3).
func readHandshakeFrame(ctx context.Context, st transport.Stream, fr *wire.FrameReader, cfg Config) (wire.Message, error) {
	dl, _ := ctx.Deadline()
	_ = st.SetReadDeadline(dl)
	defer st.SetReadDeadline(time.Time{})
	for {
		h, payload, err := fr.ReadFrame()
		if err != nil {
			if ctx.Err() != nil || isTimeout(err) {
				return nil, jsperr.New(jsperr.HandshakeTimeout, "handshake did not complete in time")
			}
			if errors.Is(err, io.EOF) {
				return nil, jsperr.New(jsperr.TransportClosed, "peer closed the control stream during the handshake")
			}
			return nil, err
		}
		if h.Flags.Has(wire.FlagCompressed) {
			return nil, jsperr.New(jsperr.ProtocolViolation, "compressed frame during the handshake")
		}
		m, err := wire.DecodeMessage(h.Type, payload)
		if errors.Is(err, wire.ErrUnknownFrame) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
