package gateway

// Repair of the bus relay (D29). Core bus messages are at most once
// (bus.Bus.Publish), so a relayed track can lose packets between
// gateways, where no subscriber can NACK them: a subscriber's NACK is
// answered from its own gateway's cache, which never had the packet. The
// relaying gateway therefore tracks each relayed layer's sequence numbers
// as a receiver does (reliability/nack) and NACKs gaps to the origin:
//
//	relay ─.nack {layer, node, seqs}─► origin: sfu.Track.Resend from the
//	   track's cache, token bucket per track (sfu.DefaultNackRate/Burst)
//	origin ─.rtx.<hex node> [layer] + packet (R set)─► that relay only
//	relay: drops duplicates, writes the rest into its relay track, whose
//	   subscribers get it as a late packet in their own numbering
//
// The NACK body, after the subject's track (all integers big-endian):
//
//	+-------+---------+------------+-----------------------+
//	| layer | nodeLen | node id    | seq (16) ... 1..1024  |
//	| 1 B   | 1 B     | nodeLen B  | 2 B each              |
//	+-------+---------+------------+-----------------------+
//
// The relay's NACK timing (first NACK at once, repeats backed off, give up
// after the nack package's MaxDelay) runs on the room loop, armed when a
// gap appears.

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/sfu"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// relayRTT is the round trip assumed between gateways over the bus: it
// paces the relay's repeated NACKs and the origin's deadline check. Bus
// hops inside one cluster take about a millisecond (docs/benchmarks.md,
// D21); this leaves room for a loaded bus.
const relayRTT = 20 * time.Millisecond

// maxNodeID caps the node id in a relay NACK (its length is one byte).
const maxNodeID = 255

// relayRepair is a relay track's receive state, one per layer.
type relayRepair struct {
	mu     sync.Mutex
	layers []relayLayer // guarded by mu
	stats  RelayRepairStats
}

type relayLayer struct {
	unwrap mediapkt.Unwrapper
	rx     *nack.Receiver
}

// RelayRepairStats counts the repair of relayed tracks at a gateway (the
// relay's side) and the answers it gave as an origin.
type RelayRepairStats struct {
	Nacked     uint64 // sequence numbers NACKed to origins
	Repaired   uint64 // relayed packets that arrived after being missed
	Duplicates uint64 // relayed packets dropped as already received
	Resent     uint64 // origin: packets resent to relays
	Limited    uint64 // origin: NACKed numbers refused by the rate limit
	NotCached  uint64 // origin: NACKed numbers no longer cached or too late
	Malformed  uint64 // origin: NACK bodies that did not parse
}

func newRelayRepair(layers int) (*relayRepair, error) {
	rr := &relayRepair{layers: make([]relayLayer, layers)}
	for i := range rr.layers {
		rx, err := nack.NewReceiver(nack.ReceiverConfig{InitialRTT: relayRTT})
		if err != nil {
			return nil, err
		}
		rr.layers[i].rx = rx
	}
	return rr, nil
}

// onPacket records a relayed packet and reports whether to forward it (not
// a duplicate) and whether it revealed a new gap.
func (rr *relayRepair) onPacket(layer int, pkt []byte, now time.Time) (forward, newGap bool) {
	h, _, err := mediapkt.ParseHeader(pkt)
	if err != nil || layer < 0 || layer >= len(rr.layers) || h.Flags.Has(mediapkt.FlagFEC) {
		// The track refuses it and counts it.
		return true, false
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	l := &rr.layers[layer]
	before := l.rx.Pending()
	switch l.rx.OnPacket(l.unwrap.Unwrap(h.Seq), now) {
	case nack.ArrivalDuplicate, nack.ArrivalTooOld:
		rr.stats.Duplicates++
		return false, false
	case nack.ArrivalRecovered, nack.ArrivalLate:
		rr.stats.Repaired++
	}
	return true, l.rx.Pending() > before
}

// nacks returns the NACK bodies due at now and when the next is due.
func (rr *relayRepair) nacks(node string, now time.Time) ([][]byte, time.Time) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	var out [][]byte
	var next time.Time
	var buf []protocol.MediaSeq
	for i := range rr.layers {
		l := &rr.layers[i]
		buf = l.rx.Nacks(now, buf[:0])
		for len(buf) > 0 {
			n := min(len(buf), sfu.MaxNackSeqs)
			out = append(out, relayNackBody(i, node, buf[:n]))
			rr.stats.Nacked += uint64(n)
			buf = buf[n:]
		}
		if t, ok := l.rx.NextNack(now); ok && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return out, next
}

func (rr *relayRepair) snapshot() RelayRepairStats {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.stats
}

func relayNackBody(layer int, node string, seqs []protocol.MediaSeq) []byte {
	node = node[:min(len(node), maxNodeID)]
	b := make([]byte, 0, 2+len(node)+2*len(seqs))
	b = append(b, byte(layer), byte(len(node)))
	b = append(b, node...)
	for _, s := range seqs {
		b = binary.BigEndian.AppendUint16(b, uint16(s))
	}
	return b
}

// parseRelayNack decodes a relay NACK body, checking every length first.
func parseRelayNack(b []byte) (layer int, node string, seqs []mediapkt.Seq, ok bool) {
	if len(b) < 2 {
		return 0, "", nil, false
	}
	layer, n := int(b[0]), int(b[1])
	rest := b[2:]
	if len(rest) < n || layer >= voiceproto.MaxLayers {
		return 0, "", nil, false
	}
	node, rest = string(rest[:n]), rest[n:]
	if len(rest) == 0 || len(rest)%2 != 0 || len(rest)/2 > sfu.MaxNackSeqs {
		return 0, "", nil, false
	}
	seqs = make([]mediapkt.Seq, len(rest)/2)
	for i := range seqs {
		seqs[i] = mediapkt.Seq(binary.BigEndian.Uint16(rest[2*i:]))
	}
	return layer, node, seqs, true
}

// rtxSubject is where an origin sends the repairs for the relay at node.
func (s trackSubjects) rtxSubject(node string) string {
	return strings.TrimSuffix(s.pkt, ".pkt") + ".rtx." + hex.EncodeToString([]byte(node))
}

func (s trackSubjects) nackSubject() string { return strings.TrimSuffix(s.pkt, ".pkt") + ".nack" }

// relayBucket is an origin track's token bucket for relay NACKs.
type relayBucket struct {
	mu     sync.Mutex
	tokens float64   // guarded by mu
	at     time.Time // guarded by mu
}

// take returns how many of n numbers the bucket allows at now.
func (b *relayBucket) take(n int, now time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.at.IsZero() {
		b.tokens = sfu.DefaultNackBurst
	} else {
		b.tokens = min(sfu.DefaultNackBurst, b.tokens+now.Sub(b.at).Seconds()*sfu.DefaultNackRate)
	}
	b.at = now
	k := min(n, int(b.tokens))
	b.tokens -= float64(k)
	return k
}

// onRelayNack answers a relaying gateway's NACK from the origin track's
// cache, rate-limited per track like a subscriber's NACKs.
func (m *mediaHub) onRelayNack(t *mediaTrack, data []byte) {
	layer, node, seqs, ok := parseRelayNack(data)
	st := &t.relayStats
	if !ok || layer >= t.tr.Layers() {
		st.add(func(s *RelayRepairStats) { s.Malformed++ })
		return
	}
	now := m.g.cfg.Now()
	allowed := t.bucket.take(len(seqs), now)
	var resent, notCached uint64
	subject := t.subjects.rtxSubject(node)
	for _, s := range seqs[:allowed] {
		b, rs := t.tr.Resend(layer, s, relayRTT)
		if rs != nack.Resent {
			notCached++
			continue
		}
		out := make([]byte, 1+len(b))
		out[0] = byte(layer)
		copy(out[1:], b)
		if err := m.bus.Publish(subject, bus.Msg{Data: out}); err == nil {
			resent++
		}
	}
	st.add(func(s *RelayRepairStats) {
		s.Resent += resent
		s.NotCached += notCached
		s.Limited += uint64(len(seqs) - allowed)
	})
}

// relayCounters are an origin track's relay-repair counters.
type relayCounters struct {
	mu sync.Mutex
	s  RelayRepairStats // guarded by mu
}

func (c *relayCounters) add(f func(*RelayRepairStats)) {
	c.mu.Lock()
	f(&c.s)
	c.mu.Unlock()
}

// relayNacks sends the room's due relay NACKs and returns when the next
// are due (zero: none pending).
func (m *mediaHub) relayNacks(r *mediaRoom) time.Time {
	now := m.g.cfg.Now()
	type send struct {
		subject string
		bodies  [][]byte
	}
	var sends []send
	var next time.Time
	m.mu.Lock()
	for _, t := range r.tracks {
		if t.local || t.repair == nil {
			continue
		}
		bodies, due := t.repair.nacks(m.g.cfg.NodeID, now)
		if len(bodies) > 0 {
			sends = append(sends, send{t.subjects.nackSubject(), bodies})
		}
		if !due.IsZero() && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	m.mu.Unlock()
	for _, s := range sends {
		for _, b := range s.bodies {
			_ = m.bus.Publish(s.subject, bus.Msg{Data: b})
		}
	}
	return next
}

// kickRepair asks the room loop to send relay NACKs now.
func (r *mediaRoom) kickRepair() {
	select {
	case r.repairKick <- struct{}{}:
	default:
	}
}

// add sums two sets of counters.
func (s *RelayRepairStats) add(o RelayRepairStats) {
	s.Nacked += o.Nacked
	s.Repaired += o.Repaired
	s.Duplicates += o.Duplicates
	s.Resent += o.Resent
	s.Limited += o.Limited
	s.NotCached += o.NotCached
	s.Malformed += o.Malformed
}

// relayStatsLocked returns a track's relay-repair counters, both sides.
func (t *mediaTrack) relayStatsLocked() RelayRepairStats {
	t.relayStats.mu.Lock()
	out := t.relayStats.s
	t.relayStats.mu.Unlock()
	if t.repair != nil {
		out.add(t.repair.snapshot())
	}
	return out
}

// retireRelayStatsLocked folds the counters of a track that leaves into
// the hub's totals, so that the exported counters never go down. The
// caller holds mediaHub.mu.
func (m *mediaHub) retireRelayStatsLocked(t *mediaTrack) {
	m.relayRetired.add(t.relayStatsLocked())
}

// RelayRepairStats returns the gateway's relay-repair counters since it
// started: as a relay (NACKs sent, packets repaired, duplicates) and as an
// origin (packets resent, refused).
func (g *Gateway) RelayRepairStats() RelayRepairStats {
	m := g.media
	if m == nil {
		return RelayRepairStats{}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := m.relayRetired
	for _, r := range m.rooms {
		for _, t := range r.tracks {
			out.add(t.relayStatsLocked())
		}
	}
	return out
}

// SFUCounters returns the forwarding counters of every room this gateway
// forwards, summed (ended rooms included, so that counters never go
// down); zero without a media path.
func (g *Gateway) SFUCounters() sfu.Counters {
	m := g.media
	if m == nil {
		return sfu.Counters{}
	}
	m.mu.Lock()
	c := m.fwdRetired
	rooms := make([]*mediaRoom, 0, len(m.rooms))
	for _, r := range m.rooms {
		rooms = append(rooms, r)
	}
	m.mu.Unlock()
	for _, r := range rooms {
		c.Add(r.fwd.Counters())
	}
	return c
}

// mediaGauges are the media path's counters for WriteMetrics.
func (g *Gateway) mediaGauges() []gauge {
	if g.media == nil {
		return nil
	}
	s := g.RelayRepairStats()
	return []gauge{
		{"jsp_media_relay_nacked_total", "counter", "Sequence numbers of relayed tracks NACKed to their origin gateway.", int64(s.Nacked)},
		{"jsp_media_relay_repaired_total", "counter", "Relayed packets that arrived after being missed.", int64(s.Repaired)},
		{"jsp_media_relay_duplicates_total", "counter", "Relayed packets dropped as already received.", int64(s.Duplicates)},
		{"jsp_media_relay_resent_total", "counter", "Packets resent to relaying gateways after their NACKs.", int64(s.Resent)},
		{"jsp_media_relay_nack_limited_total", "counter", "Relay NACK numbers refused by the per-track rate limit.", int64(s.Limited)},
		{"jsp_media_relay_nack_not_cached_total", "counter", "Relay NACK numbers no longer cached or too late.", int64(s.NotCached)},
		{"jsp_media_relay_nack_malformed_total", "counter", "Relay NACK messages that did not parse.", int64(s.Malformed)},
	}
}
