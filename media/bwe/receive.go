package bwe

import (
	"fmt"
	"sort"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Receive-side estimation (spec/JSP-media.md §13.16): the receiver of a
// media flow runs the [Estimator] on its own arrivals, as the first GCC
// drafts did with REMB, and tells the sender (or the SFU choosing its
// simulcast layer) the estimate, so no arrival feedback has to cross the
// path.
//
//	original source packet (seq, timestamp, size, arrival)
//	  -> pending arrivals; every Update: numbers from the last update to
//	     the newest, each arrived (send time = its media timestamp on
//	     the flow's clock) or lost
//	  -> Estimator.OnFeedback: delay gradient + loss -> measured target
//	  -> layer controller: the estimate that is reported
//
// The media timestamp stands in for the send time: a real-time sender
// sends each frame at its capture time, every packet of a frame has the
// frame's timestamp (one packet group), and a forwarder that switches
// layers keeps timestamps on the wall clock (§13.13). What the estimator
// reads is the change of (arrival gap - timestamp gap) between frames,
// which a constant capture-to-send offset cancels.
//
// A receiver of simulcast is application-limited: it gets the layer the
// forwarder picked, not what the path could carry, and the Estimator
// caps its target at 1.5 x what arrives. Left alone, the estimate of a
// subscriber on a low layer could never reach the next one. The layer
// controller therefore
//
//   - reports the measured target after congestion (an overuse decrease
//     of the delay-based rate, or a cut of the loss-based rate for loss
//     over LossHigh), which is what the path carried, but by at most half
//     per RateWindow (the queue an overload built keeps signalling while
//     it drains, and a stalled receiver measures almost nothing),
//   - otherwise holds the larger of the last report and the measured
//     target (an app-limited flow shows no congestion, which is no
//     reason to lower the estimate),
//   - and, after ProbeAfter without congestion (ProbeHold after the
//     start, at once after a successful probe), probes: it reports just
//     enough for the next layer (its rate x UpFactor x 1.05). The probe
//     succeeds once that layer's rate has arrived for ProbeHold with no
//     congestion (the estimate stays), fails on congestion (the measured
//     target is reported and the next probe waits twice as long, up to
//     MaxProbeBackoff), and ends after ProbeTimeout without congestion
//     also kept, even if the layer's declared rate never arrived (real
//     encoders often send less than they declare).
//
// A ReceiveEstimator is not safe for concurrent use and has no clock: the
// caller passes the time.

// Receive-side defaults, used for zero [ReceiveConfig] fields.
const (
	// DefaultReceiveClockRate is the media clock assumed: 90 kHz video.
	DefaultReceiveClockRate = 90_000
	// DefaultUpFactor is the margin the forwarder's selector wants over a
	// layer's rate before it goes up (media/simulcast.DefaultUpFactor).
	DefaultUpFactor = 1.15
	// DefaultProbeAfter is the quiet time (no congestion) before a probe.
	DefaultProbeAfter = 2 * time.Second
	// DefaultProbeHold is how long the probed rate must arrive without
	// congestion for the probe to succeed.
	DefaultProbeHold = time.Second
	// DefaultLayerProbeTimeout ends a layer probe whose declared rate never
	// arrived; without congestion it is kept. The forwarder holds an
	// up-switch 2 s and then waits for a key frame.
	DefaultLayerProbeTimeout = 6 * time.Second
	// DefaultMaxProbeBackoff caps the wait after failed probes.
	DefaultMaxProbeBackoff = 30 * time.Second
	// DefaultRepairGrace: a repair of an upstream loss through a
	// forwarder takes a NACK round trip on the publisher's side; 100 ms
	// covers it on most paths, and is less than what a repair across a
	// congested bottleneck (with its queue) takes.
	DefaultRepairGrace = 100 * time.Millisecond
	// probeMargin lifts a probe a little over the selector's threshold,
	// so rounding never leaves it just under.
	probeMargin = 1.05
	// probeArrived is the share of a probed layer's rate that must arrive
	// for the layer to count as being received.
	probeArrived = 0.8
)

// ReceiveConfig configures a [ReceiveEstimator]. Zero fields take their
// defaults.
type ReceiveConfig struct {
	// Estimator configures the GCC estimator; its InitialBitrate is also
	// the first estimate reported.
	Estimator Config
	// ClockRate is the flow's media clock in Hz. Default
	// DefaultReceiveClockRate.
	ClockRate int
	// Layers are the rates the sender can switch between (simulcast
	// layers), lowest first; empty means no probes.
	Layers []Bitrate
	// UpFactor is the selector's margin for going up, at least 1.
	// Default DefaultUpFactor.
	UpFactor float64
	// ProbeAfter, ProbeHold, ProbeTimeout and MaxProbeBackoff time the
	// layer probes. Defaults DefaultProbeAfter, DefaultProbeHold,
	// DefaultLayerProbeTimeout and DefaultMaxProbeBackoff.
	ProbeAfter, ProbeHold, ProbeTimeout, MaxProbeBackoff time.Duration
	// MaxPending caps the arrivals held between updates; past it the
	// oldest span is given up. It also caps the repairs remembered.
	// Default DefaultMaxPending.
	MaxPending int
	// RepairGrace is how long after the next packet's arrival a gap
	// waits for a retransmission before it counts as loss (OnRepair).
	// Default DefaultRepairGrace; negative means none.
	RepairGrace time.Duration
}

func (c *ReceiveConfig) setDefaults() {
	c.Estimator.setDefaults()
	if c.ClockRate == 0 {
		c.ClockRate = DefaultReceiveClockRate
	}
	if c.UpFactor == 0 {
		c.UpFactor = DefaultUpFactor
	}
	d := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	d(&c.ProbeAfter, DefaultProbeAfter)
	d(&c.ProbeHold, DefaultProbeHold)
	d(&c.ProbeTimeout, DefaultLayerProbeTimeout)
	d(&c.MaxProbeBackoff, DefaultMaxProbeBackoff)
	if c.MaxPending == 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.RepairGrace == 0 {
		c.RepairGrace = DefaultRepairGrace
	}
	c.RepairGrace = max(c.RepairGrace, 0)
}

func (c *ReceiveConfig) validate() error {
	if err := c.Estimator.validate(); err != nil {
		return err
	}
	switch {
	case c.ClockRate < 1:
		return fmt.Errorf("bwe: ClockRate %d below 1", c.ClockRate)
	case c.UpFactor < 1:
		return fmt.Errorf("bwe: UpFactor %v below 1", c.UpFactor)
	case c.ProbeAfter < 0 || c.ProbeHold < 0 || c.ProbeTimeout <= 0 || c.MaxProbeBackoff < c.ProbeAfter:
		return fmt.Errorf("bwe: probe timing %v/%v/%v/%v", c.ProbeAfter, c.ProbeHold, c.ProbeTimeout, c.MaxProbeBackoff)
	case c.MaxPending < 1:
		return fmt.Errorf("bwe: MaxPending %d below 1", c.MaxPending)
	case len(c.Layers) > 16:
		return fmt.Errorf("bwe: %d layers", len(c.Layers))
	}
	for i, l := range c.Layers {
		if l <= 0 || (i > 0 && l <= c.Layers[i-1]) {
			return fmt.Errorf("bwe: layer rates %v not positive and rising", c.Layers)
		}
	}
	return nil
}

// ReceiveStats describes a [ReceiveEstimator].
type ReceiveStats struct {
	Estimate      Bitrate // what Update last returned
	Measured      Stats   // the GCC estimator's state
	Probing       bool    // a layer probe is under way
	Probes        uint64  // probes started
	ProbesOK      uint64  // of those, succeeded
	ProbesFailed  uint64  // ended by congestion
	ProbesTimeout uint64  // ended without congestion before the probed rate arrived (kept)
	Congestions   uint64  // updates that saw congestion
	Overflows     uint64  // times pending arrivals were given up
}

type arrival struct {
	ts   uint64 // extended timestamp
	size int
	at   time.Time
}

// ReceiveEstimator estimates a flow's path bandwidth at its receiver.
type ReceiveEstimator struct {
	cfg      ReceiveConfig
	est      *Estimator
	unwrap   mediapkt.Unwrapper
	tsRef    uint64
	haveTS   bool
	arr      map[protocol.MediaSeq]arrival
	next     protocol.MediaSeq // first number not yet handed to the estimator
	haveNext bool
	repaired map[protocol.MediaSeq]struct{} // numbers a retransmission brought before their verdict
	gap      []protocol.MediaSeq
	batch    []PacketResult

	started        bool
	estimate       Bitrate
	lastOveruses   uint64
	lastLossCuts   uint64
	nextProbe      time.Time
	backoff        time.Duration
	probing        bool
	probeStart     time.Time
	probeRate      Bitrate
	probeReached   time.Time
	stats          ReceiveStats
	lastCongestion time.Time // start of the current cut window
	cutBase        Bitrate   // the estimate before the window's first cut
}

// NewReceiveEstimator returns a receive-side estimator.
func NewReceiveEstimator(cfg ReceiveConfig) (*ReceiveEstimator, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Layers = append([]Bitrate(nil), cfg.Layers...)
	e, err := New(cfg.Estimator)
	if err != nil {
		return nil, err
	}
	return &ReceiveEstimator{cfg: cfg, est: e, arr: map[protocol.MediaSeq]arrival{}, repaired: map[protocol.MediaSeq]struct{}{},
		estimate: cfg.Estimator.InitialBitrate, backoff: cfg.ProbeAfter}, nil
}

// SetRTT passes the path's round-trip time to the estimator.
func (r *ReceiveEstimator) SetRTT(d time.Duration) { r.est.SetRTT(d) }

// SetLayers replaces the layer rates (the track's layers changed).
func (r *ReceiveEstimator) SetLayers(layers []Bitrate) error {
	c := r.cfg
	c.Layers = layers
	if err := c.validate(); err != nil {
		return err
	}
	r.cfg.Layers = append([]Bitrate(nil), layers...)
	return nil
}

// OnPacket records the first arrival of a source packet of the flow: its
// wire sequence number, timestamp and size in bytes (header included).
// Retransmissions and parity must not be recorded: their timing is the
// repair's, not the path's.
func (r *ReceiveEstimator) OnPacket(seq mediapkt.Seq, ts uint32, size int, at time.Time) {
	ext := r.unwrap.Unwrap(seq)
	if !r.haveTS {
		r.tsRef, r.haveTS = uint64(ts), true
	}
	ets := mediapkt.ExtendTimestamp(r.tsRef, ts)
	r.tsRef = max(r.tsRef, ets)
	if !r.haveNext {
		r.next, r.haveNext = ext, true
	}
	if ext < r.next {
		return // reported lost already: too late to count
	}
	if _, dup := r.arr[ext]; dup {
		return
	}
	if len(r.arr) >= r.cfg.MaxPending {
		// Updates stopped: give up what is held rather than grow.
		r.stats.Overflows++
		clear(r.arr)
		r.next = ext
	}
	r.arr[ext] = arrival{ts: ets, size: size, at: at}
}

// OnRepair records that a retransmission of seq arrived. A number
// repaired within RepairGrace of its gap is not counted lost: a forwarder
// passes on its publisher's repairs of losses upstream of it, which say
// nothing about this path, while repairs across a congested path arrive
// later than that (they queue too).
func (r *ReceiveEstimator) OnRepair(seq mediapkt.Seq) {
	hi, ok := r.unwrap.Highest()
	if !ok {
		return
	}
	ext := mediapkt.Extend(hi, seq)
	if ext < r.next || len(r.repaired) >= r.cfg.MaxPending {
		return
	}
	if _, arrived := r.arr[ext]; !arrived {
		r.repaired[ext] = struct{}{}
	}
}

// sendTime maps an extended timestamp onto a time line of its own; only
// differences matter to the estimator.
func (r *ReceiveEstimator) sendTime(ts uint64) time.Time {
	rate := uint64(r.cfg.ClockRate)
	return time.Unix(0, 0).Add(time.Duration(ts/rate)*time.Second + time.Duration(ts%rate)*time.Second/time.Duration(rate))
}

// Update hands the arrivals since the last update to the estimator, runs
// the layer controller and returns the estimate to report. Call it
// periodically (every 50-100 ms).
func (r *ReceiveEstimator) Update(now time.Time) Bitrate {
	if !r.started {
		// The first probe needs no congestion-free history: a new
		// subscription starts low (the selector's rule) and climbs.
		r.started = true
		r.nextProbe = now.Add(r.cfg.ProbeHold)
	}
	if hi, ok := r.unwrap.Highest(); ok && hi >= r.next && len(r.arr) > 0 {
		r.batch = r.batch[:0]
		r.gap = r.gap[:0]
		for q := r.next; q <= hi && len(r.batch) < r.cfg.Estimator.MaxFeedbackPackets; q++ {
			a, ok := r.arr[q]
			if !ok {
				r.gap = append(r.gap, q)
				continue
			}
			if len(r.gap) > 0 && now.Sub(a.at) < r.cfg.RepairGrace {
				// The gap before a is younger than the grace: a repair
				// may still come.
				break
			}
			for _, m := range r.gap {
				if _, ok := r.repaired[m]; ok {
					continue // repaired in time: not the path's loss
				}
				r.batch = append(r.batch, PacketResult{})
			}
			r.gap = r.gap[:0]
			delete(r.arr, q)
			r.batch = append(r.batch, PacketResult{SendTime: r.sendTime(a.ts), Arrival: a.at, Size: a.size})
			r.next = q + 1
		}
		for q := range r.repaired {
			if q < r.next {
				delete(r.repaired, q)
			}
		}
		// Numbers after the last arrival stay pending: they may be
		// merely reordered.
		r.batch = trimLost(r.batch)
		if len(r.batch) > 0 {
			// The batch is in sequence order, as OnFeedback wants;
			// lost entries carry no send time and only count.
			_, _ = r.est.OnFeedback(now, r.batch)
		}
	}
	r.control(now)
	return r.estimate
}

// trimLost drops lost entries after the last arrived one.
func trimLost(b []PacketResult) []PacketResult {
	for len(b) > 0 && b[len(b)-1].Lost() {
		b = b[:len(b)-1]
	}
	return b
}

// control runs the layer controller (see the package comment above).
func (r *ReceiveEstimator) control(now time.Time) {
	st := r.est.Stats()
	congested := st.Overuses > r.lastOveruses || st.LossCuts > r.lastLossCuts
	r.lastOveruses, r.lastLossCuts = st.Overuses, st.LossCuts
	switch {
	case congested:
		r.stats.Congestions++
		// At most a halving per RateWindow: the decrease is 0.85 x what
		// arrived over the last window, and a receiver that stalled (a
		// paused process, a scheduling hiccup) measures almost nothing
		// there; the queue the overload built keeps signalling while it
		// drains. A real limit is reached in a few windows.
		if r.lastCongestion.IsZero() || now.Sub(r.lastCongestion) >= r.cfg.Estimator.RateWindow {
			r.lastCongestion, r.cutBase = now, r.estimate
		}
		r.estimate = max(st.Target, r.cutBase/2)
		if r.probing {
			r.probing = false
			r.stats.ProbesFailed++
			r.backoff = min(2*r.backoff, r.cfg.MaxProbeBackoff)
		}
		r.nextProbe = now.Add(r.backoff)
	case r.probing:
		r.estimate = max(r.estimate, st.Target)
		if float64(st.Incoming) >= probeArrived*float64(r.probeRate) {
			if r.probeReached.IsZero() {
				r.probeReached = now
			}
			if now.Sub(r.probeReached) >= r.cfg.ProbeHold {
				// The path carried the layer for ProbeHold: the next
				// layer may be tried at once, so a subscriber climbs a
				// ladder in one probe time per layer.
				r.probing = false
				r.stats.ProbesOK++
				r.backoff = r.cfg.ProbeAfter
				r.nextProbe = now
			}
		} else if now.Sub(r.probeStart) >= r.cfg.ProbeTimeout {
			// No congestion for a whole ProbeTimeout while the forwarder
			// could send the layer: kept. A real encoder often sends a
			// layer well under its declared rate (a still picture), so
			// the rate not arriving is no evidence against the path.
			r.probing = false
			r.stats.ProbesTimeout++
			r.backoff = r.cfg.ProbeAfter
			r.nextProbe = now
		}
	default:
		r.estimate = max(r.estimate, st.Target)
		if !now.Before(r.nextProbe) {
			r.startProbe(now)
		}
	}
	r.estimate = max(r.cfg.Estimator.MinBitrate, min(r.cfg.Estimator.MaxBitrate, r.estimate))
	r.stats.Estimate = r.estimate
}

// startProbe asks for the lowest layer the estimate does not yet reach.
func (r *ReceiveEstimator) startProbe(now time.Time) {
	i := sort.Search(len(r.cfg.Layers), func(i int) bool {
		return float64(r.cfg.Layers[i])*r.cfg.UpFactor > float64(r.estimate)
	})
	if i == len(r.cfg.Layers) {
		return // every layer fits already
	}
	r.probing = true
	r.probeStart, r.probeReached = now, time.Time{}
	r.probeRate = r.cfg.Layers[i]
	r.estimate = Bitrate(float64(r.probeRate) * r.cfg.UpFactor * probeMargin)
	r.stats.Probes++
}

// Estimate returns the last estimate Update returned (the initial one
// before any update).
func (r *ReceiveEstimator) Estimate() Bitrate { return r.estimate }

// Stats returns the estimator's state.
func (r *ReceiveEstimator) Stats() ReceiveStats {
	st := r.stats
	st.Estimate = r.estimate
	st.Measured = r.est.Stats()
	st.Probing = r.probing
	return st
}
