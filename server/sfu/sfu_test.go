package sfu

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/testutil"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/media/simulcast"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// clock is a manual clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func packet(t testing.TB, h mediapkt.Header, payload ...byte) []byte {
	t.Helper()
	b, err := mediapkt.AppendPacket(nil, &h, payload)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parse(t testing.TB, b []byte) mediapkt.Header {
	t.Helper()
	h, _, err := mediapkt.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newForwarder(t testing.TB, cfg Config) (*Forwarder, *clock) {
	t.Helper()
	c := newClock()
	cfg.Now = c.Now
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func drain(d *DownTrack) [][]byte {
	var out [][]byte
	for {
		b, ok := d.TryReceive()
		if !ok {
			return out
		}
		out = append(out, b)
	}
}

func TestAudioForwarding(t *testing.T) {
	f, clk := newForwarder(t, Config{})
	tr, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio, Participant: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var subs []*DownTrack
	for i := range 3 {
		d, err := f.Subscribe("a", SubscriberConfig{InitialSeq: mediapkt.Seq(1000 * i), InitialTimestamp: uint32(i)})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, d)
	}
	for i := range 50 {
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: mediapkt.Seq(65500 + i),
			Timestamp: uint32(960 * i), AudioLevel: mediapkt.AudioLevel{Voice: true, Level: 20}}
		if err := tr.WritePacket(0, packet(t, h, byte(i))); err != nil {
			t.Fatal(err)
		}
		clk.Add(20 * time.Millisecond)
	}
	for i, d := range subs {
		got := drain(d)
		if len(got) != 50 {
			t.Fatalf("subscriber %d got %d packets", i, len(got))
		}
		for j, b := range got {
			h := parse(t, b)
			if h.Seq != mediapkt.Seq(1000*i+j) || h.Timestamp != uint32(i+960*j) || b[len(b)-1] != byte(j) || h.AudioLevel.Level != 20 {
				t.Fatalf("subscriber %d packet %d: %+v", i, j, h)
			}
		}
	}
	if list, _ := f.Speakers(); len(list) != 1 || list[0].ID != "alice" {
		t.Fatalf("speakers %v", list)
	}
	if st := tr.Stats(); st.Packets != 50 || st.Subscribers != 3 {
		t.Fatalf("track stats %+v", st)
	}
}

var threeLayers = []simulcast.Layer{
	{Bitrate: 150 * bwe.Kbps, Width: 320, Height: 180},
	{Bitrate: 500 * bwe.Kbps, Width: 640, Height: 360},
	{Bitrate: 1500 * bwe.Kbps, Width: 1280, Height: 720},
}

// publisher sends frames of 2 packets on three layers, key frames when
// asked (or every keyEvery frames).
type publisher struct {
	t      testing.TB
	tr     *Track
	seq    [3]mediapkt.Seq
	frame  int
	wantKF [3]bool
	mu     sync.Mutex
}

func (p *publisher) onKF(layer int) {
	p.mu.Lock()
	p.wantKF[layer] = true
	p.mu.Unlock()
}

func (p *publisher) sendFrame() {
	for l := range 3 {
		p.mu.Lock()
		key := p.wantKF[l] || p.frame == 0
		p.wantKF[l] = false
		p.mu.Unlock()
		for k := range 2 {
			fl := mediapkt.Flags(0)
			if key {
				fl |= mediapkt.FlagKeyFrame
			}
			if k == 1 {
				fl |= mediapkt.FlagEndOfFrame
			}
			h := mediapkt.Header{Flags: fl, Seq: p.seq[l], Timestamp: uint32(l*1_000_000 + 3000*p.frame)}
			p.seq[l]++
			if err := p.tr.WritePacket(l, packet(p.t, h, byte(l))); err != nil {
				p.t.Fatal(err)
			}
		}
	}
	p.frame++
}

func TestSimulcastForwarding(t *testing.T) {
	f, clk := newForwarder(t, Config{KeyFrameInterval: 100 * time.Millisecond})
	p := &publisher{t: t}
	tr, err := f.Publish(TrackConfig{ID: "v", Kind: KindVideo, Layers: threeLayers, OnKeyFrameRequest: p.onKF})
	if err != nil {
		t.Fatal(err)
	}
	p.tr = tr
	d, err := f.Subscribe("v", SubscriberConfig{Selector: simulcast.SelectorConfig{UpHold: -1, DownHold: -1}})
	if err != nil {
		t.Fatal(err)
	}
	// Frame 0 is a key frame on every layer: the subscriber starts on
	// layer 0.
	for range 10 {
		p.sendFrame()
		clk.Add(33 * time.Millisecond)
	}
	d.SetEstimate(3 * bwe.Mbps)
	if st := d.Stats(); st.Target != 2 || st.Current != 0 {
		t.Fatalf("after the estimate: %+v", st)
	}
	for range 10 {
		p.sendFrame()
		clk.Add(33 * time.Millisecond)
	}
	if st := d.Stats(); st.Current != 2 {
		t.Fatalf("no switch to layer 2: %+v", st)
	}
	d.SetEstimate(200 * bwe.Kbps)
	for range 10 {
		p.sendFrame()
		clk.Add(33 * time.Millisecond)
	}
	got := drain(d)
	var last mediapkt.Header
	layersSeen := map[byte]bool{}
	for i, b := range got {
		h := parse(t, b)
		if i > 0 && (h.Seq != last.Seq+1 || int32(h.Timestamp-last.Timestamp) < 0) {
			t.Fatalf("packet %d: seq %d ts %d after %d/%d", i, h.Seq, h.Timestamp, last.Seq, last.Timestamp)
		}
		layersSeen[b[len(b)-1]] = true
		last = h
	}
	if !layersSeen[0] || !layersSeen[2] || layersSeen[1] {
		t.Fatalf("layers seen %v", layersSeen)
	}
	st := tr.Stats()
	// Requests: layer 0 at subscribe, layer 2 on the estimate, layer 0
	// again on the drop (over 100 ms later); repeats in between are
	// suppressed.
	if st.KeyFrameRequests != 3 {
		t.Fatalf("track stats %+v", st)
	}
	if ds := d.Stats(); ds.Current != 0 || ds.Dropped != 0 {
		t.Fatalf("down track %+v", ds)
	}
	w := tr.WantedLayers()
	if !w[0] || w[1] || w[2] {
		t.Fatalf("wanted layers %v", w)
	}
}

// TestKeyFrameRequestFlood: many subscribers joining and a subscriber
// flipping layers produce at most one request per layer per interval.
func TestKeyFrameRequestFlood(t *testing.T) {
	f, clk := newForwarder(t, Config{KeyFrameInterval: 500 * time.Millisecond})
	var n [3]int
	tr, err := f.Publish(TrackConfig{ID: "v", Kind: KindVideo, Layers: threeLayers, OnKeyFrameRequest: func(l int) { n[l]++ }})
	if err != nil {
		t.Fatal(err)
	}
	var subs []*DownTrack
	for range 100 {
		d, err := f.Subscribe("v", SubscriberConfig{Selector: simulcast.SelectorConfig{UpHold: -1, DownHold: -1}})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, d)
	}
	for i := range 100 {
		if i%2 == 0 {
			subs[0].SetEstimate(5 * bwe.Mbps)
		} else {
			subs[0].SetEstimate(100 * bwe.Kbps)
		}
		clk.Add(10 * time.Millisecond) // 1 s in all
	}
	st := tr.Stats()
	t.Logf("requests per layer %v, %+v", n, st)
	if n[0] > 3 || n[2] > 3 || n[1] != 0 || st.KeyFrameSuppressed < 100 {
		t.Fatalf("requests per layer %v, stats %+v", n, st)
	}
}

func TestNack(t *testing.T) {
	f, clk := newForwarder(t, Config{NackRate: 100, NackBurst: 10})
	tr, _ := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	d, _ := f.Subscribe("a", SubscriberConfig{InitialSeq: 500})
	for i := range 40 {
		_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i), Timestamp: uint32(960 * i)}, byte(i)))
	}
	orig := drain(d)
	// A NACK for two sent numbers and one never sent.
	if n := d.OnNack([]mediapkt.Seq{505, 510, 9000}, 50*time.Millisecond); n != 2 {
		t.Fatalf("resent %d", n)
	}
	re := drain(d)
	for i, want := range []int{5, 10} {
		h := parse(t, re[i])
		o := parse(t, orig[want])
		if !h.Flags.Has(mediapkt.FlagRetransmission) || h.Seq != o.Seq || h.Timestamp != o.Timestamp || re[i][len(re[i])-1] != byte(want) {
			t.Fatalf("resend %d: %+v vs %+v", i, h, o)
		}
	}
	// A storm: 1000 numbers at once; the bucket (burst 10, 8 left) caps it.
	storm := make([]mediapkt.Seq, 2000)
	for i := range storm {
		storm[i] = mediapkt.Seq(500 + i%40)
	}
	if n := d.OnNack(storm, 0); n != 8 {
		t.Fatalf("storm resent %d, want the 8 tokens left", n)
	}
	st := d.Stats()
	if st.NackLimited < 1000 || st.NackNotCached != 1 || st.Retransmitted != 10 {
		t.Fatalf("stats %+v", st)
	}
	drain(d)
	// After the deadline, nothing is resent.
	clk.Add(time.Second)
	if n := d.OnNack([]mediapkt.Seq{520}, 0); n != 0 {
		t.Fatalf("resent %d past the deadline", n)
	}
	if st := d.Stats(); st.NackTooLate+st.NackNotCached < 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSlowSubscriber: one subscriber never reads; two others read in
// their own goroutines. The publisher never waits, the readers get every
// packet, and only the slow subscriber loses packets, its oldest.
func TestSlowSubscriber(t *testing.T) {
	f, _ := newForwarder(t, Config{QueuePackets: 64})
	tr, _ := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	slow, _ := f.Subscribe("a", SubscriberConfig{ID: "slow"})
	const n = 5000
	var wg sync.WaitGroup
	counts := make([]int, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var fast []*DownTrack
	for i := range 2 {
		d, _ := f.Subscribe("a", SubscriberConfig{ID: "fast", QueuePackets: n})
		fast = append(fast, d)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := d.Receive(ctx); err != nil {
					return
				}
				counts[i]++
			}
		}()
	}
	for i := range n {
		_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i), Timestamp: uint32(i)}))
	}
	if err := f.Unpublish("a"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for i, c := range counts {
		if c != n {
			t.Fatalf("fast subscriber %d got %d of %d", i, c, n)
		}
		if st := fast[i].Stats(); st.Dropped != 0 {
			t.Fatalf("fast subscriber dropped %d", st.Dropped)
		}
	}
	st := slow.Stats()
	if st.Dropped != n-64 || st.Queued != 64 {
		t.Fatalf("slow subscriber %+v", st)
	}
	// It keeps the newest packets.
	b, err := slow.Receive(ctx)
	if err != nil || parse(t, b).Seq != mediapkt.Seq(n-64) {
		t.Fatalf("oldest kept: %v", err)
	}
	for range 63 {
		if _, err := slow.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := slow.Receive(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after unpublish: %v", err)
	}
}

func TestLimitsAndErrors(t *testing.T) {
	f, _ := newForwarder(t, Config{MaxTracks: 2, MaxSubscribers: 1, MaxPacketSize: 100})
	code := func(err error) jsperr.Code { return jsperr.CodeOf(err) }
	if _, err := f.Publish(TrackConfig{ID: "a", Kind: KindAudio}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		tc   TrackConfig
		want jsperr.Code
	}{
		{TrackConfig{ID: "a", Kind: KindAudio}, jsperr.TrackExists},
		{TrackConfig{ID: "", Kind: KindAudio}, jsperr.BadRequest},
		{TrackConfig{ID: "x", Kind: 9}, jsperr.BadRequest},
		{TrackConfig{ID: "x", Kind: KindAudio, Layers: threeLayers}, jsperr.BadLayer},
		{TrackConfig{ID: "x", Kind: KindVideo, Layers: append(threeLayers, threeLayers[0])}, jsperr.BadLayer},
		{TrackConfig{ID: "x", Kind: KindVideo, Layers: []simulcast.Layer{threeLayers[1], threeLayers[0]}}, jsperr.BadLayer},
	}
	for _, c := range cases {
		if _, err := f.Publish(c.tc); code(err) != c.want {
			t.Errorf("%+v: %v, want %v", c.tc, err, c.want)
		}
	}
	if _, err := f.Publish(TrackConfig{ID: "b", Kind: KindVideo}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Publish(TrackConfig{ID: "c", Kind: KindVideo}); code(err) != jsperr.TooManyTracks {
		t.Fatalf("third track: %v", err)
	}
	if _, err := f.Subscribe("zz", SubscriberConfig{}); code(err) != jsperr.TrackNotFound {
		t.Fatalf("unknown track: %v", err)
	}
	if _, err := f.Subscribe("a", SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Subscribe("a", SubscriberConfig{}); code(err) != jsperr.TooManySubscribers {
		t.Fatalf("second subscriber: %v", err)
	}
	tr, _ := f.Track("a")
	if err := tr.WritePacket(0, make([]byte, 101)); code(err) != jsperr.DatagramTooLarge {
		t.Fatalf("oversize: %v", err)
	}
	if err := tr.WritePacket(1, packet(t, mediapkt.Header{Seq: 1})); code(err) != jsperr.BadLayer {
		t.Fatalf("bad layer: %v", err)
	}
	if err := tr.WritePacket(0, []byte{0x07, 0, 0, 0, 0, 0, 0}); code(err) != jsperr.MalformedFrame {
		t.Fatalf("reserved bits: %v", err)
	}
	parity := packet(t, mediapkt.Header{Flags: mediapkt.FlagFEC, FEC: mediapkt.FECInfo{K: 2, M: 1}})
	if err := tr.WritePacket(0, parity); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.ParityDropped != 1 || st.Refused != 3 {
		t.Fatalf("stats %+v", st)
	}
	if err := f.Unpublish("a"); err != nil {
		t.Fatal(err)
	}
	if err := f.Unpublish("a"); code(err) != jsperr.TrackNotFound {
		t.Fatalf("second unpublish: %v", err)
	}
	if err := tr.WritePacket(0, packet(t, mediapkt.Header{Seq: 1})); code(err) != jsperr.TrackNotFound {
		t.Fatalf("write after unpublish: %v", err)
	}
	bad := []Config{{MaxTracks: -1}, {QueuePackets: -1}, {MaxPacketSize: 3}, {KeyFrameInterval: -1}, {NackRate: -1}}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestSingleLayerVideoWaitsForKeyFrame: a subscriber of plain video gets
// nothing before a key frame and asks for one on joining.
func TestSingleLayerVideoWaitsForKeyFrame(t *testing.T) {
	f, _ := newForwarder(t, Config{})
	asked := 0
	tr, _ := f.Publish(TrackConfig{ID: "v", Kind: KindVideo, OnKeyFrameRequest: func(int) { asked++ }})
	d, _ := f.Subscribe("v", SubscriberConfig{})
	if asked != 1 {
		t.Fatalf("%d key-frame requests on joining", asked)
	}
	_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 1}))
	_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagKeyFrame, Seq: 2}))
	_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagKeyFrame | mediapkt.FlagEndOfFrame, Seq: 3}))
	_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: 4}))
	if got := drain(d); len(got) != 3 {
		t.Fatalf("%d packets, want the key frame's 2 and the next", len(got))
	}
}

func FuzzWritePacket(f *testing.F) {
	f.Add([]byte{0x40, 0, 1, 0, 0, 0, 5, 0xAA}, uint8(0))
	f.Add(packet(f, mediapkt.Header{Flags: mediapkt.FlagKeyFrame | mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: 9, AudioLevel: mediapkt.AudioLevel{Level: 3}}, 1, 2), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, layer uint8) {
		fw, _ := newForwarder(t, Config{QueuePackets: 4})
		tr, _ := fw.Publish(TrackConfig{ID: "v", Kind: KindVideo, Layers: threeLayers, Participant: "p"})
		d, _ := fw.Subscribe("v", SubscriberConfig{})
		for i := range 3 {
			_ = tr.WritePacket(int(layer)%4, b)
			if len(b) > 2 {
				b[2] += byte(i)
			}
		}
		d.OnNack([]mediapkt.Seq{0, 1, 2}, 0)
		for _, p := range drain(d) {
			if _, _, err := mediapkt.ParseHeader(p); err != nil {
				t.Fatalf("forwarded a packet that does not parse: %v", err)
			}
		}
		fw.Speakers()
	})
}

// TestMetrics: counters survive unsubscribing and unpublishing, and the
// output is Prometheus text.
func TestMetrics(t *testing.T) {
	f, _ := newForwarder(t, Config{QueuePackets: 2})
	tr, _ := f.Publish(TrackConfig{ID: "a", Kind: KindAudio})
	d1, _ := f.Subscribe("a", SubscriberConfig{})
	d2, _ := f.Subscribe("a", SubscriberConfig{})
	for i := range 5 {
		_ = tr.WritePacket(0, packet(t, mediapkt.Header{Flags: mediapkt.FlagEndOfFrame, Seq: mediapkt.Seq(i)}))
	}
	d1.Close()
	d1.Close() // a second Close counts nothing twice
	var b strings.Builder
	if err := f.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"jsp_sfu_tracks 1\n", "jsp_sfu_subscriptions 1\n", "jsp_sfu_packets_in_total 5\n",
		"jsp_sfu_packets_forwarded_total 10\n", "jsp_sfu_packets_dropped_total 6\n", "# TYPE jsp_sfu_packets_in_total counter\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in\n%s", want, b.String())
		}
	}
	_ = d2
	_ = f.Unpublish("a")
	b.Reset()
	_ = f.WritePrometheus(&b)
	for _, want := range []string{"jsp_sfu_tracks 0\n", "jsp_sfu_packets_in_total 5\n", "jsp_sfu_packets_forwarded_total 10\n", "jsp_sfu_packets_dropped_total 6\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("after unpublish: missing %q in\n%s", want, b.String())
		}
	}
	// Sums over forwarders: a live one's gauges and counters, plus an
	// ended one's counters without its gauges.
	live := f.Counters()
	var sum Counters
	sum.Add(live)
	sum.Add(live.Retired())
	b.Reset()
	_ = sum.WritePrometheus(&b)
	for _, want := range []string{"jsp_sfu_tracks 0\n", "jsp_sfu_packets_in_total 10\n", "jsp_sfu_packets_forwarded_total 20\n", "jsp_sfu_packets_dropped_total 12\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summed: missing %q in\n%s", want, b.String())
		}
	}
	if sum.Forwarded() != 20 || sum.Dropped() != 12 {
		t.Errorf("summed forwarded %d dropped %d, want 20 and 12", sum.Forwarded(), sum.Dropped())
	}
}
