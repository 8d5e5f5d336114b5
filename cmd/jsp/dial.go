package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// urlHelp explains the URL argument of the client commands.
const urlHelp = `URL schemes: jsp://host[:port] races QUIC against TLS over TCP and keeps the
first to connect; jsp+quic://, jsp+tcp:// and wss://host[:port]/path use one
transport. Default ports: 7400 (QUIC and TCP), 7401 (WebSocket).

The server's certificate is verified against the system roots, or --ca; a
development server's self-signed certificate is trusted by its SPKI pin, which
"jsp server" prints (--pin).`

// dialFlags are the connection flags shared by ping, send and recv.
type dialFlags struct {
	ca       string
	pins     []string
	insecure bool
	timeout  time.Duration
	logLevel string
}

// register adds the flags to cmd.
func (f *dialFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.ca, "ca", "", "PEM file of CA certificates to trust instead of the system roots")
	fs.StringArrayVar(&f.pins, "pin", nil, "trust the server's key by its SPKI SHA-256 fingerprint: 64 hex digits or sha256/BASE64 (repeatable)")
	fs.BoolVar(&f.insecure, "insecure", false, "accept any server certificate (development only; pins are still checked)")
	fs.DurationVar(&f.timeout, "timeout", client.DefaultDialTimeout, "time limit for connecting and the JSP handshake")
	fs.StringVar(&f.logLevel, "log-level", "warn", "log level: debug, info, warn or error")
}

// options builds client options from the flags; logs go to logOut.
func (f *dialFlags) options(logOut io.Writer) (client.Options, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return client.Options{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	if f.insecure && f.ca != "" {
		return client.Options{}, errors.New("--insecure and --ca contradict each other")
	}
	if f.timeout <= 0 {
		return client.Options{}, errors.New("--timeout must be positive")
	}
	o := client.Options{
		RootCAsFile:        f.ca,
		InsecureSkipVerify: f.insecure,
		DialTimeout:        f.timeout,
		Logger:             slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level})),
	}
	o.Info.Name = "jsp-cli"
	for _, p := range f.pins {
		fp, err := tlsconf.ParseFingerprint(p)
		if err != nil {
			return client.Options{}, fmt.Errorf("--pin: %w", err)
		}
		o.Pins = append(o.Pins, fp)
	}
	return o, nil
}

// dial connects to url with the flags' options.
func (f *dialFlags) dial(ctx context.Context, url string, logOut io.Writer) (*client.Client, error) {
	o, err := f.options(logOut)
	if err != nil {
		return nil, err
	}
	if f.insecure && len(o.Pins) == 0 {
		fmt.Fprintln(logOut, "warning: --insecure: the server's identity is not verified; anyone on the path can impersonate it")
	}
	c, err := client.Dial(ctx, url, o)
	if err != nil {
		if errors.Is(err, client.ErrPinMismatch) {
			return nil, fmt.Errorf("%w\n(the server's key is not the pinned one: check --pin against the pin \"jsp server\" prints)", err)
		}
		return nil, err
	}
	return c, nil
}
