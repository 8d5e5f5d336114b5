// Package natsbus implements [bus.Bus] over NATS: core NATS for live
// routing (channel events, commands, replies), JetStream for the durable
// work queues and the event log, and NATS KV for the shared state cache.
// It is the only package of the project that imports NATS.
//
// Two ways to get a bus:
//
//	Embedded(cfg)      starts a nats-server inside this process, with
//	                   JetStream stored under cfg.Server.DataDir/nats and no
//	                   TCP listener unless asked, and connects to it
//	                   in-process (no socket, no port): the default of
//	                   `jsp server`.
//	Connect(urls, cfg) connects to an external NATS cluster, with TLS/mTLS
//	                   and credentials.
//
// The in-process and the TCP connection run the same client code, so what
// the tests exercise on the embedded server is what runs on a cluster.
//
// Goroutines: nats.go runs one delivery goroutine per subscription and its
// own reader and flusher; this package adds one goroutine per work-queue
// worker and per KV watcher. Bus.Close stops workers and watchers (joining
// them), then drains the connection (subscriptions finish what they hold),
// then shuts down an owned server and waits for it.
package natsbus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults of ServerConfig.
const (
	// DefaultServerName names the embedded server.
	DefaultServerName = "jsp-embedded"
	// DefaultClusterName names the NATS cluster of embedded servers.
	DefaultClusterName = "jsp"
	// DefaultReadyTimeout bounds the server start.
	DefaultReadyTimeout = 10 * time.Second
	// StoreSubdir is where JetStream keeps its files, under DataDir.
	StoreSubdir = "nats"
)

// ServerConfig configures an embedded nats-server. DataDir is required;
// every other zero field means its documented default.
type ServerConfig struct {
	// DataDir is the server's data directory; JetStream stores its files
	// in DataDir/nats. Required.
	DataDir string
	// Name is the server name, unique within a NATS cluster.
	// Default: DefaultServerName.
	Name string
	// Listen, when set, opens a client TCP listener at host:port (port 0
	// picks a free port) so other processes can connect. Default: none;
	// only in-process connections (Server.Connect) reach the server.
	Listen string
	// TLS, when set, makes the client listener require TLS; set
	// ClientAuth to tls.RequireAndVerifyClientCert for mTLS.
	TLS *tls.Config
	// VerifyAndMap maps a client certificate's subject (or SAN) to the
	// user of that name in Users, for mTLS identities without passwords.
	VerifyAndMap bool
	// Users, when set, turns on authorization: every connection, the
	// in-process ones too, must log in as one of them and gets that
	// user's permissions (see UserFor). Default: no authorization.
	Users []*server.User
	// Authorize, when set, authorizes every TLS client by its connection
	// state (IdentityAuthorizer maps a service certificate to its role's
	// permissions); the in-process connection (Server.Connect, Embedded)
	// logs in as InternalUser with a secret generated at start. It needs
	// TLS with a client certificate requirement and excludes Users and
	// VerifyAndMap.
	Authorize Authorizer
	// Cluster, when Cluster.Listen is set, joins this server into a NATS
	// cluster over routes.
	Cluster ClusterConfig
	// MaxMemory caps JetStream memory storage in bytes.
	// Default: the server's (75% of system memory).
	MaxMemory int64
	// MaxStore caps JetStream file storage in bytes.
	// Default: the server's (1 TB or 75% of the disk).
	MaxStore int64
	// ReadyTimeout bounds the start. Default: DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// Logger receives the server's logs. Default: slog.Default().
	Logger *slog.Logger
}

// ClusterConfig joins an embedded server into a NATS cluster.
type ClusterConfig struct {
	// Name is the cluster name, the same on every node.
	// Default: DefaultClusterName.
	Name string
	// Listen is the route listener, host:port (port 0 picks a free port).
	// Empty: no cluster.
	Listen string
	// Routes are the route URLs of other nodes, "nats-route://host:port".
	Routes []string
	// TLS, when set, secures routes.
	TLS *tls.Config
}

func (c *ServerConfig) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultServerName
	}
	if c.Cluster.Name == "" {
		c.Cluster.Name = DefaultClusterName
	}
	if c.ReadyTimeout == 0 {
		c.ReadyTimeout = DefaultReadyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

func (c *ServerConfig) validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("natsbus: server config: DataDir is required")
	case c.TLS != nil && c.Listen == "":
		return errors.New("natsbus: server config: TLS needs Listen")
	case c.VerifyAndMap && (c.TLS == nil || len(c.Users) == 0):
		return errors.New("natsbus: server config: VerifyAndMap needs TLS and Users")
	case c.Authorize != nil && (c.TLS == nil || c.TLS.ClientAuth == tls.NoClientCert):
		return errors.New("natsbus: server config: Authorize needs TLS that requires client certificates")
	case c.Authorize != nil && (len(c.Users) > 0 || c.VerifyAndMap):
		return errors.New("natsbus: server config: Authorize excludes Users and VerifyAndMap")
	case c.MaxMemory < 0, c.MaxStore < 0, c.ReadyTimeout < 0:
		return errors.New("natsbus: server config: negative limit")
	case len(c.Cluster.Routes) > 0 && c.Cluster.Listen == "":
		return errors.New("natsbus: server config: cluster routes need Cluster.Listen")
	}
	return nil
}

// hostPort splits host:port; port 0 becomes the server's "any free port".
func hostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("address %q: bad port", addr)
	}
	if port == 0 {
		// nats-server reads 0 as its default port 4222.
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

// Server is an embedded nats-server with JetStream.
type Server struct {
	ns   *server.Server
	cfg  ServerConfig
	auth *identityAuth // set when cfg.Authorize is
}

// StartServer starts an embedded server and waits until it accepts
// connections.
func StartServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	opts := &server.Options{
		ServerName:         cfg.Name,
		JetStream:          true,
		StoreDir:           filepath.Join(cfg.DataDir, StoreSubdir),
		JetStreamMaxMemory: cfg.MaxMemory,
		JetStreamMaxStore:  cfg.MaxStore,
		// The process owns signal handling, not the embedded server.
		NoSigs: true,
		Users:  cfg.Users,
	}
	var ia *identityAuth
	if cfg.Authorize != nil {
		var err error
		if ia, err = newIdentityAuth(cfg.Authorize, cfg.Logger.With("nats_server", cfg.Name)); err != nil {
			return nil, err
		}
		opts.CustomClientAuthentication = ia
	}
	if cfg.MaxMemory == 0 {
		opts.JetStreamMaxMemory = -1
	}
	if cfg.MaxStore == 0 {
		opts.JetStreamMaxStore = -1
	}
	if cfg.Listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := hostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsbus: server listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.TLS != nil {
		opts.TLSConfig = cfg.TLS
		opts.TLS = true
		opts.TLSVerify = cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert
		opts.TLSMap = cfg.VerifyAndMap
		opts.TLSTimeout = 2
	}
	if cfg.Cluster.Listen != "" {
		host, port, err := hostPort(cfg.Cluster.Listen)
		if err != nil {
			return nil, fmt.Errorf("natsbus: cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.Cluster.Name, Host: host, Port: port}
		if cfg.Cluster.TLS != nil {
			opts.Cluster.TLSConfig = cfg.Cluster.TLS
			opts.Cluster.TLSTimeout = 2
		}
		for _, r := range cfg.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("natsbus: cluster route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsbus: new server %s: %w", cfg.Name, err)
	}
	logs := &logAdapter{log: cfg.Logger.With("nats_server", cfg.Name)}
	ns.SetLoggerV2(logs, false, false, false)
	ns.Start()
	// A fatal start error (JetStream, listeners) is only logged by the
	// server, which then never becomes ready; report it instead of a
	// bare timeout.
	ready := false
	for deadline := time.Now().Add(cfg.ReadyTimeout); !ready && logs.fatal() == "" && time.Now().Before(deadline); {
		ready = ns.ReadyForConnections(50 * time.Millisecond)
	}
	if !ready || logs.fatal() != "" {
		ns.Shutdown()
		ns.WaitForShutdown()
		if f := logs.fatal(); f != "" {
			return nil, fmt.Errorf("natsbus: server %s: %s", cfg.Name, f)
		}
		return nil, fmt.Errorf("natsbus: server %s not ready within %v", cfg.Name, cfg.ReadyTimeout)
	}
	return &Server{ns: ns, cfg: cfg, auth: ia}, nil
}

// ClientURL returns the client listener's URL, "" without a listener.
func (s *Server) ClientURL() string {
	if s.cfg.Listen == "" {
		return ""
	}
	return s.ns.ClientURL()
}

// RouteURL returns the cluster route URL other nodes list in their
// ClusterConfig.Routes, "" when not clustered.
func (s *Server) RouteURL() string {
	a := s.ns.ClusterAddr()
	if a == nil {
		return ""
	}
	return "nats-route://" + a.String()
}

// Name returns the server name.
func (s *Server) Name() string { return s.cfg.Name }

// WaitJetStream waits until JetStream can serve requests (in a cluster:
// the meta group has a leader and this server is current).
func (s *Server) WaitJetStream(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if s.ns.JetStreamEnabled() && s.ns.JetStreamIsCurrent() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("natsbus: server %s: JetStream not ready: %w", s.cfg.Name, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// Connect opens an in-process connection to the server: no socket, the
// same client protocol.
func (s *Server) Connect(cfg ClientConfig) (*Bus, error) {
	return connect(nil, s, s.internal(cfg))
}

// internal fills in the in-process credentials of a server with
// Authorize when cfg names no user.
func (s *Server) internal(cfg ClientConfig) ClientConfig {
	if s.auth != nil && cfg.User == "" {
		cfg.User, cfg.Password = InternalUser, s.auth.secret
	}
	return cfg
}

// Shutdown stops the server and waits until it has.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// EmbeddedConfig configures Embedded.
type EmbeddedConfig struct {
	// Server configures the embedded server.
	Server ServerConfig
	// Client configures the in-process connection (credentials when
	// Server.Users is set).
	Client ClientConfig
}

// Embedded starts an embedded server and returns a bus connected to it
// in-process; closing the bus shuts the server down.
func Embedded(cfg EmbeddedConfig) (*Bus, error) {
	srv, err := StartServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	b, err := connect(nil, srv, srv.internal(cfg.Client))
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	b.owned = srv
	// The embedded server knows its cluster: a replica count it cannot
	// hold is a configuration error now, not at the first bucket.
	if err := b.cfg.Replicas.checkFits(srv.ClusterSize(), "the embedded NATS server"); err != nil {
		_ = b.Close()
		return nil, err
	}
	return b, nil
}

// logAdapter sends the server's logs to slog and keeps the first fatal
// message (the server's own logger would exit the process on it).
type logAdapter struct {
	log *slog.Logger

	mu       sync.Mutex
	firstErr string // guarded by mu
}

func (l *logAdapter) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstErr
}

func (l *logAdapter) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.firstErr == "" {
		l.firstErr = msg
	}
	l.mu.Unlock()
	l.log.Error(msg)
}
func (l *logAdapter) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Debugf(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *logAdapter) Tracef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
