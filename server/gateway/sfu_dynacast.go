package gateway

// Dynacast (JSP §13.15, D29): the layers of a video track that nobody
// watches are paused at the publisher.
//
//	origin gateway (publisher's):
//	  wanted = local DownTracks' target layers (sfu.Track.WantedLayers)
//	         ∪ each relaying gateway's last .want mask, while fresh
//	  room loop (every roomTick, and at once when poked):
//	    a layer newly wanted  -> resume at once
//	    a layer unwanted for dynacastPauseDelay -> pause
//	    mask changed -> NOTIFY voice.layers {track, layers} to the publisher
//	relaying gateway:
//	  .want body = [mask of its subscribers' targets] + its node id,
//	  sent every wantEvery and at once when the mask changes
//
// Resuming is immediate because a subscriber waits for it; pausing waits,
// so that a subscriber moving between layers, or leaving and coming back,
// does not make the publisher stop and restart a layer (each restart costs
// a key frame). Audio is never paused: the active-speaker detector reads
// its levels.

import (
	"strconv"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// DynacastPauseDelay is how long a layer must be unwanted before the
// publisher is told to pause it.
const DynacastPauseDelay = time.Second

// maxRemoteWants caps the relaying gateways whose interest an origin track
// keeps: a want from one more is taken as wanting every layer, which can
// only keep layers on.
const maxRemoteWants = 64

// dynState is a track's dynacast state.
type dynState struct {
	mu       sync.Mutex
	remote   map[string]remoteWant           // origin: by relaying gateway; guarded by mu
	overflow time.Time                       // origin: a want past maxRemoteWants, until; guarded by mu
	sent     voiceproto.LayerMask            // origin: mask the publisher was last told; guarded by mu
	since    [voiceproto.MaxLayers]time.Time // origin: when each sent layer became unwanted; guarded by mu
	wantSent voiceproto.LayerMask            // relay: mask of the last .want; guarded by mu
	started  bool                            // guarded by mu: sent is meaningful
}

type remoteWant struct {
	mask  voiceproto.LayerMask
	until time.Time
}

// layersNotice is a NOTIFY voice.layers waiting for the publisher's
// control loop.
type layersNotice struct {
	track string
	mask  voiceproto.LayerMask
}

// wantBody is a relay's .want message: its mask, then its node id.
func wantBody(mask voiceproto.LayerMask, node string) []byte {
	return append([]byte{byte(mask)}, node...)
}

// onWant records a relaying gateway's interest (origin) and reports
// whether it wants a layer it did not before.
func (t *mediaTrack) onWant(data []byte, now time.Time) bool {
	mask := voiceproto.AllLayers(voiceproto.MaxLayers)
	node := ""
	if len(data) > 0 {
		// An empty body (an older gateway) wants every layer.
		mask, node = voiceproto.LayerMask(data[0])&mask, string(data[1:])
	}
	d := &t.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.remote == nil {
		d.remote = map[string]remoteWant{}
	}
	old := d.remoteMaskLocked(now)
	if _, ok := d.remote[node]; !ok && len(d.remote) >= maxRemoteWants {
		d.overflow = now.Add(wantTTL)
	} else {
		d.remote[node] = remoteWant{mask: mask, until: now.Add(wantTTL)}
	}
	return d.remoteMaskLocked(now)&^old != 0
}

// remoteMaskLocked is the union of the fresh remote wants; stale ones are
// forgotten.
func (d *dynState) remoteMaskLocked(now time.Time) voiceproto.LayerMask {
	var m voiceproto.LayerMask
	for node, w := range d.remote {
		if now.After(w.until) {
			delete(d.remote, node)
			continue
		}
		m |= w.mask
	}
	if now.Before(d.overflow) {
		m = voiceproto.AllLayers(voiceproto.MaxLayers)
	}
	return m
}

// localMask is the layers the track's local subscribers target.
func (t *mediaTrack) localMask() voiceproto.LayerMask {
	var m voiceproto.LayerMask
	for l, w := range t.tr.WantedLayers() {
		if w {
			m |= 1 << l
		}
	}
	return m
}

// dynacastOrigin decides the mask the publisher of a local video track
// should send at now, and returns it when it changed.
func (t *mediaTrack) dynacastOrigin(now time.Time) (voiceproto.LayerMask, bool) {
	all := voiceproto.AllLayers(len(t.info.Layers))
	d := &t.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	wanted := (t.localMask() | d.remoteMaskLocked(now)) & all
	if !d.started {
		// The publisher starts with every layer on.
		d.sent, d.started = all, true
	}
	next := d.sent | wanted
	for l := range len(d.since) {
		switch {
		case !d.sent.Has(l) || wanted.Has(l):
			d.since[l] = time.Time{}
		case d.since[l].IsZero():
			d.since[l] = now
		case now.Sub(d.since[l]) >= DynacastPauseDelay:
			next &^= 1 << l
		}
	}
	if next == d.sent {
		return 0, false
	}
	d.sent = next
	return next, true
}

// dynacastRelay returns the mask a relay track's .want should carry, and
// whether it changed since the last one.
func (t *mediaTrack) dynacastRelay() (voiceproto.LayerMask, bool) {
	m := t.localMask()
	d := &t.dyn
	d.mu.Lock()
	defer d.mu.Unlock()
	changed := m != d.wantSent
	d.wantSent = m
	return m, changed
}

// dynacast runs a room's dynacast step: origin tracks tell their
// publishers about changed masks, relay tracks renew or update their
// wants. renew publishes every relay's want, changed or not.
func (m *mediaHub) dynacast(r *mediaRoom, renew bool) {
	now := m.g.cfg.Now()
	type want struct {
		subject string
		mask    voiceproto.LayerMask
	}
	var wants []want
	var notices []func()
	m.mu.Lock()
	for _, t := range r.tracks {
		switch {
		case !t.local && t.subs > 0:
			mask, changed := t.dynacastRelay()
			if changed || renew {
				wants = append(wants, want{t.subjects.want, mask})
			}
		case t.local && t.info.Kind == voiceproto.KindVideo && t.pub != nil:
			if mask, changed := t.dynacastOrigin(now); changed {
				hm, id := t.pub, t.id
				notices = append(notices, func() { hm.notifyLayers(id, mask) })
			}
		}
	}
	m.mu.Unlock()
	for _, w := range wants {
		_ = m.bus.Publish(w.subject, bus.Msg{Data: wantBody(w.mask, m.g.cfg.NodeID)})
	}
	for _, n := range notices {
		n()
	}
}

// poke asks the room loop for a dynacast step now (a subscriber came,
// left or changed its estimate; a remote gateway wants a new layer).
func (r *mediaRoom) pokeDynacast() {
	select {
	case r.poke <- struct{}{}:
	default:
	}
}

// notifyLayers queues the NOTIFY for the publisher; when the queue is
// full the notice is kept as the latest and sent with the next one
// (the mask is state, so only the newest matters).
func (hm *hostMedia) notifyLayers(track string, mask voiceproto.LayerMask) {
	hm.dynMu.Lock()
	if hm.dynPending == nil {
		hm.dynPending = map[string]voiceproto.LayerMask{}
	}
	hm.dynPending[track] = mask
	hm.dynMu.Unlock()
	select {
	case hm.dynKick <- struct{}{}:
	default:
	}
}

// takeLayerNotices returns and clears the pending NOTIFYs.
func (hm *hostMedia) takeLayerNotices() []layersNotice {
	hm.dynMu.Lock()
	defer hm.dynMu.Unlock()
	out := make([]layersNotice, 0, len(hm.dynPending))
	for tr, m := range hm.dynPending {
		out = append(out, layersNotice{tr, m})
	}
	clear(hm.dynPending)
	return out
}

// sendLayerNotices sends the pending voice.layers NOTIFYs (route service
// voice, class media, like voice.keyframe).
func (h *host) sendLayerNotices() error {
	for _, n := range h.media.takeLayerNotices() {
		if err := h.sendMediaNotify(voiceproto.NotifyLayers, n.track, "layers", strconv.Itoa(int(n.mask))); err != nil {
			return err
		}
	}
	return nil
}
