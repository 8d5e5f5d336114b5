package gateway

import (
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/reliability/fec"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/server/sfu"
	"github.com/jetstreamproto/jsp/wire"
)

// FEC on the forwarding path (JSP §13.4, §13.5, D29). A gateway with a
// media path offers media.CapFEC; a subscriber whose session negotiated it
// gets parity of its own from its DownTrack, shaped by the receiver reports
// it sends back on its flow. A subscriber that did not offer the
// capability gets none and sends no reports.

// mediaCapabilities returns caps with media.CapFEC added: the gateway can
// generate and take parity.
func mediaCapabilities(caps []string) []string {
	if slices.Contains(caps, media.CapFEC) {
		return caps
	}
	return append(slices.Clone(caps), media.CapFEC)
}

// sessionFEC reports whether the session negotiated FEC: its subscriptions get
// parity and its published flows are decoded and reported on.
func (h *host) sessionFEC() bool { return h.sess.HasCapability(media.CapFEC) }

// onControl takes a control packet a session sent on a media flow: a
// receiver report on a subscription's flow steers that subscriber's FEC.
// Other control packets, and reports on flows that are not
// subscriptions, are dropped (JSP §13.7: unknown types are skipped).
func (h *host) onControl(flow wire.FlowID, b []byte) {
	hm := h.media
	hm.mu.Lock()
	df := hm.downs[flow]
	hm.mu.Unlock()
	if df == nil {
		return
	}
	r, err := media.ParseReport(b)
	if err != nil {
		return
	}
	df.d.OnReport(r.Lost, r.Total)
}

// subscriberConfig is the DownTrack configuration of a session's
// subscription.
func (h *host) subscriberConfig() sfu.SubscriberConfig {
	return sfu.SubscriberConfig{ID: h.id, FEC: h.sessionFEC()}
}

// upFEC is the receiving side of a publisher's flow when its session
// negotiated FEC: it rebuilds lost packets from the publisher's parity
// and reports the flow's loss back so that the publisher's policy shapes
// that parity (JSP §13.7). hostMedia.mu guards it.
type upFEC struct {
	dec        *fec.Decoder
	nextReport time.Time
	lastHi     protocol.MediaSeq
	originals  uint64 // source packets that arrived as first sent this interval
	recovered  uint64 // packets rebuilt from parity, all time
}

func newUpFEC() (*upFEC, error) {
	dec, err := fec.NewDecoder(fec.DecoderConfig{})
	if err != nil {
		return nil, err
	}
	return &upFEC{dec: dec}, nil
}

// onPacketLocked takes one datagram of the publisher's flow (its header
// parsed) and returns the source packets it let the decoder rebuild. Each
// rebuilt packet is marked received in the flow's NACK state.
func (pf *pubFlow) onPacketLocked(h *mediapkt.Header, b []byte, now time.Time) [][]byte {
	u := pf.up
	var rec []fec.Recovered
	if h.Flags.Has(mediapkt.FlagFEC) {
		if u == nil {
			return nil
		}
		hi, ok := pf.nack.Highest()
		if !ok {
			return nil
		}
		rec, _ = u.dec.AddParity(fec.Parity{
			Group: fec.Group{Base: mediapkt.Extend(hi, h.FEC.Base), K: int(h.FEC.K), M: int(h.FEC.M)},
			Index: int(h.FEC.Index), Data: b[h.Len():],
		})
	} else {
		seq := pf.unwrap.Unwrap(h.Seq)
		a := pf.nack.OnPacket(seq, now)
		if u == nil {
			return nil
		}
		clean := b
		if h.Flags.Has(mediapkt.FlagRetransmission) {
			// FEC protects packets as first sent (JSP §13.4).
			clean = slices.Clone(b)
			_ = mediapkt.SetRetransmission(clean, false)
		} else if a == nack.ArrivalNew || a == nack.ArrivalRecovered {
			u.originals++
		}
		rec, _ = u.dec.AddSource(seq, clean)
	}
	var out [][]byte
	for _, r := range rec {
		rh, _, err := mediapkt.ParseHeader(r.Packet)
		if err != nil || rh.Flags.Has(mediapkt.FlagFEC) {
			continue
		}
		pf.nack.OnPacket(r.Seq, now)
		u.recovered++
		out = append(out, slices.Clone(r.Packet))
	}
	return out
}

// reportLocked returns the receiver report that is due on the
// publisher's flow, if any: the numbers the newest packet advanced by
// since the last report against the originals that arrived (JSP §13.7).
func (pf *pubFlow) reportLocked(now time.Time) []byte {
	u := pf.up
	if u == nil {
		return nil
	}
	hi, ok := pf.nack.Highest()
	if !ok {
		return nil
	}
	if u.nextReport.IsZero() {
		u.nextReport, u.lastHi, u.originals = now.Add(media.DefaultReportInterval), hi, 0
		return nil
	}
	if now.Before(u.nextReport) {
		return nil
	}
	u.nextReport = now.Add(media.DefaultReportInterval)
	total := uint64(hi - u.lastHi)
	if total < media.DefaultMinReportPackets {
		// Too few to measure: the interval goes on.
		return nil
	}
	rep := media.Report{Total: min(total, media.MaxReportTotal), Lost: min(total-min(total, u.originals), media.MaxReportTotal)}
	u.lastHi, u.originals = hi, 0
	b, err := rep.Append(nil)
	if err != nil {
		return nil
	}
	return b
}
