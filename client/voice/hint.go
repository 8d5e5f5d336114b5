package voice

import (
	"slices"
	"strconv"

	"github.com/jetstreamproto/jsp/media/bwe"
)

// Bitrate hints for publishers (spec/JSP-media.md §13.17): the gateway
// estimates the uplink of each published track from the arrivals of its
// layers and sends the estimate as a NOTIFY voice.bitrate when it moves.
// The SDK does not encode, so it applies a hint by splitting the estimate
// over the track's layers, lowest first at their declared bitrates
// (bwe.Allocate), and handing the split to the app's encoders:
//
//	cam.OnBitrateHint(func(h voice.BitrateHint) {
//		for l, b := range h.Layers {
//			enc[l].SetBitrate(b) // 0: pause the layer
//		}
//	})

// BitrateHint is what a track may send, from the gateway's uplink
// estimate.
type BitrateHint struct {
	// Estimate is the gateway's uplink estimate for the track.
	Estimate bwe.Bitrate
	// Layers is the estimate split over the layers, lowest first: a
	// layer's declared bitrate while the estimate lasts, the rest to the
	// next, 0 for layers over it. One entry for a single-layer track;
	// every layer gets the whole estimate when the track declared no
	// layer bitrates.
	Layers []bwe.Bitrate
}

// OnBitrateHint sets the function called with each new hint (on the
// client's notification goroutine; it must not block).
func (t *LocalTrack) OnBitrateHint(f func(BitrateHint)) {
	t.mu.Lock()
	t.onHint = f
	t.mu.Unlock()
}

// BitrateHint returns the latest hint; ok is false before the gateway
// sent one.
func (t *LocalTrack) BitrateHint() (h BitrateHint, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.hint.Layers == nil {
		return BitrateHint{}, false
	}
	h = t.hint
	h.Layers = slices.Clone(h.Layers)
	return h, true
}

// bitrateNotified applies a voice.bitrate NOTIFY.
func (t *LocalTrack) bitrateNotified(v string) {
	b, err := strconv.ParseInt(v, 10, 64)
	if err != nil || b <= 0 {
		return
	}
	declared := make([]bwe.Bitrate, 0, len(t.info.Layers))
	known := true
	for _, l := range t.info.Layers {
		declared = append(declared, bwe.Bitrate(l.Bitrate))
		known = known && l.Bitrate > 0
	}
	h := BitrateHint{Estimate: bwe.Bitrate(b)}
	switch {
	case len(declared) == 0:
		h.Layers = []bwe.Bitrate{h.Estimate}
	case !known:
		// Without declared rates there is nothing to split by: every
		// layer is told the whole estimate and the app splits it.
		h.Layers = make([]bwe.Bitrate, len(declared))
		for i := range h.Layers {
			h.Layers[i] = h.Estimate
		}
	default:
		h.Layers = bwe.Allocate(h.Estimate, declared)
	}
	t.mu.Lock()
	t.hint = h
	f := t.onHint
	t.mu.Unlock()
	if f != nil {
		h.Layers = slices.Clone(h.Layers)
		f(h)
	}
}
