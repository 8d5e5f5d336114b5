package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
signal stops at once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServer(ctx, cfg, cmd.OutOrStdout(), stop)
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
	return cmd
}

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
	if f.drainGrace <= 0 || f.maxSessions <= 0 || f.maxConnsPerIP <= 0 {
		return gateway.Config{}, errors.New("--drain-grace, --max-sessions and --max-conns-per-ip must be positive")
	}
	return gateway.Config{
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
		Logger:        slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})),
	}, nil
}

// runServer serves until ctx ends, then drains. stopSignals is called once
// the drain starts, restoring the default signal handling so that a second
// SIGINT ends the process at once.
func runServer(ctx context.Context, cfg gateway.Config, out io.Writer, stopSignals func()) error {
	gw, err := gateway.New(cfg)
	if err != nil {
		return err
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
