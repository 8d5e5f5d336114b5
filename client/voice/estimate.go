package voice

import (
	"context"
	"sync"
	"time"

	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/bwe"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/session"
)

// Automatic bandwidth estimation of simulcast subscriptions
// (spec/JSP-media.md §13.16, decision D30). For each subscription to a
// track with more than one layer the Room runs a bwe.ReceiveEstimator on
// the arrivals of its flow: the Mux's session is wrapped so that every
// original source packet is seen, with its arrival time, before the
// jitter buffer. Every EstimateInterval the Room sends the estimate to the
// gateway with the voice.media "estimate" COMMAND, the message
// RemoteTrack.SetEstimate sends, and the forwarder's layer selector
// follows it. An app that calls SetEstimate itself takes over that
// subscription: its automatic reports stop.
//
//	gateway ─flow S─► arrivalTap.ReceiveFlow ─► ReceiveEstimator.OnPacket
//	                        └─► Mux (NACK, FEC, jitter buffer)
//	estimate loop (every 50 ms): Update ─► every EstimateInterval:
//	    COMMAND voice.media {op: estimate, track, estimate}
//
// The loop is one goroutine per Room, started with the first estimated
// subscription; it ends with the Room's session and is joined by Close.

// Defaults of the estimation Options.
const (
	// DefaultEstimateInterval is how often an estimate is reported. The
	// selector re-evaluates its hysteresis only when told an estimate, so
	// reports go on while nothing changes.
	DefaultEstimateInterval = 500 * time.Millisecond
	// estimateTick is the estimators' update period.
	estimateTick = 50 * time.Millisecond
	// estimateTimeout bounds one report's COMMAND.
	estimateTimeout = 2 * time.Second
)

// arrivalTap is the Mux's session: it shows each incoming media packet
// of an estimated flow to that flow's estimator, then hands it on.
type arrivalTap struct {
	media.Session
	r *Room
}

func (a arrivalTap) ReceiveFlow(ctx context.Context) (session.FlowDatagram, error) {
	d, err := a.Session.ReceiveFlow(ctx)
	if err != nil || media.IsControl(d.Data) {
		return d, err
	}
	a.r.mu.Lock()
	rt := a.r.estimated[d.Flow]
	a.r.mu.Unlock()
	if rt == nil {
		return d, nil
	}
	h, _, perr := mediapkt.ParseHeader(d.Data)
	// Parity and retransmissions say nothing about the path's queue;
	// malformed packets are the Receiver's to count.
	switch {
	case perr != nil || h.Flags.Has(mediapkt.FlagFEC):
	case h.Flags.Has(mediapkt.FlagRetransmission):
		// Not the path's timing, but a repair: an upstream loss the
		// forwarder passed on is not this path's loss.
		rt.estMu.Lock()
		rt.est.OnRepair(h.Seq)
		rt.estMu.Unlock()
	default:
		now := a.r.now()
		rt.estMu.Lock()
		rt.est.OnPacket(h.Seq, h.Timestamp, len(d.Data), now)
		rt.estMu.Unlock()
	}
	return d, nil
}

func (r *Room) now() time.Time { return time.Now() }

// startEstimateLocked makes rt an estimated subscription and starts the
// Room's estimate loop if it is not running.
func (r *Room) startEstimateLocked(rt *RemoteTrack, info Track) error {
	if r.closed {
		// Close may be waiting for the Room's goroutines already.
		return ErrClosed
	}
	layers := make([]bwe.Bitrate, 0, len(info.Layers))
	for _, l := range info.Layers {
		layers = append(layers, bwe.Bitrate(l.Bitrate))
	}
	clock := AudioClockRate
	if info.Kind == KindVideo {
		clock = VideoClockRate
	}
	cfg := bwe.ReceiveConfig{ClockRate: clock, Layers: layers, MaxProbeBackoff: r.opts.MaxProbeBackoff}
	if cfg.MaxProbeBackoff > 0 && cfg.MaxProbeBackoff < bwe.DefaultProbeAfter {
		cfg.MaxProbeBackoff = bwe.DefaultProbeAfter
	}
	cfg.Estimator.InitialBitrate = r.opts.InitialEstimate
	est, err := bwe.NewReceiveEstimator(cfg)
	if err != nil {
		// Layers without rising bitrates (an app that declared none):
		// estimate without probes.
		cfg.Layers = nil
		if est, err = bwe.NewReceiveEstimator(cfg); err != nil {
			return err
		}
	}
	rt.est = est
	r.estimated[rt.flow] = rt
	if !r.estimating {
		r.estimating = true
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.estimateLoop()
		}()
	}
	return nil
}

// estimateLoop updates the estimators and reports their estimates until
// the Room closes or its session ends.
func (r *Room) estimateLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	var helper sync.WaitGroup
	helper.Go(func() {
		// A report in flight ends with the Room.
		select {
		case <-r.done:
		case <-ctx.Done():
		}
		cancel()
	})
	defer helper.Wait()
	defer cancel()
	tick := time.NewTicker(estimateTick)
	defer tick.Stop()
	interval := r.opts.EstimateInterval
	if interval <= 0 {
		interval = DefaultEstimateInterval
	}
	var tracks []*RemoteTrack
	lastReport := map[*RemoteTrack]time.Time{}
	for {
		select {
		case <-r.done:
			return
		case <-r.sessDone:
			// The media stopped with the session (see Join).
			return
		case <-tick.C:
		}
		now := r.now()
		tracks = tracks[:0]
		r.mu.Lock()
		for _, rt := range r.estimated {
			tracks = append(tracks, rt)
		}
		r.mu.Unlock()
		rtt := time.Duration(0)
		if s := r.c.Session(); s != nil {
			rtt, _ = s.RTT()
		}
		for _, rt := range tracks {
			rt.estMu.Lock()
			if rtt > 0 {
				rt.est.SetRTT(rtt)
			}
			e := rt.est.Update(now)
			rt.estMu.Unlock()
			if now.Sub(lastReport[rt]) < interval {
				continue
			}
			lastReport[rt] = now
			// reportMu orders this report with the app's SetEstimate:
			// once the app has taken over, no automatic report follows
			// its own.
			rt.reportMu.Lock()
			rt.estMu.Lock()
			manual := rt.manual
			rt.estMu.Unlock()
			if manual {
				rt.reportMu.Unlock()
				continue
			}
			rctx, rcancel := context.WithTimeout(ctx, estimateTimeout)
			_, err := r.do(rctx, voiceproto.MediaService, voiceproto.Request{Op: voiceproto.MediaEstimate, Track: rt.id, Estimate: int64(e)})
			rcancel()
			rt.reportMu.Unlock()
			rt.estMu.Lock()
			if err == nil {
				rt.reports++
			} else {
				rt.reportErrs++
			}
			rt.estMu.Unlock()
		}
		for rt := range lastReport {
			if !containsTrack(tracks, rt) {
				delete(lastReport, rt)
			}
		}
	}
}

func containsTrack(ts []*RemoteTrack, t *RemoteTrack) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// EstimateStats describe a subscription's automatic estimation.
type EstimateStats struct {
	// Enabled is set for an estimated subscription (a simulcast track,
	// estimation not disabled, SetEstimate never called).
	Enabled bool
	// Estimate is the last estimate, Reports the reports sent and
	// ReportErrors those that failed.
	Estimate              bwe.Bitrate
	Reports, ReportErrors uint64
	// Receive is the estimator's state (GCC measurements, probes).
	Receive bwe.ReceiveStats
}

// EstimateStats returns the subscription's estimation state.
func (t *RemoteTrack) EstimateStats() EstimateStats {
	t.estMu.Lock()
	defer t.estMu.Unlock()
	if t.est == nil {
		return EstimateStats{}
	}
	st := t.est.Stats()
	return EstimateStats{Enabled: !t.manual, Estimate: st.Estimate, Reports: t.reports, ReportErrors: t.reportErrs, Receive: st}
}
