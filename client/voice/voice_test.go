package voice_test

import (
	"bytes"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/server/gateway"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// TestRoomAcrossGateways: alice and bob on gateway a, carol on gateway b;
// alice publishes audio and a video track whose key frames she sends
// only when asked; bob (same gateway) and carol (relayed over the bus)
// receive both; events, permissions and limits along the way.
func TestRoomAcrossGateways(t *testing.T) {
	cl := newCluster(t, 2)
	ctx := ctxT(t)
	var evA, evC events
	alice, err := voice.Join(ctx, cl.connect("alice", 0, nil), "standup", voice.Options{OnEvent: evA.add, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	bob, err := voice.Join(ctx, cl.connect("bob", 0, nil), "standup", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	carol, err := voice.Join(ctx, cl.connect("carol", 1, nil), "standup", voice.Options{OnEvent: evC.add})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close(ctx)
	waitFor(t, "alice sees carol join", func() bool {
		return evA.has("participant.joined", func(e voice.Event) bool { return e.Participant.User == "carol" })
	})

	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	cam, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8",
		Layers: []voice.Layer{{Width: 160, Height: 90, Bitrate: 100_000}}})
	if err != nil {
		t.Fatal(err)
	}
	var keyWanted atomic.Bool
	cam.OnKeyFrameRequest(func(int) { keyWanted.Store(true) })
	waitFor(t, "carol sees the tracks", func() bool {
		return evC.has("track.published", func(e voice.Event) bool { return e.Track.ID == cam.ID() })
	})
	// Publishing another's track at the media service is refused by the
	// core's grant.
	if _, err := bob.Subscribe(ctx, "nobody/mic", func(media.ReceivedFrame) {}); jsperr.CodeOf(err) != jsperr.TrackNotFound {
		t.Fatalf("subscribe unknown track: %v", err)
	}

	type sink struct {
		mu     sync.Mutex
		frames [][]byte
	}
	subscribe := func(r *voice.Room, track string) (*sink, *voice.RemoteTrack) {
		s := &sink{}
		rt, err := r.Subscribe(ctx, track, func(f media.ReceivedFrame) {
			s.mu.Lock()
			s.frames = append(s.frames, bytes.Clone(f.Payload))
			s.mu.Unlock()
		})
		if err != nil {
			t.Fatalf("subscribe %s: %v", track, err)
		}
		return s, rt
	}
	count := func(s *sink) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.frames)
	}
	bobMic, bobMicT := subscribe(bob, mic.ID())
	carolMic, carolMicT := subscribe(carol, mic.ID())
	carolCam, _ := subscribe(carol, cam.ID())

	// 60 frames of 20 ms: audio every tick, video every other tick.
	const n = 60
	for i := range n {
		f := media.Frame{Timestamp: uint32(i * 960), Payload: bytes.Repeat([]byte{byte(i)}, 60),
			HasAudioLevel: true, AudioLevel: mediapkt.AudioLevel{Voice: true, Level: 10}}
		if err := mic.WriteFrame(0, f); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			// Key frames only on request: carol gets video only if her
			// gateway's request reached alice over the bus.
			key := keyWanted.Swap(false)
			vf := media.Frame{Timestamp: uint32(i * 1800), KeyFrame: key, Payload: bytes.Repeat([]byte{byte(i)}, 3000)}
			if err := cam.WriteFrame(0, vf); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitFor(t, "audio at bob and carol", func() bool { return count(bobMic) >= n-5 && count(carolMic) >= n-5 })
	waitFor(t, "video at carol", func() bool { return count(carolCam) >= 5 })
	// The count may be reached before the last frames are out of the
	// jitter buffer: wait for the last one, then check it.
	waitFor(t, "last audio frame at carol", func() bool {
		carolMic.mu.Lock()
		defer carolMic.mu.Unlock()
		return bytes.Equal(carolMic.frames[len(carolMic.frames)-1], bytes.Repeat([]byte{n - 1}, 60))
	})
	for name, rt := range map[string]*voice.RemoteTrack{"bob": bobMicT, "carol": carolMicT} {
		st := rt.Stats()
		if st.Frames < n-5 || st.Bitrate <= 0 {
			t.Errorf("%s stats %+v", name, st)
		}
		t.Logf("%s mic: frames %d, bitrate %.0f bit/s, lost %d, jitter %v", name, st.Frames, st.Bitrate, st.Lost, st.Jitter)
	}

	// The forwarder at alice's gateway heard her: an active-speaker event.
	waitFor(t, "carol sees alice speak", func() bool {
		return evC.has(string(voiceproto.EvSpeakers), func(e voice.Event) bool {
			return len(e.Speakers) > 0 && e.Speakers[0].Participant == alice.Me().ID
		})
	})

	// Frame limit, layer bounds, permissions.
	if err := mic.WriteFrame(0, media.Frame{Payload: make([]byte, alice.MaxFrameBytes()+1)}); jsperr.CodeOf(err) != jsperr.MessageTooLarge {
		t.Errorf("oversize frame: %v", err)
	}
	if err := mic.WriteFrame(1, media.Frame{Payload: []byte{1}}); jsperr.CodeOf(err) != jsperr.BadLayer {
		t.Errorf("bad layer: %v", err)
	}
	if err := carol.Mute(ctx, mic.ID(), true); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Errorf("carol mutes alice: %v", err)
	}
	if err := carol.End(ctx); jsperr.CodeOf(err) != jsperr.Forbidden {
		t.Errorf("carol ends the room: %v", err)
	}
	if err := mic.SetMuted(ctx, true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol sees the mute", func() bool {
		return evC.has("track.muted", func(e voice.Event) bool { return e.Track.Muted })
	})
	parts, err := carol.Participants(ctx)
	if err != nil || len(parts) != 3 {
		t.Fatalf("participants %v %v", parts, err)
	}
	if err := bob.Close(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol sees bob leave", func() bool {
		return evC.has("participant.left", func(e voice.Event) bool { return e.Participant.User == "bob" })
	})
	if err := alice.End(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol sees the end", func() bool { return evC.has(string(voiceproto.EvEnded), nil) })
}

// TestMediaBindingLimit: a session binds at most gateway.MaxMediaBindings
// flows; the next binding is refused with TOO_MANY_ROOM_TRACKS.
func TestMediaBindingLimit(t *testing.T) {
	cl := newCluster(t, 1)
	ctx := ctxT(t)
	a, err := voice.Join(ctx, cl.connect("alice", 0, nil), "r", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	mic, err := a.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	bc := cl.connect("bob", 0, nil)
	b, err := voice.Join(ctx, bc, "r", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	sub := func(flow uint64) error {
		req := voiceproto.Request{Op: voiceproto.MediaSubscribe, Room: "r", Track: mic.ID(), Flows: []uint64{flow}}
		_, err := bc.CommandWithHeaders(ctx, voiceproto.MediaService, voiceproto.Marshal(req), map[string]string{"key": "r"})
		return err
	}
	for i := range gateway.MaxMediaBindings {
		if err := sub(uint64(100 + i)); err != nil {
			t.Fatalf("binding %d: %v", i, err)
		}
	}
	if err := sub(1000); jsperr.CodeOf(err) != jsperr.TooManyRoomTracks {
		t.Fatalf("binding over the limit: %v", err)
	}
	if err := sub(100); jsperr.CodeOf(err) != jsperr.TooManyRoomTracks && jsperr.CodeOf(err) != jsperr.BadRequest {
		t.Fatalf("flow bound twice: %v", err)
	}
}
