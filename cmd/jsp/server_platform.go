package main

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/config"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// platformFlags are the `jsp server` flags of the WebSocket listener
// behind a TLS-terminating proxy and of the bus's JetStream replica
// counts.
type platformFlags struct {
	wsBehindProxy  bool
	trustedProxies []string
	replicas       natsbus.Replicas
	openWait       time.Duration
	codec          string     // --bus-codec (D42)
	busCodec       core.Codec // codec parsed by validate
}

// addPlatformFlags registers the flags of platformFlags.
func addPlatformFlags(fl *pflag.FlagSet, p *platformFlags) {
	d := config.Default()
	boolFlag(fl, &p.wsBehindProxy, "ws-behind-tls-proxy", d.Listen.WSBehindTLSProxy,
		"serve --ws over plain HTTP for a reverse proxy that terminates TLS 1.3 in front of it; refused unless --ws binds loopback or --ws-trusted-proxy is given")
	fl.StringSliceVar(&p.trustedProxies, "ws-trusted-proxy", d.Listen.WSTrustedProxies,
		"CIDR prefix of a TLS-terminating proxy allowed to open sessions on --ws, whose X-Forwarded-For names the client (repeatable; default: loopback peers when --ws binds loopback)")
	fl.IntVar(&p.replicas.KV, "kv-replicas", d.Bus.KVReplicas, "JetStream replicas of the NATS KV buckets (at most the cluster size)")
	fl.IntVar(&p.replicas.EventLog, "event-log-replicas", d.Bus.EventLogReplicas, "JetStream replicas of the event log stream (at most the cluster size)")
	fl.IntVar(&p.replicas.WorkQueue, "work-queue-replicas", d.Bus.WorkQueueReplicas, "JetStream replicas of the webhook and push work queues (at most the cluster size)")
	fl.DurationVar(&p.openWait, "bus-open-wait", d.Bus.OpenWait, "how long opening the JetStream buckets and streams retries while the cluster is not ready before the process fails")
	fl.StringVar(&p.codec, "bus-codec", d.Bus.Codec, "encoding of the core requests and channel events sent on the bus: binary, or json while nodes of an earlier release remain (both are read)")
}

// loopbackProxies are the trusted proxies of a loopback-bound
// --ws-behind-tls-proxy listener without --ws-trusted-proxy.
var loopbackProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// applyGateway sets the gateway's proxy fields and adds the trusted
// proxies to the allow list already in cfg.DDoS.Allow: every client of
// the proxy arrives from its address, so the per-address caps and the
// connection-attempt rate would otherwise cap the whole proxy at one
// client's share (docs/decisions.md D32). The block list still applies to
// each forwarded client address.
func (p *platformFlags) applyGateway(cfg *gateway.Config) error {
	if len(p.trustedProxies) > 0 && !p.wsBehindProxy {
		return errors.New("--ws-trusted-proxy goes with --ws-behind-tls-proxy")
	}
	cfg.WSBehindTLSProxy = p.wsBehindProxy
	ps, err := parsePrefixes("--ws-trusted-proxy", p.trustedProxies)
	if err != nil {
		return err
	}
	cfg.WSTrustedProxies = ps
	if !p.wsBehindProxy || cfg.WSAddr == gateway.Off {
		return nil
	}
	if len(ps) == 0 {
		ps = loopbackProxies
	}
	for _, pr := range ps {
		if !slices.Contains(cfg.DDoS.Allow, pr) {
			cfg.DDoS.Allow = append(cfg.DDoS.Allow, pr)
		}
	}
	return nil
}

// validate checks the replica counts; the cluster size is checked where
// the bus knows it (the embedded server) and by the NATS servers
// otherwise.
func (p *platformFlags) validate() error {
	for _, c := range []struct {
		flag string
		n    int
	}{{"kv-replicas", p.replicas.KV}, {"event-log-replicas", p.replicas.EventLog}, {"work-queue-replicas", p.replicas.WorkQueue}} {
		if c.n < 1 || c.n > natsbus.MaxReplicas {
			return fmt.Errorf("--%s %d: want 1 to %d", c.flag, c.n, natsbus.MaxReplicas)
		}
	}
	if p.openWait <= 0 {
		return fmt.Errorf("--bus-open-wait %v: want a positive duration", p.openWait)
	}
	c, err := core.ParseCodec(p.codec)
	if err != nil {
		return fmt.Errorf("--bus-codec: %w", err)
	}
	p.busCodec = c
	return nil
}

// replicasHelp explains a replica count the embedded server cannot hold.
func replicasHelp(err error) error {
	if errors.Is(err, natsbus.ErrTooManyReplicas) {
		return fmt.Errorf("%w (the embedded NATS server is one JetStream server: use --nats with a cluster for more replicas)", err)
	}
	return err
}

// strictBool is a boolean flag that takes exactly what the environment
// takes (config.ParseBool: true, false, 1, 0), not the looser forms of
// strconv.ParseBool, so that a value means the same from every source.
type strictBool struct{ p *bool }

func (b strictBool) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}

func (b strictBool) Set(s string) error {
	v, err := config.ParseBool(s)
	if err != nil {
		return err
	}
	*b.p = v
	return nil
}

func (b strictBool) Type() string { return "bool" }

// boolFlag registers a strictBool flag; alone on the command line it
// means true.
func boolFlag(fl *pflag.FlagSet, p *bool, name string, def bool, usage string) {
	*p = def
	fl.VarPF(strictBool{p}, name, "", usage).NoOptDefVal = "true"
}
