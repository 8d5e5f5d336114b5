package voice_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/server/bus"
)

// lossyRelayBus drops every nth media packet relayed to its gateway.
type lossyRelayBus struct {
	bus.Bus
	n       int64
	seen    atomic.Int64
	dropped atomic.Int64
}

func (b *lossyRelayBus) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	if !strings.HasPrefix(subject, "jspmedia.") || !strings.HasSuffix(subject, ".pkt") {
		return b.Bus.Subscribe(subject, h)
	}
	return b.Bus.Subscribe(subject, func(m *bus.Msg) {
		if b.seen.Add(1)%b.n == 0 {
			b.dropped.Add(1)
			return
		}
		h(m)
	})
}

// TestRelayRepair: the bus loses every 8th packet relayed to gateway b;
// carol there, with NACK off on her own link, still gets every packet:
// gateway b NACKs the gaps to gateway a, which resends them from its
// cache to b alone.
func TestRelayRepair(t *testing.T) {
	var lossy *lossyRelayBus
	cl := newClusterBus(t, 2, func(i int, b bus.Bus) bus.Bus {
		if i == 1 {
			lossy = &lossyRelayBus{Bus: b, n: 8}
			return lossy
		}
		return b
	})
	ctx := ctxT(t)
	opts := voice.Options{DisableNACK: true}
	alice, err := voice.Join(ctx, cl.connect("alice", 0, nil), "relay", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close(ctx)
	carol, err := voice.Join(ctx, cl.connect("carol", 1, nil), "relay", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close(ctx)
	mic, err := alice.PublishTrack(ctx, voice.TrackOptions{Name: "mic", Kind: voice.KindAudio, Codec: "opus"})
	if err != nil {
		t.Fatal(err)
	}
	var frames atomic.Int64
	rt, err := carol.Subscribe(ctx, mic.ID(), func(media.ReceivedFrame) { frames.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	// Let the relay start: packets before it are not carol's to miss.
	time.Sleep(300 * time.Millisecond)
	const n = 100
	start := time.Now()
	for i := range n {
		if err := mic.WriteFrame(0, media.Frame{Timestamp: uint32(i * 960), Payload: []byte{byte(i), 1, 2}}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * 20 * time.Millisecond)))
	}
	// Every packet reaches carol: most in time to play, a repair that
	// comes after its playout turn counts as late (a loaded machine).
	arrived := func() uint64 {
		st := rt.Stats().Raw
		return st.Received + st.RecoveredNACK + st.Late
	}
	deadline := time.Now().Add(5 * time.Second)
	for arrived() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := rt.Stats()
	rs, os := cl.gws[1].RelayRepairStats(), cl.gws[0].RelayRepairStats()
	t.Logf("dropped on the bus %d; relay %+v; origin %+v; carol played %d frames, %+v", lossy.dropped.Load(), rs, os, frames.Load(), st.Raw)
	dropped := uint64(lossy.dropped.Load())
	if dropped < n/8-1 || rs.Nacked < dropped || os.Resent < dropped || rs.Repaired < dropped {
		t.Fatalf("dropped %d, relay %+v, origin %+v", dropped, rs, os)
	}
	if got := arrived(); got < n || st.Lost != 0 {
		t.Fatalf("%d of %d packets reached carol, %d lost", got, n, st.Lost)
	}
	var metrics strings.Builder
	if err := cl.gws[1].WriteMetrics(&metrics); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("jsp_media_relay_repaired_total %d\n", rs.Repaired); !strings.Contains(metrics.String(), want) {
		t.Fatalf("metrics lack %q", want)
	}
}
