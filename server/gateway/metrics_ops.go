package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/session"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms: 0.5 ms to 10 s, which spans a loopback commit and a
// handshake over a bad mobile link.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// histogram is a Prometheus histogram with fixed buckets; observe is
// lock-free.
type histogram struct {
	name, help string
	counts     []atomic.Uint64 // per bucket, not cumulative; the last is +Inf
	sumNanos   atomic.Int64
	count      atomic.Uint64
}

func newHistogram(name, help string) *histogram {
	return &histogram{name: name, help: help, counts: make([]atomic.Uint64, len(latencyBuckets)+1)}
}

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNanos.Add(int64(d))
	h.count.Add(1)
}

func (h *histogram) write(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h.name, h.help, h.name)
	var cum uint64
	for i, le := range latencyBuckets {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%s\"} %d\n", h.name, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += h.counts[len(latencyBuckets)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", h.name, cum)
	fmt.Fprintf(w, "%s_sum %s\n", h.name, strconv.FormatFloat(time.Duration(h.sumNanos.Load()).Seconds(), 'g', -1, 64))
	fmt.Fprintf(w, "%s_count %d\n", h.name, cum)
}

// classes are the QoS classes in label order.
var classes = []protocol.Class{protocol.ClassSystem, protocol.ClassMedia, protocol.ClassChat, protocol.ClassBulk}

// opsMetrics are the operational metrics of docs/operations.md §7:
// messages by QoS class and direction, latency histograms, bus errors.
type opsMetrics struct {
	in, out   [4]atomic.Uint64 // by class
	handshake *histogram
	commit    *histogram
	delivery  *histogram
	busErrors atomic.Uint64 // failed core requests
	// ephemeralDropped counts events without a sequence number (live
	// channels, a core's ephemeral events) not queued to a session whose
	// send queue was full (eventFailed).
	ephemeralDropped atomic.Uint64
}

func newOpsMetrics() *opsMetrics {
	return &opsMetrics{
		handshake: newHistogram("jsp_handshake_seconds", "Time from an admitted connection to the end of its JSP handshake (WELCOME sent or refused)."),
		commit:    newHistogram("jsp_publish_commit_seconds", "Time from a PUBLISH taken from the session queue to its commit by a core (then ACKed)."),
		delivery:  newHistogram("jsp_delivery_seconds", "Time from a message's commit in storage to its arrival at this gateway's fan-out (clocks of core and gateway hosts)."),
	}
}

func classIndex(c protocol.Class) int {
	if int(c) < len(classes) {
		return int(c)
	}
	return len(classes) - 1
}

// countIn counts one message from a client by its frame's class.
func (m *opsMetrics) countIn(in session.Incoming) {
	c := in.Flags.Class()
	if in.Envelope != nil && in.Envelope.Class != 0 {
		c = in.Envelope.Class
	}
	m.in[classIndex(c)].Add(1)
}

// countOut counts one message to a client.
func (m *opsMetrics) countOut(c protocol.Class) { m.out[classIndex(c)].Add(1) }

// writeOps writes the operational metrics: messages by class and
// direction, queue depths, drops by reason, latencies, bus and store
// errors.
func (g *Gateway) writeOps(w *bufio.Writer) {
	m := g.ops
	fmt.Fprintf(w, "# HELP jsp_messages_total Messages by QoS class and direction (in: from clients, out: events to clients).\n# TYPE jsp_messages_total counter\n")
	for i, c := range classes {
		fmt.Fprintf(w, "jsp_messages_total{class=%q,direction=\"in\"} %d\n", c.String(), m.in[i].Load())
		fmt.Fprintf(w, "jsp_messages_total{class=%q,direction=\"out\"} %d\n", c.String(), m.out[i].Load())
	}
	sendQueued, pubQueued, mediaDropped := 0, 0, uint64(0)
	g.mu.Lock()
	for h := range g.hosts {
		st := h.sess.Stats()
		sendQueued += st.SendQueued
		mediaDropped += st.MediaDropped
		if q := h.pubsQueue.Load(); q != nil {
			pubQueued += len(*q)
		}
	}
	g.mu.Unlock()
	fmt.Fprintf(w, "# HELP jsp_queue_depth Messages waiting, by queue: send (session send queues), publish (PUBLISHes waiting for a core).\n# TYPE jsp_queue_depth gauge\n")
	fmt.Fprintf(w, "jsp_queue_depth{queue=\"send\"} %d\njsp_queue_depth{queue=\"publish\"} %d\n", sendQueued, pubQueued)
	hs := g.hub.Stats()
	fmt.Fprintf(w, "# HELP jsp_drops_total Messages and sessions dropped, by reason (media_deadline counts live sessions only).\n# TYPE jsp_drops_total counter\n")
	for _, d := range []struct {
		reason string
		n      uint64
	}{
		{"media_deadline", mediaDropped},
		{"queue_full", uint64(g.metrics.errors.value(jsperr.QueueFull.String()))},
		{"rate_limited", uint64(g.metrics.errors.value(jsperr.RateLimited.String()))},
		{"slow_consumer", uint64(hs.Dropped) + uint64(g.metrics.errors.value(jsperr.SlowConsumer.String()))},
		{"ephemeral_queue_full", m.ephemeralDropped.Load()},
	} {
		fmt.Fprintf(w, "jsp_drops_total{reason=%q} %d\n", d.reason, d.n)
	}
	for _, h := range []*histogram{m.handshake, m.commit, m.delivery} {
		h.write(w)
	}
	var regErrs uint64
	if g.reg != nil {
		regErrs = g.reg.errors.Load()
	}
	fmt.Fprintf(w, "# HELP jsp_bus_errors_total Failed bus operations, by operation.\n# TYPE jsp_bus_errors_total counter\n")
	fmt.Fprintf(w, "jsp_bus_errors_total{op=\"core_request\"} %d\njsp_bus_errors_total{op=\"registry\"} %d\n", m.busErrors.Load(), regErrs)
	fmt.Fprintf(w, "# HELP jsp_store_errors_total Failed session-record writes to storage.\n# TYPE jsp_store_errors_total counter\njsp_store_errors_total %d\n", g.storeErrors.Load())
	if g.reg != nil {
		fmt.Fprintf(w, "# HELP jsp_registry_gateways Live gateways in the registry.\n# TYPE jsp_registry_gateways gauge\njsp_registry_gateways %d\n", g.reg.live.Load())
	}
}

// WriteMetrics writes every gateway metric in the Prometheus text format
// (version 0.0.4), as /metrics serves them.
func (g *Gateway) WriteMetrics(w io.Writer) error {
	st := g.hub.Stats()
	fs := g.adm.filter.Stats()
	gauges := []gauge{
		{"jsp_filter_handshakes", "gauge", "Handshakes in flight counted by the connection filter.", int64(fs.Handshakes)},
		{"jsp_filter_connections", "gauge", "Open connections counted by the connection filter.", int64(fs.Conns)},
		{"jsp_filter_reaped_total", "counter", "Handshakes released by the filter for overstaying their time.", int64(fs.Reaped)},
		{"jsp_pubsub_channels", "gauge", "Channels with local subscribers.", int64(st.Channels)},
		{"jsp_pubsub_subscribers", "gauge", "Local hub subscribers (one per session that has subscribed).", int64(st.Subscribers)},
		{"jsp_pubsub_published_total", "counter", "Messages published to the hub.", int64(st.Published)},
		{"jsp_pubsub_delivered_total", "counter", "Deliveries queued to local subscribers.", int64(st.Delivered)},
		{"jsp_pubsub_slow_consumers_total", "counter", "Subscribers dropped because their queue overflowed.", int64(st.Dropped)},
	}
	if g.cluster != nil {
		fo := g.cluster.fanout.Stats()
		gauges = append(gauges,
			gauge{"jsp_bus_channels", "gauge", "Channels this gateway holds a bus subscription for.", int64(fo.Channels)},
			gauge{"jsp_bus_channel_subscribes_total", "counter", "Bus subscriptions made for channels.", int64(fo.Subscribes)},
			gauge{"jsp_bus_events_delivered_total", "counter", "Channel events handed to the local hub.", int64(fo.Delivered)},
			gauge{"jsp_bus_gaps_total", "counter", "Gaps in a channel's live events that sessions filled from storage.", int64(g.cluster.gaps.Load())},
		)
	}
	if g.resumes != nil {
		gauges = append(gauges, g.resumes.gauges()...)
	}
	gauges = append(gauges, g.signatureGauges()...)
	gauges = append(gauges, g.mediaGauges()...)
	bw := bufio.NewWriter(w)
	if err := g.metrics.write(bw, gauges); err != nil {
		return err
	}
	g.writeOps(bw)
	g.writeLimits(bw)
	if g.media != nil {
		if err := g.SFUCounters().WritePrometheus(bw); err != nil {
			return err
		}
	}
	if err := core.WriteBreakerMetrics(bw, g.cfg.Breakers...); err != nil {
		return err
	}
	return bw.Flush()
}

// ReadyCheck reports whether a dependency answers; nil means ready.
type ReadyCheck func(r *http.Request) error

// serveReady answers /readyz: 200 when the gateway serves and every
// Config.ReadyChecks passes, 503 with the failures otherwise. Unlike
// /healthz (is the process alive and accepting), it says whether sending
// clients here is useful: with the bus or the database unreachable it is
// not.
func (g *Gateway) serveReady(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := g.Ready(r); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	io.WriteString(w, "ready\n")
}

// Ready runs the readiness checks: the gateway serves (not draining) and
// every Config.ReadyChecks passes.
func (g *Gateway) Ready(r *http.Request) error {
	if h := g.Health(); h.Status != "ok" {
		return fmt.Errorf("gateway %s", h.Status)
	}
	for name, check := range g.cfg.ReadyChecks {
		if err := check(r); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}
