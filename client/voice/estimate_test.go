package voice_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/client/voice"
	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/transport/tlsconf"
)

// rateProxy is a UDP relay for one client whose two directions each go
// through a simnet link with a rate limit the test changes while the call
// runs (lossyproxy's links are fixed at start): a new link takes the new
// packets, older ones drain.
type rateProxy struct {
	conn   *net.UDPConn // client-facing
	up     *net.UDPConn // connected to the gateway
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	toCli  *ratePath
	toSrv  *ratePath

	mu     sync.Mutex
	client *net.UDPAddr // guarded by mu
}

// ratePath is one direction.
type ratePath struct {
	wake  chan struct{}
	mu    sync.Mutex
	links []*simnet.Link // guarded by mu
}

func (r *ratePath) setRate(bitsPerSec int64) {
	l, err := simnet.NewLink(simnet.Config{Delay: 10 * time.Millisecond, Rate: bitsPerSec / 8, Seed: 7})
	if err != nil {
		panic(err)
	}
	r.mu.Lock()
	r.links = append(r.links, l)
	r.mu.Unlock()
}

func (r *ratePath) send(pkt []byte) {
	r.mu.Lock()
	r.links[len(r.links)-1].Send(pkt, time.Now())
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *ratePath) deliver(ctx context.Context, write func([]byte)) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		wait := time.Hour
		var out []simnet.Packet
		r.mu.Lock()
		for _, l := range r.links {
			out = append(out, l.Deliver(now)...)
			if at, ok := l.NextDelivery(); ok {
				wait = min(wait, at.Sub(now))
			}
		}
		r.mu.Unlock()
		for _, pkt := range out {
			write(pkt.Data)
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-r.wake:
		}
	}
}

func newRateProxy(t *testing.T, target string) *rateProxy {
	t.Helper()
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	up, err := net.DialUDP("udp", nil, taddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &rateProxy{conn: conn, up: up, ctx: ctx, cancel: cancel,
		toCli: &ratePath{wake: make(chan struct{}, 1)}, toSrv: &ratePath{wake: make(chan struct{}, 1)}}
	p.toCli.setRate(0)
	p.toSrv.setRate(0)
	p.wg.Go(p.readClient)
	p.wg.Go(p.readServer)
	p.wg.Go(func() {
		p.toCli.deliver(ctx, func(b []byte) {
			p.mu.Lock()
			addr := p.client
			p.mu.Unlock()
			if addr != nil {
				_, _ = p.conn.WriteToUDP(b, addr)
			}
		})
	})
	p.wg.Go(func() { p.toSrv.deliver(ctx, func(b []byte) { _, _ = p.up.Write(b) }) })
	t.Cleanup(p.close)
	return p
}

// setRate limits the downlink to bitsPerSec (0: unlimited), with 10 ms of
// delay and the default 200 ms queue; setUpRate the uplink.
func (p *rateProxy) setRate(bitsPerSec int64)   { p.toCli.setRate(bitsPerSec) }
func (p *rateProxy) setUpRate(bitsPerSec int64) { p.toSrv.setRate(bitsPerSec) }

func (p *rateProxy) readClient() {
	buf := make([]byte, 2048)
	for {
		n, addr, err := p.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.client = addr
		p.mu.Unlock()
		p.toSrv.send(buf[:n])
	}
}

func (p *rateProxy) readServer() {
	buf := make([]byte, 2048)
	for {
		n, err := p.up.Read(buf)
		if err != nil {
			return
		}
		p.toCli.send(buf[:n])
	}
}

func (p *rateProxy) close() {
	p.cancel()
	_ = p.conn.Close()
	_ = p.up.Close()
	p.wg.Wait()
}

// TestAutoEstimateFollowsRateLimit: alice publishes three synthetic video
// layers (60k, 180k, 540k at 30 frames/s, each frame's first byte its
// layer); bob subscribes through a link whose rate the test sets, and
// never calls SetEstimate. Bounds: layer 2 within 8 s unlimited; at
// 300 kbit/s bob's estimate is at or under the limit within 4 s, his
// layer at most 1 within 4 s and for 60 % of the rest of the phase;
// unlimited again, layer 2 within 12 s. A loaded machine shows scheduling
// delays as congestion now and then; the bounds leave room for one such
// false step.
func TestAutoEstimateFollowsRateLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("a 30-second real-time call")
	}
	cl := newCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pub, err := voice.Join(ctx, cl.connect("alice", 0, nil), "bw", voice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(ctx)
	rates := []int64{60_000, 180_000, 540_000}
	cam, err := pub.PublishTrack(ctx, voice.TrackOptions{Name: "cam", Kind: voice.KindVideo, Codec: "vp8", Layers: []voice.Layer{
		{Width: 160, Height: 90, Bitrate: rates[0]}, {Width: 320, Height: 180, Bitrate: rates[1]}, {Width: 640, Height: 360, Bitrate: rates[2]}}})
	if err != nil {
		t.Fatal(err)
	}
	var kfMu sync.Mutex
	kfWanted := [3]bool{true, true, true}
	cam.OnKeyFrameRequest(func(l int) {
		kfMu.Lock()
		if l >= 0 && l < 3 {
			kfWanted[l] = true
		}
		kfMu.Unlock()
	})

	g := cl.gws[0]
	proxy := newRateProxy(t, g.Addrs().QUIC.String())
	o := client.Options{Pins: []tlsconf.Fingerprint{g.Cert().Pin}, Logger: quiet()}
	o.Info.Auth = []byte("bob")
	bc, err := client.Dial(ctx, "jsp+quic://"+proxy.conn.LocalAddr().String(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer bc.Close()
	// Probes at most 4 s apart: the call is short, and the limited phase
	// makes probes fail.
	sub, err := voice.Join(ctx, bc, "bw", voice.Options{MinDelay: 50 * time.Millisecond, MaxProbeBackoff: 4 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close(ctx)
	type sample struct {
		at    time.Duration
		layer int
		est   bwe.Bitrate
	}
	var (
		mu      sync.Mutex
		layer   = -1
		samples []sample
	)
	rt, err := sub.Subscribe(ctx, cam.ID(), func(f media.ReceivedFrame) {
		if len(f.Payload) > 0 {
			mu.Lock()
			layer = int(f.Payload[0])
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	// The publisher: 30 frames/s on every layer, a key frame per layer
	// every 2 s or when asked.
	start := time.Now()
	stop := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Go(func() {
		tick := time.NewTicker(time.Second / 30)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			ts := uint32(time.Since(start) * voice.VideoClockRate / time.Second)
			for l, r := range rates {
				kfMu.Lock()
				key := kfWanted[l] || i%60 == 0
				kfWanted[l] = false
				kfMu.Unlock()
				p := make([]byte, r/8/30)
				p[0] = byte(l)
				if err := cam.WriteFrame(l, media.Frame{Timestamp: ts, KeyFrame: key, Payload: p}); err != nil {
					return
				}
			}
		}
	})
	defer func() { close(stop); pubWG.Wait() }()

	// Sample bob's layer and estimate every 100 ms through the phases.
	phase := func(d time.Duration) {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			samples = append(samples, sample{at: time.Since(start), layer: layer, est: rt.Stats().Estimate})
			mu.Unlock()
		}
	}
	const limit = 300_000
	phase(8 * time.Second)
	t1 := time.Since(start)
	proxy.setRate(limit)
	phase(8 * time.Second)
	t2 := time.Since(start)
	proxy.setRate(0)
	phase(12 * time.Second)

	mu.Lock()
	defer mu.Unlock()
	first := func(from time.Duration, ok func(sample) bool) time.Duration {
		for _, s := range samples {
			if s.at >= from && ok(s) {
				return s.at - from
			}
		}
		return -1
	}
	share := func(from, to time.Duration, ok func(sample) bool) float64 {
		n, k := 0, 0
		for _, s := range samples {
			if s.at >= from && s.at < to {
				n++
				if ok(s) {
					k++
				}
			}
		}
		return float64(k) / float64(max(n, 1))
	}
	for i, s := range samples {
		if i%5 == 0 {
			t.Logf("%5.1fs layer %d estimate %v", s.at.Seconds(), s.layer, s.est)
		}
	}
	top := func(s sample) bool { return s.layer == 2 }
	rampUp := first(0, top)
	// The estimate must leave the top layer's reach. It need not fall
	// under the limit itself: once the layer is down the flow is
	// app-limited below the limit, so nothing congests further (one
	// halving from 652 to 326 kbit/s is enough here).
	estDown := first(t1, func(s sample) bool { return s.est > 0 && s.est < bwe.Bitrate(rates[2]) })
	layerDown := first(t1, func(s sample) bool { return s.layer >= 0 && s.layer <= 1 })
	lowShare := share(t1+4*time.Second, t2, func(s sample) bool { return s.layer <= 1 })
	backUp := first(t2, top)
	es := rt.EstimateStats()
	t.Logf("layer 2 after %v; limit %d bit/s: estimate under the top layer after %v, layer <= 1 after %v, layer <= 1 %.0f%% of the rest of the phase; unlimited: layer 2 after %v",
		rampUp, limit, estDown, layerDown, 100*lowShare, backUp)
	t.Logf("estimate %v, %d reports (%d failed), probes %d (ok %d, failed %d, timed out %d), congestions %d; stats %+v",
		es.Estimate, es.Reports, es.ReportErrors, es.Receive.Probes, es.Receive.ProbesOK, es.Receive.ProbesFailed, es.Receive.ProbesTimeout, es.Receive.Congestions, rt.Stats())
	if !es.Enabled || es.Reports == 0 {
		t.Fatalf("no automatic estimate reports: %+v", es)
	}
	// The tap before the Mux leaves the subscription's counters whole:
	// every source packet is accounted for once.
	st := rt.Stats()
	if st.Packets == 0 || st.Frames == 0 || st.Estimate != es.Estimate || st.Raw.Malformed != 0 {
		t.Errorf("subscription stats %+v with estimate %v", st, es.Estimate)
	}
	switch {
	case rampUp < 0 || rampUp > 8*time.Second:
		t.Errorf("layer 2 after %v, want <= 8 s", rampUp)
	case estDown < 0 || estDown > 4*time.Second:
		t.Errorf("estimate under the top layer's rate after %v, want <= 4 s", estDown)
	case layerDown < 0 || layerDown > 4*time.Second:
		t.Errorf("layer <= 1 after %v, want <= 4 s", layerDown)
	case lowShare < 0.6:
		t.Errorf("layer <= 1 only %.0f%% of the limited phase", 100*lowShare)
	case backUp < 0 || backUp > 12*time.Second:
		t.Errorf("layer 2 %v after the limit was lifted, want <= 12 s", backUp)
	}
}
