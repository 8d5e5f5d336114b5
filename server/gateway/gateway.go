// Package gateway is the JSP edge server: it accepts connections on QUIC,
// TLS-over-TCP and WebSocket listeners (JSP §7), runs the session
// handshake on each (JSP §11.1), and hosts every session: pub/sub through
// the local fan-out hub, commands and streams through services, Mixed API
// messages and datagrams echoed back.
//
// The flow of one connection:
//
//	TCP accept / QUIC Initial ─► filter (before TLS): block list, attempt
//	                rate, per-IP and global connection and handshake caps,
//	                QUIC Retry under load (admission.go)
//	listener.Accept ─► admit (filter verdict, caps: draining, sessions,
//	                handshakes)
//	                ─► session.Accept (HELLO/WELCOME, Authenticate) in a
//	                   gateway goroutine
//	                ─► host: recv loop    rate limits (conn, user, channel,
//	                                      command) ─► ERROR RATE_LIMITED
//	                                      SUBSCRIBE/UNSUBSCRIBE ─► hub, ACK
//	                                      PUBLISH ─► hub ─► EVENT to subscribers
//	                                      COMMAND ─► service ─► REPLY (+NOTIFY);
//	                                      auth.refresh and admin.* are
//	                                      answered here (refresh.go, admin.go)
//	                                      MESSAGE ─► echoed, same delivery mode
//	                         events       hub ─► onDelivery ─► EVENT frame,
//	                                      encoded once, queued on every
//	                                      subscriber's session (deliver.go)
//	                         stream loop  stream ─► service by label
//	                         datagrams    echoed back
//	                         expiry       closes with TOKEN_EXPIRED when the
//	                                      identity expires; a refresh moves it
//	janitor ─► every DeviceCheckInterval: live sessions' devices against the
//	           registry, DEVICE_REVOKED; every reapInterval: filter Reap and
//	           rate-limit Sweep
//
// With Config.Bus set the gateway is one of a cluster's edges
// (ARCHITECTURE §1, cluster.go): a PUBLISH is queued for the session's
// publish loop, which sends it to the core of its channel's shard
// (server/core); the core commits it to storage, which assigns the
// channel's sequence number, and publishes the committed event on the
// channel subject; the client gets an ACK with its envelope id only after
// the commit, or an ERROR with that id as ref. The gateway holds one bus
// subscription per channel with local subscribers and hands each event to
// the hub with the core's number; SUBSCRIBE with Since first replays the
// committed messages after Since from the core, buffering live events
// meanwhile, then continues live. Session records go to Config.Sessions
// directly (docs/operations.md says why). In bus mode sessions are
// resumable (resume.go, Config.Resume): a dropped session's subscriptions
// and cursors are kept for a window, and a HELLO with its token continues
// it with a replay from storage; the built-in command service jsp.history
// (history.go) pages a channel's committed events. The registry
// (registry.go) keeps the live sessions in NATS KV, written on change,
// and the gateway's own entry, refreshed every RegistryHeartbeat, which
// keeps them live (D39): presence queries read it,
// and the other live gateways it lists go to clients in WELCOME and GOAWAY.
//
// Every refusal carries its registry code to the client (in ERROR, or as
// the close code when no session exists yet) and is logged with its reason
// and the client's address; refusal lines are rate-limited
// (RefusalLogRate) and count what they left out.
//
// Goroutines and their owners: Serve starts one accept loop per listener,
// the janitor and the HTTPS server; each admitted connection gets one
// goroutine (the handshake, then the session host), which owns the host's
// loops and the command and stream workers it starts. Shutdown stops the
// listeners, sends GOAWAY to every session, waits for them to leave or for
// the drain grace, then closes; Close does the same without the grace. Both
// wait for every goroutine; the janitor, which keeps checking devices while
// sessions drain, is joined last.
//
// Lock order: Gateway.mu is never held while calling into a session or the
// hub.
package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/security/msgsig"
	"github.com/jetstreamproto/jsp/security/ratelimit"
	"github.com/jetstreamproto/jsp/server/pubsub"
	"github.com/jetstreamproto/jsp/server/services"
	"github.com/jetstreamproto/jsp/server/services/echo"
	"github.com/jetstreamproto/jsp/server/services/files"
	"github.com/jetstreamproto/jsp/server/services/notify"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// ErrServerClosed is returned by Serve after Shutdown or Close, and by
// Serve and Shutdown when called on a closed gateway.
var ErrServerClosed = errors.New("gateway: server closed")

// Gateway serves JSP sessions on QUIC, TCP and WebSocket.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	cert     tls.Certificate
	certFile string // "" when the certificate was given in memory
	pin      tlsconf.Fingerprint
	hub      *pubsub.Hub[*event]
	// live matches the live channels (Config.LiveChannels, D43).
	live liveChannels
	// acceptor runs the sessions' handshakes; its Config is shared by
	// every session (D34). Made by the first connection (sessionAcceptor).
	acceptorOnce sync.Once
	acceptor     *session.Acceptor
	acceptorErr  error
	// cluster is the bus side (Config.Bus); nil without a bus.
	cluster *cluster
	// media hosts the rooms' forwarders (sfu.go); nil without a bus.
	media *mediaHub
	// resumes holds resumable sessions (resume.go); nil without a bus or
	// with Resume.Disabled.
	resumes *resumeStore
	// reg is the registry and presence side (Config.Bus); nil without a
	// bus.
	reg *registry
	// storeErrors counts failed session-record writes; ops counts the
	// operational metrics (metrics_ops.go).
	storeErrors atomic.Uint64
	ops         *opsMetrics
	services    *services.Registry
	metrics     *metrics
	adm         *admission
	// msgLimits limits messages per connection, user, channel and command;
	// nil when nothing is limited.
	msgLimits  *ratelimit.Set
	refusalLog *sampledLog
	// sigGuard checks signed envelopes on ingress (signatures.go).
	sigGuard *msgsig.Guard

	listeners []*listener // fixed after New
	http      *httpServer // nil when WebSocket is off

	// ctx ends when the gateway closes; sessions and handshakes watch it.
	ctx    context.Context
	cancel context.CancelFunc
	// acceptCtx ends when the gateway stops accepting (Shutdown or Close).
	acceptCtx    context.Context
	stopAccept   context.CancelFunc
	handshakeSem chan struct{}

	wg sync.WaitGroup // accept loops and connection goroutines
	bg sync.WaitGroup // the janitor; joined by finish after g.ctx ends

	mu       sync.Mutex
	conns    int                    // guarded by mu: connections admitted and not yet gone
	hosts    map[*host]struct{}     // guarded by mu: established sessions
	byKind   map[transport.Kind]int // guarded by mu: established sessions by transport
	state    state                  // guarded by mu
	served   bool                   // guarded by mu: Serve was called
	shutdown chan struct{}          // closed when Shutdown or Close starts
	closed   chan struct{}          // closed when the gateway is fully closed
	closeErr error                  // guarded by mu
}

type state uint8

const (
	stateNew state = iota
	stateServing
	stateDraining
	stateClosed
)

// listener is one transport listener with its kind.
type listener struct {
	kind transport.Kind
	l    transport.Listener
	// filtered holds the tickets of a TCP-based listener's connections;
	// nil for QUIC (tickets ride in the connection's context) and for
	// extra listeners (admitted after Accept).
	filtered *filteredListener
}

// New loads or creates the certificate, binds every enabled listener and
// returns a gateway ready to Serve. Addrs reports the bound addresses.
func New(cfg Config) (_ *Gateway, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	g := &Gateway{
		cfg:          cfg,
		log:          cfg.Logger,
		metrics:      newMetrics(),
		ops:          newOpsMetrics(),
		handshakeSem: make(chan struct{}, cfg.MaxHandshakes),
		hosts:        map[*host]struct{}{},
		byKind:       map[transport.Kind]int{},
		shutdown:     make(chan struct{}),
		closed:       make(chan struct{}),
	}
	g.ctx, g.cancel = context.WithCancel(context.Background())
	g.acceptCtx, g.stopAccept = context.WithCancel(g.ctx)
	if err := g.loadCert(); err != nil {
		return nil, err
	}
	if g.refusalLog, err = newSampledLog(cfg.Logger, cfg.RefusalLogRate, cfg.Now); err != nil {
		return nil, err
	}
	if g.adm, err = newAdmission(&g.cfg, g.metrics, g.refusalLog); err != nil {
		return nil, err
	}
	if g.msgLimits, err = g.cfg.RateLimits.messageLimits(g.adm.v6Prefix, cfg.Now); err != nil {
		return nil, err
	}
	if g.sigGuard, err = newSignatureGuard(&g.cfg); err != nil {
		return nil, err
	}
	hub, err := pubsub.New[*event](cfg.Hub)
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g.hub = hub
	g.live = newLiveChannels(g.cfg.LiveChannels)
	if cfg.Bus != nil {
		if g.cluster, err = newCluster(&g.cfg, hub, g.ops); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				g.cluster.close() // its no-echo bus connection
			}
		}()
		if !cfg.Resume.Disabled {
			g.resumes = newResumeStore(cfg.Resume, cfg.Now)
		}
		g.cluster.onDrop = g.dropUsers
		g.media = newMediaHub(g)
		g.cfg.Session.Capabilities = mediaCapabilities(g.cfg.Session.Capabilities)
	}
	if cfg.Sessions != nil {
		ctx, cancel := context.WithTimeout(g.ctx, cfg.CoreTimeout)
		n, err := cfg.Sessions.CloseGatewaySessions(ctx, cfg.NodeID)
		cancel()
		if err != nil {
			g.cancel()
			return nil, fmt.Errorf("gateway: close the session records of an earlier run of %q: %w", cfg.NodeID, err)
		}
		if n > 0 {
			g.log.Info("gateway: closed session records of an earlier run", "node", cfg.NodeID, "count", n)
		}
	}
	g.services = cfg.Services
	if g.services == nil {
		if g.services, err = defaultServices(cfg); err != nil {
			return nil, err
		}
	}
	if err := g.listen(); err != nil {
		g.closeListeners()
		g.cancel()
		return nil, err
	}
	if cfg.Bus != nil {
		g.reg = newRegistry(g)
		if cfg.Services == nil {
			if err := g.services.Register(presenceService{g.reg}, PresenceCommand); err != nil {
				g.reg.close()
				g.closeListeners()
				g.cancel()
				return nil, fmt.Errorf("gateway: register presence: %w", err)
			}
		}
	}
	return g, nil
}

// defaultServices registers echo, notify, files and, with a device
// registry, keys.
func defaultServices(cfg Config) (*services.Registry, error) {
	r := services.NewRegistry()
	fs, err := files.New(files.Config{Dir: filepath.Join(cfg.DataDir, "files"), MaxFileSize: cfg.MaxFileSize, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("gateway: files service: %w", err)
	}
	for _, reg := range []func(*services.Registry) error{echo.Register, notify.Register, fs.Register,
		func(r *services.Registry) error { return registerKeys(&cfg, r) }} {
		if err := reg(r); err != nil {
			return nil, fmt.Errorf("gateway: register services: %w", err)
		}
	}
	return r, nil
}

func (g *Gateway) loadCert() error {
	switch {
	case g.cfg.Certificate != nil:
		g.cert = *g.cfg.Certificate
	case g.cfg.CertFile != "":
		cert, err := tlsconf.LoadKeyPair(g.cfg.CertFile, g.cfg.KeyFile)
		if err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
		g.cert, g.certFile = cert, g.cfg.CertFile
	default:
		cert, err := tlsconf.LoadOrCreateDevCert(g.cfg.DataDir, g.cfg.DevCertHosts, g.cfg.Now)
		if err != nil {
			return fmt.Errorf("gateway: development certificate: %w", err)
		}
		g.cert, g.certFile = cert, devCertPath(g.cfg.DataDir)
	}
	if g.cert.Leaf == nil {
		return errors.New("gateway: certificate has no parsed leaf")
	}
	g.pin = tlsconf.SPKIFingerprint(g.cert.Leaf)
	return nil
}

// CertInfo describes the certificate clients must trust.
type CertInfo struct {
	// Pin is the SPKI SHA-256 fingerprint of the leaf's public key.
	Pin tlsconf.Fingerprint
	// File is the certificate's path; empty when it was given in memory.
	File string
	// Dev is true for a generated development certificate.
	Dev bool
	// NotAfter is the certificate's expiry.
	NotAfter time.Time
}

// Cert returns what clients need to trust the gateway's certificate.
func (g *Gateway) Cert() CertInfo {
	return CertInfo{
		Pin:      g.pin,
		File:     g.certFile,
		Dev:      g.cfg.Certificate == nil && g.cfg.CertFile == "",
		NotAfter: g.cert.Leaf.NotAfter,
	}
}

// Addrs are the gateway's bound addresses; nil for a listener that is off.
type Addrs struct {
	QUIC      net.Addr
	TCP       net.Addr
	WebSocket net.Addr
	// WSPath is the WebSocket endpoint's path.
	WSPath string
	// WSBehindTLSProxy is set when the WebSocket listener speaks plain
	// HTTP for a TLS-terminating proxy (Config.WSBehindTLSProxy).
	WSBehindTLSProxy bool
}

// URLs returns the client URLs for every bound address (jsp+quic://,
// jsp+tcp://, wss://), with an unspecified host ("[::]", "0.0.0.0")
// replaced by localhost.
func (a Addrs) URLs() []string {
	var out []string
	if a.QUIC != nil {
		out = append(out, "jsp+quic://"+dialable(a.QUIC))
	}
	if a.TCP != nil {
		out = append(out, "jsp+tcp://"+dialable(a.TCP))
	}
	if a.WebSocket != nil {
		scheme := "wss://"
		if a.WSBehindTLSProxy {
			// The address of the plaintext listener behind the proxy;
			// clients connect to the proxy with wss://.
			scheme = "ws://"
		}
		out = append(out, scheme+dialable(a.WebSocket)+a.WSPath)
	}
	return out
}

// dialable returns host:port with an unspecified host replaced by
// localhost.
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// Addrs returns the bound addresses, useful when listening on port 0.
func (g *Gateway) Addrs() Addrs {
	a := Addrs{WSPath: g.cfg.WSPath, WSBehindTLSProxy: g.cfg.WSBehindTLSProxy}
	for _, l := range g.listeners {
		switch l.kind {
		case transport.KindQUIC:
			a.QUIC = l.l.Addr()
		case transport.KindTCP:
			a.TCP = l.l.Addr()
		}
	}
	if g.http != nil {
		a.WebSocket = g.http.ln.Addr()
	}
	return a
}

// Serve accepts connections on every listener until Shutdown or Close, or
// until ctx ends, which closes the gateway as Close does. It returns
// ErrServerClosed after Shutdown or Close and ctx's error after ctx ended.
func (g *Gateway) Serve(ctx context.Context) error {
	g.mu.Lock()
	if g.state != stateNew || g.served {
		g.mu.Unlock()
		return ErrServerClosed
	}
	g.served = true
	g.state = stateServing
	for _, l := range g.listeners {
		g.wg.Add(1)
		go g.acceptLoop(l)
	}
	g.bg.Go(g.janitor)
	if g.reg != nil {
		g.bg.Go(g.reg.run)
	}
	if g.http != nil {
		// The HTTPS server is joined by finish, not by wg: it keeps
		// answering /healthz ("draining") while Shutdown waits on wg.
		g.http.start()
	}
	g.mu.Unlock()
	g.log.Info("gateway serving", "urls", g.Addrs().URLs(), "pin", g.pin.String())
	select {
	case <-ctx.Done():
		_ = g.Close()
		return ctx.Err()
	case <-g.shutdown:
		return ErrServerClosed
	}
}

// acceptLoop accepts connections from one listener until the gateway stops
// accepting.
func (g *Gateway) acceptLoop(l *listener) {
	defer g.wg.Done()
	var backoff time.Duration
	for {
		conn, err := l.l.Accept(g.acceptCtx)
		if err != nil {
			if g.acceptCtx.Err() != nil {
				return
			}
			if errors.Is(err, transport.ErrClosed) {
				g.log.Error("gateway: listener closed unexpectedly", "transport", string(l.kind), "err", err)
				return
			}
			// A failed accept is usually a refused handshake or a
			// temporary resource shortage; back off as net/http does so a
			// persistent failure does not spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.log.Debug("gateway: accept failed", "transport", string(l.kind), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-g.acceptCtx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		g.admit(l, conn)
	}
}

// ticketOf returns the filter's verdict on conn, taken before its
// handshake: from the QUIC connection's context or the TCP-based
// listener's table. Connections of extra listeners have none.
func (l *listener) ticketOf(conn transport.Conn) *ticket {
	if l.filtered != nil {
		return l.filtered.ticket(peerAddr(conn).String())
	}
	if vc, ok := conn.(interface{ Value(key any) any }); ok {
		// Without making the connection's mapped context (QUIC): an
		// idle session never needs it (D34).
		t, _ := vc.Value(ticketKey{}).(*ticket)
		return t
	}
	t, _ := conn.Context().Value(ticketKey{}).(*ticket)
	return t
}

// admit applies the filter's verdict and the gateway's caps (draining,
// sessions, handshakes in progress) and starts the connection's goroutine.
// Connections of extra listeners whose address has an IP go through the
// filter here, after their handshake.
func (g *Gateway) admit(l *listener, conn transport.Conn) {
	refuse := func(reason string, code jsperr.Code, msg string) {
		g.metrics.refused.add(reason, 1)
		g.refusalLog.log("gateway: connection refused", "code", code.String(), "reason", msg,
			"remote", conn.RemoteAddr().String(), "transport", string(conn.Kind()))
		g.closeRefused(conn, code, msg)
	}
	t := l.ticketOf(conn)
	own := false // the ticket was taken here and is released by serveConn
	if t == nil && l.filtered == nil && l.kind != transport.KindQUIC {
		if nt, err := g.adm.begin(conn.RemoteAddr(), string(conn.Kind()), false); err == nil {
			t, own = nt, true
		}
	}
	release := func() {
		if own {
			t.release()
		}
	}
	if t != nil && t.refusal != nil {
		// Counted and logged when the filter refused it.
		release()
		g.closeRefused(conn, t.refusal.Code, truncate(t.refusal.Reason, 256))
		return
	}
	if t != nil {
		if err := t.slot.Established(); err != nil {
			release()
			refuse("reaped", jsperr.CodeOf(err), "handshake took too long")
			return
		}
	}
	g.mu.Lock()
	switch {
	case g.state >= stateDraining:
		g.mu.Unlock()
		release()
		refuse("draining", jsperr.GoingAway, "server is shutting down")
		return
	case g.conns >= g.cfg.MaxSessions:
		g.mu.Unlock()
		release()
		refuse("max_sessions", jsperr.TooManyConnections, fmt.Sprintf("server at its limit of %d sessions", g.cfg.MaxSessions))
		return
	}
	select {
	case g.handshakeSem <- struct{}{}:
	default:
		g.mu.Unlock()
		release()
		refuse("handshakes", jsperr.TooManyHandshakes, "too many handshakes in progress")
		return
	}
	g.conns++
	g.wg.Add(1)
	g.mu.Unlock()
	go g.serveConn(conn, release)
}

// closeRefused closes a refused connection with its code. A link
// connection's close waits for its close frame to be written (bounded by
// the link's close timeout); that wait must not hold up the accept loop
// while it is being flooded.
func (g *Gateway) closeRefused(conn transport.Conn, code jsperr.Code, msg string) {
	g.wg.Go(func() { _ = conn.CloseWithError(code, msg) })
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// serveConn runs the handshake and then starts hosting the session; release
// gives back the connection's filter ticket when the gateway holds it. The
// goroutine ends once the session is set up: the host needs none while the
// session is idle (D34), and the connection's slot in wg is given back by
// the host when the session has ended.
func (g *Gateway) serveConn(conn transport.Conn, release func()) {
	end := func() {
		release()
		g.mu.Lock()
		g.conns--
		g.mu.Unlock()
		g.wg.Done()
	}
	start := time.Now()
	acc, err := g.sessionAcceptor()
	var sess *session.Session
	if err == nil {
		sess, err = acc.Accept(g.ctx, conn, session.ServerOptions{
			Authenticate: g.cfg.Authenticate,
			Gateways:     g.alternatives(),
			Resume:       g.resumeHook(),
		})
	}
	<-g.handshakeSem
	g.ops.handshake.observe(time.Since(start))
	if err != nil {
		code := jsperr.CodeOf(err)
		g.metrics.errors.add(code.String(), 1)
		g.log.Debug("gateway: handshake failed", "remote", conn.RemoteAddr().String(), "transport", string(conn.Kind()), "err", err)
		// Accept closes the connection when it refuses a client; make sure
		// it is closed on every other failure too.
		_ = conn.CloseWithError(code, "handshake failed")
		end()
		return
	}
	h := newHost(g, sess)
	g.mu.Lock()
	draining := g.state >= stateDraining
	g.hosts[h] = struct{}{}
	g.byKind[h.kind]++
	g.mu.Unlock()
	g.closeIfBlocked(h) // a list reload during the handshake (lists.go)
	g.metrics.sessions.add(string(h.kind), 1)
	g.metrics.accepted.add(string(h.kind), 1)
	if draining {
		// Shutdown took its snapshot of sessions before this one existed;
		// it must hear GOAWAY too.
		h.goAway()
	}
	h.start(func() {
		g.mu.Lock()
		delete(g.hosts, h)
		g.byKind[h.kind]--
		g.mu.Unlock()
		g.metrics.sessions.add(string(h.kind), -1)
		end()
	})
}

// sessionAcceptor returns the Acceptor of the gateway's sessions. The
// session Config is complete once New has returned (it adds the media
// capabilities), so it is made by the first connection.
func (g *Gateway) sessionAcceptor() (*session.Acceptor, error) {
	g.acceptorOnce.Do(func() {
		g.acceptor, g.acceptorErr = session.NewAcceptor(g.cfg.Session)
	})
	return g.acceptor, g.acceptorErr
}

// Shutdown drains the gateway gracefully (JSP §11.6): it stops accepting,
// sends GOAWAY with the configured alternatives to every session, waits
// until they have left or DrainGrace has passed, and closes. When ctx ends
// first, the remaining sessions are closed at once and ctx's error is
// returned.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if g.state >= stateDraining {
		g.mu.Unlock()
		return g.waitClosed(ctx)
	}
	g.state = stateDraining
	close(g.shutdown)
	hosts := make([]*host, 0, len(g.hosts))
	for h := range g.hosts {
		hosts = append(hosts, h)
	}
	g.mu.Unlock()
	if g.reg != nil {
		g.reg.drain()
	}
	g.stopAccept()
	g.closeListeners()
	g.log.Info("gateway draining", "sessions", len(hosts), "grace", g.cfg.DrainGrace)
	for _, h := range hosts {
		h.goAway()
	}
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		g.cancel() // closes every remaining session and handshake
		<-done
	}
	g.finish()
	return err
}

// waitClosed waits for a shutdown started elsewhere.
func (g *Gateway) waitClosed(ctx context.Context) error {
	select {
	case <-g.closed:
		return ErrServerClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the gateway at once: listeners, the HTTPS server and every
// session (with GOING_AWAY, through each host's closeWatch), and waits for
// every goroutine.
func (g *Gateway) Close() error {
	g.mu.Lock()
	if g.state == stateClosed || g.state == stateDraining {
		wasDraining := g.state == stateDraining
		g.mu.Unlock()
		if wasDraining {
			g.cancel() // cut the drain short
		}
		<-g.closed
		return nil
	}
	g.state = stateDraining
	close(g.shutdown)
	g.mu.Unlock()
	g.stopAccept()
	g.closeListeners()
	g.cancel()
	g.wg.Wait()
	g.finish()
	return nil
}

// closeListeners closes the transport listeners (the WebSocket one refuses
// further upgrades); established connections stay up.
func (g *Gateway) closeListeners() {
	for _, l := range g.listeners {
		if err := l.l.Close(); err != nil {
			g.log.Debug("gateway: close listener", "transport", string(l.kind), "err", err)
		}
	}
}

// finish runs once every connection goroutine has ended.
func (g *Gateway) finish() {
	if g.http != nil {
		g.http.close()
	}
	g.cancel()
	g.bg.Wait()
	if g.reg != nil {
		g.reg.close()
	}
	if g.media != nil {
		g.media.close()
	}
	if g.cluster != nil {
		// Every host has left its channels; this ends what remains.
		g.cluster.close()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.state != stateClosed {
		g.state = stateClosed
		close(g.closed)
		g.log.Info("gateway closed")
	}
}

// Health is the body of /healthz.
type Health struct {
	Status      string         `json:"status"` // "ok" or "draining"
	Sessions    int            `json:"sessions"`
	Transports  map[string]int `json:"transports"`
	Channels    int            `json:"channels"`
	Subscribers int            `json:"subscribers"`
}

// Health returns the current session counts.
func (g *Gateway) Health() Health {
	g.mu.Lock()
	h := Health{Status: "ok", Sessions: len(g.hosts), Transports: map[string]int{}}
	if g.state >= stateDraining {
		h.Status = "draining"
	}
	for _, k := range []transport.Kind{transport.KindQUIC, transport.KindTCP, transport.KindWebSocket} {
		h.Transports[string(k)] = g.byKind[k]
	}
	for k, n := range g.byKind {
		h.Transports[string(k)] = n
	}
	g.mu.Unlock()
	st := g.hub.Stats()
	h.Channels, h.Subscribers = st.Channels, st.Subscribers
	return h
}

func (g *Gateway) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := g.Health()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if h.Status != "ok" {
		// Load balancers stop sending new clients to a draining gateway.
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(h)
}

func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_ = g.WriteMetrics(w)
}
