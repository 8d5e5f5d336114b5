package gateway

// The media path of voice/video rooms (spec/JSP-voice.md §7): each gateway
// hosts one server/sfu Forwarder per room that has media at that gateway.
//
//	publisher session ─DATAGRAM flow P (layer l)─► mediaFlowLoop
//	   ─► upstream NACK state (gaps NACKed to the publisher, JSP §13.6)
//	   ─► Track.WritePacket(l) ─► DownTracks of local subscribers
//	   ─► bus <prefix>.<room>.<track>.pkt  (only while a remote gateway
//	      announced interest on .want within wantTTL)
//	subscriber session ◄─DATAGRAM flow S─ downLoop (DownTrack.Receive)
//	subscriber NACK {flow S} ─► mediaNackLoop ─► DownTrack.OnNack (cache)
//	key frame needed ─► NOTIFY voice.keyframe to the publisher (its
//	   gateway's ctl loop), or .kf on the bus for a relayed track
//	with FEC negotiated (sfu_fec.go): publisher parity rebuilt into the
//	   track and receiver reports sent up; subscriber reports ─►
//	   DownTrack.OnReport, which shapes that subscriber's own parity
//	watched layers ─► NOTIFY voice.layers to the publisher (dynacast,
//	   sfu_dynacast.go); relay gaps NACKed to the origin (sfu_relay.go)
//
// A track published at another gateway is relayed: the first local
// subscriber makes a relay Track in the local forwarder, fed from the
// track's .pkt subject; the room loop announces .want every wantEvery while
// the relay has subscribers, and the origin forwards only while wants are
// fresh. A gateway that is lost takes its own participants only: the
// relays elsewhere go quiet until the publisher rejoins.
//
// Bindings are made with the gateway-local COMMAND service voice.media;
// each one is granted by the core rooms service (voice, op grant) for the
// session's identity, so a gateway never decides who may publish or
// subscribe. The grant is asked synchronously on the session's receive
// loop, which keeps a session's bindings in the order it sent them.
//
// Goroutines: per session, three loops (flows, NACKs, control) started
// with the host's other loops and one writer per subscription, all joined
// by host.run; per room, one loop (speakers, wants) joined by mediaHub
// close or when the room empties. Lock order: mediaHub.mu, then
// hostMedia.mu, then the forwarder's own locks (binding and unbinding
// publish, subscribe and close under both); the forwarder's callbacks
// (key-frame requests) and the packet paths take neither of ours. A
// track's dynState.mu comes after mediaHub.mu and before the forwarder's
// locks; relayRepair.mu, relayCounters.mu, relayBucket.mu and
// hostMedia.dynMu are taken with nothing else of ours held after them.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/audiolevel"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/reliability/nack"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/sfu"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Media path limits and timings.
const (
	// MaxMediaBindings caps the flows one session binds (published layers
	// plus subscriptions).
	MaxMediaBindings = 64
	// mediaTick is the period of a session's upstream NACK timer.
	mediaTick = 10 * time.Millisecond
	// roomTick is the period of a room's loop (speakers, wants).
	roomTick = 300 * time.Millisecond
	// wantEvery is how often a relaying gateway renews its interest.
	wantEvery = time.Second
	// wantTTL is how long an origin forwards to the bus after the last
	// want: three renewals may be lost before it stops.
	wantTTL = 3 * wantEvery
	// kfQueue is the key-frame notifications a session may have pending;
	// more are dropped (the forwarder asks again after its interval).
	kfQueue = 16
)

// mediaHub is a gateway's media side (nil without a bus).
type mediaHub struct {
	g      *Gateway
	bus    bus.Bus
	prefix string
	log    *slog.Logger

	mu           sync.Mutex
	rooms        map[string]*mediaRoom // guarded by mu
	closed       bool                  // guarded by mu
	relayRetired RelayRepairStats      // guarded by mu: counters of tracks that left
	fwdRetired   sfu.Counters          // guarded by mu: counters of rooms that ended
	wg           sync.WaitGroup        // room loops
}

type mediaRoom struct {
	id     string
	fwd    *sfu.Forwarder
	tracks map[string]*mediaTrack // guarded by mediaHub.mu
	stop   chan struct{}
	poke   chan struct{} // a dynacast step is wanted now

	repairKick chan struct{} // a relayed track has a new gap (sfu_relay.go)
}

// mediaTrack is a track in a room's forwarder: published by a local
// session (origin) or relayed from the bus.
type mediaTrack struct {
	id    string
	room  *mediaRoom
	tr    *sfu.Track
	info  voiceproto.Track
	local bool
	subs  int // local subscriptions; guarded by mediaHub.mu

	remoteUntil atomic.Int64 // origin: Unix ns until which packets go to the bus
	subjects    trackSubjects
	busSubs     []bus.Subscription // guarded by mediaHub.mu

	kfMu   sync.Mutex
	kfLast [voiceproto.MaxLayers]time.Time // origin: remote key-frame requests, guarded by kfMu

	pub *hostMedia // origin: the publisher's session
	dyn dynState   // dynacast (sfu_dynacast.go)

	repair     *relayRepair  // relay: gaps in the relayed layers (sfu_relay.go)
	bucket     relayBucket   // origin: relay NACK rate limit
	relayStats relayCounters // origin: relay NACK answers
}

type trackSubjects struct{ pkt, want, kf string }

// hostMedia is one session's bindings.
type hostMedia struct {
	mu     sync.Mutex
	pubs   map[wire.FlowID]*pubFlow  // guarded by mu
	downs  map[wire.FlowID]*downFlow // guarded by mu
	rooms  map[string]struct{}       // guarded by mu: rooms with bindings
	kf     chan kfRequest
	active chan struct{} // closed at the first publication
	once   sync.Once
	up     map[string]*uplinkState // guarded by mu: uplink estimates by track (sfu_estimate.go)

	dynMu      sync.Mutex
	dynPending map[string]voiceproto.LayerMask // guarded by dynMu: voice.layers NOTIFYs to send
	dynKick    chan struct{}
}

type pubFlow struct {
	t      *mediaTrack
	layer  int
	unwrap mediapkt.Unwrapper
	nack   *nack.Receiver // upstream gaps; guarded by hostMedia.mu
	up     *upFEC         // upstream FEC, nil without; guarded by hostMedia.mu
}

type downFlow struct {
	t      *mediaTrack
	d      *sfu.DownTrack
	cancel context.CancelFunc
	// The subscriber's latest estimate and requested size, given again
	// to a new DownTrack when the subscription moves (sfu_rebind.go).
	estimate      bwe.Bitrate
	width, height int
}

type kfRequest struct {
	track string
	layer int
}

func newMediaHub(g *Gateway) *mediaHub {
	return &mediaHub{
		g:      g,
		bus:    g.cfg.Bus,
		prefix: "jspmedia." + g.cfg.Cluster,
		log:    g.log.With("component", "sfu"),
		rooms:  map[string]*mediaRoom{},
	}
}

func newHostMedia() *hostMedia {
	return &hostMedia{
		pubs:    map[wire.FlowID]*pubFlow{},
		downs:   map[wire.FlowID]*downFlow{},
		rooms:   map[string]struct{}{},
		kf:      make(chan kfRequest, kfQueue),
		active:  make(chan struct{}),
		dynKick: make(chan struct{}, 1),
	}
}

func (m *mediaHub) subjectsOf(room, track string) trackSubjects {
	base := m.prefix + "." + hex.EncodeToString([]byte(room)) + "." + hex.EncodeToString([]byte(track))
	return trackSubjects{pkt: base + ".pkt", want: base + ".want", kf: base + ".kf"}
}

// roomLocked returns the room's media state, creating it and its loop.
func (m *mediaHub) roomLocked(id string) (*mediaRoom, error) {
	if r := m.rooms[id]; r != nil {
		return r, nil
	}
	if m.closed {
		return nil, jsperr.New(jsperr.GoingAway, "gateway closing")
	}
	fwd, err := sfu.New(sfu.Config{Now: m.g.cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("sfu: room %q: %w", id, err)
	}
	r := &mediaRoom{id: id, fwd: fwd, tracks: map[string]*mediaTrack{}, stop: make(chan struct{}),
		poke: make(chan struct{}, 1), repairKick: make(chan struct{}, 1)}
	m.rooms[id] = r
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.roomLoop(r)
	}()
	return r, nil
}

// dropTrackLocked removes t from its room, and the room when it is empty.
func (m *mediaHub) dropTrackLocked(t *mediaTrack) {
	r := t.room
	if r.tracks[t.id] != t {
		return
	}
	delete(r.tracks, t.id)
	m.retireRelayStatsLocked(t)
	for _, s := range t.busSubs {
		_ = s.Unsubscribe()
	}
	t.busSubs = nil
	_ = r.fwd.Unpublish(sfu.TrackID(t.id))
	if len(r.tracks) == 0 {
		m.removeRoomLocked(r)
	}
}

// removeRoomLocked ends an empty room: its loop stops and its forwarder's
// counters join the hub's running totals (SFUCounters).
func (m *mediaHub) removeRoomLocked(r *mediaRoom) {
	delete(m.rooms, r.id)
	m.fwdRetired.Add(r.fwd.Counters().Retired())
	close(r.stop)
}

// roomLoop reports the room's active speakers to the rooms service, renews
// the interest of relayed tracks and runs dynacast.
func (m *mediaHub) roomLoop(r *mediaRoom) {
	tick := time.NewTicker(roomTick)
	defer tick.Stop()
	repair := time.NewTimer(time.Hour)
	repair.Stop()
	defer repair.Stop()
	var lastWant time.Time
	for {
		select {
		case <-r.stop:
			return
		case <-m.g.ctx.Done():
			return
		case <-r.repairKick:
			if next := m.relayNacks(r); !next.IsZero() {
				repair.Reset(max(next.Sub(m.g.cfg.Now()), time.Millisecond))
			}
			continue
		case <-repair.C:
			if next := m.relayNacks(r); !next.IsZero() {
				repair.Reset(max(next.Sub(m.g.cfg.Now()), time.Millisecond))
			}
			continue
		case <-r.poke:
			m.dynacast(r, false)
			continue
		case <-tick.C:
		}
		if list, changed := r.fwd.Speakers(); changed {
			m.reportSpeakers(r.id, list)
		}
		renew := false
		if now := m.g.cfg.Now(); now.Sub(lastWant) >= wantEvery {
			lastWant, renew = now, true
		}
		m.dynacast(r, renew)
	}
}

// reportSpeakers sends the forwarder's speaker list to the rooms service
// with the gateway's identity.
func (m *mediaHub) reportSpeakers(room string, list []audiolevel.Speaker) {
	req := voiceproto.Request{Op: voiceproto.OpSpeakers, Room: room}
	for _, s := range list {
		if len(req.Speakers) == voiceproto.MaxSpeakers {
			break
		}
		req.Speakers = append(req.Speakers, voiceproto.Speaker{Participant: s.ID, Level: s.Loudness})
	}
	ctx, cancel := context.WithTimeout(m.g.ctx, m.g.cfg.CoreTimeout)
	defer cancel()
	ctx = core.WithIdentity(ctx, core.Identity{User: "gateway:" + m.g.cfg.NodeID, Scopes: []string{voiceproto.GatewayScope}})
	if _, err := m.g.cluster.client.Command(ctx, room, voiceproto.Service, voiceproto.Marshal(req)); err != nil {
		m.log.Debug("speakers not reported", "room", room, "err", err)
	}
}

// close stops every room loop and waits for them; the hosts have ended.
func (m *mediaHub) close() {
	m.mu.Lock()
	m.closed = true
	for _, r := range m.rooms {
		for _, t := range r.tracks {
			for _, s := range t.busSubs {
				_ = s.Unsubscribe()
			}
			t.busSubs = nil
		}
		close(r.stop)
	}
	m.rooms = map[string]*mediaRoom{}
	m.mu.Unlock()
	m.wg.Wait()
}

// grant asks the rooms service whether the session may act on track.
func (h *host) mediaGrant(ctx context.Context, room, track string, a voiceproto.Action) (voiceproto.Track, error) {
	cctx, cancel := context.WithTimeout(ctx, h.g.cfg.CoreTimeout)
	defer cancel()
	body, err := h.g.cluster.client.Command(cctx, room, voiceproto.Service,
		voiceproto.Marshal(voiceproto.Request{Op: voiceproto.OpGrant, Room: room, Track: track, Action: a}))
	if err != nil {
		return voiceproto.Track{}, err
	}
	resp, err := voiceproto.DecodeResponse(body)
	if err != nil || resp.Track == nil {
		return voiceproto.Track{}, jsperr.Newf(jsperr.Internal, "voice: grant reply without track: %v", err)
	}
	return *resp.Track, nil
}

// mediaCommand serves the voice.media service (spec/JSP-voice.md §7).
func (h *host) mediaCommand(ctx context.Context, env *wire.Envelope, reply replyFunc) {
	if h.g.media == nil {
		reply(nil, jsperr.NotFound, "this gateway has no media path (no bus)")
		return
	}
	req, err := voiceproto.DecodeRequest(env.Body)
	if err == nil {
		err = h.mediaDo(ctx, &req)
	}
	if err != nil {
		code, reason := errorReply(err)
		reply(nil, code, reason)
		return
	}
	reply(voiceproto.Marshal(voiceproto.Response{}), jsperr.NoError, "")
}

func (h *host) mediaDo(ctx context.Context, req *voiceproto.Request) error {
	m, hm := h.g.media, h.media
	for _, f := range req.Flows {
		if f < uint64(session.FirstMediaFlow) || f > wire.MaxVarint {
			return jsperr.Newf(jsperr.BadRequest, "voice: flow %d outside the media flows", f)
		}
	}
	switch req.Op {
	case voiceproto.MediaPublish:
		info, err := h.mediaGrant(ctx, req.Room, req.Track, voiceproto.ActPublish)
		if err != nil {
			return err
		}
		n := max(len(info.Layers), 1)
		if len(req.Flows) != n {
			return jsperr.Newf(jsperr.BadRequest, "voice: track %q has %d layers, %d flows given", req.Track, n, len(req.Flows))
		}
		return h.mediaPublish(info, req)
	case voiceproto.MediaSubscribe:
		if len(req.Flows) != 1 {
			return jsperr.New(jsperr.BadRequest, "voice: subscribe needs one flow")
		}
		info, err := h.mediaGrant(ctx, req.Room, req.Track, voiceproto.ActSubscribe)
		if err != nil {
			return err
		}
		return h.mediaSubscribe(info, req)
	case voiceproto.MediaUnsubscribe, voiceproto.MediaUnpublish:
		m.mu.Lock()
		hm.mu.Lock()
		found := false
		for f, df := range hm.downs {
			if df.t.id == req.Track && req.Op == voiceproto.MediaUnsubscribe {
				found = true
				h.unbindDownLocked(f, df)
			}
		}
		for f, pf := range hm.pubs {
			if pf.t.id == req.Track && req.Op == voiceproto.MediaUnpublish {
				found = true
				delete(hm.pubs, f)
				m.dropTrackLocked(pf.t)
			}
		}
		hm.mu.Unlock()
		m.mu.Unlock()
		if !found {
			return jsperr.Newf(jsperr.TrackNotFound, "voice: no binding of track %q", req.Track)
		}
		return nil
	case voiceproto.MediaEstimate:
		hm.mu.Lock()
		defer hm.mu.Unlock()
		for _, df := range hm.downs {
			if df.t.id == req.Track {
				if req.Estimate > 0 {
					df.estimate = bwe.Bitrate(req.Estimate)
					df.d.SetEstimate(df.estimate)
				}
				if req.Width > 0 || req.Height > 0 {
					df.width, df.height = req.Width, req.Height
					df.d.SetRequestedSize(req.Width, req.Height)
				}
				df.t.room.pokeDynacast()
				return nil
			}
		}
		return jsperr.Newf(jsperr.TrackNotFound, "voice: not subscribed to %q", req.Track)
	}
	return jsperr.Newf(jsperr.BadRequest, "voice.media: unknown op %q", req.Op)
}

func layersOf(info voiceproto.Track) []simulcast.Layer {
	var out []simulcast.Layer
	for _, l := range info.Layers {
		out = append(out, simulcast.Layer{Bitrate: bwe.Bitrate(l.Bitrate), Width: l.Width, Height: l.Height})
	}
	return out
}

func kindOf(k voiceproto.Kind) sfu.Kind {
	if k == voiceproto.KindVideo {
		return sfu.KindVideo
	}
	return sfu.KindAudio
}

func (h *host) bindingsLocked() int { return len(h.media.pubs) + len(h.media.downs) }

// mediaPublish binds the session's flows to its track (origin).
func (h *host) mediaPublish(info voiceproto.Track, req *voiceproto.Request) error {
	m, hm := h.g.media, h.media
	m.mu.Lock()
	defer m.mu.Unlock()
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if h.bindingsLocked()+len(req.Flows) > MaxMediaBindings {
		return jsperr.Newf(jsperr.TooManyRoomTracks, "voice: %d media bindings, limit %d", h.bindingsLocked(), MaxMediaBindings)
	}
	for _, f := range req.Flows {
		if hm.pubs[wire.FlowID(f)] != nil || hm.downs[wire.FlowID(f)] != nil {
			return jsperr.Newf(jsperr.BadRequest, "voice: flow %d is bound already", f)
		}
	}
	r, err := m.roomLocked(req.Room)
	if err != nil {
		return err
	}
	if old := r.tracks[info.ID]; old != nil {
		if old.local {
			return jsperr.Newf(jsperr.TrackExists, "voice: track %q is bound already", info.ID)
		}
		// A relay of the same track: the publisher moved here.
		m.dropTrackLocked(old)
		if r, err = m.roomLocked(req.Room); err != nil {
			return err
		}
	}
	t := &mediaTrack{id: info.ID, room: r, info: info, local: true, subjects: m.subjectsOf(req.Room, info.ID), pub: hm}
	tr, err := r.fwd.Publish(sfu.TrackConfig{
		ID: sfu.TrackID(info.ID), Kind: kindOf(info.Kind), Layers: layersOf(info), Participant: info.Participant,
		OnKeyFrameRequest: func(layer int) { hm.requestKeyFrame(info.ID, layer) },
	})
	if err != nil {
		if len(r.tracks) == 0 {
			m.removeRoomLocked(r)
		}
		return err
	}
	t.tr = tr
	r.tracks[info.ID] = t
	// Remote interest and key-frame requests from relaying gateways.
	want, err := m.bus.Subscribe(t.subjects.want, func(msg *bus.Msg) {
		first := t.remoteUntil.Load() < h.g.cfg.Now().UnixNano()
		t.remoteUntil.Store(h.g.cfg.Now().Add(wantTTL).UnixNano())
		if t.onWant(msg.Data, h.g.cfg.Now()) {
			t.room.pokeDynacast()
		}
		if first && t.info.Kind == voiceproto.KindVideo {
			// A new relay starts with a key frame of every layer.
			for l := range max(len(t.info.Layers), 1) {
				t.remoteKeyFrame(hm, l, h.g.cfg.Now())
			}
		}
	})
	if err == nil {
		t.busSubs = append(t.busSubs, want)
		var kf bus.Subscription
		kf, err = m.bus.Subscribe(t.subjects.kf, func(msg *bus.Msg) {
			if l, perr := strconv.Atoi(string(msg.Data)); perr == nil && l >= 0 && l < voiceproto.MaxLayers {
				t.remoteKeyFrame(hm, l, h.g.cfg.Now())
			}
		})
		t.busSubs = append(t.busSubs, kf)
	}
	if err == nil {
		// Repairs of the relays elsewhere (sfu_relay.go).
		var nk bus.Subscription
		nk, err = m.bus.Subscribe(t.subjects.nackSubject(), func(msg *bus.Msg) { m.onRelayNack(t, msg.Data) })
		t.busSubs = append(t.busSubs, nk)
	}
	if err != nil {
		m.dropTrackLocked(t)
		return fmt.Errorf("voice: relay subjects of %q: %w", info.ID, err)
	}
	for i, f := range req.Flows {
		nr, err := nack.NewReceiver(nack.ReceiverConfig{})
		if err != nil {
			return fmt.Errorf("voice: %w", err)
		}
		pf := &pubFlow{t: t, layer: i, nack: nr}
		if h.sessionFEC() {
			if pf.up, err = newUpFEC(); err != nil {
				return fmt.Errorf("voice: %w", err)
			}
		}
		hm.pubs[wire.FlowID(f)] = pf
	}
	hm.rooms[req.Room] = struct{}{}
	hm.once.Do(func() { close(hm.active) })
	return nil
}

// remoteKeyFrame passes a relaying gateway's key-frame request to the
// publisher, at most once per sfu.DefaultKeyFrameInterval per layer.
func (t *mediaTrack) remoteKeyFrame(hm *hostMedia, layer int, now time.Time) {
	t.kfMu.Lock()
	if last := t.kfLast[layer]; !last.IsZero() && now.Sub(last) < sfu.DefaultKeyFrameInterval {
		t.kfMu.Unlock()
		return
	}
	t.kfLast[layer] = now
	t.kfMu.Unlock()
	hm.requestKeyFrame(t.id, layer)
}

// requestKeyFrame queues a key-frame NOTIFY for the publisher; it never
// blocks (the caller is the forwarding path).
func (hm *hostMedia) requestKeyFrame(track string, layer int) {
	select {
	case hm.kf <- kfRequest{track: track, layer: layer}:
	default:
	}
}

// mediaSubscribe gives the session a DownTrack of the track on its flow,
// relaying the track from the bus when it is published elsewhere.
func (h *host) mediaSubscribe(info voiceproto.Track, req *voiceproto.Request) error {
	m, hm := h.g.media, h.media
	flow := wire.FlowID(req.Flows[0])
	m.mu.Lock()
	defer m.mu.Unlock()
	hm.mu.Lock()
	defer hm.mu.Unlock()
	if h.bindingsLocked() >= MaxMediaBindings {
		return jsperr.Newf(jsperr.TooManyRoomTracks, "voice: %d media bindings, limit %d", h.bindingsLocked(), MaxMediaBindings)
	}
	if hm.pubs[flow] != nil || hm.downs[flow] != nil {
		return jsperr.Newf(jsperr.BadRequest, "voice: flow %d is bound already", flow)
	}
	r, err := m.roomLocked(req.Room)
	if err != nil {
		return err
	}
	t := r.tracks[info.ID]
	if t == nil {
		if t, err = m.relayLocked(r, info); err != nil {
			if len(r.tracks) == 0 {
				m.removeRoomLocked(r)
			}
			return err
		}
	}
	d, err := r.fwd.Subscribe(sfu.TrackID(info.ID), h.subscriberConfig())
	if err != nil {
		if t.subs == 0 && !t.local {
			m.dropTrackLocked(t)
		}
		return err
	}
	t.subs++
	// The room loop announces a relay's interest (.want) and resumes
	// paused layers at once.
	r.pokeDynacast()
	ctx, cancel := context.WithCancel(h.sess.Context())
	hm.downs[flow] = &downFlow{t: t, d: d, cancel: cancel}
	hm.rooms[req.Room] = struct{}{}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.downLoop(ctx, flow, d)
	}()
	return nil
}

// relayLocked makes a relay Track of a track published at another
// gateway, fed from its .pkt subject.
func (m *mediaHub) relayLocked(r *mediaRoom, info voiceproto.Track) (*mediaTrack, error) {
	t := &mediaTrack{id: info.ID, room: r, info: info, subjects: m.subjectsOf(r.id, info.ID)}
	tr, err := r.fwd.Publish(sfu.TrackConfig{
		ID: sfu.TrackID(info.ID), Kind: kindOf(info.Kind), Layers: layersOf(info), Participant: info.Participant,
		OnKeyFrameRequest: func(layer int) {
			_ = m.bus.Publish(t.subjects.kf, bus.Msg{Data: []byte(strconv.Itoa(layer))})
		},
	})
	if err != nil {
		return nil, err
	}
	t.tr = tr
	if t.repair, err = newRelayRepair(tr.Layers()); err != nil {
		_ = r.fwd.Unpublish(sfu.TrackID(info.ID))
		return nil, fmt.Errorf("voice: relay %q: %w", info.ID, err)
	}
	r.tracks[info.ID] = t
	relayed := func(msg *bus.Msg) {
		// [layer] + media packet (spec/JSP-voice.md §8).
		if len(msg.Data) < 2 {
			return
		}
		layer, pkt := int(msg.Data[0]), msg.Data[1:]
		fwd, gap := t.repair.onPacket(layer, pkt, m.g.cfg.Now())
		if fwd {
			_ = tr.WritePacket(layer, pkt)
		}
		if gap {
			r.kickRepair()
		}
	}
	for _, subject := range []string{t.subjects.pkt, t.subjects.rtxSubject(m.g.cfg.NodeID)} {
		sub, err := m.bus.Subscribe(subject, relayed)
		if err != nil {
			m.dropTrackLocked(t)
			return nil, fmt.Errorf("voice: relay %q: %w", info.ID, err)
		}
		t.busSubs = append(t.busSubs, sub)
	}
	return t, nil
}

// unbindDownLocked ends a subscription; its writer ends with it.
func (h *host) unbindDownLocked(flow wire.FlowID, df *downFlow) {
	delete(h.media.downs, flow)
	df.cancel()
	df.d.Close()
	df.t.subs--
	if df.t.subs == 0 && !df.t.local {
		h.g.media.dropTrackLocked(df.t)
	}
}

// downLoop sends a subscriber's packets on its flow until the
// subscription or the session ends.
func (h *host) downLoop(ctx context.Context, flow wire.FlowID, d *sfu.DownTrack) {
	for {
		pkt, err := d.Receive(ctx)
		if err != nil {
			// A closed DownTrack may mean its track's binding was
			// replaced: follow it (sfu_rebind.go).
			if errors.Is(err, sfu.ErrClosed) {
				if d = h.rebindDown(flow, d); d != nil {
					continue
				}
			}
			return
		}
		if err := h.sess.SendFlow(flow, pkt, protocol.ClassMedia); err != nil {
			if ctx.Err() != nil {
				return
			}
			h.g.metrics.errors.add(jsperr.CodeOf(err).String(), 1)
		}
	}
}

// mediaFlowLoop reads the session's media flows: a publisher's packets go
// into its track; control packets and unbound flows are dropped.
func (h *host) mediaFlowLoop(ctx context.Context) {
	hm := h.media
	for {
		d, err := h.sess.ReceiveFlow(ctx)
		if err != nil {
			return
		}
		if media.IsControl(d.Data) {
			// Receiver reports of a subscriber's flow steer its FEC.
			h.onControl(d.Flow, d.Data)
			continue
		}
		hm.mu.Lock()
		pf := hm.pubs[d.Flow]
		if pf == nil {
			hm.mu.Unlock()
			continue
		}
		hdr, _, err := mediapkt.ParseHeader(d.Data)
		var rebuilt [][]byte
		if err == nil {
			h.uplinkRecordLocked(pf, hdr, len(d.Data), h.g.cfg.Now())
			rebuilt = pf.onPacketLocked(&hdr, d.Data, h.g.cfg.Now())
		}
		t, layer := pf.t, pf.layer
		hm.mu.Unlock()
		if err != nil {
			continue
		}
		if !hdr.Flags.Has(mediapkt.FlagFEC) {
			h.forwardPublished(t, layer, d.Data)
		}
		for _, b := range rebuilt {
			h.forwardPublished(t, layer, b)
		}
	}
}

// forwardPublished writes one source packet of a local publisher into its
// track, and to the bus while other gateways relay the track.
func (h *host) forwardPublished(t *mediaTrack, layer int, pkt []byte) {
	if err := t.tr.WritePacket(layer, pkt); err != nil {
		return
	}
	if t.remoteUntil.Load() > h.g.cfg.Now().UnixNano() {
		out := make([]byte, 1+len(pkt))
		out[0] = byte(layer)
		copy(out[1:], pkt)
		if err := h.g.media.bus.Publish(t.subjects.pkt, bus.Msg{Data: out}); err != nil {
			h.log.Debug("media relay", "track", t.id, "err", err)
		}
	}
}

// mediaNackLoop answers subscribers' NACKs from the forwarder's cache.
func (h *host) mediaNackLoop(ctx context.Context) {
	hm := h.media
	var seqs []mediapkt.Seq
	for {
		n, err := h.sess.ReceiveNack(ctx)
		if err != nil {
			return
		}
		hm.mu.Lock()
		df := hm.downs[n.Flow]
		hm.mu.Unlock()
		if df == nil {
			continue
		}
		seqs = seqs[:0]
		for _, s := range n.Seqs {
			seqs = append(seqs, mediapkt.Seq(uint16(s)))
		}
		rtt, _ := h.sess.RTT()
		df.d.OnNack(seqs, rtt)
	}
}

// mediaCtlLoop, once the session publishes, NACKs upstream gaps every
// mediaTick and sends the key-frame NOTIFYs.
func (h *host) mediaCtlLoop(ctx context.Context) {
	hm := h.media
	select {
	case <-ctx.Done():
		return
	case <-hm.active:
	}
	tick := time.NewTicker(mediaTick)
	defer tick.Stop()
	var buf []protocol.MediaSeq
	type nk struct {
		flow wire.FlowID
		seqs []uint64
		rep  []byte
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hm.dynKick:
			if err := h.sendLayerNotices(); err != nil && ctx.Err() != nil {
				return
			}
		case r := <-hm.kf:
			err := h.sendMediaNotify(voiceproto.NotifyKeyFrame, r.track, "layer", strconv.Itoa(r.layer))
			if err != nil && ctx.Err() != nil {
				return
			}
		case <-tick.C:
			now := h.g.cfg.Now()
			rtt, _ := h.sess.RTT()
			var out []nk
			hm.mu.Lock()
			for f, pf := range hm.pubs {
				if rtt > 0 {
					pf.nack.SetRTT(rtt)
				}
				if rep := pf.reportLocked(now); rep != nil {
					out = append(out, nk{flow: f, rep: rep})
				}
				buf = pf.nack.Nacks(now, buf[:0])
				if len(buf) == 0 {
					continue
				}
				s := make([]uint64, len(buf))
				for i, q := range buf {
					s[i] = uint64(uint16(q))
				}
				out = append(out, nk{flow: f, seqs: s})
			}
			hm.mu.Unlock()
			for _, n := range out {
				if n.rep != nil {
					if err := h.sess.SendFlow(n.flow, n.rep, protocol.ClassMedia); err != nil && ctx.Err() != nil {
						return
					}
					continue
				}
				if err := h.sess.SendNack(&wire.Nack{Flow: n.flow, Seqs: n.seqs}); err != nil && ctx.Err() != nil {
					return
				}
			}
			h.uplinkTick(now)
		}
	}
}

// mediaDetach ends the session's bindings after its loops have ended, and
// tells the rooms service that the session left the rooms it had media in
// (a lost gateway loses only its own participants; they rejoin elsewhere).
func (h *host) mediaDetach() {
	m, hm := h.g.media, h.media
	m.mu.Lock()
	hm.mu.Lock()
	for f, df := range hm.downs {
		h.unbindDownLocked(f, df)
	}
	for f, pf := range hm.pubs {
		delete(hm.pubs, f)
		m.dropTrackLocked(pf.t)
	}
	rooms := hm.rooms
	hm.rooms = map[string]struct{}{}
	hm.mu.Unlock()
	m.mu.Unlock()
	if h.auth.User == "" || h.g.ctx.Err() != nil {
		return
	}
	for room := range rooms {
		ctx, cancel := context.WithTimeout(core.WithIdentity(context.Background(), h.coreIdentity()), h.g.cfg.CoreTimeout)
		_, err := h.g.cluster.client.Command(ctx, room, voiceproto.Service,
			voiceproto.Marshal(voiceproto.Request{Op: voiceproto.OpLeave, Room: room}))
		cancel()
		if err != nil && !errors.Is(err, context.Canceled) && jsperr.CodeOf(err) != jsperr.NotInRoom && jsperr.CodeOf(err) != jsperr.RoomNotFound {
			h.log.Debug("voice leave on session end", "room", room, "err", err)
		}
	}
}

// sendMediaNotify sends the publisher a voice NOTIFY about one of its
// tracks (route service voice, class media): typ with the track and one
// more header. A failure to draw an id skips the notice (nil error); a
// send error is returned.
func (h *host) sendMediaNotify(typ, track, key, value string) error {
	id := make([]byte, 16)
	if _, err := io.ReadFull(h.g.cfg.Rand, id); err != nil {
		return nil
	}
	return h.sess.SendEnvelope(wire.FrameNotify, &wire.Envelope{
		ID:      id,
		Route:   wire.Route{Kind: wire.RouteService, Name: voiceproto.Service},
		Kind:    wire.KindNotification,
		Class:   protocol.ClassMedia,
		Headers: map[string]string{"type": typ, "track": track, key: value},
	})
}
