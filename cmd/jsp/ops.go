package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/services/chatevents"
	"github.com/jetstreamproto/jsp/services/events"
)

// readyTimeout bounds one readiness probe of the bus or the database.
const readyTimeout = 2 * time.Second

// nodeState is what the operations listener reports about a process.
type nodeState struct {
	flags    nodeFlags
	nd       *node
	started  time.Time
	gw       atomic.Pointer[gateway.Gateway] // set once the gateway is bound
	stopping atomic.Bool                     // a core-only process is stopping
}

// pinger is a bus that can check its connection (natsbus.Bus).
type pinger interface {
	Ping(ctx context.Context) error
}

// metricsWriter is a component that writes Prometheus text (the NATS
// bus).
type metricsWriter interface {
	WriteMetrics(w io.Writer) error
}

// rawBus returns the bus under the circuit breaker's wrapper, whose
// methods beyond bus.Bus (Ping, WriteMetrics) the wrapper does not carry.
func rawBus(b bus.Bus) bus.Bus {
	if g, ok := b.(*core.GuardedBus); ok {
		return g.Bus
	}
	return b
}

// readyChecks are the gateway's /readyz checks: the bus and the database
// answer.
func (s *nodeState) readyChecks() map[string]gateway.ReadyCheck {
	checks := map[string]gateway.ReadyCheck{}
	if p, ok := rawBus(s.nd.bus).(pinger); ok {
		checks["bus"] = func(r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			return p.Ping(ctx)
		}
	}
	if st := s.nd.store; st != nil {
		checks["storage"] = func(r *http.Request) error {
			ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
			defer cancel()
			if err := st.Ping(ctx); err != nil {
				return fmt.Errorf("%s: %w", storage.Redact(s.flags.db), err)
			}
			return nil
		}
	}
	return checks
}

// ready reports why the process is not ready, or nil.
func (s *nodeState) ready(r *http.Request) error {
	if s.stopping.Load() {
		return errors.New("stopping")
	}
	if gw := s.gw.Load(); gw != nil {
		return gw.Ready(r)
	}
	if s.flags.role != roleCore {
		return errors.New("gateway not started")
	}
	for name, check := range s.readyChecks() {
		if err := check(r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// NodeStatus is the body of /status on the operations listener, which
// `jsp status` prints.
type NodeStatus struct {
	Role    string          `json:"role"`
	Node    string          `json:"node,omitempty"`
	Cluster string          `json:"cluster"`
	Uptime  string          `json:"uptime"`
	Ready   string          `json:"ready"`
	Bus     string          `json:"bus"`
	Storage string          `json:"storage"`
	Core    *core.Stats     `json:"core,omitempty"`
	Gateway *gateway.Status `json:"gateway,omitempty"`
}

func (s *nodeState) status(r *http.Request) NodeStatus {
	st := NodeStatus{
		Role:    s.flags.role,
		Node:    s.flags.ops.nodeID,
		Cluster: s.flags.cluster,
		Uptime:  time.Since(s.started).Round(time.Second).String(),
		Ready:   "ready",
		Bus:     busSummary(s.flags),
		Storage: storeSummary(s.flags, s.nd),
	}
	if err := s.ready(r); err != nil {
		st.Ready = err.Error()
	}
	if s.nd.core != nil {
		cs := s.nd.core.Stats()
		st.Core = &cs
	}
	if gw := s.gw.Load(); gw != nil {
		gs := gw.Status(r)
		st.Gateway = &gs
		st.Node = gs.Node
	}
	return st
}

func (s *nodeState) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if gw := s.gw.Load(); gw != nil && gw.Health().Status != "ok" || s.stopping.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := s.ready(r); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if gw := s.gw.Load(); gw != nil {
			_ = gw.WriteMetrics(w)
		}
		if s.nd.core != nil {
			_ = s.nd.core.WriteMetrics(w)
		}
		if s.nd.presenceFeed != nil {
			_ = s.nd.presenceFeed.WriteMetrics(w)
		}
		if s.nd.nats != nil {
			// The bus is wrapped by its breaker; the metrics are the
			// NATS connection's.
			_ = s.nd.nats.WriteMetrics(w)
		} else if mw, ok := rawBus(s.nd.bus).(metricsWriter); ok {
			_ = mw.WriteMetrics(w)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(s.status(r))
	})
	return mux
}

// opsServer is the plain-HTTP operations listener (--ops-addr). It is
// meant for a private network or loopback: it serves no client traffic
// and needs no certificate, so monitoring and `jsp status` work for every
// role, the core included.
type opsServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startOps starts the operations listener; nil when addr is "" or off.
func startOps(addr string, h http.Handler, log *slog.Logger) (*opsServer, error) {
	if addr == "" || addr == gateway.Off {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--ops-addr %s: %w", addr, err)
	}
	o := &opsServer{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(o.done)
		if err := o.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("operations listener failed", "err", err)
		}
	}()
	return o, nil
}

func (o *opsServer) addr() string { return o.ln.Addr().String() }

// close stops the listener and waits for its goroutine.
func (o *opsServer) close() {
	_ = o.srv.Close()
	<-o.done
}

// presenceRetry is the pause between attempts to open presence while the
// bus's JetStream does not answer (a cluster still electing leaders).
const presenceRetry = 2 * time.Second

// presenceRecorder records presence changes in the event log once the
// buckets open; it retries in the background, because presence events
// are a record, not something a core must have to serve. Its goroutine
// ends at Stop.
type presenceRecorder struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	w      bus.Watcher // guarded by mu
}

func startPresenceRecorder(b bus.Bus, subj bus.Subjects, o opsFlags, log *slog.Logger) *presenceRecorder {
	ctx, cancel := context.WithCancel(context.Background())
	r := &presenceRecorder{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			w, err := recordPresence(ctx, b, subj, o, log)
			if err == nil {
				r.mu.Lock()
				r.w = w
				r.mu.Unlock()
				return
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("presence changes not recorded yet; retrying", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(presenceRetry):
			}
		}
	}()
	return r
}

// Stop ends the attempts and the watch.
func (r *presenceRecorder) Stop() {
	r.cancel()
	<-r.done
	r.mu.Lock()
	w := r.w
	r.mu.Unlock()
	if w != nil {
		w.Stop()
	}
}

// recordPresence opens presence on the bus and records its changes in the
// event log (roles all and core).
func recordPresence(ctx context.Context, b bus.Bus, subj bus.Subjects, o opsFlags, log *slog.Logger) (bus.Watcher, error) {
	hb := o.heartbeat
	if hb == 0 {
		hb = gateway.DefaultRegistryHeartbeat
	}
	p, err := core.OpenPresence(ctx, core.PresenceConfig{Bus: b, TTL: gateway.RegistryTTLBeats * hb, AwayAfter: o.awayAfter})
	if err != nil {
		return nil, err
	}
	elog, err := b.EventLog(ctx, subj.EventLog())
	if err != nil {
		return nil, fmt.Errorf("core: event log: %w", err)
	}
	return chatevents.RecordPresence(ctx, p, events.NewPublisher(elog, events.PublisherConfig{}), log)
}
