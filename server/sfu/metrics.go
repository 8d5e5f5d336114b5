package sfu

import (
	"bufio"
	"fmt"
	"io"
)

// totals are counters summed over tracks and down tracks.
type totals struct {
	packetsIn, bytesIn, refused, parity       uint64
	kfRequests, kfSuppressed                  uint64
	forwarded, filtered, dropped, retransmits uint64
	nackNotCached, nackTooLate, nackLimited   uint64
	fecParity, fecBytes                       uint64
}

func (t *totals) addTrack(s TrackStats) {
	t.packetsIn += s.Packets
	t.bytesIn += s.Bytes
	t.refused += s.Refused
	t.parity += s.ParityDropped
	t.kfRequests += s.KeyFrameRequests
	t.kfSuppressed += s.KeyFrameSuppressed
}

func (t *totals) addDown(s DownTrackStats) {
	t.forwarded += s.Forwarded
	t.filtered += s.Filtered
	t.dropped += s.Dropped
	t.retransmits += s.Retransmitted
	t.nackNotCached += s.NackNotCached
	t.nackTooLate += s.NackTooLate
	t.nackLimited += s.NackLimited
	t.fecParity += s.FECParity
	t.fecBytes += s.FECBytes
}

// retire folds the counters of a down track that leaves into the
// forwarder's totals, so that the exported counters never go down.
func (f *Forwarder) retireDown(s DownTrackStats) {
	f.retMu.Lock()
	f.retired.addDown(s)
	f.retMu.Unlock()
}

func (f *Forwarder) retireTrack(s TrackStats) {
	f.retMu.Lock()
	f.retired.addTrack(s)
	f.retMu.Unlock()
}

// add adds o's counters to t.
func (t *totals) add(o totals) {
	t.packetsIn += o.packetsIn
	t.bytesIn += o.bytesIn
	t.refused += o.refused
	t.parity += o.parity
	t.kfRequests += o.kfRequests
	t.kfSuppressed += o.kfSuppressed
	t.forwarded += o.forwarded
	t.filtered += o.filtered
	t.dropped += o.dropped
	t.retransmits += o.retransmits
	t.nackNotCached += o.nackNotCached
	t.nackTooLate += o.nackTooLate
	t.nackLimited += o.nackLimited
	t.fecParity += o.fecParity
	t.fecBytes += o.fecBytes
}

// Counters are a forwarder's metrics at one moment: the gauges (tracks,
// subscriptions) and the counters summed over all tracks, past and
// present. A process with several forwarders (one per room) adds them up
// with Add and writes the sum once, so that every metric name appears
// once on its /metrics page.
type Counters struct {
	tracks, subs int
	sum          totals
}

// Counters returns the forwarder's metrics now.
func (f *Forwarder) Counters() Counters {
	f.mu.Lock()
	tracks := make([]*Track, 0, len(f.tracks))
	for _, t := range f.tracks {
		tracks = append(tracks, t)
	}
	f.mu.Unlock()
	f.retMu.Lock()
	c := Counters{sum: f.retired}
	f.retMu.Unlock()
	for _, t := range tracks {
		c.sum.addTrack(t.Stats())
		for _, d := range *t.subs.Load() {
			c.sum.addDown(d.Stats())
			c.subs++
		}
	}
	c.tracks = len(tracks)
	return c
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.tracks += o.tracks
	c.subs += o.subs
	c.sum.add(o.sum)
}

// Retired returns c's counters without its gauges: what a forwarder that
// is closed leaves to its owner's running totals, so that exported
// counters never go down when a room ends.
func (c Counters) Retired() Counters { return Counters{sum: c.sum} }

// Forwarded returns the packets queued for subscribers.
func (c Counters) Forwarded() uint64 { return c.sum.forwarded }

// Dropped returns the packets dropped from full subscriber queues.
func (c Counters) Dropped() uint64 { return c.sum.dropped }

// WritePrometheus writes the forwarder's counters in the Prometheus text
// format (STYLE rule 26). The counters are totals over all tracks, past and
// present; per-track series are left out on purpose, since track ids come
// and go without bound.
func (f *Forwarder) WritePrometheus(w io.Writer) error {
	return f.Counters().WritePrometheus(w)
}

// WritePrometheus writes c in the Prometheus text format.
func (c Counters) WritePrometheus(w io.Writer) error {
	sum := c.sum
	bw := bufio.NewWriter(w)
	gauge := func(name, help string, v int) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("jsp_sfu_tracks", "Tracks published.", c.tracks)
	gauge("jsp_sfu_subscriptions", "Down tracks (subscriber x track).", c.subs)
	counter("jsp_sfu_packets_in_total", "Media packets accepted from publishers.", sum.packetsIn)
	counter("jsp_sfu_bytes_in_total", "Bytes of media packets accepted from publishers.", sum.bytesIn)
	counter("jsp_sfu_packets_refused_total", "Publisher packets refused (size, layer, header).", sum.refused)
	counter("jsp_sfu_parity_dropped_total", "Publisher FEC parity packets not forwarded.", sum.parity)
	counter("jsp_sfu_keyframe_requests_total", "Key-frame requests passed to publishers.", sum.kfRequests)
	counter("jsp_sfu_keyframe_suppressed_total", "Key-frame requests held back by the rate limit.", sum.kfSuppressed)
	counter("jsp_sfu_packets_forwarded_total", "Packets queued for subscribers.", sum.forwarded)
	counter("jsp_sfu_packets_filtered_total", "Packets of layers a subscriber does not get.", sum.filtered)
	counter("jsp_sfu_packets_dropped_total", "Packets dropped from full subscriber queues.", sum.dropped)
	counter("jsp_sfu_retransmitted_total", "Packets resent after subscriber NACKs.", sum.retransmits)
	counter("jsp_sfu_nack_not_cached_total", "NACKed numbers no longer in history or cache.", sum.nackNotCached)
	counter("jsp_sfu_nack_too_late_total", "NACKed packets too old to arrive in time.", sum.nackTooLate)
	counter("jsp_sfu_nack_limited_total", "NACKed numbers refused by the rate limit or per-call cap.", sum.nackLimited)
	counter("jsp_sfu_fec_parity_total", "FEC parity packets made for subscribers.", sum.fecParity)
	counter("jsp_sfu_fec_parity_bytes_total", "Bytes of FEC parity packets made for subscribers.", sum.fecBytes)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("sfu: writing metrics: %w", err)
	}
	return nil
}
