package bwe

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// layerSim is a simulcast forwarder sending one of three layers (30
// frames/s, packets of at most 1,000 bytes, timestamps on the 90 kHz
// clock) over a rate-limited simnet link to a ReceiveEstimator, whose
// estimate drives a selector with the forwarder's rules: up when the
// estimate covers a layer x 1.15 for 2 s, down after 300 ms under the
// current layer, the switch itself at the next key frame (every 100 ms
// here). Everything runs in virtual time with 1 ms steps.
type layerSim struct {
	t      *testing.T
	rx     *ReceiveEstimator
	layers []Bitrate
	links  []*simnet.Link // the newest carries new packets; older ones drain
	now    time.Time
	start  time.Time
	seq    uint16
	frame  int
	cur    int // layer being sent
	target int
	upAt   time.Time
	downAt time.Time
	lastUp time.Time
	est    Bitrate
	trace  []layerSample
}

type layerSample struct {
	at    time.Duration
	layer int
	est   Bitrate
}

func newLayerSim(t *testing.T, layers []Bitrate, rate int64) *layerSim {
	rx, err := NewReceiveEstimator(ReceiveConfig{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	rx.SetRTT(40 * time.Millisecond)
	s := &layerSim{t: t, rx: rx, layers: layers, now: time.Unix(5000, 0)}
	s.start = s.now
	s.est = rx.Estimate()
	s.setRate(rate)
	return s
}

func (s *layerSim) setRate(bytesPerSec int64) {
	l, err := simnet.NewLink(simnet.Config{Delay: 20 * time.Millisecond, Rate: bytesPerSec, Seed: uint64(len(s.links) + 1)})
	if err != nil {
		s.t.Fatal(err)
	}
	s.links = append(s.links, l)
}

func (s *layerSim) selectLayer() {
	// Up: the highest layer the estimate covers with margin, held 2 s.
	up := 0
	for i, r := range s.layers {
		if float64(r)*DefaultUpFactor <= float64(s.est) {
			up = i
		}
	}
	switch {
	case up > s.target:
		if s.upAt.IsZero() {
			s.upAt = s.now
		}
		if s.now.Sub(s.upAt) >= 2*time.Second {
			s.target, s.upAt = up, time.Time{}
		}
	default:
		s.upAt = time.Time{}
	}
	if s.layers[s.target] > s.est {
		if s.downAt.IsZero() {
			s.downAt = s.now
		}
		if s.now.Sub(s.downAt) >= 300*time.Millisecond {
			s.target, s.downAt = min(up, s.target), time.Time{}
		}
	} else {
		s.downAt = time.Time{}
	}
}

func (s *layerSim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		el := s.now.Sub(s.start)
		// 30 frames/s: frame f is due at f x 33.3 ms.
		if due := time.Duration(s.frame) * time.Second / 30; el >= due {
			if s.frame%3 == 0 && s.cur != s.target {
				s.cur = s.target // a key frame of the target layer
			}
			size := int(s.layers[s.cur] / 8 / 30)
			ts := uint32(uint64(due) * 90_000 / uint64(time.Second))
			for size > 0 {
				n := min(size, 1000)
				size -= n
				pkt := make([]byte, n+7)
				pkt[1], pkt[2] = byte(s.seq>>8), byte(s.seq)
				pkt[3], pkt[4], pkt[5], pkt[6] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
				s.seq++
				s.links[len(s.links)-1].Send(pkt, s.now)
			}
			s.frame++
		}
		for _, l := range s.links {
			for _, p := range l.Deliver(s.now) {
				seq := mediapkt.Seq(uint16(p.Data[1])<<8 | uint16(p.Data[2]))
				ts := uint32(p.Data[3])<<24 | uint32(p.Data[4])<<16 | uint32(p.Data[5])<<8 | uint32(p.Data[6])
				s.rx.OnPacket(seq, ts, len(p.Data), p.At)
			}
		}
		if el%(50*time.Millisecond) == 0 {
			s.est = s.rx.Update(s.now)
			s.selectLayer()
			s.trace = append(s.trace, layerSample{at: el, layer: s.cur, est: s.est})
		}
		s.now = s.now.Add(time.Millisecond)
	}
}

// first returns the first sample at or after from satisfying ok, or -1.
func (s *layerSim) first(from time.Duration, ok func(layerSample) bool) time.Duration {
	for _, x := range s.trace {
		if x.at >= from && ok(x) {
			return x.at - from
		}
	}
	return -1
}

// share returns the fraction of samples in [from, to) satisfying ok.
func (s *layerSim) share(from, to time.Duration, ok func(layerSample) bool) float64 {
	n, k := 0, 0
	for _, x := range s.trace {
		if x.at >= from && x.at < to {
			n++
			if ok(x) {
				k++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return float64(k) / float64(n)
}

// TestReceiveEstimatorFollowsLimit: layers 150k/450k/1.2M; the link is
// 5 Mbit/s for 20 s, 600 kbit/s for 20 s, then 5 Mbit/s again. Bounds:
// the top layer within 12 s of the start; after the drop the estimate is
// at or under the limit within 2 s and the layer at most 1 within 3 s,
// and it stays there (at least 75 % of the rest of the phase, probes
// included); back up, the top layer within 12 s.
func TestReceiveEstimatorFollowsLimit(t *testing.T) {
	const phase = 20 * time.Second
	layers := []Bitrate{150 * Kbps, 450 * Kbps, 1200 * Kbps}
	s := newLayerSim(t, layers, int64(5*Mbps/8))
	s.run(phase)
	s.setRate(int64(600 * Kbps / 8))
	s.run(phase)
	s.setRate(int64(5 * Mbps / 8))
	s.run(phase)

	top := func(x layerSample) bool { return x.layer == 2 }
	rampUp := s.first(0, top)
	estDown := s.first(phase, func(x layerSample) bool { return x.est <= 600*Kbps })
	layerDown := s.first(phase, func(x layerSample) bool { return x.layer <= 1 })
	lowShare := s.share(phase+3*time.Second, 2*phase, func(x layerSample) bool { return x.layer <= 1 })
	estInBounds := s.share(phase+3*time.Second, 2*phase, func(x layerSample) bool { return x.est >= 300*Kbps && x.est <= 1.2*600*Kbps })
	backUp := s.first(2*phase, top)
	st := s.rx.Stats()
	t.Logf("top layer after %v; limit 600k: estimate <= limit after %v, layer <= 1 after %v, layer <= 1 %.0f%% and estimate in 300k..720k %.0f%% of the rest; limit lifted: top layer after %v",
		rampUp, estDown, layerDown, 100*lowShare, 100*estInBounds, backUp)
	t.Logf("probes %d (ok %d, failed %d, timed out %d), congestions %d", st.Probes, st.ProbesOK, st.ProbesFailed, st.ProbesTimeout, st.Congestions)
	switch {
	case rampUp < 0 || rampUp > 12*time.Second:
		t.Errorf("top layer after %v, want <= 12 s", rampUp)
	case estDown < 0 || estDown > 2*time.Second:
		t.Errorf("estimate under the limit after %v, want <= 2 s", estDown)
	case layerDown < 0 || layerDown > 3*time.Second:
		t.Errorf("layer down after %v, want <= 3 s", layerDown)
	case lowShare < 0.75:
		t.Errorf("layer <= 1 only %.0f%% of the limited phase", 100*lowShare)
	case backUp < 0 || backUp > 12*time.Second:
		t.Errorf("top layer %v after the limit was lifted, want <= 12 s", backUp)
	}
}

func TestReceiveEstimatorAppLimitedHolds(t *testing.T) {
	// One layer far under a fast link: the estimate never falls to the
	// 1.5 x incoming cap of the GCC estimator, and no probe starts
	// without layers.
	s := newLayerSim(t, []Bitrate{100 * Kbps}, int64(5*Mbps/8))
	s.rx.cfg.Layers = nil
	s.run(10 * time.Second)
	if e := s.rx.Estimate(); e < DefaultInitialBitrate {
		t.Errorf("app-limited estimate %v fell under the initial %v", e, DefaultInitialBitrate)
	}
	if st := s.rx.Stats(); st.Probes != 0 || st.Congestions != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestReceiveConfigLimits(t *testing.T) {
	cases := []struct {
		name string
		cfg  ReceiveConfig
	}{
		{"clock", ReceiveConfig{ClockRate: -1}},
		{"up factor", ReceiveConfig{UpFactor: 0.5}},
		{"probe timeout", ReceiveConfig{ProbeTimeout: -1}},
		{"backoff under probe after", ReceiveConfig{ProbeAfter: time.Minute, MaxProbeBackoff: time.Second}},
		{"pending", ReceiveConfig{MaxPending: -1}},
		{"falling layers", ReceiveConfig{Layers: []Bitrate{500 * Kbps, 100 * Kbps}}},
		{"zero layer", ReceiveConfig{Layers: []Bitrate{0}}},
		{"estimator", ReceiveConfig{Estimator: Config{Beta: 2}}},
	}
	for _, c := range cases {
		if _, err := NewReceiveEstimator(c.cfg); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	r, err := NewReceiveEstimator(ReceiveConfig{MaxPending: 4})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1, 0)
	for i := range 10 {
		r.OnPacket(mediapkt.Seq(i), uint32(i*3000), 100, at)
	}
	if st := r.Stats(); st.Overflows == 0 {
		t.Error("MaxPending not enforced")
	}
	if err := r.SetLayers([]Bitrate{2, 1}); err == nil {
		t.Error("SetLayers accepted falling rates")
	}
}

func TestReceiveEstimatorRepairGrace(t *testing.T) {
	for _, c := range []struct {
		name     string
		repair   bool
		wait     time.Duration
		wantLost uint64
		wantPkts uint64
	}{
		{"repaired in time", true, 200 * time.Millisecond, 0, 9},
		{"never repaired", false, 200 * time.Millisecond, 1, 10},
		{"verdict waits for the grace", false, 50 * time.Millisecond, 0, 5},
	} {
		r, err := NewReceiveEstimator(ReceiveConfig{})
		if err != nil {
			t.Fatal(err)
		}
		at := time.Unix(100, 0)
		for i := range 10 {
			if i == 5 {
				continue
			}
			r.OnPacket(mediapkt.Seq(i), uint32(i*3000), 500, at.Add(time.Duration(i)*33*time.Millisecond))
		}
		if c.repair {
			r.OnRepair(5)
		}
		r.Update(at.Add(6*33*time.Millisecond + c.wait))
		m := r.Stats().Measured
		if m.Lost != c.wantLost || m.Packets != c.wantPkts {
			t.Errorf("%s: lost %d of %d results, want %d of %d", c.name, m.Lost, m.Packets, c.wantLost, c.wantPkts)
		}
	}
}
