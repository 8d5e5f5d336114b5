package gateway

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jetstreamproto/jsp/transport"
)

// family is one Prometheus metric with a single label, e.g.
// jsp_messages_in_total{type="PUBLISH"}. Values are created on first use;
// the label sets used here are small and fixed (frame types, error codes,
// transports), so the map does not grow without bound.
type family struct {
	name, help, typ, label string

	mu   sync.RWMutex
	vals map[string]*atomic.Int64 // guarded by mu (the map, not the values)
}

func newFamily(name, typ, label, help string) *family {
	return &family{name: name, help: help, typ: typ, label: label, vals: map[string]*atomic.Int64{}}
}

func (f *family) get(lv string) *atomic.Int64 {
	f.mu.RLock()
	v := f.vals[lv]
	f.mu.RUnlock()
	if v != nil {
		return v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if v = f.vals[lv]; v == nil {
		v = new(atomic.Int64)
		f.vals[lv] = v
	}
	return v
}

// add adds d to the value for label value lv.
func (f *family) add(lv string, d int64) { f.get(lv).Add(d) }

// value returns the value for lv (0 if never set).
func (f *family) value(lv string) int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if v := f.vals[lv]; v != nil {
		return v.Load()
	}
	return 0
}

func (f *family) write(w *bufio.Writer) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f.name, f.help, f.name, f.typ)
	f.mu.RLock()
	keys := make([]string, 0, len(f.vals))
	for k := range f.vals {
		keys = append(keys, k)
	}
	f.mu.RUnlock()
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "%s{%s=\"%s\"} %d\n", f.name, f.label, escapeLabel(k), f.value(k))
	}
}

// escapeLabel escapes a label value for the Prometheus text format.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// metrics are the gateway's counters (STYLE rule 26: components own their
// counters and export them in Prometheus text format).
type metrics struct {
	sessions    *family // gauge by transport
	accepted    *family // sessions established, by transport
	refused     *family // connections refused before the handshake, by reason
	messagesIn  *family // by frame type
	messagesOut *family // by frame type
	errors      *family // by registry code name
	quicRetries *family // QUIC address validation: "required" (Retry sent), "validated"
	// earlyDeferred counts requests from 0-RTT data held until the
	// handshake completed, by frame type (early.go).
	earlyDeferred *family
}

func newMetrics() *metrics {
	m := &metrics{
		sessions:    newFamily("jsp_sessions", "gauge", "transport", "Open sessions by transport."),
		accepted:    newFamily("jsp_sessions_accepted_total", "counter", "transport", "Sessions established, by transport."),
		refused:     newFamily("jsp_connections_refused_total", "counter", "reason", "Connections refused before the handshake, by reason."),
		messagesIn:  newFamily("jsp_messages_in_total", "counter", "type", "Messages received from clients, by frame type."),
		messagesOut: newFamily("jsp_messages_out_total", "counter", "type", "Messages sent to clients, by frame type."),
		errors:      newFamily("jsp_errors_total", "counter", "code", "Errors by JSP error code: failed handshakes, sessions closed on error, error replies."),
		quicRetries: newFamily("jsp_quic_address_validation_total", "counter", "event", "QUIC address validation: Retry required of an attempt, attempts that arrived validated."),
		earlyDeferred: newFamily("jsp_early_requests_deferred_total", "counter", "type",
			"Requests read from 0-RTT data that waited for the TLS handshake because they are not idempotent, by frame type."),
	}
	// The session gauge always lists the built-in transports, so that a
	// dashboard shows 0 rather than no data.
	for _, k := range []transport.Kind{transport.KindQUIC, transport.KindTCP, transport.KindWebSocket} {
		m.sessions.add(string(k), 0)
	}
	return m
}

// gauge is one unlabelled value written at scrape time.
type gauge struct {
	name, typ, help string
	value           int64
}

// write writes every family and the extra values in the Prometheus text
// exposition format (version 0.0.4).
func (m *metrics) write(w io.Writer, extra []gauge) error {
	bw := bufio.NewWriter(w)
	for _, f := range []*family{m.sessions, m.accepted, m.refused, m.messagesIn, m.messagesOut, m.errors, m.quicRetries, m.earlyDeferred} {
		f.write(bw)
	}
	for _, g := range extra {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", g.name, g.help, g.name, g.typ, g.name, g.value)
	}
	return bw.Flush()
}
