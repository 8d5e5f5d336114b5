// Package voice is the Room API of the Go SDK for voice/video rooms
// (spec/JSP-voice.md) on top of a *client.Client: join a room, publish
// tracks and push encoded frames, subscribe to other participants' tracks
// and get whole frames after the jitter buffer, per-track statistics and
// the room's events.
//
//	c, _ := client.Dial(ctx, url, client.Options{Credentials: ...})
//	room, _ := voice.Join(ctx, c, "standup", voice.Options{OnEvent: show})
//	mic, _ := room.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
//	mic.WriteFrame(0, media.Frame{Timestamp: ts, Payload: opusPacket})
//	sub, _ := room.Subscribe(ctx, trackID, func(f media.ReceivedFrame) { play(f) })
//	st := sub.Stats()   // bitrate, loss, recovered, late, jitter
//
// The SDK does not encode: frames are Opus, VP8, H.264, AV1... as the app
// produced them. Each published layer and each subscription is one media
// flow of the client's session, run by one media.Mux (sequence numbers,
// NACK, adaptive FEC when both sides offer media.CapFEC, fragmentation,
// jitter buffer, JSP §13). Room signalling is COMMANDs to the core service
// "voice" routed by the room id; flow bindings are COMMANDs to the
// gateway's "voice.media" service; events arrive on the room's channel.
//
// Simulcast subscriptions estimate their own bandwidth and report it to
// the gateway, which picks the layer (estimate.go); publishers get the
// gateway's uplink estimate as per-layer bitrate hints (hint.go) and give
// audio frames their RFC 6464 levels (level.go).
//
// A Room is bound to the session it joined on: when that session is lost
// the Room's media stops and the app joins again (its participant id
// changes). The Room sets the client's NOTIFY handler (key-frame requests
// arrive as notifications) for as long as it is open.
//
// Goroutines: the Mux's, one that closes it when the session ends and,
// once a simulcast track is subscribed, the estimate loop, all joined by
// Close; event and notification
// handlers run on the client's handler goroutines.
package voice

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/session"
	"github.com/jetstreamproto/jsp/wire"
)

// Kinds and wire types, re-exported.
const (
	KindAudio = voiceproto.KindAudio
	KindVideo = voiceproto.KindVideo
)

type (
	// Kind is a track's media kind.
	Kind = voiceproto.Kind
	// Layer is a simulcast layer.
	Layer = voiceproto.Layer
	// Track describes a published track.
	Track = voiceproto.Track
	// Participant is a member of the room.
	Participant = voiceproto.Participant
	// Event is a room event.
	Event = voiceproto.Event
)

// Media clocks (JSP §13.2).
const (
	AudioClockRate = 48_000
	VideoClockRate = 90_000
)

// Options configures a Room. Zero fields take their defaults.
type Options struct {
	// OnEvent receives the room's events (participants, tracks, mute,
	// speakers, quality). Default: none.
	OnEvent func(Event)
	// MinDelay and MaxDelay bound the jitter buffer of subscriptions.
	// Defaults media.DefaultMinDelay and media.DefaultMaxDelay.
	MinDelay, MaxDelay time.Duration
	// DisableNACK turns off retransmissions: subscriptions send no NACK
	// and published tracks answer none.
	DisableNACK bool
	// DisableFEC keeps published tracks free of FEC parity.
	DisableFEC bool
	// Create creates the room with these permissions before joining
	// (ROOM_EXISTS is ignored). Default: join, which creates the room
	// with the default permissions if the server allows it.
	Create bool
	// Permissions are the room's permissions when Create is set.
	Permissions map[voiceproto.Action]voiceproto.Role
	// DisableEstimate turns off the automatic bandwidth estimation of
	// simulcast subscriptions (estimate.go); the app then calls
	// RemoteTrack.SetEstimate itself.
	DisableEstimate bool
	// InitialEstimate is a simulcast subscription's estimate before any
	// measurement. Default bwe.DefaultInitialBitrate.
	InitialEstimate bwe.Bitrate
	// EstimateInterval is how often estimates are reported. Default
	// DefaultEstimateInterval.
	EstimateInterval time.Duration
	// MaxProbeBackoff caps the wait between layer probes after failed
	// ones: shorter finds a path that came back sooner, at the cost of
	// more excursions to a layer it cannot carry. Default
	// bwe.DefaultMaxProbeBackoff.
	MaxProbeBackoff time.Duration
}

// Room is a joined room.
type Room struct {
	c    *client.Client
	id   string
	opts Options
	me   Participant
	mux  *media.Mux
	sub  *client.Subscription

	maxFrame int
	// done ends the watch goroutine; wg joins it.
	done chan struct{}
	// sessDone is closed when the session the Room joined on ends.
	sessDone <-chan struct{}
	wg       sync.WaitGroup

	mu         sync.Mutex
	nextFlow   wire.FlowID                  // guarded by mu
	locals     map[string]*LocalTrack       // guarded by mu, by track id
	remotes    map[string]*RemoteTrack      // guarded by mu, by track id
	estimated  map[wire.FlowID]*RemoteTrack // guarded by mu: subscriptions with an estimator, by flow
	estimating bool                         // guarded by mu: the estimate loop runs
	closed     bool                         // guarded by mu
}

// ErrClosed is returned by calls on a closed Room.
var ErrClosed = errors.New("voice: room closed")

// Join joins room on c's current session.
func Join(ctx context.Context, c *client.Client, room string, opts Options) (*Room, error) {
	if err := voiceproto.ValidID("room", room); err != nil {
		return nil, err
	}
	r := &Room{c: c, id: room, opts: opts, nextFlow: session.FirstMediaFlow,
		locals: map[string]*LocalTrack{}, remotes: map[string]*RemoteTrack{}, estimated: map[wire.FlowID]*RemoteTrack{}}
	if opts.Create {
		_, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpCreate, Permissions: opts.Permissions})
		if err != nil && jsperr.CodeOf(err) != jsperr.RoomExists {
			return nil, err
		}
	}
	resp, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpJoin})
	if err != nil {
		return nil, err
	}
	if resp.Participant == nil {
		return nil, fmt.Errorf("voice: join %q: reply without participant", room)
	}
	r.me = *resp.Participant
	r.maxFrame = resp.MaxFrameBytes
	if r.maxFrame <= 0 {
		r.maxFrame = voiceproto.DefaultMaxFrameBytes
	}
	sess := c.Session()
	if sess == nil {
		return nil, fmt.Errorf("voice: join %q: no session", room)
	}
	if err := c.OnNotify(r.onNotify); err != nil {
		return nil, fmt.Errorf("voice: join %q: %w", room, err)
	}
	r.sub, err = c.Subscribe(ctx, voiceproto.Channel(room), r.onEvent)
	if err != nil {
		_ = c.OnNotify(nil)
		_, _ = r.do(context.WithoutCancel(ctx), voiceproto.Service, voiceproto.Request{Op: voiceproto.OpLeave})
		return nil, fmt.Errorf("voice: events of %q: %w", room, err)
	}
	r.sessDone = sess.Context().Done()
	r.mux = media.NewMux(arrivalTap{Session: sess, r: r}, media.MuxConfig{})
	r.done = make(chan struct{})
	r.wg.Add(1)
	go func() {
		// The media stops with the session it runs on.
		defer r.wg.Done()
		select {
		case <-sess.Context().Done():
		case <-r.done:
		}
		_ = r.mux.Close()
	}()
	return r, nil
}

// ID returns the room id.
func (r *Room) ID() string { return r.id }

// Me returns the caller's participant.
func (r *Room) Me() Participant { return r.me }

// MaxFrameBytes is the room's frame limit.
func (r *Room) MaxFrameBytes() int { return r.maxFrame }

func (r *Room) do(ctx context.Context, service string, req voiceproto.Request) (voiceproto.Response, error) {
	req.Room = r.id
	body, err := r.c.CommandWithHeaders(ctx, service, voiceproto.Marshal(req), map[string]string{"key": r.id})
	if err != nil {
		return voiceproto.Response{}, fmt.Errorf("voice %s %s: %w", service, req.Op, err)
	}
	return voiceproto.DecodeResponse(body)
}

func (r *Room) onEvent(e client.Event) {
	ev, err := voiceproto.DecodeEvent(e.Body)
	if err != nil || r.opts.OnEvent == nil {
		return
	}
	r.opts.OnEvent(ev)
}

func (r *Room) onNotify(n client.Notification) {
	if n.Envelope == nil {
		return
	}
	h := n.Envelope.Headers
	r.mu.Lock()
	t := r.locals[h["track"]]
	r.mu.Unlock()
	if t == nil {
		return
	}
	switch h["type"] {
	case voiceproto.NotifyLayers:
		t.layersNotified(h["layers"]) // dynacast.go
	case voiceproto.NotifyBitrate:
		t.bitrateNotified(h["bitrate"]) // hint.go
	case voiceproto.NotifyKeyFrame:
		if layer, err := strconv.Atoi(h["layer"]); err == nil {
			t.keyFrameRequested(layer)
		}
	}
}

// Participants lists the room's participants and their tracks.
func (r *Room) Participants(ctx context.Context) ([]Participant, error) {
	resp, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpList})
	if err != nil {
		return nil, err
	}
	if resp.Room == nil {
		return nil, nil
	}
	return resp.Room.Participants, nil
}

// Mute mutes or unmutes a track (another's needs mute_others; only the
// publisher unmutes).
func (r *Room) Mute(ctx context.Context, track string, muted bool) error {
	_, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpMute, Track: track, Muted: &muted})
	return err
}

// ReportQuality tells the room the caller's connection quality
// ("excellent", "good", "poor", "lost").
func (r *Room) ReportQuality(ctx context.Context, q string) error {
	_, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpQuality, Quality: q})
	return err
}

// End ends the room for everyone (owner only by default).
func (r *Room) End(ctx context.Context) error {
	_, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpEnd})
	return err
}

func (r *Room) flowsLocked(n int) []wire.FlowID {
	out := make([]wire.FlowID, n)
	for i := range out {
		out[i] = r.nextFlow
		r.nextFlow++
	}
	return out
}

// TrackOptions describes a track to publish.
type TrackOptions struct {
	// Name names the track within the participant ("mic", "cam").
	Name string
	// Kind is KindAudio or KindVideo.
	Kind Kind
	// Codec names the encoding ("opus", "vp8", "h264", "av1").
	Codec string
	// Layers are the simulcast layers, lowest first (video); empty means
	// one layer.
	Layers []Layer
	// Muted publishes the track muted.
	Muted bool
}

// LocalTrack is a published track.
type LocalTrack struct {
	r       *Room
	info    Track
	senders []*media.Sender

	mu     sync.Mutex
	onKF   func(layer int)   // guarded by mu
	onHint func(BitrateHint) // guarded by mu
	hint   BitrateHint       // guarded by mu: the latest (hint.go)

	gate layerGate // dynacast.go
}

// PublishTrack publishes a track and binds one media flow per layer.
func (r *Room) PublishTrack(ctx context.Context, o TrackOptions) (*LocalTrack, error) {
	resp, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpPublish, Track: o.Name, Kind: o.Kind,
		Codec: o.Codec, Layers: o.Layers, Muted: &o.Muted})
	if err != nil {
		return nil, err
	}
	if resp.Track == nil {
		return nil, fmt.Errorf("voice: publish %q: reply without track", o.Name)
	}
	t := &LocalTrack{r: r, info: *resp.Track}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	flows := r.flowsLocked(max(len(o.Layers), 1))
	r.locals[t.info.ID] = t
	r.mu.Unlock()
	var ids []uint64
	for _, f := range flows {
		sc := media.SenderConfig{DisableFEC: r.opts.DisableFEC, MaxFrameSize: r.maxFrame}
		if r.opts.DisableNACK {
			// A deadline nothing can meet: every NACK is answered TooLate.
			sc.Deadline = time.Nanosecond
		}
		s, err := r.mux.NewSender(f, sc)
		if err != nil {
			t.closeSenders()
			return nil, fmt.Errorf("voice: publish %q: %w", o.Name, err)
		}
		t.senders = append(t.senders, s)
		ids = append(ids, uint64(f))
	}
	if _, err := r.do(ctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaPublish, Track: t.info.ID, Flows: ids}); err != nil {
		t.closeSenders()
		r.mu.Lock()
		delete(r.locals, t.info.ID)
		r.mu.Unlock()
		_, _ = r.do(context.WithoutCancel(ctx), voiceproto.Service, voiceproto.Request{Op: voiceproto.OpUnpublish, Track: t.info.ID})
		return nil, err
	}
	return t, nil
}

// Info returns the track as published.
func (t *LocalTrack) Info() Track { return t.info }

// ID returns the track id subscribers use.
func (t *LocalTrack) ID() string { return t.info.ID }

// WriteFrame sends one encoded frame on layer (0 for single-layer
// tracks). Frames over the room's MaxFrameBytes are refused. Frames of a
// layer nobody watches are dropped (see LayerActive). opts add per-frame
// extras such as the audio level (WithAudioLevel, WithPCM16; see level.go).
func (t *LocalTrack) WriteFrame(layer int, f media.Frame, opts ...WriteOption) error {
	for _, o := range opts {
		o(&f)
	}
	if layer < 0 || layer >= len(t.senders) {
		return jsperr.Newf(jsperr.BadLayer, "voice: layer %d of %d", layer, len(t.senders))
	}
	if len(f.Payload) > t.r.maxFrame {
		return jsperr.Newf(jsperr.MessageTooLarge, "voice: frame of %d bytes, limit %d", len(f.Payload), t.r.maxFrame)
	}
	if t.skipPaused(layer) {
		return nil // nobody watches the layer (dynacast.go)
	}
	return t.senders[layer].WriteFrame(f)
}

// OnKeyFrameRequest sets the function called when subscribers need a key
// frame of layer; the encoder should produce one soon.
func (t *LocalTrack) OnKeyFrameRequest(f func(layer int)) {
	t.mu.Lock()
	t.onKF = f
	t.mu.Unlock()
}

func (t *LocalTrack) keyFrameRequested(layer int) {
	t.mu.Lock()
	f := t.onKF
	t.mu.Unlock()
	if f != nil {
		f(layer)
	}
}

// Stats returns each layer's sender counters.
func (t *LocalTrack) Stats() []media.SenderStats {
	out := make([]media.SenderStats, len(t.senders))
	for i, s := range t.senders {
		out[i] = s.Stats()
	}
	return out
}

// SetMuted mutes or unmutes the track (the media keeps flowing; muting
// is a signal to the room, the app stops writing frames).
func (t *LocalTrack) SetMuted(ctx context.Context, muted bool) error {
	return t.r.Mute(ctx, t.info.ID, muted)
}

// Unpublish stops the track.
func (t *LocalTrack) Unpublish(ctx context.Context) error {
	t.closeSenders()
	t.r.mu.Lock()
	delete(t.r.locals, t.info.ID)
	t.r.mu.Unlock()
	_, err1 := t.r.do(ctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaUnpublish, Track: t.info.ID})
	_, err2 := t.r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpUnpublish, Track: t.info.ID})
	return errors.Join(err1, err2)
}

func (t *LocalTrack) closeSenders() {
	for _, s := range t.senders {
		_ = s.Close()
	}
}

// RemoteTrack is a subscription to another participant's track.
type RemoteTrack struct {
	r     *Room
	id    string
	flow  wire.FlowID
	rcv   *media.Receiver
	start time.Time

	mu        sync.Mutex
	bytes     uint64    // guarded by mu: payload bytes delivered
	lastBytes uint64    // guarded by mu
	lastAt    time.Time // guarded by mu
	bitrate   float64   // guarded by mu

	reportMu   sync.Mutex // held while an estimate COMMAND is sent (estimate.go); taken before estMu
	estMu      sync.Mutex
	est        *bwe.ReceiveEstimator // guarded by estMu; nil when not estimated
	manual     bool                  // guarded by estMu: the app called SetEstimate
	reports    uint64                // guarded by estMu
	reportErrs uint64                // guarded by estMu
}

// TrackStats are a subscription's statistics.
type TrackStats struct {
	// Bitrate is the delivered payload rate in bit/s since the previous
	// Stats call (or the subscription's start).
	Bitrate float64
	// Frames counts whole frames delivered; Packets source packets
	// received.
	Frames, Packets uint64
	// Lost, RecoveredFEC, RecoveredNACK and Late count source packets
	// (media.ReceiverStats).
	Lost, RecoveredFEC, RecoveredNACK, Late uint64
	// Loss is Lost over all source packets accounted for.
	Loss float64
	// Jitter is the interarrival jitter (RFC 3550); Delay the playout
	// delay.
	Jitter, Delay time.Duration
	// Raw is the receiver's full counters.
	Raw media.ReceiverStats
	// Estimate is the subscription's bandwidth estimate (simulcast
	// tracks with automatic estimation; 0 otherwise, see EstimateStats).
	Estimate bwe.Bitrate
}

// Subscribe receives a track; onFrame gets each whole frame after the
// jitter buffer, in order, on the media clock goroutine (it must not
// block).
func (r *Room) Subscribe(ctx context.Context, track string, onFrame func(media.ReceivedFrame)) (*RemoteTrack, error) {
	if onFrame == nil {
		return nil, errors.New("voice: subscribe: nil frame callback")
	}
	info, err := r.findTrack(ctx, track)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	if r.remotes[track] != nil {
		r.mu.Unlock()
		return nil, jsperr.Newf(jsperr.BadRequest, "voice: subscribed to %q already", track)
	}
	flow := r.flowsLocked(1)[0]
	rt := &RemoteTrack{r: r, id: track, flow: flow, start: time.Now()}
	r.remotes[track] = rt
	r.mu.Unlock()
	rc := media.ReceiverConfig{
		MinDelay: r.opts.MinDelay, MaxDelay: r.opts.MaxDelay, MaxFrameSize: r.maxFrame,
		ClockRate: VideoClockRate, SinglePacketFrames: info.Kind == KindAudio,
		OnFrame: func(f media.ReceivedFrame) {
			rt.mu.Lock()
			rt.bytes += uint64(len(f.Payload))
			rt.mu.Unlock()
			onFrame(f)
		},
	}
	if info.Kind == KindAudio {
		rc.ClockRate = AudioClockRate
	}
	if r.opts.DisableNACK {
		rc.Deadline = time.Nanosecond
	}
	if !r.opts.DisableEstimate && len(info.Layers) > 1 {
		// Before the receiver exists: no packet of the flow is missed.
		r.mu.Lock()
		err = r.startEstimateLocked(rt, info)
		r.mu.Unlock()
		if err != nil {
			r.mu.Lock()
			delete(r.remotes, track)
			r.mu.Unlock()
			return nil, fmt.Errorf("voice: estimator of %q: %w", track, err)
		}
	}
	rt.rcv, err = r.mux.NewReceiver(flow, rc)
	if err == nil {
		_, err = r.do(ctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaSubscribe, Track: track, Flows: []uint64{uint64(flow)}})
	}
	if err != nil {
		if rt.rcv != nil {
			_ = rt.rcv.Close()
		}
		r.mu.Lock()
		delete(r.remotes, track)
		delete(r.estimated, flow)
		r.mu.Unlock()
		return nil, err
	}
	return rt, nil
}

// findTrack looks the track up in the room's participant list.
func (r *Room) findTrack(ctx context.Context, id string) (Track, error) {
	parts, err := r.Participants(ctx)
	if err != nil {
		return Track{}, err
	}
	for _, p := range parts {
		for _, t := range p.Tracks {
			if t.ID == id {
				return t, nil
			}
		}
	}
	return Track{}, jsperr.Newf(jsperr.TrackNotFound, "voice: no track %q in room %q", id, r.id)
}

// ID returns the track id.
func (t *RemoteTrack) ID() string { return t.id }

// Stats returns the subscription's statistics.
func (t *RemoteTrack) Stats() TrackStats {
	st := t.rcv.Stats()
	now := time.Now()
	t.mu.Lock()
	since := t.lastAt
	if since.IsZero() {
		since = t.start
	}
	if d := now.Sub(since); d >= 100*time.Millisecond {
		t.bitrate = float64(t.bytes-t.lastBytes) * 8 / d.Seconds()
		t.lastBytes, t.lastAt = t.bytes, now
	}
	br := t.bitrate
	t.mu.Unlock()
	out := TrackStats{Bitrate: br, Frames: st.Frames, Packets: st.Received, Lost: st.Lost, RecoveredFEC: st.RecoveredFEC,
		RecoveredNACK: st.RecoveredNACK, Late: st.Late, Jitter: st.Jitter, Delay: st.Delay, Raw: st}
	if total := st.Received + st.RecoveredFEC + st.RecoveredNACK + st.Lost; total > 0 {
		out.Loss = float64(st.Lost) / float64(total)
	}
	t.estMu.Lock()
	if t.est != nil {
		out.Estimate = t.est.Estimate()
	}
	t.estMu.Unlock()
	return out
}

// SetEstimate passes the subscriber's bandwidth estimate (bit/s) and
// wanted size to the forwarder, which picks the simulcast layer. Simulcast
// subscriptions are estimated automatically (Options.DisableEstimate);
// calling SetEstimate with a bitrate stops that for this subscription.
func (t *RemoteTrack) SetEstimate(ctx context.Context, bitrate int64, width, height int) error {
	if bitrate > 0 {
		t.reportMu.Lock()
		defer t.reportMu.Unlock()
		t.estMu.Lock()
		t.manual = true
		t.estMu.Unlock()
	}
	_, err := t.r.do(ctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaEstimate, Track: t.id,
		Estimate: bitrate, Width: width, Height: height})
	return err
}

// Unsubscribe stops receiving the track.
func (t *RemoteTrack) Unsubscribe(ctx context.Context) error {
	t.r.mu.Lock()
	delete(t.r.remotes, t.id)
	delete(t.r.estimated, t.flow)
	t.r.mu.Unlock()
	_, err := t.r.do(ctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaUnsubscribe, Track: t.id})
	_ = t.rcv.Close()
	return err
}

// Close leaves the room: it stops the media, ends the event
// subscription and tells the room. It waits for the media goroutines.
func (r *Room) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()
	_, err := r.do(ctx, voiceproto.Service, voiceproto.Request{Op: voiceproto.OpLeave})
	if jsperr.CodeOf(err) == jsperr.RoomNotFound || jsperr.CodeOf(err) == jsperr.NotInRoom {
		err = nil
	}
	_ = r.sub.Unsubscribe(ctx)
	_ = r.c.OnNotify(nil)
	close(r.done)
	r.wg.Wait()
	return err
}
