package gateway

// Uplink estimates for publishers (spec/JSP-media.md §13.17): the gateway
// receives a publisher's layer flows, so it runs one bwe.UplinkEstimator
// per published track on their arrivals (timestamps as send times, as a
// subscriber does for its own path, §13.16) and tells the publisher the
// estimate with a NOTIFY voice.bitrate when it moved by a tenth since the
// last one, at most every uplinkNotifyEvery. The publisher's SDK splits
// it over the layers (bwe.Allocate) as bitrate hints for its encoders.
//
// State lives in hostMedia.up under hostMedia.mu: packets are recorded on
// the session's flow loop, estimates updated and NOTIFYs sent by its
// control loop every mediaTick.

import (
	"strconv"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

const (
	// uplinkUpdateEvery is the uplink estimators' update period.
	uplinkUpdateEvery = 50 * time.Millisecond
	// uplinkNotifyEvery spaces a track's bitrate NOTIFYs.
	uplinkNotifyEvery = 500 * time.Millisecond
	// uplinkNotifyChange is the relative change that is worth a NOTIFY.
	uplinkNotifyChange = 0.1
)

// uplinkState is one published track's uplink estimate.
type uplinkState struct {
	est      *bwe.UplinkEstimator
	sent     bwe.Bitrate // last estimate notified, 0 before any
	sentAt   time.Time
	updateAt time.Time
}

// uplinkRecordLocked notes the first arrival of a publisher's source
// packet; hm.mu is held.
func (h *host) uplinkRecordLocked(pf *pubFlow, hdr mediapkt.Header, size int, now time.Time) {
	if hdr.Flags.Has(mediapkt.FlagRetransmission) || hdr.Flags.Has(mediapkt.FlagFEC) {
		return // a repair's timing is not the path's
	}
	hm := h.media
	if hm.up == nil {
		hm.up = map[string]*uplinkState{}
	}
	u := hm.up[pf.t.id]
	if u == nil {
		var total bwe.Bitrate
		for _, l := range pf.t.info.Layers {
			total += bwe.Bitrate(l.Bitrate)
		}
		cfg := bwe.UplinkConfig{ClockRate: 48_000}
		if pf.t.info.Kind == voiceproto.KindVideo {
			cfg.ClockRate = 90_000
		}
		if total >= bwe.DefaultMinBitrate && total <= bwe.DefaultMaxBitrate {
			cfg.Estimator.InitialBitrate = total
		}
		est, err := bwe.NewUplinkEstimator(cfg)
		if err != nil {
			return
		}
		u = &uplinkState{est: est}
		hm.up[pf.t.id] = u
	}
	u.est.OnPacket(pf.layer, hdr.Seq, hdr.Timestamp, size, now)
}

// uplinkTick updates the session's uplink estimators and sends the
// NOTIFYs that are due.
func (h *host) uplinkTick(now time.Time) {
	hm := h.media
	type note struct {
		track string
		rate  bwe.Bitrate
	}
	var notes []note
	rtt, _ := h.sess.RTT()
	hm.mu.Lock()
	for id, u := range hm.up {
		if !h.publishesLocked(id) {
			delete(hm.up, id)
			continue
		}
		if now.Sub(u.updateAt) < uplinkUpdateEvery {
			continue
		}
		u.updateAt = now
		if rtt > 0 {
			u.est.SetRTT(rtt)
		}
		e, congested := u.est.Update(now)
		moved := u.sent == 0 && congested ||
			u.sent != 0 && float64(absRate(e-u.sent)) >= uplinkNotifyChange*float64(u.sent)
		if moved && now.Sub(u.sentAt) >= uplinkNotifyEvery {
			u.sent, u.sentAt = e, now
			notes = append(notes, note{id, e})
		}
	}
	hm.mu.Unlock()
	for _, n := range notes {
		_ = h.sendMediaNotify(voiceproto.NotifyBitrate, n.track, "bitrate", strconv.FormatInt(int64(n.rate), 10))
	}
}

// publishesLocked reports whether the session still has a flow of track
// bound; hm.mu is held.
func (h *host) publishesLocked(track string) bool {
	for _, pf := range h.media.pubs {
		if pf.t.id == track {
			return true
		}
	}
	return false
}

func absRate(b bwe.Bitrate) bwe.Bitrate {
	if b < 0 {
		return -b
	}
	return b
}
