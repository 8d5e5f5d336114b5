package voice_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// TestBitrateHintFollowsUplink: alice publishes three layers (60k, 180k,
// 540k) through an uplink the test limits to 300 kbit/s after 3 s, and
// applies each hint she gets (every layer at its share). The gateway's
// uplink estimate reaches her as a hint at or under the limit within 3 s
// of the cut, her layers follow it, and the hints stay under 1.2 x the
// limit while it lasts.
func TestBitrateHintFollowsUplink(t *testing.T) {
	if testing.Short() {
		t.Skip("a real-time call")
	}
	cl := newCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	g := cl.gws[0]
	proxy := newRateProxy(t, g.Addrs().QUIC.String())
	o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quiet()}
	o.Info.Auth = []byte("alice")
	ac, err := client.Dial(ctx, "jsp+quic://"+proxy.conn.LocalAddr().String(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	pub, err := voice.Join(ctx, ac, "hint", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	declared := []int64{60_000, 180_000, 540_000}
	cam, err := pub.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8", Layers: []voice.Layer{
		{Width: 160, Height: 90, Bitrate: declared[0]}, {Width: 320, Height: 180, Bitrate: declared[1]}, {Width: 640, Height: 360, Bitrate: declared[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	// A subscriber watches the top layer: a track nobody watches is paused
	// at the publisher (dynacast) and would send nothing to estimate.
	bob, err := voice.Join(ctx, cl.connect("bob", 0, nil), "hint", voice.Options{DisableEstimate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	sub, err := bob.Subscribe(ctx, cam.ID(), func(media.ReceivedFrame) {})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetEstimate(ctx, 5_000_000, 0, 0); err != nil {
		t.Fatal(err)
	}
	type hintAt struct {
		at time.Duration
		h  voice.BitrateHint
	}
	var (
		mu    sync.Mutex
		rates = []bwe.Bitrate{60_000, 180_000, 540_000}
		hints []hintAt
	)
	start := time.Now()
	cam.OnBitrateHint(func(h voice.BitrateHint) {
		mu.Lock()
		defer mu.Unlock()
		hints = append(hints, hintAt{time.Since(start), h})
		copy(rates, h.Layers)
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ts := uint32(time.Since(start) * voice.VideoClockRate / time.Second)
			mu.Lock()
			cur := append([]bwe.Bitrate(nil), rates...)
			mu.Unlock()
			for l, r := range cur {
				n := int(r / 8 / 30)
				if n == 0 {
					continue // the hint paused this layer
				}
				if err := cam.WriteFrame(l, media.Frame{Timestamp: ts, KeyFrame: i%60 == 0, Payload: make([]byte, n)}); err != nil {
					return
				}
			}
		}
	})
	defer func() { close(stop); wg.Wait() }()

	const limit = 300_000
	time.Sleep(3 * time.Second)
	cut := time.Since(start)
	proxy.setUpRate(limit)
	time.Sleep(7 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	under, over := time.Duration(-1), 0
	for _, h := range hints {
		t.Logf("%5.1fs hint %v layers %v", h.at.Seconds(), h.h.Estimate, h.h.Layers)
		if h.at < cut {
			continue
		}
		if under < 0 && h.h.Estimate <= limit {
			under = h.at - cut
		}
		if under >= 0 && h.h.Estimate > limit*1.2 {
			over++
		}
	}
	h, ok := cam.BitrateHint()
	t.Logf("hint at or under %d bit/s %v after the cut; %d hints over 1.2 x the limit after it; last %+v", limit, under, over, h)
	switch {
	case !ok:
		t.Fatal("no bitrate hint")
	case under < 0 || under > 3*time.Second:
		t.Errorf("hint under the limit after %v, want <= 3 s", under)
	case over > 0:
		t.Errorf("%d hints over 1.2 x the limit after the estimate reached it", over)
	}
}
