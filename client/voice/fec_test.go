package voice_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/media"
)

// TestFECThroughGateway: with media.CapFEC offered by both clients and
// 10 % loss on both links, NACK off: the gateway reports alice's uplink
// loss so that her sender adds parity, rebuilds lost packets from it, and
// sends bob parity of its own, from which bob rebuilds what his downlink
// lost.
func TestFECThroughGateway(t *testing.T) {
	cl := newCluster(t, 1)
	ctx := ctxT(t)
	caps := []string{media.CapFEC}
	up := simnet.Config{Loss: 0.10, Delay: 10 * time.Millisecond, Seed: 9}
	down := simnet.Config{Loss: 0.10, Delay: 10 * time.Millisecond, Seed: 7}
	opts := voice.Options{DisableNACK: true}
	alice, err := voice.Join(ctx, cl.connectCaps("alice", 0, &up, caps), "fec", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	bob, err := voice.Join(ctx, cl.connectCaps("bob", 0, &down, caps), "fec", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	var frames atomic.Int64
	rt, err := bob.Subscribe(ctx, mic.ID(), func(media.ReceivedFrame) { frames.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	const n = 150
	start := time.Now()
	for i := range n {
		if err := mic.WriteFrame(0, media.Frame{Timestamp: uint32(i * 960), Payload: make([]byte, 60)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
	time.Sleep(300 * time.Millisecond)
	st, pub := rt.Stats().Raw, mic.Stats()[0]
	t.Logf("bob: %d frames of %d, %+v", frames.Load(), n, st)
	t.Logf("alice: %+v", pub)
	if pub.Reports == 0 || pub.Parity == 0 {
		t.Fatalf("alice's sender got %d reports from the gateway and sent %d parity packets", pub.Reports, pub.Parity)
	}
	if st.Reports == 0 || st.Parity == 0 || st.RecoveredFEC == 0 {
		t.Fatalf("bob sent %d reports, got %d parity packets, rebuilt %d", st.Reports, st.Parity, st.RecoveredFEC)
	}
	// Two 10 % links lose about 19 %; FEC leaves much less.
	if share := float64(frames.Load()) / n; share < 0.85 {
		t.Errorf("bob played %.2f of the frames", share)
	}
	// The room's forwarder shows on the gateway's /metrics.
	if c := cl.gws[0].SFUCounters(); c.Forwarded() == 0 {
		t.Errorf("gateway SFU counters: nothing forwarded")
	}
	var page strings.Builder
	if err := cl.gws[0].WriteMetrics(&page); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"jsp_sfu_packets_forwarded_total", "jsp_sfu_packets_dropped_total", "jsp_sfu_fec_parity_total"} {
		if n := strings.Count(page.String(), "\n"+name+" "); n != 1 {
			t.Errorf("/metrics has %s %d times, want once", name, n)
		}
	}
}
