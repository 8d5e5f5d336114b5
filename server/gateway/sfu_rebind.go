package gateway

import (
	"github.com/jetstreamproto/jsp/server/sfu"
	"github.com/jetstreamproto/jsp/wire"
)

// A subscription follows its track when the track's binding at this
// gateway is replaced. The rooms service announces a track (publish,
// then the track.published event) before its publisher binds the track's
// flows here, so a subscriber on the same gateway may bind first; the
// gateway then makes a relay of the track, fed from the bus, as for a
// track published elsewhere. The publisher's binding replaces that relay
// (mediaPublish), which closes the relay's DownTracks: the subscription's
// writer then moves it to the new binding instead of ending, or it would
// stay bound to a track that never gets a packet. The new DownTrack
// continues the old one's sequence and timestamp spaces, and gets the
// subscriber's latest estimate and requested size again.

// rebindDown moves the subscription on flow, whose DownTrack old has
// closed, to the binding that now holds its track in its room, and
// returns the new DownTrack; nil when the subscription ended or its track
// is gone (unpublished, not replaced).
func (h *host) rebindDown(flow wire.FlowID, old *sfu.DownTrack) *sfu.DownTrack {
	m, hm := h.g.media, h.media
	// Lock order: mediaHub.mu, then hostMedia.mu, as in mediaSubscribe.
	m.mu.Lock()
	defer m.mu.Unlock()
	hm.mu.Lock()
	defer hm.mu.Unlock()
	df := hm.downs[flow]
	if df == nil || df.d != old {
		// Unsubscribed (unbindDownLocked removes the binding before it
		// closes the DownTrack) or bound again already.
		return nil
	}
	r := m.rooms[df.t.room.id]
	if r == nil {
		return nil
	}
	nt := r.tracks[df.t.id]
	if nt == nil || nt == df.t {
		return nil
	}
	sc := h.subscriberConfig()
	if seq, ts, ok := old.Continuation(); ok {
		// The subscriber's receiver goes on in the same spaces.
		sc.InitialSeq, sc.InitialTimestamp = seq, ts
	}
	d, err := r.fwd.Subscribe(sfu.TrackID(nt.id), sc)
	if err != nil {
		h.log.Debug("subscription not moved to the track's new binding", "track", nt.id, "flow", uint64(flow), "err", err)
		return nil
	}
	df.t.subs--
	nt.subs++
	df.t, df.d = nt, d
	if df.estimate > 0 {
		d.SetEstimate(df.estimate)
	}
	if df.width > 0 || df.height > 0 {
		d.SetRequestedSize(df.width, df.height)
	}
	// As in mediaSubscribe: dynacast resumes the layers the subscriber
	// targets.
	r.pokeDynacast()
	return d
}
