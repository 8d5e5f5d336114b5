// Package bwe estimates the bandwidth available to a media sender from its
// receiver's feedback, in the manner of WebRTC's Google Congestion Control
// (draft-ietf-rmcat-gcc-02): a delay-based controller that reads the trend
// of one-way queuing delay, and a loss-based controller that reads the loss
// fraction; the target bitrate is the smaller of the two.
//
// The flow of one feedback batch:
//
//	[]PacketResult (send time, arrival time or lost, size)
//	  |-> rate meter: bytes that arrived in the last 500 ms -> incoming rate
//	  |-> loss controller: lost/total over >= 20 packets -> loss-based rate
//	  '-> packet groups (sent within 5 ms of each other)
//	        -> delay variation d = (arrival gap) - (send gap) between groups
//	        -> trendline: slope of the smoothed accumulated d over the last
//	           20 groups, scaled -> compared with an adaptive threshold
//	        -> usage: normal / overusing / underusing
//	        -> AIMD: increase (8 %/s far from the last known maximum,
//	           additive near it), hold, or decrease to 0.85 x incoming rate
//	target = clamp(min(delay-based, loss-based), MinBitrate, MaxBitrate)
//
// Delay rises as soon as a bottleneck queue starts to fill, long before
// packets are dropped, so the delay-based controller backs off before loss
// appears; the loss-based one catches paths whose queues are short or
// policed. An [Estimator] has no goroutines and no clock: the caller passes
// the time with every call, so tests run it in simulated time
// (internal/simnet).
//
// [ReceiveEstimator] runs the estimator at a flow's receiver, on its own
// arrivals, with a layer controller for simulcast subscribers; and
// [UplinkEstimator] at the receiver of a publisher's layer flows, for
// bitrate hints (see receive.go and uplink.go).
//
// [Prober] and [Reflector] measure a path on demand instead: a train of
// probe datagrams in each direction gives throughput, round-trip time and
// loss (see probe.go).
package bwe

import (
	"fmt"
	"math"
	"time"
)

// Bitrate is a rate in bits per second.
type Bitrate int64

// Common rates.
const (
	Kbps Bitrate = 1000
	Mbps Bitrate = 1000 * Kbps
)

// String formats the rate in kbit/s.
func (b Bitrate) String() string { return fmt.Sprintf("%.1f kbit/s", float64(b)/1000) }

// bytesOver returns the rate of n bytes over d.
func bytesOver(n int64, d time.Duration) Bitrate {
	if d <= 0 {
		return 0
	}
	return Bitrate(float64(n*8) / d.Seconds())
}

// Defaults for zero [Config] fields.
const (
	DefaultInitialBitrate = 300 * Kbps
	DefaultMinBitrate     = 30 * Kbps
	DefaultMaxBitrate     = 20 * Mbps
	// DefaultGroupSpan groups packets sent within 5 ms of a group's
	// first packet: a paced sender's burst, whose arrival spread says
	// nothing about queuing.
	DefaultGroupSpan = 5 * time.Millisecond
	// DefaultTrendWindow is the number of packet groups the trendline
	// regression spans.
	DefaultTrendWindow = 20
	// DefaultRateWindow is the span over which the incoming rate is
	// measured.
	DefaultRateWindow = 500 * time.Millisecond
	// DefaultBeta is the decrease factor applied to the incoming rate on
	// overuse.
	DefaultBeta = 0.85
	// DefaultLossLow and DefaultLossHigh bound the loss fractions under
	// which the loss-based rate grows and over which it shrinks.
	DefaultLossLow  = 0.02
	DefaultLossHigh = 0.10
	// DefaultLossMinPackets is the least number of packets a loss
	// fraction is computed over: fewer is noise.
	DefaultLossMinPackets = 20
	// DefaultInitialRTT is used until SetRTT is called.
	DefaultInitialRTT = 100 * time.Millisecond
	// DefaultMaxRateSamples caps the arrivals the rate meter keeps, so a
	// flood of tiny packets cannot grow memory; past it the oldest are
	// dropped (the rate then reads low, which only slows increases).
	DefaultMaxRateSamples = 8192
	// DefaultMaxFeedbackPackets caps one OnFeedback batch.
	DefaultMaxFeedbackPackets = 4096
)

// Config configures an [Estimator]. Zero fields take their defaults.
type Config struct {
	// InitialBitrate is the target before any feedback. Default
	// DefaultInitialBitrate.
	InitialBitrate Bitrate
	// MinBitrate and MaxBitrate bound the target. Defaults
	// DefaultMinBitrate and DefaultMaxBitrate.
	MinBitrate, MaxBitrate Bitrate
	// GroupSpan: packets sent within it of their group's first packet
	// form one group. Default DefaultGroupSpan.
	GroupSpan time.Duration
	// TrendWindow is the regression window in groups, at least 2.
	// Default DefaultTrendWindow.
	TrendWindow int
	// RateWindow is the incoming-rate measurement span. Default
	// DefaultRateWindow.
	RateWindow time.Duration
	// Beta multiplies the incoming rate on overuse, in (0, 1). Default
	// DefaultBeta.
	Beta float64
	// LossLow and LossHigh are the loss controller's thresholds, 0 <=
	// LossLow < LossHigh <= 1. Defaults DefaultLossLow, DefaultLossHigh.
	LossLow, LossHigh float64
	// LossMinPackets is the least packets per loss measurement. Default
	// DefaultLossMinPackets.
	LossMinPackets int
	// InitialRTT is used until SetRTT. Default DefaultInitialRTT.
	InitialRTT time.Duration
	// MaxRateSamples caps the rate meter. Default DefaultMaxRateSamples.
	MaxRateSamples int
	// MaxFeedbackPackets caps one feedback batch; OnFeedback rejects a
	// larger one. Default DefaultMaxFeedbackPackets.
	MaxFeedbackPackets int
}

func (c *Config) setDefaults() {
	def := func(p *Bitrate, v Bitrate) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.InitialBitrate, DefaultInitialBitrate)
	def(&c.MinBitrate, DefaultMinBitrate)
	def(&c.MaxBitrate, DefaultMaxBitrate)
	if c.GroupSpan == 0 {
		c.GroupSpan = DefaultGroupSpan
	}
	if c.TrendWindow == 0 {
		c.TrendWindow = DefaultTrendWindow
	}
	if c.RateWindow == 0 {
		c.RateWindow = DefaultRateWindow
	}
	if c.Beta == 0 {
		c.Beta = DefaultBeta
	}
	if c.LossLow == 0 && c.LossHigh == 0 {
		c.LossLow, c.LossHigh = DefaultLossLow, DefaultLossHigh
	}
	if c.LossMinPackets == 0 {
		c.LossMinPackets = DefaultLossMinPackets
	}
	if c.InitialRTT == 0 {
		c.InitialRTT = DefaultInitialRTT
	}
	if c.MaxRateSamples == 0 {
		c.MaxRateSamples = DefaultMaxRateSamples
	}
	if c.MaxFeedbackPackets == 0 {
		c.MaxFeedbackPackets = DefaultMaxFeedbackPackets
	}
}

func (c *Config) validate() error {
	switch {
	case c.MinBitrate <= 0 || c.MaxBitrate < c.MinBitrate:
		return fmt.Errorf("bwe: bitrate bounds %v..%v", c.MinBitrate, c.MaxBitrate)
	case c.InitialBitrate < c.MinBitrate || c.InitialBitrate > c.MaxBitrate:
		return fmt.Errorf("bwe: initial bitrate %v outside %v..%v", c.InitialBitrate, c.MinBitrate, c.MaxBitrate)
	case c.GroupSpan < 0 || c.RateWindow <= 0 || c.InitialRTT < 0:
		return fmt.Errorf("bwe: bad durations in config")
	case c.TrendWindow < 2:
		return fmt.Errorf("bwe: TrendWindow %d below 2", c.TrendWindow)
	case !(c.Beta > 0 && c.Beta < 1):
		return fmt.Errorf("bwe: Beta %v outside (0, 1)", c.Beta)
	case !(c.LossLow >= 0 && c.LossLow < c.LossHigh && c.LossHigh <= 1):
		return fmt.Errorf("bwe: loss thresholds %v, %v", c.LossLow, c.LossHigh)
	case c.LossMinPackets < 1 || c.MaxRateSamples < 1 || c.MaxFeedbackPackets < 1:
		return fmt.Errorf("bwe: count limits below 1")
	}
	return nil
}

// PacketResult is what the receiver's feedback says about one packet.
type PacketResult struct {
	// SendTime is when the sender sent it, on the sender's clock.
	SendTime time.Time
	// Arrival is when it arrived, on the receiver's clock; zero when the
	// feedback reports it lost. Only differences between arrivals are
	// used, so the clocks need not agree.
	Arrival time.Time
	// Size is the packet's size in bytes.
	Size int
}

// Lost reports whether the packet was reported lost.
func (p PacketResult) Lost() bool { return p.Arrival.IsZero() }

// Usage is the delay detector's verdict on the path.
type Usage uint8

// Usages.
const (
	Normal Usage = iota
	Overusing
	Underusing
)

// String names the usage.
func (u Usage) String() string { return [...]string{"normal", "overusing", "underusing"}[u] }

// Stats describes an [Estimator]'s state.
type Stats struct {
	Target       Bitrate // the estimate: min of the two controllers, bounded
	DelayBased   Bitrate // the AIMD controller's rate
	LossBased    Bitrate // the loss controller's rate
	Incoming     Bitrate // measured arrival rate, 0 before a full window
	Usage        Usage   // latest detector verdict
	Trend        float64 // latest scaled trend, ms
	Threshold    float64 // adaptive threshold, ms
	LossFraction float64 // latest loss measurement
	Packets      uint64  // packet results processed
	Lost         uint64  // of those, reported lost
	Overuses     uint64  // overuse verdicts that led to a decrease
	LossCuts     uint64  // decreases of the loss-based rate for loss over LossHigh
}

// Estimator turns feedback into a target bitrate. It is not safe for
// concurrent use.
type Estimator struct {
	cfg    Config
	rtt    time.Duration
	groups groupState
	trend  trendline
	det    detector
	aimd   aimd
	loss   lossController
	meter  rateMeter
	stats  Stats
}

// New returns an estimator.
func New(cfg Config) (*Estimator, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &Estimator{cfg: cfg, rtt: cfg.InitialRTT}
	e.trend = newTrendline(cfg.TrendWindow)
	e.det = newDetector()
	e.aimd = aimd{rate: cfg.InitialBitrate, beta: cfg.Beta, min: cfg.MinBitrate, max: cfg.MaxBitrate}
	e.loss = lossController{rate: cfg.InitialBitrate, cfg: &e.cfg}
	e.meter = rateMeter{window: cfg.RateWindow, max: cfg.MaxRateSamples}
	e.stats.Target = cfg.InitialBitrate
	return e, nil
}

// SetRTT tells the estimator the path's round-trip time; it paces
// decreases and sizes additive increases.
func (e *Estimator) SetRTT(d time.Duration) {
	if d > 0 {
		e.rtt = d
	}
}

// Target returns the current target bitrate.
func (e *Estimator) Target() Bitrate { return e.stats.Target }

// Stats returns the estimator's state.
func (e *Estimator) Stats() Stats { return e.stats }

// ErrTooManyResults is returned by OnFeedback for a batch over
// Config.MaxFeedbackPackets.
var ErrTooManyResults = fmt.Errorf("bwe: feedback batch over the limit")

// OnFeedback processes one feedback batch, in the order the packets were
// sent, and returns the new target.
func (e *Estimator) OnFeedback(now time.Time, pkts []PacketResult) (Bitrate, error) {
	if len(pkts) > e.cfg.MaxFeedbackPackets {
		return e.stats.Target, fmt.Errorf("bwe: %d results, limit %d: %w", len(pkts), e.cfg.MaxFeedbackPackets, ErrTooManyResults)
	}
	for _, p := range pkts {
		e.stats.Packets++
		e.loss.observe(p.Lost())
		if p.Lost() {
			e.stats.Lost++
			continue
		}
		e.meter.add(p.Arrival, p.Size)
		if d, ok := e.groups.add(p, e.cfg.GroupSpan); ok {
			t := e.trend.update(d)
			e.stats.Usage = e.det.detect(t, d.arrival)
			e.stats.Trend = t
			e.stats.Threshold = e.det.threshold
		}
	}
	in, ok := e.meter.rate(e.lastArrival())
	if ok {
		e.stats.Incoming = in
	}
	if e.aimd.update(now, e.stats.Usage, in, ok, e.rtt) {
		e.stats.Overuses++
	}
	e.loss.update(now, e.aimd.rate, e.rtt)
	e.stats.DelayBased = e.aimd.rate
	e.stats.LossBased = e.loss.rate
	e.stats.LossFraction = e.loss.last
	e.stats.LossCuts = e.loss.cuts
	t := min(e.aimd.rate, e.loss.rate)
	e.stats.Target = max(e.cfg.MinBitrate, min(e.cfg.MaxBitrate, t))
	return e.stats.Target, nil
}

func (e *Estimator) lastArrival() time.Time { return e.meter.newest() }

// msBetween returns b - a in milliseconds as a float.
func msBetween(a, b time.Time) float64 { return float64(b.Sub(a)) / float64(time.Millisecond) }

// clampF bounds v to [lo, hi].
func clampF(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
