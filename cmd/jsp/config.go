package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jetstreamproto/jsp/server/config"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// opsFlags are the `jsp server` flags of configuration, logging,
// operations and the registry.
type opsFlags struct {
	configFile       string
	printConfig      bool
	logFormat        string
	nodeID           string
	opsAddr          string
	public           []string
	sessionRetention time.Duration
	heartbeat        time.Duration
	awayAfter        time.Duration
	coreTimeout      time.Duration
	liveChannels     []string
}

// addOpsFlags registers the flags of opsFlags on the server command.
func addOpsFlags(cmd *cobra.Command, o *opsFlags) {
	d := config.Default()
	fl := cmd.Flags()
	fl.StringVar(&o.configFile, "config", "", "configuration file (TOML subset, see docs/operations.md; default: $"+config.EnvFile+")")
	fl.BoolVar(&o.printConfig, "print-config", false, "print the effective configuration with the origin of each value, and exit")
	fl.StringVar(&o.logFormat, "log-format", d.Log.Format, "log format: text or json")
	fl.StringVar(&o.nodeID, "node-id", d.Server.NodeID, "name of this process in session records and the gateway registry (default: the host name)")
	fl.StringVar(&o.opsAddr, "ops-addr", d.Listen.Ops, `plain-HTTP address for /healthz, /readyz, /metrics and /status, or "off"`)
	fl.StringSliceVar(&o.public, "public-url", d.Listen.Public, "client URL of this gateway announced to clients (repeatable; default: the bound addresses)")
	fl.DurationVar(&o.sessionRetention, "session-retention", d.Storage.SessionRetention, "how long closed session records are kept")
	fl.DurationVar(&o.heartbeat, "registry-heartbeat", d.Gateway.Heartbeat, "how often a gateway refreshes its own registry entry in NATS KV (its sessions' entries live while it does)")
	fl.DurationVar(&o.coreTimeout, "core-timeout", d.Gateway.CoreTimeout, "how long a gateway waits for a core's commit before answering TIMEOUT")
	fl.DurationVar(&o.awayAfter, "away-after", d.Gateway.AwayAfter, "a user whose sessions sent nothing for this long is away")
	fl.StringSliceVar(&o.liveChannels, "live-channel", d.Gateway.LiveChannels, "live channel fanned out without a commit: a name, or a prefix ending in * (repeatable)")
}

// applyConfig merges the configuration sources into the command's flags:
// a flag given on the command line wins; otherwise a value from the
// environment or the file (--config, or $JSP_CONFIG) is set on the flag,
// so the rest of the command reads flags only. It returns the effective
// configuration with the origin of every value.
func applyConfig(cmd *cobra.Command, environ []string) (*config.Loaded, error) {
	l := config.NewLoaded()
	fl := cmd.Flags()
	path, _ := fl.GetString("config")
	if path == "" {
		path = envValue(environ, config.EnvFile)
	}
	if path != "" {
		if err := l.LoadFile(path); err != nil {
			return nil, err
		}
	}
	if err := l.ApplyEnv(environ); err != nil {
		return nil, err
	}
	for _, k := range config.Keys() {
		f := fl.Lookup(k.Flag)
		if k.Flag == "" || f == nil {
			continue
		}
		if f.Changed {
			if err := l.Set(k.Name, flagText(f)); err != nil {
				return nil, fmt.Errorf("--%s: %w", k.Flag, err)
			}
			l.Origins[k.Name] = "flag --" + k.Flag
			continue
		}
		if l.Origins[k.Name] == "default" {
			continue
		}
		text, err := l.Text(k.Name)
		if err != nil {
			return nil, err
		}
		if err := fl.Set(k.Flag, text); err != nil {
			return nil, fmt.Errorf("%s (%s): %w", k.Name, l.Origins[k.Name], err)
		}
	}
	return l, nil
}

// flagText is a flag's value in the form config.Set takes.
func flagText(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

func envValue(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// newLogger builds the process's logger: text or JSON lines on out.
func newLogger(out io.Writer, level slog.Level, format string) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(out, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(out, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// applyGateway sets the gateway fields the ops flags configure.
func (o *opsFlags) applyGateway(cfg *gateway.Config) {
	cfg.NodeID = o.nodeID
	cfg.PublicURLs = o.public
	cfg.RegistryHeartbeat = o.heartbeat
	cfg.AwayAfter = o.awayAfter
	cfg.SessionRetention = o.sessionRetention
	cfg.CoreTimeout = o.coreTimeout
	cfg.LiveChannels = o.liveChannels
}

// printConfig writes the effective configuration.
func printConfig(out io.Writer, l *config.Loaded) error {
	_, err := io.WriteString(out, l.Format())
	return err
}
