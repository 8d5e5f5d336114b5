package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/jetstreamproto/jsp/security/breaker"
	"github.com/jetstreamproto/jsp/security/devicekey"
	"github.com/jetstreamproto/jsp/server/auth"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	_ "github.com/jetstreamproto/jsp/server/storage/all" // sqlite: and postgres:// DSNs
	"github.com/jetstreamproto/jsp/services/acl"
	"github.com/jetstreamproto/jsp/services/chat"
	"github.com/jetstreamproto/jsp/services/push"
	"github.com/jetstreamproto/jsp/services/webhook"
)

// Roles of `jsp server --role`.
const (
	roleAll     = "all"
	roleGateway = "gateway"
	roleCore    = "core"
)

// nodeFlags are the cluster flags of `jsp server`.
type nodeFlags struct {
	role       string
	nats       []string
	natsListen string
	db         string
	dbSet      bool       // --db was given explicitly
	store      storeFlags // the store's settings (server_storage.go)
	cluster    string
	mtls       mtlsFlags
	// authWith, set for --devices store, builds the authenticator once
	// the database's device registry is open.
	authWith func(devicekey.Registry) (*auth.Authenticator, error)
	ops      opsFlags // configuration, operations and registry flags
	// lists reloads --block-file and --allow-file (lists.go); nil: none.
	lists  *listFiles
	events eventsFlags // webhooks and Web Push (events_setup.go)
	// replicas are the JetStream replica counts (server_platform.go).
	replicas natsbus.Replicas
	voice    voiceFlags // rooms service limits (call_setup.go)
	// openWait bounds the retries of opening JetStream resources
	// (server_platform.go).
	openWait time.Duration
	// busCodec encodes core requests and events (--bus-codec, D42).
	busCodec core.Codec
	// onBus, when set, is called with the NATS bus once it is connected,
	// before the JetStream resources open (ops_starting.go).
	onBus func(*natsbus.Bus)
}

// defaultDSN is the SQLite database under the data directory.
func defaultDSN(dataDir string) string { return "sqlite:" + filepath.Join(dataDir, "jsp.db") }

func (n *nodeFlags) validate() error {
	switch n.role {
	case roleAll, roleGateway, roleCore:
	default:
		return fmt.Errorf("--role %q: want all, gateway or core", n.role)
	}
	if n.role != roleAll && len(n.nats) == 0 {
		return fmt.Errorf("--role %s needs --nats: the roles of a split deployment meet on an external bus", n.role)
	}
	if n.natsListen != "" && len(n.nats) > 0 {
		return errors.New("--nats-listen starts the embedded NATS server; it does not go with --nats")
	}
	if _, err := bus.NewSubjects(n.cluster); err != nil {
		return fmt.Errorf("--cluster: %w", err)
	}
	if err := n.mtls.validate(); err != nil {
		return err
	}
	if err := n.voice.validate(); err != nil {
		return err
	}
	if n.mtls.enabled() && n.role == roleAll && len(n.nats) > 0 {
		return errors.New("mTLS with --nats needs --role gateway or core: a service identity has one role")
	}
	if n.mtls.enabled() && n.role == roleAll && n.natsListen == "" {
		return errors.New("mTLS with role all needs --nats-listen: the in-process bus has no TLS to secure")
	}
	return nil
}

// node is what one `jsp server` process runs besides the gateway: the bus
// connection (or embedded NATS server), the store and the core, per role.
type node struct {
	bus   bus.Bus
	store storage.Store
	core  *core.Core
	tls   *serviceTLS // --ca-dir: renewing service certificates
	// breakers guard bus and store (their Close passes through).
	breakers []*breaker.Breaker
	// presence records presence changes in the event log (roles all and
	// core); nil otherwise.
	presence bus.Watcher
	// presenceFeed pushes presence changes to chat members (roles all
	// and core).
	presenceFeed *chat.PresenceFeed
	// nats is the NATS bus under the breaker guard, for its metrics.
	nats *natsbus.Bus
	// events are the webhook and push consumers (roles all and core).
	events *eventConsumers
	// log receives the shutdown steps.
	log *slog.Logger
}

// openNode opens the bus, the store and the core the role needs.
func openNode(ctx context.Context, n nodeFlags, dataDir string, log *slog.Logger) (_ *node, err error) {
	nd := &node{log: log}
	defer func() {
		if err != nil {
			nd.close()
		}
	}()
	subj, err := bus.NewSubjects(n.cluster)
	if err != nil {
		return nil, fmt.Errorf("--cluster: %w", err)
	}
	if n.mtls.enabled() {
		if nd.tls, err = openServiceTLS(n.mtls, log); err != nil {
			return nil, err
		}
	}
	if len(n.nats) > 0 {
		cc := natsbus.ClientConfig{Name: "jsp-" + n.role}
		if nd.tls != nil {
			if cc, err = nd.tls.busClient(bus.Role(n.role), subj); err != nil {
				return nil, err
			}
		}
		cc.Logger = log
		cc.Replicas, cc.OpenWait = n.replicas, n.openWait
		// Through a local: a nil *natsbus.Bus in the interface field
		// would not be a nil bus.Bus for close.
		b, err := natsbus.Connect(n.nats, cc)
		if err != nil {
			return nil, fmt.Errorf("--nats %s: %w", strings.Join(n.nats, ","), err)
		}
		nd.bus, nd.nats = b, b
	} else {
		sc := natsbus.ServerConfig{DataDir: dataDir, Listen: n.natsListen, Logger: log}
		if nd.tls != nil {
			if err := nd.tls.busServer(&sc, subj); err != nil {
				return nil, err
			}
		}
		b, err := natsbus.Embedded(natsbus.EmbeddedConfig{
			Server: sc,
			Client: natsbus.ClientConfig{Name: "jsp-all", Logger: log, Replicas: n.replicas, OpenWait: n.openWait},
		})
		if err != nil {
			err = replicasHelp(err)
			return nil, fmt.Errorf("embedded NATS under %s: %w", filepath.Join(dataDir, natsbus.StoreSubdir), err)
		}
		nd.bus, nd.nats = b, b
	}
	if n.onBus != nil {
		n.onBus(nd.nats)
	}
	gb, err := core.GuardBus(nd.bus, breaker.Config{})
	if err != nil {
		return nil, err
	}
	nd.bus, nd.breakers = gb, append(nd.breakers, gb.Breaker())
	// A split gateway keeps session records only when told where: its
	// own default SQLite file would be a database nobody else reads.
	if n.role != roleGateway || n.dbSet {
		st, err := storage.Open(ctx, n.db, n.store.config(log, n.db))
		if err != nil {
			return nil, fmt.Errorf("--db: %w", err)
		}
		gs, err := core.GuardStore(st, breaker.Config{})
		if err != nil {
			_ = st.Close()
			return nil, err
		}
		nd.store, nd.breakers = gs, append(nd.breakers, gs.Breaker())
	}
	if n.role != roleGateway {
		reg := core.NewRegistry()
		vz := &voiceAuthz{}
		if nd.core, err = core.New(core.Config{Bus: nd.bus, Store: nd.store, Subjects: &subj, Logger: log, Codec: n.busCodec,
			Services: reg, Authorizer: core.Chain(&acl.Authorizer{Store: nd.store, Services: []string{"chat", push.ServiceName, webhook.ServiceName}}, vz)}); err != nil {
			return nil, err
		}
		p, feed, err := setupChat(ctx, nd.core, reg, n, dataDir, log)
		if err != nil {
			return nil, err
		}
		nd.presenceFeed = feed
		if nd.events, err = setupEvents(ctx, nd.core, reg, n.events, p, dataDir, log); err != nil {
			return nil, err
		}
		if err := setupVoice(nd.core, reg, vz, n.voice, log); err != nil {
			return nil, err
		}
		if err := nd.core.Start(); err != nil {
			return nil, err
		}
		nd.presence = startPresenceRecorder(nd.bus, subj, n.ops, log)
	}
	return nd, nil
}

// close stops the core, then the store, then the bus (which stops an
// embedded NATS server): the core finishes its commits before the store
// and the bus go.
func (nd *node) close() {
	step := func(what string, f func()) {
		start := time.Now()
		f()
		if nd.log != nil {
			nd.log.Debug("shutdown: "+what, "took", time.Since(start))
		}
	}
	if nd.events != nil {
		step("event consumers stopped", nd.events.stop)
	}
	if nd.presence != nil {
		step("presence recorder stopped", nd.presence.Stop)
	}
	if nd.presenceFeed != nil {
		step("chat presence feed stopped", nd.presenceFeed.Close)
	}
	if nd.core != nil {
		// Commits in progress finish before the store closes.
		step("core stopped", func() {
			ctx, cancel := context.WithTimeout(context.Background(), core.DefaultRequestTimeout)
			_ = nd.core.Shutdown(ctx)
			cancel()
		})
	}
	if nd.store != nil {
		step("store closed", func() { _ = nd.store.Close() })
	}
	if nd.bus != nil {
		step("bus closed", func() { _ = nd.bus.Close() })
	}
	if nd.tls != nil {
		nd.tls.Close()
	}
}

// runNode runs the process's role until ctx ends: the gateway with the bus
// and the session store (roles all and gateway), the core (roles all and
// core).
func runNode(ctx context.Context, n nodeFlags, cfg gateway.Config, out io.Writer, stopSignals func()) error {
	// The operations listener answers from the start: not ready while
	// the opens wait for a restarted NATS cluster (ops_starting.go).
	starting := &startingOps{flags: n, started: time.Now()}
	ops, err := startOps(n.ops.opsAddr, starting, cfg.Logger)
	if err != nil {
		return err
	}
	if ops != nil {
		defer ops.close()
	}
	n.onBus = starting.setBus
	nd, err := openNode(ctx, n, cfg.DataDir, cfg.Logger)
	if err != nil {
		return err
	}
	defer nd.close()
	fmt.Fprintf(out, "role %s, cluster %q, bus %s, storage %s\n", n.role, n.cluster, busSummary(n), storeSummary(n, nd))
	st := &nodeState{flags: n, nd: nd, started: starting.started}
	starting.serve(st.handler())
	if ops != nil {
		fmt.Fprintf(out, "operations on http://%s (/healthz /readyz /metrics /status)\n", ops.addr())
	}
	if n.role == roleCore {
		<-ctx.Done()
		st.stopping.Store(true)
		if stopSignals != nil {
			stopSignals()
		}
		fmt.Fprintln(out, "stopped")
		return nil
	}
	if n.authWith != nil {
		if err := storeAuth(n, nd, &cfg); err != nil {
			return err
		}
	}
	cfg.Bus = nd.bus
	cfg.BusCodec = n.busCodec
	cfg.Cluster = n.cluster
	cfg.Breakers = nd.breakers
	if nd.tls != nil && cfg.NodeID == "" {
		cfg.NodeID = nd.tls.name // one name per process, as in its identity
	}
	if nd.store != nil {
		cfg.Sessions = nd.store
	}
	cfg.ReadyChecks = st.readyChecks()
	stopLists := startListWatch(n.lists, gatewaySink(st.gw.Load))
	defer stopLists()
	return serveGateway(ctx, cfg, out, stopSignals, st.gw.Store)
}

func busSummary(n nodeFlags) string {
	mtls := ""
	switch {
	case n.mtls.caDir != "":
		mtls = " (mTLS, certificates from CA " + n.mtls.caDir + ")"
	case n.mtls.certFile != "":
		mtls = " (mTLS, certificate " + n.mtls.certFile + ")"
	}
	if len(n.nats) > 0 {
		return strings.Join(n.nats, ",") + mtls
	}
	if n.natsListen != "" {
		return "embedded NATS, listening on " + n.natsListen + mtls
	}
	return "embedded NATS (in-process)"
}

func storeSummary(n nodeFlags, nd *node) string {
	if nd.store == nil {
		return "none (no session records)"
	}
	return storage.Redact(n.db)
}
