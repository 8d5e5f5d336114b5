package voice_test

import (
	"encoding/binary"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/media"
)

// TestSlowSubscriberLatency: carol's link carries 3,000 bytes/s, under a
// third of alice's audio, so her gateway's writer for her is always
// behind and her queue drops its oldest packets. Bob, on the same
// gateway, sees the same latency (send to playout) with carol subscribed
// as without her. It compares medians measured in one run, with a wide
// margin for a shared machine; the figures are logged.
func TestSlowSubscriberLatency(t *testing.T) {
	cl := newCluster(t, 1)
	ctx := ctxT(t)
	alice, err := voice.Join(ctx, cl.connect("alice", 0, nil), "slow", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	bob, err := voice.Join(ctx, cl.connect("bob", 0, nil), "slow", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	slowLink := simnet.Config{Rate: 3000, Seed: 3}
	carol, err := voice.Join(ctx, cl.connect("carol", 0, &slowLink), "slow", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close(ctx)
	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}

	const n = 75 // frames per phase
	var (
		mu     sync.Mutex
		sentAt = map[uint16]time.Time{}
		lat    [2][]time.Duration
		phase  atomic.Int32
	)
	if _, err := bob.Subscribe(ctx, mic.ID(), func(f media.ReceivedFrame) {
		i := binary.BigEndian.Uint16(f.Payload)
		mu.Lock()
		defer mu.Unlock()
		if at, ok := sentAt[i]; ok {
			p := phase.Load()
			lat[p] = append(lat[p], f.PlayedAt.Sub(at))
		}
	}); err != nil {
		t.Fatal(err)
	}
	var carolFrames atomic.Int64
	next := uint16(0)
	t0 := time.Now()
	send := func() {
		start := time.Now()
		for k := range n {
			p := make([]byte, 200)
			binary.BigEndian.PutUint16(p, next)
			mu.Lock()
			sentAt[next] = time.Now()
			mu.Unlock()
			// Media time follows the wall clock across the pause
			// between the phases, so the playout delay means the same.
			ts := uint32(time.Since(t0) * voice.AudioClockRate / time.Second)
			if err := mic.WriteFrame(0, media.Frame{Timestamp: ts, Payload: p}); err != nil {
				t.Fatal(err)
			}
			next++
			time.Sleep(time.Until(start.Add(time.Duration(k+1) * 20 * time.Millisecond)))
		}
		time.Sleep(300 * time.Millisecond) // the jitter buffer drains
	}
	send()
	phase.Store(1)
	if _, err := carol.Subscribe(ctx, mic.ID(), func(media.ReceivedFrame) { carolFrames.Add(1) }); err != nil {
		t.Fatal(err)
	}
	send()

	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lat[0]) < n*9/10 || len(lat[1]) < n*9/10 {
		t.Fatalf("bob played %d and %d of %d frames", len(lat[0]), len(lat[1]), n)
	}
	m0, m1 := median(lat[0]), median(lat[1])
	t.Logf("bob's median send-to-playout latency: %v alone, %v with the slow subscriber; carol played %d of %d frames",
		m0, m1, carolFrames.Load(), n)
	if carolFrames.Load() > n/2 {
		t.Fatalf("carol is not slow: %d frames of %d", carolFrames.Load(), n)
	}
	if m1 > m0+50*time.Millisecond {
		t.Fatalf("bob's latency rose from %v to %v with a slow subscriber", m0, m1)
	}
}
