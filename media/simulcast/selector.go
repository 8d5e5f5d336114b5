// Package simulcast chooses, for each subscriber of a simulcast track, which
// of the publisher's layers to forward, and rewrites the forwarded packets'
// sequence numbers and timestamps so that the subscriber sees one seamless
// flow whatever layer it gets.
//
// A publisher sends up to [MaxLayers] encodings of one video source, low to
// high resolution, each as its own media flow with its own sequence and
// timestamp spaces (JSP §13.2). For each subscriber:
//
//	bandwidth estimate (media/bwe) --+
//	requested size (w x h) ----------+--> Selector: target layer
//	layers being published ----------+      |  hysteresis: up only after the
//	                                        |  estimate has covered the next
//	                                        |  layer with margin for a while,
//	                                        |  down after a short hold
//	packet (layer, key frame start) ---> OnPacket: forward only the current
//	                                        layer; move current to target at
//	                                        a key frame of the target layer
//	                                        (NeedKeyFrame asks for one)
//	forwarded packet ---> Rewriter: outgoing seq = incoming + offset, with no
//	                      gap at a switch; timestamps monotonic; Lookup maps
//	                      a subscriber's NACK back to (layer, incoming seq)
//
// A layer switch takes effect only at a key frame, since the subscriber's
// decoder cannot decode the new layer's inter frames without its
// reference. [IsVP8KeyFrame] and [IsVP8KeyFrameRTP] read the key-frame bit
// from VP8 data for publishers whose packets lack the K flag.
package simulcast

import (
	"fmt"
	"time"

	"github.com/jetstreamproto/jsp/media/bwe"
)

// MaxLayers is the most simulcast layers a track may have.
const MaxLayers = 3

// NoLayer is the layer of a selector that forwards nothing yet.
const NoLayer = -1

// Selector defaults, used for zero [SelectorConfig] fields.
const (
	// DefaultUpFactor: a layer is taken up only when the estimate
	// exceeds its bitrate by 15 %, so that its own traffic does not at
	// once push the estimate under it.
	DefaultUpFactor = 1.15
	// DefaultUpHold: the estimate must allow the higher layer this long.
	DefaultUpHold = 2 * time.Second
	// DefaultDownHold: the estimate must stay under the current layer's
	// bitrate this long before going down; a shorter dip is ridden out.
	DefaultDownHold = 300 * time.Millisecond
)

// Layer describes one simulcast layer.
type Layer struct {
	// Bitrate is what the publisher sends the layer at.
	Bitrate bwe.Bitrate
	// Width and Height are its resolution.
	Width, Height int
}

// SelectorConfig configures a [Selector]. Zero fields take their defaults.
type SelectorConfig struct {
	// UpFactor is the margin the estimate needs over a higher layer's
	// bitrate, at least 1. Default DefaultUpFactor.
	UpFactor float64
	// UpHold and DownHold are the hysteresis times. Defaults
	// DefaultUpHold and DefaultDownHold; negative means none.
	UpHold, DownHold time.Duration
}

func (c *SelectorConfig) setDefaults() {
	if c.UpFactor == 0 {
		c.UpFactor = DefaultUpFactor
	}
	if c.UpHold == 0 {
		c.UpHold = DefaultUpHold
	}
	if c.DownHold == 0 {
		c.DownHold = DefaultDownHold
	}
	c.UpHold, c.DownHold = max(c.UpHold, 0), max(c.DownHold, 0)
}

// SelectorStats counts what a [Selector] did.
type SelectorStats struct {
	Switches   uint64 // changes of the current layer
	Ups, Downs uint64 // changes of the target layer
	Forwarded  uint64 // packets OnPacket let through
	Dropped    uint64 // packets of other layers, or before the first key frame
}

// Selector picks the layer forwarded to one subscriber. It is not safe for
// concurrent use; the forwarding path of one subscriber owns it.
type Selector struct {
	cfg      SelectorConfig
	layers   []Layer
	active   [MaxLayers]bool
	estimate bwe.Bitrate
	haveEst  bool
	maxW     int
	maxH     int
	target   int
	current  int
	upSince  time.Time
	downAt   time.Time
	stats    SelectorStats
}

// NewSelector returns a selector for a track with the given layers, ordered
// from the lowest to the highest. All layers start active; the target
// starts at the lowest layer until an estimate arrives.
func NewSelector(layers []Layer, cfg SelectorConfig) (*Selector, error) {
	cfg.setDefaults()
	if len(layers) < 1 || len(layers) > MaxLayers {
		return nil, fmt.Errorf("simulcast: %d layers, want 1..%d", len(layers), MaxLayers)
	}
	if cfg.UpFactor < 1 {
		return nil, fmt.Errorf("simulcast: UpFactor %v below 1", cfg.UpFactor)
	}
	for i, l := range layers {
		if l.Bitrate <= 0 || l.Width < 0 || l.Height < 0 {
			return nil, fmt.Errorf("simulcast: layer %d: %+v", i, l)
		}
		if i > 0 && l.Bitrate <= layers[i-1].Bitrate {
			return nil, fmt.Errorf("simulcast: layer %d bitrate %v not above layer %d's", i, l.Bitrate, i-1)
		}
	}
	s := &Selector{cfg: cfg, layers: append([]Layer(nil), layers...), current: NoLayer}
	for i := range layers {
		s.active[i] = true
	}
	return s, nil
}

// Target returns the layer the selector wants; NoLayer when no layer is
// active.
func (s *Selector) Target() int { return s.target }

// Current returns the layer being forwarded, NoLayer before the first key
// frame.
func (s *Selector) Current() int { return s.current }

// Stats returns the selector's counters.
func (s *Selector) Stats() SelectorStats { return s.stats }

// SetEstimate gives the subscriber's bandwidth estimate.
func (s *Selector) SetEstimate(now time.Time, b bwe.Bitrate) {
	s.estimate, s.haveEst = b, true
	s.update(now)
}

// SetRequestedSize limits the layers to those no larger than w x h (the
// subscriber's view); 0 x 0 lifts the limit. The lowest layer is always
// allowed.
func (s *Selector) SetRequestedSize(now time.Time, w, h int) {
	s.maxW, s.maxH = max(w, 0), max(h, 0)
	s.update(now)
}

// SetLayerActive marks a layer as published or paused (dynacast).
func (s *Selector) SetLayerActive(now time.Time, layer int, active bool) {
	if layer < 0 || layer >= len(s.layers) {
		return
	}
	s.active[layer] = active
	s.update(now)
}

// sizeCap returns the highest layer the requested size allows.
func (s *Selector) sizeCap() int {
	if s.maxW == 0 && s.maxH == 0 {
		return len(s.layers) - 1
	}
	top := 0
	for i, l := range s.layers {
		if (s.maxW == 0 || l.Width <= s.maxW) && (s.maxH == 0 || l.Height <= s.maxH) {
			top = i
		}
	}
	return top
}

// best returns the highest active layer <= limit whose bitrate times
// factor fits the estimate, else the lowest active layer <= limit, else
// the lowest active layer, else NoLayer.
func (s *Selector) best(limit int, factor float64) int {
	for i := limit; i >= 0; i-- {
		if s.active[i] && float64(s.layers[i].Bitrate)*factor <= float64(s.estimate) {
			return i
		}
	}
	return s.lowest()
}

// lowest returns the lowest active layer, or NoLayer.
func (s *Selector) lowest() int {
	for i := range s.layers {
		if s.active[i] {
			return i
		}
	}
	return NoLayer
}

func (s *Selector) setTarget(t int) {
	if t == s.target {
		return
	}
	if t > s.target {
		s.stats.Ups++
	} else {
		s.stats.Downs++
	}
	s.target = t
	s.upSince, s.downAt = time.Time{}, time.Time{}
}

func (s *Selector) update(now time.Time) {
	limit := s.sizeCap()
	// Hard constraints first, without hysteresis: a layer over the size
	// limit or no longer published is never a target.
	if s.target == NoLayer || s.target > limit || !s.active[s.target] {
		if !s.haveEst {
			// Before any estimate, start as low as possible.
			s.setTarget(s.lowest())
		} else {
			s.setTarget(s.best(limit, 1))
		}
		return
	}
	if !s.haveEst {
		return
	}
	if up := s.best(limit, s.cfg.UpFactor); up > s.target {
		if s.upSince.IsZero() {
			s.upSince = now
		}
		if now.Sub(s.upSince) >= s.cfg.UpHold {
			s.setTarget(up)
		}
	} else {
		s.upSince = time.Time{}
	}
	if s.layers[s.target].Bitrate > s.estimate {
		if s.downAt.IsZero() {
			s.downAt = now
		}
		if now.Sub(s.downAt) >= s.cfg.DownHold {
			s.setTarget(min(s.best(limit, 1), s.target))
		}
	} else {
		s.downAt = time.Time{}
	}
}

// Tick re-evaluates a pending switch whose hold time may have passed
// since the last estimate. An estimate given once (or rarely) would
// otherwise leave the target where it was until the next estimate; the
// SFU calls Tick for every packet it considers, so the hold is measured in
// packet time. Without a pending switch it does nothing.
func (s *Selector) Tick(now time.Time) {
	if !s.upSince.IsZero() || !s.downAt.IsZero() {
		s.update(now)
	}
}

// OnPacket decides whether a packet of layer goes to the subscriber.
// keyFrameStart is set on the first packet of a key frame. The current
// layer moves to the target at such a packet of the target layer (and to
// any active layer at all while nothing is forwarded yet and the target
// has no key frame in sight, not done here: the caller asks for one with
// NeedKeyFrame).
func (s *Selector) OnPacket(layer int, keyFrameStart bool) bool {
	if layer != s.current && layer == s.target && keyFrameStart {
		s.current = layer
		s.stats.Switches++
	}
	if layer == s.current && s.current != NoLayer {
		s.stats.Forwarded++
		return true
	}
	s.stats.Dropped++
	return false
}

// NeedKeyFrame reports the layer a key frame is needed on: the target,
// while the current layer differs from it. The SFU rate-limits the
// requests it sends to the publisher.
func (s *Selector) NeedKeyFrame() (int, bool) {
	if s.target != NoLayer && s.target != s.current {
		return s.target, true
	}
	return NoLayer, false
}
