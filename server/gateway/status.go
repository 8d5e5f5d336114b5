package gateway

import (
	"encoding/json"
	"net/http"
	"time"
)

// Status is the body of /status, which `jsp status` prints.
type Status struct {
	// Node is the gateway's node id.
	Node string `json:"node"`
	// Health is /healthz's body.
	Health Health `json:"health"`
	// Ready is "ready", or why not.
	Ready string `json:"ready"`
	// URLs are the client URLs this gateway announces.
	URLs []string `json:"urls"`
	// Gateways are the other gateways announced to clients.
	Gateways []string `json:"gateways,omitempty"`
	// Time is the gateway's clock.
	Time time.Time `json:"time"`
}

// Status returns the gateway's state.
func (g *Gateway) Status(r *http.Request) Status {
	st := Status{
		Node:     g.cfg.NodeID,
		Health:   g.Health(),
		Ready:    "ready",
		URLs:     g.publicURLs(),
		Gateways: g.alternatives(),
		Time:     g.cfg.Now(),
	}
	if err := g.Ready(r); err != nil {
		st.Ready = err.Error()
	}
	return st
}

func (g *Gateway) serveStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(g.Status(r))
}
