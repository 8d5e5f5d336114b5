package gateway

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/sfu"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
)

// TestDynacastOrigin: layers pause after DynacastPauseDelay unwanted,
// resume at once, and remote wants count per gateway until they expire.
func TestDynacastOrigin(t *testing.T) {
	now := time.Unix(100, 0)
	f, err := sfu.New(sfu.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	info := voiceproto.Track{ID: "v", Kind: voiceproto.KindVideo,
		Layers: []voiceproto.Layer{{Width: 320, Height: 180, Bitrate: 1e5}, {Width: 640, Height: 360, Bitrate: 3e5}, {Width: 1280, Height: 720, Bitrate: 9e5}}}
	tr, err := f.Publish(sfu.TrackConfig{ID: "v", Kind: sfu.KindVideo, Layers: layersOf(info)})
	if err != nil {
		t.Fatal(err)
	}
	mt := &mediaTrack{id: "v", tr: tr, info: info, local: true}
	step := func(d time.Duration) (voiceproto.LayerMask, bool) {
		now = now.Add(d)
		return mt.dynacastOrigin(now)
	}
	// Nobody watches: nothing changes before the delay, then all pause.
	if _, ch := step(0); ch {
		t.Fatal("changed at once")
	}
	if _, ch := step(DynacastPauseDelay / 2); ch {
		t.Fatal("changed before the delay")
	}
	if m, ch := step(DynacastPauseDelay / 2); !ch || m != 0 {
		t.Fatalf("after the delay: %v %v", m, ch)
	}
	// A local subscriber (target: the lowest layer) resumes layer 0 at
	// once.
	d, err := f.Subscribe("v", sfu.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if m, ch := step(0); !ch || m != 1 {
		t.Fatalf("local subscriber: %v %v", m, ch)
	}
	// Gateway b wants layer 2: it resumes at once.
	if !mt.onWant(wantBody(4, "gwb"), now) {
		t.Fatal("new remote layer not reported")
	}
	if m, ch := step(0); !ch || m != 5 {
		t.Fatalf("remote want: %v %v", m, ch)
	}
	// Gateway b renews with layer 0 only: layer 2 pauses after the delay.
	mt.onWant(wantBody(1, "gwb"), now)
	if _, ch := step(time.Millisecond); ch {
		t.Fatal("paused at once")
	}
	if m, ch := step(DynacastPauseDelay); !ch || m != 1 {
		t.Fatalf("after b's change: %v %v", m, ch)
	}
	// An empty want (an older gateway) wants every layer; it expires
	// after wantTTL and the subscriber leaves: all pause.
	mt.onWant(nil, now)
	if m, ch := step(0); !ch || m != 7 {
		t.Fatalf("empty want: %v %v", m, ch)
	}
	d.Close()
	step(wantTTL + time.Millisecond)
	if m, ch := step(DynacastPauseDelay); !ch || m != 0 {
		t.Fatalf("after expiry: %v %v", m, ch)
	}
}

// TestDynacastRemoteCap: wants from more gateways than maxRemoteWants
// keep every layer on rather than growing the table.
func TestDynacastRemoteCap(t *testing.T) {
	now := time.Unix(100, 0)
	mt := &mediaTrack{}
	for i := range maxRemoteWants {
		mt.onWant(wantBody(1, string(rune('a'+i))), now)
	}
	if !mt.onWant(wantBody(1, "one too many"), now) {
		t.Fatal("overflow not reported as new layers")
	}
	mt.dyn.mu.Lock()
	m, n := mt.dyn.remoteMaskLocked(now), len(mt.dyn.remote)
	mt.dyn.mu.Unlock()
	if m != voiceproto.AllLayers(voiceproto.MaxLayers) || n != maxRemoteWants {
		t.Fatalf("mask %v, %d entries", m, n)
	}
}
