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

// WritePrometheus writes the forwarder's counters in the Prometheus text
// format (STYLE rule 26). The counters are totals over all tracks, past and
// present; per-track series are left out on purpose, since track ids come
// and go without bound.
func (f *Forwarder) WritePrometheus(w io.Writer) error {
	f.mu.Lock()
	tracks := make([]*Track, 0, len(f.tracks))
	for _, t := range f.tracks {
		tracks = append(tracks, t)
	}
	f.mu.Unlock()
	f.retMu.Lock()
	sum := f.retired
	f.retMu.Unlock()
	subs := 0
	for _, t := range tracks {
		sum.addTrack(t.Stats())
		for _, d := range *t.subs.Load() {
			sum.addDown(d.Stats())
			subs++
		}
	}
	bw := bufio.NewWriter(w)
	gauge := func(name, help string, v int) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("jsp_sfu_tracks", "Tracks published.", len(tracks))
	gauge("jsp_sfu_subscriptions", "Down tracks (subscriber x track).", subs)
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
