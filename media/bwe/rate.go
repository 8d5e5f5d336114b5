package bwe

import (
	"math"
	"time"
)

// rateMeter measures the arrival rate over a sliding window.
type rateMeter struct {
	window time.Duration
	max    int
	at     []time.Time // arrival times, oldest first
	sizes  []int
	bytes  int64
	first  time.Time
}

func (m *rateMeter) add(at time.Time, size int) {
	if m.first.IsZero() {
		m.first = at
	}
	if len(m.at) == m.max {
		m.drop()
	}
	m.at = append(m.at, at)
	m.sizes = append(m.sizes, size)
	m.bytes += int64(size)
}

func (m *rateMeter) drop() {
	m.bytes -= int64(m.sizes[0])
	m.at, m.sizes = m.at[1:], m.sizes[1:]
}

func (m *rateMeter) newest() time.Time {
	if len(m.at) == 0 {
		return time.Time{}
	}
	return m.at[len(m.at)-1]
}

// rate returns the rate over the window ending at now; ok is false until
// a full window has passed since the first arrival.
func (m *rateMeter) rate(now time.Time) (Bitrate, bool) {
	for len(m.at) > 0 && now.Sub(m.at[0]) > m.window {
		m.drop()
	}
	if m.first.IsZero() || now.Sub(m.first) < m.window {
		return 0, false
	}
	return bytesOver(m.bytes, m.window), true
}

// Controller states.
type rcState uint8

const (
	rcHold rcState = iota
	rcIncrease
	rcDecrease
)

// AIMD constants (draft-ietf-rmcat-gcc-02 §5.5).
const (
	multIncreasePerSec = 1.08 // far from the last known maximum
	additivePacketBits = 1200 * 8
	incomingCapFactor  = 1.5
	incomingCapExtra   = 10 * Kbps
	maxVarianceFactor  = 3.0 // incoming above avgMax + 3 sigma: far again
)

// aimd is the delay-based rate controller.
type aimd struct {
	rate, min, max Bitrate
	beta           float64
	state          rcState
	last           time.Time
	lastDecrease   time.Time
	// avgMax is the average incoming rate at past decreases, in kbit/s,
	// and varMax its variance normalised by avgMax: near it, increases
	// turn additive.
	avgMax, varMax float64
	haveMax        bool
}

// update applies the detector's verdict; it reports whether a decrease
// happened.
func (a *aimd) update(now time.Time, u Usage, in Bitrate, inOK bool, rtt time.Duration) bool {
	switch u {
	case Overusing:
		if a.state != rcDecrease {
			a.state = rcDecrease
		}
	case Normal:
		if a.state == rcHold {
			a.state = rcIncrease
		}
	case Underusing:
		a.state = rcHold
	}
	dt := time.Duration(0)
	if !a.last.IsZero() {
		dt = min(now.Sub(a.last), time.Second)
	}
	a.last = now
	decreased := false
	inK := float64(in) / 1000
	switch a.state {
	case rcIncrease:
		if a.haveMax && inOK && inK > a.avgMax+maxVarianceFactor*math.Sqrt(a.avgMax*a.varMax) {
			// The path grew: forget the old maximum and probe fast.
			a.haveMax = false
		}
		if a.haveMax {
			// Near the maximum: about one packet per response time.
			resp := rtt + 100*time.Millisecond
			a.rate += Bitrate(math.Max(1000, additivePacketBits*dt.Seconds()/resp.Seconds()))
		} else {
			a.rate = Bitrate(float64(a.rate)*math.Pow(multIncreasePerSec, dt.Seconds())) + 1000*Bitrate(dt.Seconds())
		}
	case rcDecrease:
		// One decrease per round trip: the previous one has not yet
		// shown in the feedback before that.
		if a.lastDecrease.IsZero() || now.Sub(a.lastDecrease) >= max(rtt, 10*time.Millisecond) {
			base := a.rate
			if inOK {
				base = in
			}
			r := Bitrate(a.beta * float64(base))
			if r < a.rate {
				a.rate = r
			}
			if inOK {
				a.updateMax(inK)
			}
			a.lastDecrease = now
			decreased = true
		}
		a.state = rcHold
	}
	// Never run far ahead of what actually arrives.
	if inOK {
		if c := Bitrate(incomingCapFactor*float64(in)) + incomingCapExtra; a.rate > c {
			a.rate = c
		}
	}
	a.rate = max(a.min, min(a.max, a.rate))
	return decreased
}

func (a *aimd) updateMax(inK float64) {
	const alpha = 0.05
	if !a.haveMax {
		a.avgMax, a.varMax, a.haveMax = inK, 0.4, true
		return
	}
	a.avgMax = (1-alpha)*a.avgMax + alpha*inK
	norm := math.Max(a.avgMax, 1)
	a.varMax = (1-alpha)*a.varMax + alpha*(a.avgMax-inK)*(a.avgMax-inK)/norm
	a.varMax = clampF(a.varMax, 0.4, 2.5)
}

// Loss controller constants.
const (
	lossIncrease     = 1.05 // per measurement under LossLow
	lossMinInterval  = 200 * time.Millisecond
	lossCutExtraWait = 300 * time.Millisecond
	lossHeadroom     = 1.5 // the loss-based rate never runs this far over the delay-based one
)

// lossController is the loss-based rate controller
// (draft-ietf-rmcat-gcc-02 §6).
type lossController struct {
	cfg      *Config
	rate     Bitrate
	total    int
	lost     int
	last     float64
	lastEval time.Time
	lastCut  time.Time
	cuts     uint64 // decreases for loss over LossHigh
}

func (l *lossController) observe(lost bool) {
	l.total++
	if lost {
		l.lost++
	}
}

func (l *lossController) update(now time.Time, delayRate Bitrate, rtt time.Duration) {
	if l.total < l.cfg.LossMinPackets || (!l.lastEval.IsZero() && now.Sub(l.lastEval) < lossMinInterval) {
		return
	}
	f := float64(l.lost) / float64(l.total)
	l.total, l.lost, l.last, l.lastEval = 0, 0, f, now
	switch {
	case f < l.cfg.LossLow:
		l.rate = Bitrate(float64(l.rate)*lossIncrease) + Kbps
	case f > l.cfg.LossHigh:
		if l.lastCut.IsZero() || now.Sub(l.lastCut) >= lossCutExtraWait+rtt {
			cur := min(l.rate, delayRate)
			l.rate = Bitrate(float64(cur) * (1 - 0.5*f))
			l.lastCut = now
			l.cuts++
		}
	}
	l.rate = max(l.cfg.MinBitrate, min(l.rate, Bitrate(lossHeadroom*float64(delayRate)), l.cfg.MaxBitrate))
}
