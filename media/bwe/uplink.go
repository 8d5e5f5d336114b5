package bwe

import (
	"fmt"
	"slices"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Uplink estimation (spec/JSP-media.md §13.17): the receiver of a
// publisher's flows (the gateway) estimates the publisher's path from the
// arrivals of all the flows of one source, such as the simulcast layers
// of a track, which share the path and the capture clock. Per flow, the
// numbers since the last update become arrived or lost results, as in
// [ReceiveEstimator]; the flows' results are then merged in send-time
// (timestamp) order, so the packets of one frame on every layer form one
// packet group, and fed to one [Estimator].
//
// A publisher sends what its encoder makes: it is application-limited
// like a subscriber. The estimate reported is the measured target after
// congestion and otherwise the larger of the last estimate and the
// measured target, starting from the initial bitrate (the layers' total
// the publisher declared); no probes, since the publisher's rate is the
// app's.

// MaxUplinkFlows caps the flows one UplinkEstimator merges.
const MaxUplinkFlows = 16

// UplinkConfig configures an [UplinkEstimator]. Zero fields take their
// defaults.
type UplinkConfig struct {
	// Estimator configures the GCC estimator; InitialBitrate is also the
	// first estimate.
	Estimator Config
	// ClockRate is the flows' media clock. Default
	// DefaultReceiveClockRate.
	ClockRate int
	// MaxPending caps the arrivals held per flow between updates.
	// Default DefaultMaxPending.
	MaxPending int
}

// flowLog turns one flow's arrivals into results.
type flowLog struct {
	unwrap   mediapkt.Unwrapper
	arr      map[protocol.MediaSeq]arrival
	next     protocol.MediaSeq
	haveNext bool
	lastSend time.Time
}

// UplinkEstimator estimates a publisher's path from several flows. It is
// not safe for concurrent use.
type UplinkEstimator struct {
	cfg          UplinkConfig
	est          *Estimator
	flows        map[int]*flowLog
	tsRef        uint64
	haveTS       bool
	batch        []PacketResult
	estimate     Bitrate
	lastOveruses uint64
	lastLossCuts uint64
	congestions  uint64
	overflows    uint64
	lastCut      time.Time
	cutBase      Bitrate // the estimate before the first cut of the window
}

// NewUplinkEstimator returns an uplink estimator.
func NewUplinkEstimator(cfg UplinkConfig) (*UplinkEstimator, error) {
	if cfg.ClockRate == 0 {
		cfg.ClockRate = DefaultReceiveClockRate
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.ClockRate < 1 || cfg.MaxPending < 1 {
		return nil, fmt.Errorf("bwe: uplink ClockRate %d, MaxPending %d", cfg.ClockRate, cfg.MaxPending)
	}
	cfg.Estimator.setDefaults()
	e, err := New(cfg.Estimator)
	if err != nil {
		return nil, err
	}
	return &UplinkEstimator{cfg: cfg, est: e, flows: map[int]*flowLog{}, estimate: e.Target()}, nil
}

// SetRTT passes the path's round-trip time to the estimator.
func (u *UplinkEstimator) SetRTT(d time.Duration) { u.est.SetRTT(d) }

// OnPacket records the first arrival of a source packet of flow (0 <=
// flow < MaxUplinkFlows, for example the layer); retransmissions and
// parity must not be recorded.
func (u *UplinkEstimator) OnPacket(flow int, seq mediapkt.Seq, ts uint32, size int, at time.Time) {
	if flow < 0 || flow >= MaxUplinkFlows {
		return
	}
	f := u.flows[flow]
	if f == nil {
		f = &flowLog{arr: map[protocol.MediaSeq]arrival{}}
		u.flows[flow] = f
	}
	ext := f.unwrap.Unwrap(seq)
	if !u.haveTS {
		u.tsRef, u.haveTS = uint64(ts), true
	}
	ets := mediapkt.ExtendTimestamp(u.tsRef, ts)
	u.tsRef = max(u.tsRef, ets)
	if !f.haveNext {
		f.next, f.haveNext = ext, true
	}
	if ext < f.next {
		return
	}
	if _, dup := f.arr[ext]; dup {
		return
	}
	if len(f.arr) >= u.cfg.MaxPending {
		u.overflows++
		clear(f.arr)
		f.next = ext
	}
	f.arr[ext] = arrival{ts: ets, size: size, at: at}
}

func (u *UplinkEstimator) sendTime(ts uint64) time.Time {
	rate := uint64(u.cfg.ClockRate)
	return time.Unix(0, 0).Add(time.Duration(ts/rate)*time.Second + time.Duration(ts%rate)*time.Second/time.Duration(rate))
}

// Update feeds the arrivals since the last update to the estimator and
// returns the estimate and whether this update saw congestion.
func (u *UplinkEstimator) Update(now time.Time) (Bitrate, bool) {
	u.batch = u.batch[:0]
	for _, f := range u.flows {
		hi, ok := f.unwrap.Highest()
		if !ok || hi < f.next || len(f.arr) == 0 {
			continue
		}
		start := len(u.batch)
		for q := f.next; q <= hi && len(u.batch) < u.cfg.Estimator.MaxFeedbackPackets; q++ {
			a, ok := f.arr[q]
			if !ok {
				// Lost: it only counts; the send time of the packet
				// before it keeps the merge order.
				u.batch = append(u.batch, PacketResult{SendTime: f.lastSend})
				continue
			}
			delete(f.arr, q)
			f.lastSend = u.sendTime(a.ts)
			u.batch = append(u.batch, PacketResult{SendTime: f.lastSend, Arrival: a.at, Size: a.size})
			f.next = q + 1
		}
		// Trailing numbers not yet arrived stay pending.
		end := len(u.batch)
		for end > start && u.batch[end-1].Lost() {
			end--
		}
		u.batch = u.batch[:end]
	}
	if len(u.batch) > 0 {
		slices.SortStableFunc(u.batch, func(a, b PacketResult) int { return a.SendTime.Compare(b.SendTime) })
		_, _ = u.est.OnFeedback(now, u.batch)
	}
	st := u.est.Stats()
	congested := st.Overuses > u.lastOveruses || st.LossCuts > u.lastLossCuts
	u.lastOveruses, u.lastLossCuts = st.Overuses, st.LossCuts
	switch {
	case congested:
		u.congestions++
		if u.lastCut.IsZero() || now.Sub(u.lastCut) >= u.cfg.Estimator.RateWindow {
			u.lastCut, u.cutBase = now, u.estimate
		}
		// At most halved per RateWindow, as for a subscriber (§13.16).
		u.estimate = max(st.Target, u.cutBase/2)
	default:
		u.estimate = max(u.estimate, st.Target)
	}
	u.estimate = max(u.cfg.Estimator.MinBitrate, min(u.cfg.Estimator.MaxBitrate, u.estimate))
	return u.estimate, congested
}

// UplinkStats describes an [UplinkEstimator].
type UplinkStats struct {
	Estimate    Bitrate
	Measured    Stats
	Congestions uint64
	Overflows   uint64
}

// Stats returns the estimator's state.
func (u *UplinkEstimator) Stats() UplinkStats {
	return UplinkStats{Estimate: u.estimate, Measured: u.est.Stats(), Congestions: u.congestions, Overflows: u.overflows}
}

// Allocate splits a track's estimate over its layers, lowest first: each
// layer gets its declared rate while the budget lasts, the first layer
// that does not fit gets what is left, and the layers above it nothing
// (the lowest layer always gets at least what is left). It is the
// bitrate hint a publisher applies to its encoders.
func Allocate(estimate Bitrate, layers []Bitrate) []Bitrate {
	out := make([]Bitrate, len(layers))
	left := max(estimate, 0)
	for i, l := range layers {
		give := min(l, left)
		out[i] = give
		left -= give
	}
	return out
}
