package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/security/ca"
	"github.com/jetstreamproto/jsp/security/ddos"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/security/token"
	"github.com/jetstreamproto/jsp/server/auth"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// shutdownSlack is added to the drain grace to bound Shutdown as a whole:
// the grace itself, then closing the sessions that stayed.
const shutdownSlack = 5 * time.Second

// serverFlags are the `jsp server` flags; zero values mean the gateway's
// defaults.
type serverFlags struct {
	dataDir       string
	quic, tcp, ws string
	wsPath        string
	cert, key     string
	hosts         []string
	alternatives  []string
	drainGrace    time.Duration
	maxSessions   int
	maxConnsPerIP int
	logLevel      string

	// Security.
	authMode           string
	tokenKeys          []string
	audience           string
	devices            string
	block, allow       []string
	blockFile          string
	allowFile          string
	listPoll           time.Duration
	maxHandshakesPerIP int
	rates              rateFlags

	// Cluster.
	node nodeFlags

	// Configuration, logging and operations (config.go).
	ops opsFlags
	// WebSocket behind a proxy and bus replicas (server_platform.go).
	platform platformFlags
}

// rateFlags are the rate limits in tokens per second; 0 means the
// gateway's default, negative means unlimited. Bursts are twice the rate.
type rateFlags struct {
	connAttempts, conn, user, channel, command float64
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the JSP server (QUIC, TLS over TCP and WebSocket)",
		Long: `Run the JSP server with every role in one process.

It listens for QUIC on UDP --quic, TLS over TCP on TCP --tcp and WebSocket
over HTTPS on --ws (which also serves /healthz and /metrics); "off" disables
a listener. Without --cert/--key it creates a self-signed development
certificate in --data-dir on first run and prints its SPKI pin, which
clients use to trust it. SIGINT or SIGTERM drains the server gracefully:
every client is told to go away and given --drain-grace to leave; a second
signal stops at once.

Clients authenticate in HELLO with a token (jsp token issue), a device key
proof bound to the TLS connection, or both; --auth says what is required.
The default, anonymous, is for development: it admits clients without
credentials (credentials that are sent are still checked). In production
use --auth token, device, any or both, with --token-keys (public keys from
jsp token keygen; repeat the flag, or put several keys in one file, during
a rotation) and --devices (a list of registered device keys, one per line:
"<public key> <owner> [name]", "revoked <public key> <owner>" for revoked
ones). Every refused client is told the reason's code.

--block and --allow take CIDR prefixes (repeatable): blocked addresses are
refused with BLOCKED on every listener; allowed ones skip the per-address
caps and rate limits. The --rate-* flags set token-bucket rates per second
(burst: twice the rate; negative: unlimited).

--block-file and --allow-file name files of such prefixes, one a line with
# comments, added to --block and --allow; they are reloaded on SIGHUP and
when they change (checked every --list-poll) without a restart, sessions
from a newly blocked prefix are closed with BLOCKED, and a file with a bad
line keeps the lists in force (the log names the line).

By default one process runs every role: an embedded NATS server (JetStream
under <data-dir>/nats), a SQLite database (<data-dir>/jsp.db), one core and
the gateway. PUBLISH is committed to the database before it is ACKed and
delivered. --role gateway or core runs one role, meeting the others on the
NATS servers given with --nats; --db names the database (sqlite:PATH or
postgres://...). --nats-listen opens the embedded NATS server to other
processes. With --ca-dir (a directory made by jsp ca init) each process
is issued a short-lived service certificate jsp://<cluster>/<role>/<name>,
renewed at two thirds of --cert-lifetime, and the bus runs mTLS: the
embedded NATS server admits only gateway and core certificates of that CA
and gives each the bus permissions of its role. Without the CA key on the
host, --service-cert/--service-key take a certificate issued by jsp ca issue
(renewed by replacing the files) and --trust-dir the CA's trust.pem. See
docs/operations.md and docs/security.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			loaded, err := applyConfig(cmd, os.Environ())
			if err != nil {
				return err
			}
			if f.ops.printConfig {
				return printConfig(cmd.OutOrStdout(), loaded)
			}
			cfg, err := f.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			f.node.dbSet = cmd.Flags().Changed("db")
			if !f.node.dbSet {
				f.node.db = defaultDSN(f.dataDir)
			}
			f.node.ops = f.ops
			if err := f.platform.validate(); err != nil {
				return err
			}
			f.node.replicas, f.node.openWait, f.node.busCodec = f.platform.replicas, f.platform.openWait, f.platform.busCodec
			if err := f.node.validate(); err != nil {
				return err
			}
			if err := f.node.store.validate(f.node.db, loaded.Origins); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "auth: %s\n", f.authSummary())
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runNode(ctx, f.node, cfg, cmd.OutOrStdout(), stop)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.dataDir, "data-dir", gateway.DefaultDataDir, "directory for the development certificate and stored files")
	fl.StringVar(&f.quic, "quic", gateway.DefaultQUICAddr, `UDP address for QUIC, or "off"`)
	fl.StringVar(&f.tcp, "tcp", gateway.DefaultTCPAddr, `TCP address for TLS over TCP, or "off"`)
	fl.StringVar(&f.ws, "ws", gateway.DefaultWSAddr, `TCP address for WebSocket over HTTPS, /healthz and /metrics, or "off"`)
	fl.StringVar(&f.wsPath, "ws-path", gateway.DefaultWSPath, "path of the WebSocket endpoint")
	fl.StringVar(&f.cert, "cert", "", "PEM certificate chain (default: a development certificate in --data-dir)")
	fl.StringVar(&f.key, "key", "", "PEM private key for --cert")
	fl.StringSliceVar(&f.hosts, "host", nil, "extra host name or IP for the development certificate (repeatable)")
	fl.StringSliceVar(&f.alternatives, "alternative", nil, "address of another gateway, announced to clients when draining (repeatable)")
	fl.DurationVar(&f.drainGrace, "drain-grace", gateway.DefaultDrainGrace, "how long clients get to leave on shutdown")
	fl.IntVar(&f.maxSessions, "max-sessions", gateway.DefaultMaxSessions, "maximum concurrent connections")
	fl.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", gateway.DefaultMaxConnsPerIP, "maximum concurrent connections from one IP address")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.authMode, "auth", auth.ModeAnonymous.String(), "credentials clients must present: anonymous, token, device, any or both")
	fl.StringSliceVar(&f.tokenKeys, "token-keys", nil, "PEM file of token verification (public) keys (repeatable)")
	fl.StringVar(&f.audience, "audience", defaultAudience, "audience tokens must name: this cluster")
	fl.StringVar(&f.devices, "devices", "", `file listing registered device keys, or "store": the registry in the database (--db), managed with jsp admin device`)
	fl.StringSliceVar(&f.block, "block", nil, "CIDR prefix to refuse connections from (repeatable)")
	fl.StringSliceVar(&f.allow, "allow", nil, "CIDR prefix exempt from per-address caps and rate limits (repeatable)")
	fl.StringVar(&f.blockFile, "block-file", "", "file of CIDR prefixes to refuse, one a line (# comments); reloaded on SIGHUP and when it changes")
	fl.StringVar(&f.allowFile, "allow-file", "", "file of CIDR prefixes exempt from per-address caps and rate limits; reloaded like --block-file")
	fl.DurationVar(&f.listPoll, "list-poll", DefaultListPoll, "how often --block-file and --allow-file are checked for changes")
	fl.IntVar(&f.maxHandshakesPerIP, "max-handshakes-per-ip", ddos.DefaultMaxHandshakesPerIP, "maximum handshakes in flight from one IP address")
	fl.StringVar(&f.node.role, "role", roleAll, "what this process runs: all, gateway or core")
	fl.StringSliceVar(&f.node.nats, "nats", nil, "NATS server URLs (comma-separated) of an external bus; default: an embedded server")
	fl.StringVar(&f.node.natsListen, "nats-listen", "", "host:port where the embedded NATS server accepts other processes (default: in-process only)")
	fl.StringVar(&f.node.db, "db", "", "database DSN: sqlite:PATH or postgres://... (default: sqlite:<data-dir>/jsp.db)")
	fl.StringVar(&f.node.cluster, "cluster", core.DefaultCluster, "cluster name on the bus")
	fl.StringVar(&f.node.mtls.caDir, "ca-dir", "", "CA directory (jsp ca init): issue this process a renewing service certificate and use mTLS on the bus")
	fl.StringVar(&f.node.mtls.name, "node-name", "", "name in this process's service identity jsp://<cluster>/<role>/<name> (default: the host name)")
	fl.DurationVar(&f.node.mtls.lifetime, "cert-lifetime", ca.DefaultLifetime, "lifetime of the service certificate; renewed at two thirds")
	fl.StringVar(&f.node.mtls.certFile, "service-cert", "", "service certificate (jsp ca issue) for mTLS on the bus instead of --ca-dir; reloaded when the file is replaced")
	fl.StringVar(&f.node.mtls.keyFile, "service-key", "", "private key of --service-cert")
	fl.StringVar(&f.node.mtls.trustDir, "trust-dir", "", "directory holding the cluster CA's trust.pem (and state.json), for --service-cert")
	fl.Float64Var(&f.rates.connAttempts, "rate-conn-attempts", gateway.DefaultConnAttemptsPerSecond, "new connections per second from one IP address")
	fl.Float64Var(&f.rates.conn, "rate-conn", gateway.DefaultConnMessagesPerSecond, "messages (PUBLISH, COMMAND, MESSAGE) per second on one connection")
	fl.Float64Var(&f.rates.user, "rate-user", gateway.DefaultUserMessagesPerSecond, "messages per second of one user across sessions")
	fl.Float64Var(&f.rates.channel, "rate-channel", gateway.DefaultChannelPublishesPerSecond, "publishes per second to one channel")
	fl.Float64Var(&f.rates.command, "rate-command", gateway.DefaultCommandsPerSecond, "commands per second to one service from one user")
	addOpsFlags(cmd, &f.ops)
	addPlatformFlags(fl, &f.platform)
	addEventsFlags(fl, &f.node.events)
	addVoiceFlags(fl, &f.node.voice)
	addStoreFlags(fl, &f.node.store)
	return cmd
}

// defaultAudience is the token audience of a server started without
// --audience.
const defaultAudience = "jsp"

func init() { rootCmd.AddCommand(newServerCmd()) }

// config builds the gateway configuration; logs go to logOut.
func (f *serverFlags) config(logOut io.Writer) (gateway.Config, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return gateway.Config{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if (f.cert == "") != (f.key == "") {
		return gateway.Config{}, errors.New("--cert and --key go together")
	}
	if f.drainGrace <= 0 || f.maxSessions <= 0 || f.maxConnsPerIP <= 0 || f.maxHandshakesPerIP <= 0 {
		return gateway.Config{}, errors.New("--drain-grace, --max-sessions, --max-conns-per-ip and --max-handshakes-per-ip must be positive")
	}
	logger, err := newLogger(logOut, level, f.ops.logFormat)
	if err != nil {
		return gateway.Config{}, err
	}
	cfg := gateway.Config{
		QUICAddr:      f.quic,
		TCPAddr:       f.tcp,
		WSAddr:        f.ws,
		WSPath:        f.wsPath,
		DataDir:       f.dataDir,
		CertFile:      f.cert,
		KeyFile:       f.key,
		DevCertHosts:  f.hosts,
		Alternatives:  f.alternatives,
		DrainGrace:    f.drainGrace,
		MaxSessions:   f.maxSessions,
		MaxConnsPerIP: f.maxConnsPerIP,
		Logger:        logger,
		RateLimits: gateway.RateLimits{
			ConnAttemptsPerIP: gateway.Rate{PerSecond: f.rates.connAttempts},
			Conn:              gateway.Rate{PerSecond: f.rates.conn},
			User:              gateway.Rate{PerSecond: f.rates.user},
			Channel:           gateway.Rate{PerSecond: f.rates.channel},
			Command:           gateway.Rate{PerSecond: f.rates.command},
		},
	}
	cfg.DDoS.MaxHandshakesPerIP = f.maxHandshakesPerIP
	f.ops.applyGateway(&cfg)
	if cfg.DDoS.Block, err = parsePrefixes("--block", f.block); err != nil {
		return gateway.Config{}, err
	}
	if cfg.DDoS.Allow, err = parsePrefixes("--allow", f.allow); err != nil {
		return gateway.Config{}, err
	}
	// After --allow: the trusted proxies join the allow list (D32).
	if err := f.platform.applyGateway(&cfg); err != nil {
		return gateway.Config{}, err
	}
	if err := f.listFiles(&cfg, logger); err != nil {
		return gateway.Config{}, err
	}
	if f.devices == devicesStore {
		// The registry lives in the database, opened with the node.
		f.node.authWith = func(reg devicekey.Registry) (*auth.Authenticator, error) {
			return f.newAuthenticator(logger, reg)
		}
		return cfg, nil
	}
	a, reg, err := f.authenticator(logger)
	if err != nil {
		return gateway.Config{}, err
	}
	cfg.Authenticate = a.Authenticate
	cfg.Refresh = a.Refresh
	if reg != nil {
		cfg.Devices = reg
	}
	return cfg, nil
}

// parsePrefixes parses CIDR prefixes; a bare address is its own /32 or
// /128.
func parsePrefixes(flag string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("%s %q: not a CIDR prefix or address", flag, s)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q: %w", flag, s, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// authenticator builds the HELLO authenticator from the --auth,
// --token-keys, --audience and --devices flags. It returns the device
// registry too when --devices was given.
func (f *serverFlags) authenticator(log *slog.Logger) (*auth.Authenticator, devicekey.Registry, error) {
	return f.authenticatorWithDevices(log, nil)
}

// authenticatorWithDevices is authenticator with preset as the device
// registry when --devices names no file.
func (f *serverFlags) authenticatorWithDevices(log *slog.Logger, preset devicekey.Registry) (*auth.Authenticator, devicekey.Registry, error) {
	mode, err := auth.ParseMode(f.authMode)
	if err != nil {
		return nil, nil, fmt.Errorf("--auth: %w", err)
	}
	cfg := auth.Config{Mode: mode, Audience: f.audience, Logger: log}
	if len(f.tokenKeys) > 0 {
		if f.audience == "" {
			return nil, nil, errors.New("--token-keys needs --audience")
		}
		ks, err := token.NewKeySet(token.KeySetConfig{})
		if err != nil {
			return nil, nil, err
		}
		for _, file := range f.tokenKeys {
			raw, err := os.ReadFile(file)
			if err != nil {
				return nil, nil, fmt.Errorf("--token-keys: %w", err)
			}
			keys, err := auth.ParseTokenKeys(raw)
			if err != nil {
				return nil, nil, fmt.Errorf("--token-keys %s: %w", file, err)
			}
			for _, k := range keys {
				if err := ks.AddVerifyKey(k, time.Time{}); err != nil {
					return nil, nil, fmt.Errorf("--token-keys %s: %w", file, err)
				}
			}
		}
		cfg.Tokens = ks
	}
	var reg devicekey.Registry
	if preset != nil {
		cfg.Devices, reg = preset, preset
	}
	if f.devices != "" && f.devices != devicesStore {
		mem, err := devicekey.NewMemoryRegistry(devicekey.MemoryConfig{})
		if err != nil {
			return nil, nil, err
		}
		file, err := os.Open(f.devices)
		if err != nil {
			return nil, nil, fmt.Errorf("--devices: %w", err)
		}
		_, err = auth.LoadDevices(context.Background(), file, mem)
		file.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("--devices %s: %w", f.devices, err)
		}
		cfg.Devices, reg = mem, mem
	}
	a, err := auth.New(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("--auth %s: %w (see --token-keys and --devices)", mode, err)
	}
	return a, reg, nil
}

// newAuthenticator builds the HELLO authenticator with reg as the device
// registry (--devices store: the database's).
func (f *serverFlags) newAuthenticator(log *slog.Logger, reg devicekey.Registry) (*auth.Authenticator, error) {
	a, _, err := f.authenticatorWithDevices(log, reg)
	return a, err
}

// authSummary describes the authentication settings for the banner.
func (f *serverFlags) authSummary() string {
	s := f.authMode
	if len(f.tokenKeys) > 0 {
		s += fmt.Sprintf(", tokens for audience %q from %s", f.audience, strings.Join(f.tokenKeys, ", "))
	}
	if f.devices != "" {
		s += ", devices from " + f.devices
	}
	if f.authMode == auth.ModeAnonymous.String() {
		s += " (development: clients without credentials are admitted)"
	}
	return s
}

// runServer serves until ctx ends, then drains. stopSignals is called once
// the drain starts, restoring the default signal handling so that a second
// SIGINT ends the process at once.
func runServer(ctx context.Context, cfg gateway.Config, out io.Writer, stopSignals func()) error {
	return serveGateway(ctx, cfg, out, stopSignals, nil)
}

// serveGateway is runServer with a hook that sees the gateway once it is
// bound (the operations listener reports its state).
func serveGateway(ctx context.Context, cfg gateway.Config, out io.Writer, stopSignals func(), started func(*gateway.Gateway)) error {
	gw, err := gateway.New(cfg)
	if err != nil {
		return err
	}
	if started != nil {
		started(gw)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- gw.Serve(context.Background()) }()
	printBanner(out, gw)
	select {
	case err := <-serveErr:
		_ = gw.Close()
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	if stopSignals != nil {
		stopSignals()
	}
	fmt.Fprintf(out, "shutting down: clients have %v to leave\n", cfg.DrainGrace)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainGrace+shutdownSlack)
	defer cancel()
	err = gw.Shutdown(sctx)
	<-serveErr
	if err != nil && !errors.Is(err, gateway.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	fmt.Fprintln(out, "stopped")
	return nil
}

// printBanner tells the operator exactly what the server serves and how
// clients trust its certificate.
func printBanner(out io.Writer, gw *gateway.Gateway) {
	a := gw.Addrs()
	var b strings.Builder
	b.WriteString("JSP server listening\n")
	for _, u := range a.URLs() {
		name := "WebSocket"
		switch {
		case strings.HasPrefix(u, "jsp+quic://"):
			name = "QUIC"
		case strings.HasPrefix(u, "jsp+tcp://"):
			name = "TCP"
		}
		fmt.Fprintf(&b, "  %-12s %s\n", name, u)
	}
	if urls := a.URLs(); a.WebSocket != nil {
		ws := urls[len(urls)-1]
		base := "https://" + strings.TrimSuffix(strings.TrimPrefix(ws, "wss://"), a.WSPath)
		fmt.Fprintf(&b, "  %-12s %s/healthz\n", "health", base)
		fmt.Fprintf(&b, "  %-12s %s/metrics\n", "metrics", base)
	}
	c := gw.Cert()
	kind := "operator-provided"
	if c.Dev {
		kind = "development, self-signed"
	}
	file := c.File
	if file == "" {
		file = "(in memory)"
	}
	fmt.Fprintf(&b, "  %-12s %s (%s, expires %s)\n", "certificate", file, kind, c.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(&b, "  %-12s %s\n", "SPKI pin", c.Pin)
	io.WriteString(out, b.String())
}
