package voice

import (
	"sync"

	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// Dynacast at the publisher (JSP §13.15). The gateway of a video track's
// publisher sends a NOTIFY voice.layers whenever the set of layers someone
// watches changes, at its own gateway or any other. WriteFrame drops the
// frames of the other layers (they cost the uplink and the gateway, and
// nobody would get them) and counts them; when a layer is wanted again
// the track asks the app for a key frame on it, as subscribers switching
// to it cannot start without one. An app that encodes each layer
// separately can watch LayerActive or OnLayersChanged and stop encoding
// paused layers altogether.

// layerGate is a LocalTrack's paused layers.
type layerGate struct {
	mu       sync.Mutex
	paused   voiceproto.LayerMask // guarded by mu
	skipped  [voiceproto.MaxLayers]uint64
	onChange func(active []bool) // guarded by mu
}

// layersNotified takes the layers header of a NOTIFY voice.layers about
// t; a malformed mask is ignored (JSP-media §13.15).
func (t *LocalTrack) layersNotified(layers string) {
	mask, err := voiceproto.ParseLayerMask(layers)
	if err != nil {
		return
	}
	t.setActiveLayers(mask)
}

// setActiveLayers pauses the layers not in mask and resumes those in it,
// asking for a key frame on each resumed layer.
func (t *LocalTrack) setActiveLayers(mask voiceproto.LayerMask) {
	n := len(t.senders)
	all := voiceproto.AllLayers(n)
	g := &t.gate
	g.mu.Lock()
	old := g.paused
	g.paused = all &^ mask
	resumed := old &^ g.paused
	f := g.onChange
	changed := old != g.paused
	g.mu.Unlock()
	for l := range n {
		if resumed.Has(l) {
			t.keyFrameRequested(l)
		}
	}
	if changed && f != nil {
		f(t.activeLayers())
	}
}

// skipPaused reports whether layer is paused, counting the frame WriteFrame
// then drops.
func (t *LocalTrack) skipPaused(layer int) bool {
	g := &t.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused.Has(layer) {
		return false
	}
	g.skipped[layer]++
	return true
}

// LayerActive reports whether frames of layer are sent: false while the
// gateway reports that nobody watches it.
func (t *LocalTrack) LayerActive(layer int) bool {
	t.gate.mu.Lock()
	defer t.gate.mu.Unlock()
	return layer >= 0 && layer < len(t.senders) && !t.gate.paused.Has(layer)
}

func (t *LocalTrack) activeLayers() []bool {
	out := make([]bool, len(t.senders))
	for l := range out {
		out[l] = t.LayerActive(l)
	}
	return out
}

// OnLayersChanged sets the function called with the layers being sent
// each time the set changes (dynacast). It runs on the client's
// notification goroutine and must not block.
func (t *LocalTrack) OnLayersChanged(f func(active []bool)) {
	t.gate.mu.Lock()
	t.gate.onChange = f
	t.gate.mu.Unlock()
}

// PausedFrames returns, per layer, the frames WriteFrame dropped because
// nobody watched the layer.
func (t *LocalTrack) PausedFrames() []uint64 {
	t.gate.mu.Lock()
	defer t.gate.mu.Unlock()
	return append([]uint64(nil), t.gate.skipped[:len(t.senders)]...)
}
