package voice_test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
)

// TestDynacast: alice (gateway a) publishes three video layers. With
// nobody watching, the publisher stops sending all of them; carol
// (gateway b, across the bus) subscribes and gets layer 0 back, and only
// it; bob (gateway a) asks for the top layer with a high estimate and
// gets layer 2 back, with a key-frame request for it; layer 1, which
// nobody watches, stays paused throughout. Packets are counted at the
// publisher.
func TestDynacast(t *testing.T) {
	cl := newCluster(t, 2)
	ctx := ctxT(t)
	alice, err := voice.Join(ctx, cl.connect("alice", 0, nil), "dyn", voice.Options{Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	cam, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8",
		Layers: []voice.Layer{{Width: 320, Height: 180, Bitrate: 100_000}, {Width: 640, Height: 360, Bitrate: 300_000},
			{Width: 1280, Height: 720, Bitrate: 900_000}}})
	if err != nil {
		t.Fatal(err)
	}
	var kf [3]atomic.Bool
	var kfAfterPause [3]atomic.Int32
	var pausedOnce atomic.Bool
	cam.OnKeyFrameRequest(func(l int) {
		kf[l].Store(true)
		if pausedOnce.Load() {
			kfAfterPause[l].Add(1)
		}
	})
	var changes atomic.Int32
	cam.OnLayersChanged(func([]bool) { changes.Add(1) })

	// The camera: a frame on every active layer each 30 ms, key frames
	// when asked and every 30th frame.
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(30 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
			for l := range 3 {
				key := kf[l].Swap(false) || i%30 == 0
				f := media.Frame{Timestamp: uint32(i * 2700), KeyFrame: key, Payload: bytes.Repeat([]byte{byte(l)}, 200*(l+1))}
				if err := cam.WriteFrame(l, f); err != nil {
					t.Errorf("write layer %d: %v", l, err)
					return
				}
			}
		}
	}()
	defer func() { stop(); wg.Wait() }()

	packets := func() (out [3]uint64) {
		for l, st := range cam.Stats() {
			out[l] = st.Packets
		}
		return out
	}
	// growing reports which layers gain packets over 400 ms.
	growing := func() (out [3]bool) {
		a := packets()
		time.Sleep(400 * time.Millisecond)
		b := packets()
		for l := range out {
			out[l] = b[l] > a[l]
		}
		return out
	}

	// Nobody watches: every layer pauses after the gateway's delay.
	waitFor(t, "all layers paused", func() bool { return !cam.LayerActive(0) && !cam.LayerActive(1) && !cam.LayerActive(2) })
	pausedOnce.Store(true)
	if g := growing(); g != [3]bool{} {
		t.Fatalf("paused layers still sent: %v", g)
	}
	if p := cam.PausedFrames(); p[0] == 0 || p[2] == 0 {
		t.Fatalf("paused frames %v", p)
	}

	// Carol on the other gateway watches the lowest layer.
	carol, err := voice.Join(ctx, cl.connect("carol", 1, nil), "dyn", voice.Options{DisableEstimate: true}) // the test sets estimates itself
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close(ctx)
	var carolFrames atomic.Int64
	if _, err := carol.Subscribe(ctx, cam.ID(), func(media.ReceivedFrame) { carolFrames.Add(1) }); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "layer 0 resumed for carol", func() bool { return cam.LayerActive(0) })
	waitFor(t, "frames at carol", func() bool { return carolFrames.Load() > 5 })
	if g := growing(); g != [3]bool{true, false, false} {
		t.Fatalf("with carol on layer 0, layers sent: %v", g)
	}
	if kfAfterPause[0].Load() == 0 {
		t.Fatal("no key-frame request on resuming layer 0")
	}

	// Bob on alice's gateway wants the top layer.
	bob, err := voice.Join(ctx, cl.connect("bob", 0, nil), "dyn", voice.Options{DisableEstimate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	var bobTop atomic.Int64
	rt, err := bob.Subscribe(ctx, cam.ID(), func(f media.ReceivedFrame) {
		if len(f.Payload) == 600 {
			bobTop.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "layer 2 resumed for bob", func() bool {
		// The selector moves up after holding the estimate (2 s).
		if err := rt.SetEstimate(ctx, 5_000_000, 0, 0); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		return cam.LayerActive(2)
	})
	waitFor(t, "top layer at bob", func() bool { return bobTop.Load() > 3 })
	if kfAfterPause[2].Load() == 0 {
		t.Fatal("no key-frame request on resuming layer 2")
	}
	if g := growing(); !g[0] || g[1] || !g[2] {
		t.Fatalf("with carol on 0 and bob on 2, layers sent: %v", g)
	}
	if cam.LayerActive(1) || changes.Load() < 3 {
		t.Fatalf("layer 1 active %v, %d changes", cam.LayerActive(1), changes.Load())
	}
}
