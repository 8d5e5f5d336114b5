package sfu

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
)

// TrackID names a track within a forwarder.
type TrackID string

// Kind is a track's media kind.
type Kind uint8

// Kinds.
const (
	KindAudio Kind = iota + 1
	KindVideo
)

// Media clock rates (JSP §13.2), the defaults of TrackConfig.ClockRate.
const (
	AudioClockRate = 48000
	VideoClockRate = 90000
)

// defaultAudioFrame is the duration assumed for an audio packet whose
// predecessor is unknown: Opus's usual 20 ms.
const defaultAudioFrame = 20 * time.Millisecond

// maxAudioFrame bounds the duration one audio packet may claim for the
// speaker detector (Opus's longest packet).
const maxAudioFrame = 120 * time.Millisecond

// TrackConfig describes a published track.
type TrackConfig struct {
	// ID names the track; unique within the forwarder.
	ID TrackID
	// Kind is audio or video.
	Kind Kind
	// Layers are the simulcast layers, lowest first, for video; empty
	// means one layer. Audio has one layer.
	Layers []simulcast.Layer
	// ClockRate is the media clock. Default AudioClockRate for audio,
	// VideoClockRate for video.
	ClockRate int
	// Participant names the publisher for the active-speaker detector;
	// empty keeps the track's audio levels out of it.
	Participant string
	// OnKeyFrameRequest is called, rate-limited per layer, when a
	// subscriber needs a key frame on layer. It must not block: the
	// caller is the forwarding path.
	OnKeyFrameRequest func(layer int)
}

// TrackStats counts what a [Track] did.
type TrackStats struct {
	Packets            uint64 // media packets accepted
	Bytes              uint64 // their bytes
	ParityDropped      uint64 // publisher FEC parity, not forwarded
	Refused            uint64 // packets refused: size, layer, header
	NotCached          uint64 // packets older than the cache's newest (reordered), forwarded but not cached
	KeyFrameRequests   uint64 // requests passed to OnKeyFrameRequest
	KeyFrameSuppressed uint64 // requests held back by KeyFrameInterval
	Subscribers        int
}

// layerState is the per-layer state of a track.
type layerState struct {
	cache   *nack.Cache
	unwrap  mediapkt.Unwrapper
	prevEnd bool // the layer's newest packet ended a frame: the next number starts one
}

// Track is one published track and its subscribers.
type Track struct {
	f   *Forwarder
	cfg TrackConfig
	n   int // layers

	subs atomic.Pointer[[]*DownTrack] // copy on write; read without a lock per packet

	mu     sync.Mutex   // guards the fields below and subscription changes
	layers []layerState // guarded by mu
	lastTS uint32       // guarded by mu; audio: previous packet's timestamp
	haveTS bool         // guarded by mu
	closed bool         // guarded by mu
	stats  TrackStats   // guarded by mu

	kfMu   sync.Mutex
	kfLast []time.Time // guarded by kfMu
	kfReq  uint64      // guarded by kfMu
	kfSup  uint64      // guarded by kfMu
}

func newTrack(f *Forwarder, tc TrackConfig) (*Track, error) {
	switch {
	case tc.ID == "":
		return nil, jsperr.New(jsperr.BadRequest, "sfu: empty track id")
	case tc.Kind != KindAudio && tc.Kind != KindVideo:
		return nil, jsperr.Newf(jsperr.BadRequest, "sfu: track %q: unknown kind %d", tc.ID, tc.Kind)
	case tc.Kind == KindAudio && len(tc.Layers) > 1:
		return nil, jsperr.Newf(jsperr.BadLayer, "sfu: audio track %q with %d layers", tc.ID, len(tc.Layers))
	case len(tc.Layers) > simulcast.MaxLayers:
		return nil, jsperr.Newf(jsperr.BadLayer, "sfu: track %q with %d layers, at most %d", tc.ID, len(tc.Layers), simulcast.MaxLayers)
	case tc.ClockRate < 0:
		return nil, jsperr.Newf(jsperr.BadRequest, "sfu: track %q: negative clock rate", tc.ID)
	}
	if tc.ClockRate == 0 {
		tc.ClockRate = VideoClockRate
		if tc.Kind == KindAudio {
			tc.ClockRate = AudioClockRate
		}
	}
	if len(tc.Layers) > 1 {
		// Validate once here so that subscribe cannot fail on it.
		if _, err := simulcast.NewSelector(tc.Layers, simulcast.SelectorConfig{}); err != nil {
			return nil, jsperr.Wrap(jsperr.BadLayer, fmt.Errorf("sfu: track %q: %w", tc.ID, err))
		}
	}
	t := &Track{f: f, cfg: tc, n: layerCount(tc)}
	t.layers = make([]layerState, t.n)
	for i := range t.layers {
		c, err := nack.NewCache(f.cfg.Cache)
		if err != nil {
			return nil, fmt.Errorf("sfu: track %q: %w", tc.ID, err)
		}
		t.layers[i] = layerState{cache: c, prevEnd: true}
	}
	t.kfLast = make([]time.Time, t.n)
	t.subs.Store(&[]*DownTrack{})
	return t, nil
}

// ID returns the track's id.
func (t *Track) ID() TrackID { return t.cfg.ID }

// Layers returns the track's layer count.
func (t *Track) Layers() int { return t.n }

// Stats returns the track's counters.
func (t *Track) Stats() TrackStats {
	t.mu.Lock()
	s := t.stats
	t.mu.Unlock()
	t.kfMu.Lock()
	s.KeyFrameRequests, s.KeyFrameSuppressed = t.kfReq, t.kfSup
	t.kfMu.Unlock()
	s.Subscribers = len(*t.subs.Load())
	return s
}

// WritePacket forwards one media packet of layer from the publisher. It
// never waits on a subscriber. Calls for one track are meant to come from
// one goroutine (the publisher's receive loop): concurrent calls are safe
// but forward in whatever order they interleave. Errors name the refused packet; the
// publisher's session goes on (a datagram is not worth the connection,
// JSP §13.1).
func (t *Track) WritePacket(layer int, pkt []byte) error {
	now := t.f.cfg.Now()
	if len(pkt) > t.f.cfg.MaxPacketSize {
		t.refuse()
		return jsperr.Newf(jsperr.DatagramTooLarge, "sfu: track %q: packet of %d bytes, limit %d", t.cfg.ID, len(pkt), t.f.cfg.MaxPacketSize)
	}
	if layer < 0 || layer >= t.n {
		t.refuse()
		return jsperr.Newf(jsperr.BadLayer, "sfu: track %q: layer %d of %d", t.cfg.ID, layer, t.n)
	}
	h, _, err := mediapkt.ParseHeader(pkt)
	if err != nil {
		t.refuse()
		return fmt.Errorf("sfu: track %q: %w", t.cfg.ID, err)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return jsperr.Newf(jsperr.TrackNotFound, "sfu: track %q unpublished", t.cfg.ID)
	}
	if h.Flags.Has(mediapkt.FlagFEC) {
		t.stats.ParityDropped++
		t.mu.Unlock()
		return nil
	}
	ls := &t.layers[layer]
	hi, started := ls.unwrap.Highest()
	ext := ls.unwrap.Unwrap(h.Seq)
	// A packet of a key frame starts it when the packet numbered just
	// before it ended a frame (JSP §13.3). For the packet that directly
	// follows the layer's newest one that is the newest's E flag. After a
	// gap it is unknown (the frame's first packets may be the lost ones),
	// and a switch there would hand the subscriber the rest of a key
	// frame without its start, numbered contiguously, which it would
	// play as a whole frame. A packet that arrives late (a retransmission
	// or an FEC rebuild) starts a frame when its predecessor is cached
	// with E; a subscriber that switches there also needs the packets
	// that followed it, which it was not given: they go with it (follow).
	var keyStart bool
	var follow [][]byte
	if h.Flags.Has(mediapkt.FlagKeyFrame) {
		switch {
		case !started:
			keyStart = true
		case ext == hi+1:
			keyStart = ls.prevEnd
		case ext < hi:
			if prev, ok := ls.cache.Get(ext - 1); ok && endsFrame(prev) {
				keyStart = true
				// Cached packets are never written to: the
				// slices can be shared without a copy.
				for q := ext + 1; q <= hi; q++ {
					if b, ok := ls.cache.Get(q); ok {
						follow = append(follow, b)
					}
				}
			}
		}
	}
	if !started || ext > hi {
		ls.prevEnd = h.Flags.Has(mediapkt.FlagEndOfFrame)
	}
	if err := ls.cache.Add(ext, pkt, now); err != nil {
		t.stats.NotCached++
	}
	t.stats.Packets++
	t.stats.Bytes += uint64(len(pkt))
	var levelDur time.Duration
	if h.Flags.Has(mediapkt.FlagAudioLevel) && t.cfg.Participant != "" {
		levelDur = defaultAudioFrame
		if t.haveTS {
			if d := int32(h.Timestamp - t.lastTS); d > 0 {
				levelDur = min(time.Duration(d)*time.Second/time.Duration(t.cfg.ClockRate), maxAudioFrame)
			}
		}
		t.lastTS, t.haveTS = h.Timestamp, true
	}
	t.mu.Unlock()

	if levelDur > 0 {
		t.f.observeLevel(t.cfg.Participant, h.AudioLevel.Level, h.AudioLevel.Voice, levelDur, now)
	}
	for _, d := range *t.subs.Load() {
		if kl, need := d.forward(now, layer, &h, pkt, keyStart, follow); need {
			t.requestKeyFrame(kl, now)
		}
	}
	return nil
}

// endsFrame reports whether a cached media packet has E.
func endsFrame(pkt []byte) bool {
	h, _, err := mediapkt.ParseHeader(pkt)
	return err == nil && h.Flags.Has(mediapkt.FlagEndOfFrame)
}

func (t *Track) refuse() {
	t.f.malformed.Add(1)
	t.mu.Lock()
	t.stats.Refused++
	t.mu.Unlock()
}

// requestKeyFrame asks the publisher for a key frame on layer, at most
// once per KeyFrameInterval: one key frame serves every waiting
// subscriber, and a flood of requests (many joins, or a subscriber
// switching back and forth) would turn the publisher's stream into key
// frames.
func (t *Track) requestKeyFrame(layer int, now time.Time) {
	if layer < 0 || layer >= t.n || t.cfg.OnKeyFrameRequest == nil {
		return
	}
	t.kfMu.Lock()
	if last := t.kfLast[layer]; !last.IsZero() && now.Sub(last) < t.f.cfg.KeyFrameInterval {
		t.kfSup++
		t.kfMu.Unlock()
		return
	}
	t.kfLast[layer] = now
	t.kfReq++
	t.kfMu.Unlock()
	t.cfg.OnKeyFrameRequest(layer)
}

// resend copies the cached packet (layer, seq) if a retransmission can
// still arrive in time; the copy is the caller's.
func (t *Track) resend(layer int, seq mediapkt.Seq, now time.Time, rtt time.Duration) ([]byte, nack.ResendStatus) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if layer < 0 || layer >= t.n {
		return nil, nack.NotCached
	}
	ls := &t.layers[layer]
	ref, ok := ls.unwrap.Highest()
	if !ok {
		return nil, nack.NotCached
	}
	b, st := ls.cache.Resend(mediapkt.Extend(ref, seq), now, rtt)
	if st != nack.Resent {
		return nil, st
	}
	return append([]byte(nil), b...), st
}

// WantedLayers reports which layers at least one subscriber is targeting:
// the publisher may pause the others (dynacast).
func (t *Track) WantedLayers() []bool {
	w := make([]bool, t.n)
	for _, d := range *t.subs.Load() {
		if l := d.target(); l >= 0 && l < t.n {
			w[l] = true
		}
	}
	return w
}

func (t *Track) subscribe(sc SubscriberConfig) (*DownTrack, error) {
	d, err := newDownTrack(t, sc)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, jsperr.Newf(jsperr.TrackNotFound, "sfu: track %q unpublished", t.cfg.ID)
	}
	old := *t.subs.Load()
	if len(old) >= t.f.cfg.MaxSubscribers {
		t.mu.Unlock()
		return nil, jsperr.Newf(jsperr.TooManySubscribers, "sfu: track %q has %d subscribers, limit %d", t.cfg.ID, len(old), t.f.cfg.MaxSubscribers)
	}
	next := append(append(make([]*DownTrack, 0, len(old)+1), old...), d)
	t.subs.Store(&next)
	t.mu.Unlock()
	// A new video subscriber needs a key frame to start.
	if l, need := d.needKeyFrame(); need {
		t.requestKeyFrame(l, t.f.cfg.Now())
	}
	return d, nil
}

// unsubscribe removes d and reports whether it was subscribed (a second
// Close, or one after the track's unpublishing, finds it gone).
func (t *Track) unsubscribe(d *DownTrack) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old := *t.subs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	t.subs.Store(&next)
	return len(next) != len(old)
}

func (t *Track) close() {
	t.mu.Lock()
	t.closed = true
	old := *t.subs.Load()
	t.subs.Store(&[]*DownTrack{})
	t.mu.Unlock()
	for _, d := range old {
		d.closeQueue()
		t.f.retireDown(d.Stats())
	}
}
