package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// startingOps is what the operations listener serves while the process
// opens its bus, store and JetStream resources, which can take a while
// after a NATS cluster restart (the opens retry until the leaders are
// elected, docs/decisions.md D35): /healthz answers ok (the process is
// alive), /readyz answers 503 naming what it waits for, /status says
// "starting". Once the node is open, the node's own handler takes over.
type startingOps struct {
	flags   nodeFlags
	started time.Time
	bus     atomic.Pointer[natsbus.Bus] // set once connected
	next    atomic.Pointer[http.Handler]
}

// setBus records the connected bus, whose Opening lists the resources
// still retrying.
func (s *startingOps) setBus(b *natsbus.Bus) { s.bus.Store(b) }

// serve hands every later request to h.
func (s *startingOps) serve(h http.Handler) { s.next.Store(&h) }

// waiting says what the start-up waits for.
func (s *startingOps) waiting() string {
	b := s.bus.Load()
	if b == nil {
		return "starting: connecting to the bus and the store"
	}
	if o := b.Opening(); len(o) > 0 {
		return "starting: JetStream not ready: " + strings.Join(o, "; ")
	}
	return "starting: opening the store and the services"
}

func (s *startingOps) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.next.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case r.Method != http.MethodGet:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	case r.URL.Path == "/healthz":
		fmt.Fprintln(w, "ok")
	case r.URL.Path == "/readyz":
		http.Error(w, "not ready: "+s.waiting(), http.StatusServiceUnavailable)
	case r.URL.Path == "/status":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(NodeStatus{
			Role:    s.flags.role,
			Node:    s.flags.ops.nodeID,
			Cluster: s.flags.cluster,
			Uptime:  time.Since(s.started).Round(time.Second).String(),
			Ready:   s.waiting(),
			Bus:     busSummary(s.flags),
		})
	case r.URL.Path == "/metrics":
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if b := s.bus.Load(); b != nil {
			_ = b.WriteMetrics(w)
		}
	default:
		http.NotFound(w, r)
	}
}
