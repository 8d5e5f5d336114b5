package bwe

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
)

// sim runs a paced sender at the estimator's target through a simulated
// link, with feedback every 50 ms that reaches the sender after the return
// delay. Everything happens in virtual time with 1 ms steps.
type sim struct {
	t        *testing.T
	est      *Estimator
	links    []*simnet.Link // the newest carries new packets; older ones drain
	now      time.Time
	nextSend time.Time
	seq      uint64
	sent     map[uint64]PacketResult
	arrived  map[uint64]time.Time
	fbFrom   uint64 // first seq not yet reported
	highest  uint64
	anyArr   bool
	queue    []fb // feedback in flight back to the sender
	lastFb   time.Time
	size     int
	back     time.Duration
	samples  []sample
}

type fb struct {
	at   time.Time
	pkts []PacketResult
}

type sample struct {
	at     time.Duration
	target Bitrate
}

func newSim(t *testing.T, link simnet.Config, cfg Config) *sim {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{t: t, est: e, now: time.Unix(1000, 0), sent: map[uint64]PacketResult{}, arrived: map[uint64]time.Time{}, size: 1000, back: link.Delay}
	s.nextSend = s.now
	s.setLink(link)
	e.SetRTT(2 * link.Delay)
	return s
}

func (s *sim) setLink(cfg simnet.Config) {
	l, err := simnet.NewLink(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	s.links = append(s.links, l)
}

func (s *sim) elapsed() time.Duration { return s.now.Sub(time.Unix(1000, 0)) }

func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.now.Before(end) {
		s.step()
		s.now = s.now.Add(time.Millisecond)
	}
}

func (s *sim) step() {
	target := s.est.Target()
	for !s.nextSend.After(s.now) {
		b := make([]byte, s.size)
		b[0], b[1], b[2], b[3] = byte(s.seq>>24), byte(s.seq>>16), byte(s.seq>>8), byte(s.seq)
		s.links[len(s.links)-1].Send(b, s.now)
		s.sent[s.seq] = PacketResult{SendTime: s.now, Size: s.size}
		s.seq++
		s.nextSend = s.nextSend.Add(time.Duration(float64(s.size*8) / float64(target) * float64(time.Second)))
	}
	for _, l := range s.links {
		for _, p := range l.Deliver(s.now) {
			q := uint64(p.Data[0])<<24 | uint64(p.Data[1])<<16 | uint64(p.Data[2])<<8 | uint64(p.Data[3])
			s.arrived[q] = p.At
			if !s.anyArr || q > s.highest {
				s.highest, s.anyArr = q, true
			}
		}
	}
	if s.now.Sub(s.lastFb) >= 50*time.Millisecond && s.anyArr {
		s.lastFb = s.now
		var pkts []PacketResult
		for q := s.fbFrom; q <= s.highest; q++ {
			r := s.sent[q]
			r.Arrival = s.arrived[q]
			pkts = append(pkts, r)
			delete(s.sent, q)
			delete(s.arrived, q)
		}
		s.fbFrom = s.highest + 1
		s.queue = append(s.queue, fb{at: s.now.Add(s.back), pkts: pkts})
	}
	for len(s.queue) > 0 && !s.queue[0].at.After(s.now) {
		if _, err := s.est.OnFeedback(s.now, s.queue[0].pkts); err != nil {
			s.t.Fatal(err)
		}
		s.queue = s.queue[1:]
		s.samples = append(s.samples, sample{s.elapsed(), s.est.Target()})
	}
}

// window returns the min, mean and max target over [from, to).
func (s *sim) window(from, to time.Duration) (lo, mean, hi Bitrate) {
	var sum float64
	n := 0
	lo = 1 << 62
	for _, x := range s.samples {
		if x.at >= from && x.at < to {
			lo, hi = min(lo, x.target), max(hi, x.target)
			sum += float64(x.target)
			n++
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	return lo, Bitrate(sum / float64(n)), hi
}

// The convergence bound the estimator is held to once settled: the mean
// target over the window lies within ±15 % of the link rate, and every
// sample within -30 % / +15 %. The asymmetry is AIMD's sawtooth: each
// overuse cuts to 0.85 x the measured incoming rate, which is itself at or
// a little under the link rate, and the rate then climbs back.
const (
	boundMean = 0.15
	boundLow  = 0.30
	boundHigh = 0.15
)

func within(t *testing.T, phase string, lo, mean, hi, link Bitrate) {
	t.Helper()
	t.Logf("%s: link %v, target min %v mean %v max %v", phase, link, lo, mean, hi)
	f := func(x float64) Bitrate { return Bitrate(float64(link) * x) }
	if mean < f(1-boundMean) || mean > f(1+boundMean) {
		t.Errorf("%s: mean target %v outside %v ±%.0f%%", phase, mean, link, boundMean*100)
	}
	if lo < f(1-boundLow) || hi > f(1+boundHigh) {
		t.Errorf("%s: target %v..%v outside %v..%v", phase, lo, hi, f(1-boundLow), f(1+boundHigh))
	}
}

// TestConvergeDropRecover: a 1 Mbit/s link with 20 ms one-way delay; the
// rate drops to 500 kbit/s at 20 s and comes back at 40 s.
func TestConvergeDropRecover(t *testing.T) {
	for _, jitter := range []time.Duration{0, 3 * time.Millisecond} {
		t.Run(fmt.Sprintf("jitter=%v", jitter), func(t *testing.T) { convergeDropRecover(t, jitter) })
	}
}

func convergeDropRecover(t *testing.T, jitter time.Duration) {
	link := func(rate Bitrate, seed uint64) simnet.Config {
		return simnet.Config{Seed: seed, Delay: 20 * time.Millisecond, Jitter: jitter, Rate: int64(rate / 8), QueueDelay: 300 * time.Millisecond}
	}
	s := newSim(t, link(Mbps, 1), Config{})
	s.run(20 * time.Second)
	lo, mean, hi := s.window(12*time.Second, 20*time.Second)
	within(t, "1 Mbit/s, 12-20 s", lo, mean, hi, Mbps)

	s.setLink(link(500*Kbps, 2))
	s.run(20 * time.Second)
	lo, mean, hi = s.window(30*time.Second, 40*time.Second)
	within(t, "500 kbit/s, 30-40 s", lo, mean, hi, 500*Kbps)
	// Follows the drop within 2 s.
	if _, _, hi := s.window(22*time.Second, 24*time.Second); hi > 600*Kbps {
		t.Errorf("2 s after the drop the target is still up to %v", hi)
	}

	s.setLink(link(Mbps, 3))
	s.run(25 * time.Second)
	lo, mean, hi = s.window(55*time.Second, 65*time.Second)
	within(t, "back to 1 Mbit/s, 55-65 s", lo, mean, hi, Mbps)
	st := s.est.Stats()
	t.Logf("stats: %+v", st)
}

// firstReach returns when the target first reached x after from.
func (s *sim) firstReach(from time.Duration, pred func(Bitrate) bool) time.Duration {
	for _, x := range s.samples {
		if x.at >= from && pred(x.target) {
			return x.at
		}
	}
	return -1
}

// TestConvergenceTimes reports how long each phase takes to settle and
// holds it to 16 s from the 300 kbit/s start (8 %/s growth, GCC's rate),
// 2 s after a drop and 10 s after recovery.
func TestConvergenceTimes(t *testing.T) {
	link := func(rate Bitrate, seed uint64) simnet.Config {
		return simnet.Config{Seed: seed, Delay: 20 * time.Millisecond, Rate: int64(rate / 8), QueueDelay: 300 * time.Millisecond}
	}
	s := newSim(t, link(Mbps, 1), Config{})
	s.run(20 * time.Second)
	up := s.firstReach(0, func(b Bitrate) bool { return b >= 800*Kbps })
	s.setLink(link(500*Kbps, 2))
	s.run(20 * time.Second)
	down := s.firstReach(20*time.Second, func(b Bitrate) bool { return b <= 600*Kbps }) - 20*time.Second
	s.setLink(link(Mbps, 3))
	s.run(20 * time.Second)
	rec := s.firstReach(40*time.Second, func(b Bitrate) bool { return b >= 800*Kbps }) - 40*time.Second
	t.Logf("start to 80%% of 1 Mbit/s: %v; drop to 500k, under 600k after %v; recovery to 800k after %v", up, down, rec)
	if up < 0 || up > 16*time.Second || down < 0 || down > 2*time.Second || rec < 0 || rec > 10*time.Second {
		t.Fatalf("slow convergence: start %v, drop %v, recovery %v", up, down, rec)
	}
	// A higher initial rate (for example from a probe) shortens the start.
	s = newSim(t, link(Mbps, 1), Config{InitialBitrate: 800 * Kbps})
	s.run(5 * time.Second)
	lo, mean, hi := s.window(2*time.Second, 5*time.Second)
	within(t, "started from a probe at 800k, 2-5 s", lo, mean, hi, Mbps)
}

// TestLossBased: a link with 20 % random loss and no rate limit; the
// loss controller must hold the target far below what the delay-based
// controller alone would allow.
func TestLossBased(t *testing.T) {
	s := newSim(t, simnet.Config{Seed: 5, Delay: 20 * time.Millisecond, Loss: 0.20}, Config{})
	s.run(10 * time.Second)
	st := s.est.Stats()
	t.Logf("20%% loss: %+v", st)
	if st.Target > DefaultInitialBitrate || st.LossFraction < 0.1 {
		t.Fatalf("target %v with loss %v", st.Target, st.LossFraction)
	}
	// Light loss (1 %) does not hold the rate back.
	s = newSim(t, simnet.Config{Seed: 6, Delay: 20 * time.Millisecond, Loss: 0.01}, Config{})
	s.run(10 * time.Second)
	if st := s.est.Stats(); st.Target <= DefaultInitialBitrate {
		t.Fatalf("1%% loss: target %v did not grow", st.Target)
	}
}

func TestConfigAndLimits(t *testing.T) {
	bad := []Config{
		{MinBitrate: -1},
		{MinBitrate: 2 * Mbps, MaxBitrate: Mbps},
		{InitialBitrate: 50 * Mbps},
		{TrendWindow: 1},
		{Beta: 1},
		{LossLow: 0.5, LossHigh: 0.2},
		{RateWindow: -1},
		{LossMinPackets: -1},
	}
	for _, c := range bad {
		if _, err := New(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	e, err := New(Config{MaxFeedbackPackets: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.OnFeedback(time.Now(), make([]PacketResult, 4)); !errors.Is(err, ErrTooManyResults) {
		t.Fatalf("batch over the limit: %v", err)
	}
	if _, err := e.OnFeedback(time.Now(), make([]PacketResult, 3)); err != nil {
		t.Fatalf("batch at the limit: %v", err)
	}
	// The rate meter keeps at most MaxRateSamples arrivals.
	m := rateMeter{window: time.Hour, max: 4}
	now := time.Unix(0, 0)
	for i := range 10 {
		m.add(now.Add(time.Duration(i)), 100)
	}
	if len(m.at) != 4 || m.bytes != 400 {
		t.Fatalf("meter holds %d samples, %d bytes", len(m.at), m.bytes)
	}
	// Bounds hold: no feedback can push the target outside them.
	e, _ = New(Config{MinBitrate: 100 * Kbps, MaxBitrate: 400 * Kbps, InitialBitrate: 300 * Kbps})
	s := &sim{t: t, est: e, now: time.Unix(1000, 0), sent: map[uint64]PacketResult{}, arrived: map[uint64]time.Time{}, size: 1000, back: 10 * time.Millisecond}
	s.nextSend = s.now
	s.setLink(simnet.Config{Delay: 10 * time.Millisecond})
	s.run(20 * time.Second)
	if _, _, hi := s.window(0, time.Hour); hi > 400*Kbps {
		t.Fatalf("target %v over MaxBitrate", hi)
	}
}
