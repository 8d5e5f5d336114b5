package natsbus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetstreamproto/jsp/server/bus"
)

// Defaults of ClientConfig.
const (
	// DefaultClientName names the connection in server monitoring.
	DefaultClientName = "jsp"
	// DefaultConnectTimeout bounds one connection attempt.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultReconnectWait is the pause between reconnect attempts to the
	// same server (nats.go adds jitter).
	DefaultReconnectWait = time.Second
	// DefaultPingInterval is how often the client checks the server; two
	// missed pongs count as a lost connection.
	DefaultPingInterval = 20 * time.Second
	// DefaultDrainTimeout bounds Close's wait for subscriptions to finish.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultPendingMsgs caps messages waiting for one subscription's
	// handler; beyond it the subscription drops messages (slow consumer).
	DefaultPendingMsgs = 65536
	// DefaultPendingBytes caps bytes waiting for one subscription.
	DefaultPendingBytes = 64 << 20
	// DefaultReconnectBuffer caps bytes of publishes buffered while
	// reconnecting; beyond it Publish fails.
	DefaultReconnectBuffer = 8 << 20
	// DefaultAPITimeout bounds a JetStream API call whose ctx has no
	// deadline.
	DefaultAPITimeout = 5 * time.Second
)

// ClientConfig configures a connection. The zero value is valid for an
// embedded server without Users.
type ClientConfig struct {
	// Name names the connection in server monitoring.
	// Default: DefaultClientName.
	Name string
	// User and Password log in as a server user.
	User, Password string
	// CredsFile is a NATS credentials file (user JWT and nkey seed) for
	// operator-mode clusters.
	CredsFile string
	// TLS is the client TLS configuration: RootCAs to verify the servers,
	// Certificates for mTLS. When nil and CertFile/CAFile are set, one is
	// built from those files.
	TLS *tls.Config
	// CertFile and KeyFile are a PEM client certificate and key for mTLS.
	CertFile, KeyFile string
	// CAFile is a PEM bundle of CAs that sign the servers' certificates.
	CAFile string
	// InboxPrefix is the prefix of request reply subjects; a client with
	// role permissions must use bus.Permissions.Inbox. Default: "_INBOX".
	InboxPrefix string
	// ConnectTimeout bounds one connection attempt.
	// Default: DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// ReconnectWait is the pause between reconnect attempts.
	// Default: DefaultReconnectWait.
	ReconnectWait time.Duration
	// NoReconnect closes the bus when the connection is lost instead of
	// reconnecting forever. Default: reconnect.
	NoReconnect bool
	// PingInterval is the liveness check interval.
	// Default: DefaultPingInterval.
	PingInterval time.Duration
	// DrainTimeout bounds Close's drain. Default: DefaultDrainTimeout.
	DrainTimeout time.Duration
	// PendingMsgs and PendingBytes cap what waits for one subscription.
	// Default: DefaultPendingMsgs and DefaultPendingBytes.
	PendingMsgs, PendingBytes int
	// ReconnectBuffer caps publishes buffered while reconnecting.
	// Default: DefaultReconnectBuffer.
	ReconnectBuffer int
	// OnAsyncError, when set, is called (after logging) with errors the
	// server reports asynchronously: permission violations, slow
	// consumers. It must not block.
	OnAsyncError func(error)
	// Logger receives connection events. Default: slog.Default().
	Logger *slog.Logger
	// Replicas are the JetStream replica counts of the buckets and
	// streams the bus creates for callers that leave theirs zero.
	// Default: DefaultReplicas each.
	Replicas Replicas
	// OpenWait bounds how long opening a KV bucket, the event log, a work
	// queue or its consumer retries while JetStream answers with
	// transient errors (a restarted cluster electing its leaders, peers
	// down); a caller's shorter context deadline wins. After it the open
	// fails with ErrNotReady, naming the resource and the last error.
	// Default: DefaultOpenWait.
	OpenWait time.Duration
	// OpenAttemptTimeout bounds one attempt of such an open; the first
	// attempts get less (1 s, doubling up to this).
	// Default: DefaultAPITimeout.
	OpenAttemptTimeout time.Duration
}

func (c *ClientConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultClientName
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = DefaultReconnectWait
	}
	if c.PingInterval == 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.PendingMsgs == 0 {
		c.PendingMsgs = DefaultPendingMsgs
	}
	if c.PendingBytes == 0 {
		c.PendingBytes = DefaultPendingBytes
	}
	if c.ReconnectBuffer == 0 {
		c.ReconnectBuffer = DefaultReconnectBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OpenWait == 0 {
		c.OpenWait = DefaultOpenWait
	}
	if c.OpenAttemptTimeout == 0 {
		c.OpenAttemptTimeout = DefaultAPITimeout
	}
	c.Replicas.setDefaults()
}

func (c *ClientConfig) validate() error {
	switch {
	case c.ConnectTimeout < 0, c.ReconnectWait < 0, c.PingInterval < 0, c.DrainTimeout < 0,
		c.PendingMsgs < 0, c.PendingBytes < 0, c.ReconnectBuffer < 0,
		c.OpenWait < 0, c.OpenAttemptTimeout < 0:
		return errors.New("natsbus: client config: negative limit")
	case (c.CertFile == "") != (c.KeyFile == ""):
		return errors.New("natsbus: client config: CertFile and KeyFile go together")
	case c.TLS != nil && (c.CertFile != "" || c.CAFile != ""):
		return errors.New("natsbus: client config: TLS excludes CertFile/KeyFile/CAFile")
	case c.InboxPrefix != "" && !bus.IsLiteral(c.InboxPrefix):
		return fmt.Errorf("natsbus: client config: inbox prefix %q: %w", c.InboxPrefix, bus.ErrInvalidSubject)
	}
	return c.Replicas.validate()
}

// tlsConfig returns the TLS configuration to use, or nil for none.
func (c *ClientConfig) tlsConfig() (*tls.Config, error) {
	if c.TLS != nil {
		return c.TLS, nil
	}
	if c.CertFile == "" && c.CAFile == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS13}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("natsbus: CA file %s: no certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Stats are counters of a Bus.
type Stats struct {
	Disconnects uint64 // connection losses
	Reconnects  uint64 // successful reconnects
	AsyncErrors uint64 // errors the server reported asynchronously
	InMsgs      uint64 // messages received
	OutMsgs     uint64 // messages sent
	Dropped     uint64 // messages dropped by slow subscriptions
}

// Bus is a bus.Bus over one NATS connection. It is safe for concurrent
// use.
type Bus struct {
	nc    *nats.Conn
	js    jetstream.JetStream
	cfg   ClientConfig
	log   *slog.Logger
	owned *Server // shut down by Close when set

	// urls and srv are where the connection went, for OpenNoEcho.
	urls []string
	srv  *Server

	closedCh chan struct{} // closed by the connection's ClosedHandler

	mu       sync.Mutex
	closed   bool                  // guarded by mu
	stoppers map[stopper]struct{}  // guarded by mu; workers and watchers
	subs     map[*natsSub]struct{} // guarded by mu; for drop counts
	opening  map[string]error      // guarded by mu; opens retrying, with their last error

	// background are requests left to finish after their caller went on
	// (a watch's consumer delete); Close joins them once the connection
	// is closed.
	background sync.WaitGroup

	disconnects atomic.Uint64
	reconnects  atomic.Uint64
	asyncErrors atomic.Uint64
}

type stopper interface{ Stop() }

var _ bus.Bus = (*Bus)(nil)

// Connect connects to an external NATS cluster; urls are tried in random
// order and the client learns the rest of the cluster from the servers.
func Connect(urls []string, cfg ClientConfig) (*Bus, error) {
	if len(urls) == 0 {
		return nil, errors.New("natsbus: connect: no server URL")
	}
	return connect(urls, nil, cfg)
}

func connect(urls []string, srv *Server, cfg ClientConfig) (*Bus, error) {
	return dial(urls, srv, cfg, false)
}

// dial opens the connection; with noEcho the server does not deliver the
// connection's own publishes to its subscriptions (NATS CONNECT echo
// false).
func dial(urls []string, srv *Server, cfg ClientConfig, noEcho bool) (*Bus, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	b := &Bus{
		urls:     urls,
		srv:      srv,
		cfg:      cfg,
		log:      cfg.Logger.With("nats_client", cfg.Name),
		closedCh: make(chan struct{}),
		stoppers: map[stopper]struct{}{},
		subs:     map[*natsSub]struct{}{},
		opening:  map[string]error{},
	}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.ReconnectJitter(cfg.ReconnectWait/4, cfg.ReconnectWait/4),
		nats.PingInterval(cfg.PingInterval),
		nats.MaxPingsOutstanding(2),
		nats.DrainTimeout(cfg.DrainTimeout),
		nats.ReconnectBufSize(cfg.ReconnectBuffer),
		nats.DisconnectErrHandler(b.onDisconnect),
		nats.ReconnectHandler(b.onReconnect),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closedCh) }),
		nats.ErrorHandler(b.onAsyncError),
	}
	if noEcho {
		opts = append(opts, nats.NoEcho())
	}
	if cfg.NoReconnect {
		opts = append(opts, nats.NoReconnect())
	} else {
		opts = append(opts, nats.MaxReconnects(-1))
	}
	if cfg.User != "" {
		opts = append(opts, nats.UserInfo(cfg.User, cfg.Password))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.InboxPrefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(cfg.InboxPrefix))
	}
	tc, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	var where string
	if srv != nil {
		opts = append(opts, nats.InProcessServer(srv.ns))
		where = "in-process server " + srv.Name()
	} else {
		where = strings.Join(urls, ",")
	}
	nc, err := nats.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect to %s: %w", where, mapErr(err))
	}
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(DefaultAPITimeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("natsbus: jetstream on %s: %w", where, err)
	}
	b.nc, b.js = nc, js
	return b, nil
}

func (b *Bus) onDisconnect(_ *nats.Conn, err error) {
	b.disconnects.Add(1)
	if err != nil {
		b.log.Warn("natsbus: disconnected", "err", err)
	}
}

func (b *Bus) onReconnect(nc *nats.Conn) {
	b.reconnects.Add(1)
	b.log.Info("natsbus: reconnected", "server", nc.ConnectedUrlRedacted())
}

func (b *Bus) onAsyncError(_ *nats.Conn, sub *nats.Subscription, err error) {
	b.asyncErrors.Add(1)
	subject := ""
	if sub != nil {
		subject = sub.Subject
	}
	b.log.Warn("natsbus: async error", "subject", subject, "err", err)
	if b.cfg.OnAsyncError != nil {
		b.cfg.OnAsyncError(mapErr(err))
	}
}

// Stats returns a snapshot of the bus's counters.
func (b *Bus) Stats() Stats {
	st := b.nc.Stats()
	b.mu.Lock()
	var dropped uint64
	for s := range b.subs {
		if n, err := s.sub.Dropped(); err == nil {
			dropped += uint64(n)
		}
	}
	b.mu.Unlock()
	return Stats{
		Disconnects: b.disconnects.Load(),
		Reconnects:  b.reconnects.Load(),
		AsyncErrors: b.asyncErrors.Load(),
		InMsgs:      st.InMsgs,
		OutMsgs:     st.OutMsgs,
		Dropped:     dropped,
	}
}

// Conn returns the underlying connection, for monitoring only.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// mapErr adds the bus sentinel matching a NATS error, keeping the
// original in the chain.
func mapErr(err error) error {
	var sentinel error
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse):
		sentinel = bus.ErrNoResponders
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrBadSubscription):
		sentinel = bus.ErrClosed
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrInvalidArg):
		sentinel = bus.ErrInvalidSubject
	case errors.Is(err, nats.ErrPermissionViolation), errors.Is(err, nats.ErrAuthorization):
		sentinel = bus.ErrPermission
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		sentinel = bus.ErrKeyNotFound
	case errors.Is(err, jetstream.ErrKeyRevisionMismatch):
		sentinel = bus.ErrRevisionMismatch
	case errors.Is(err, jetstream.ErrKeyExists):
		sentinel = bus.ErrKeyExists
	case errors.Is(err, jetstream.ErrInvalidKey):
		sentinel = bus.ErrInvalidName
	case errors.As(err, &apiErr) && isFullCode(apiErr.ErrorCode):
		sentinel = bus.ErrQueueFull
	case strings.Contains(err.Error(), "maximum messages") || strings.Contains(err.Error(), "maximum bytes"):
		sentinel = bus.ErrQueueFull
	default:
		return err
	}
	if errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// isFullCode: JetStream refused a message because a limit is reached.
func isFullCode(code jetstream.ErrorCode) bool {
	switch code {
	case 10077, // JSStreamStoreFailedF: "maximum messages exceeded" etc.
		10047, // JSStorageResourcesExceededErr: "insufficient storage resources available"
		10054: // JSStreamMessageExceedsMaximumErr
		return true
	}
	return false
}

type natsSub struct {
	b   *Bus
	sub *nats.Subscription
}

func (s *natsSub) Subject() string { return s.sub.Subject }

func (s *natsSub) Unsubscribe() error {
	s.b.mu.Lock()
	delete(s.b.subs, s)
	s.b.mu.Unlock()
	err := s.sub.Unsubscribe()
	if err != nil && !errors.Is(err, nats.ErrBadSubscription) && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("natsbus: unsubscribe %q: %w", s.sub.Subject, mapErr(err))
	}
	return nil
}

func toBusMsg(m *nats.Msg) *bus.Msg {
	return &bus.Msg{Subject: m.Subject, Reply: m.Reply, Header: bus.Header(m.Header), Data: m.Data}
}

func toNatsMsg(subject string, m bus.Msg) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header(m.Header), Data: m.Data}
}

func (b *Bus) checkOpen(op string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("natsbus: %s: %w", op, bus.ErrClosed)
	}
	return nil
}

// Publish implements bus.Bus.
func (b *Bus) Publish(subject string, m bus.Msg) error {
	if !bus.IsLiteral(subject) {
		return fmt.Errorf("natsbus: publish to %q: %w", subject, bus.ErrInvalidSubject)
	}
	if err := b.checkOpen("publish to " + subject); err != nil {
		return err
	}
	if err := b.nc.PublishMsg(toNatsMsg(subject, m)); err != nil {
		return fmt.Errorf("natsbus: publish to %q: %w", subject, mapErr(err))
	}
	return nil
}

func (b *Bus) subscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if err := bus.ValidateSubject(subject); err != nil {
		return nil, fmt.Errorf("natsbus: subscribe: %w", err)
	}
	if h == nil {
		return nil, fmt.Errorf("natsbus: subscribe %q: nil handler", subject)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("natsbus: subscribe %q: %w", subject, bus.ErrClosed)
	}
	cb := func(m *nats.Msg) { h(toBusMsg(m)) }
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = b.nc.Subscribe(subject, cb)
	} else {
		sub, err = b.nc.QueueSubscribe(subject, queue, cb)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: subscribe %q: %w", subject, mapErr(err))
	}
	if err := sub.SetPendingLimits(b.cfg.PendingMsgs, b.cfg.PendingBytes); err != nil {
		_ = sub.Unsubscribe()
		return nil, fmt.Errorf("natsbus: subscribe %q: pending limits: %w", subject, err)
	}
	s := &natsSub{b: b, sub: sub}
	b.subs[s] = struct{}{}
	return s, nil
}

// Subscribe implements bus.Bus.
func (b *Bus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	return b.subscribe(subject, "", h)
}

// QueueSubscribe implements bus.Bus.
func (b *Bus) QueueSubscribe(subject, queue string, h bus.Handler) (bus.Subscription, error) {
	if queue == "" || !bus.IsLiteral(queue) {
		return nil, fmt.Errorf("natsbus: queue subscribe %q: queue group %q: %w", subject, queue, bus.ErrInvalidName)
	}
	return b.subscribe(subject, queue, h)
}

// Request implements bus.Bus.
func (b *Bus) Request(ctx context.Context, subject string, m bus.Msg) (*bus.Msg, error) {
	if !bus.IsLiteral(subject) {
		return nil, fmt.Errorf("natsbus: request %q: %w", subject, bus.ErrInvalidSubject)
	}
	if err := b.checkOpen("request " + subject); err != nil {
		return nil, err
	}
	r, err := b.nc.RequestMsgWithContext(ctx, toNatsMsg(subject, m))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("natsbus: request %q: %w", subject, context.Cause(ctx))
		}
		return nil, fmt.Errorf("natsbus: request %q: %w", subject, mapErr(err))
	}
	return toBusMsg(r), nil
}

func (b *Bus) addStopper(s stopper) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return bus.ErrClosed
	}
	b.stoppers[s] = struct{}{}
	return nil
}

func (b *Bus) removeStopper(s stopper) {
	b.mu.Lock()
	delete(b.stoppers, s)
	b.mu.Unlock()
}

// apiCtx gives a JetStream call a deadline when ctx has none.
func apiCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultAPITimeout)
}

// Close implements bus.Bus. Order: stop workers and watchers (joined), then
// drain the connection so every subscription finishes the messages it
// holds (bounded by DrainTimeout), then join the requests left in the
// background (ended by the closed connection), then shut down an owned
// server.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	stoppers := maps.Clone(b.stoppers)
	b.mu.Unlock()
	for s := range stoppers {
		s.Stop()
	}
	var err error
	if derr := b.nc.Drain(); derr != nil && !errors.Is(derr, nats.ErrConnectionClosed) {
		err = fmt.Errorf("natsbus: drain: %w", derr)
		b.nc.Close()
	}
	select {
	case <-b.closedCh:
	case <-time.After(b.cfg.DrainTimeout + time.Second):
		b.nc.Close()
		<-b.closedCh
		if err == nil {
			err = fmt.Errorf("natsbus: drain did not finish within %v", b.cfg.DrainTimeout)
		}
	}
	b.background.Wait()
	if b.owned != nil {
		b.owned.Shutdown()
	}
	return err
}
