package bwe

import (
	"math"
	"time"
)

// group is a set of packets sent within GroupSpan of its first packet.
type group struct {
	firstSend, lastSend time.Time
	lastArrival         time.Time
	size                int
}

// groupDelta is the delay variation between two consecutive groups.
type groupDelta struct {
	delay   float64   // (arrival gap - send gap), ms
	arrival time.Time // arrival of the later group
}

// groupState cuts the packet results into groups and yields one delta per
// completed pair of groups.
type groupState struct {
	prev, cur group
	havePrev  bool
	haveCur   bool
}

// add puts one arrived packet into its group and, when the packet starts a
// new group, returns the delta between the two groups completed before it.
func (g *groupState) add(p PacketResult, span time.Duration) (groupDelta, bool) {
	if !g.haveCur {
		g.cur = group{firstSend: p.SendTime, lastSend: p.SendTime, lastArrival: p.Arrival, size: p.Size}
		g.haveCur = true
		return groupDelta{}, false
	}
	// A packet sent before the current group began was reordered:
	// it belongs to a group already measured and would make a negative
	// send gap.
	if p.SendTime.Before(g.cur.firstSend) {
		return groupDelta{}, false
	}
	if p.SendTime.Sub(g.cur.firstSend) <= span {
		g.cur.lastSend = p.SendTime
		if p.Arrival.After(g.cur.lastArrival) {
			g.cur.lastArrival = p.Arrival
		}
		g.cur.size += p.Size
		return groupDelta{}, false
	}
	var d groupDelta
	ok := false
	if g.havePrev {
		sendGap := msBetween(g.prev.lastSend, g.cur.lastSend)
		arrGap := msBetween(g.prev.lastArrival, g.cur.lastArrival)
		d, ok = groupDelta{delay: arrGap - sendGap, arrival: g.cur.lastArrival}, true
	}
	g.prev, g.havePrev = g.cur, true
	g.cur = group{firstSend: p.SendTime, lastSend: p.SendTime, lastArrival: p.Arrival, size: p.Size}
	return d, ok
}

// Trendline constants (draft-ietf-rmcat-gcc-02 §5.3 and the reference
// implementation's defaults).
const (
	trendSmoothing = 0.9  // weight of the previous smoothed delay
	trendGain      = 4.0  // scales the slope into the threshold's units
	trendMaxDeltas = 60   // caps the count factor of the scaled trend
	overuseTimeMs  = 10.0 // trend over threshold this long means overuse
	thresholdInit  = 12.5 // ms
	thresholdMin   = 6.0
	thresholdMax   = 600.0
	kUp            = 0.0087 // threshold adaptation while |trend| > threshold
	kDown          = 0.039  // and while below it
	maxAdaptGapMs  = 100.0
)

// trendline fits a line through the smoothed accumulated delay of the last
// window groups; a positive slope means a queue is building.
type trendline struct {
	window   int
	xs, ys   []float64 // ring of (arrival ms, smoothed delay ms)
	next     int
	filled   bool
	first    time.Time
	acc      float64
	smoothed float64
	deltas   int
	slope    float64
}

func newTrendline(window int) trendline {
	return trendline{window: window, xs: make([]float64, window), ys: make([]float64, window)}
}

// update adds one group delta and returns the scaled trend in ms.
func (t *trendline) update(d groupDelta) float64 {
	if t.deltas == 0 {
		t.first = d.arrival
	}
	t.deltas++
	t.acc += d.delay
	t.smoothed = trendSmoothing*t.smoothed + (1-trendSmoothing)*t.acc
	t.xs[t.next], t.ys[t.next] = msBetween(t.first, d.arrival), t.smoothed
	t.next = (t.next + 1) % t.window
	if t.next == 0 {
		t.filled = true
	}
	if t.filled {
		if s, ok := slope(t.xs, t.ys); ok {
			t.slope = s
		}
	}
	return float64(min(t.deltas, trendMaxDeltas)) * t.slope * trendGain
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) (float64, bool) {
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= float64(len(xs))
	my /= float64(len(ys))
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0, false
	}
	return num / den, true
}

// detector compares the trend with an adaptive threshold
// (draft-ietf-rmcat-gcc-02 §5.4): the threshold follows |trend| slowly
// upward and quickly downward, so that a competing TCP flow's steady
// queue does not starve the media flow, while a real change still
// crosses it.
type detector struct {
	threshold  float64
	overMs     float64 // time the trend has been over the threshold, -1 if not
	overCount  int
	prevTrend  float64
	lastUpdate time.Time
	usage      Usage
}

func newDetector() detector { return detector{threshold: thresholdInit, overMs: -1} }

func (d *detector) detect(trend float64, now time.Time) Usage {
	dt := 0.0
	if !d.lastUpdate.IsZero() {
		dt = math.Min(msBetween(d.lastUpdate, now), maxAdaptGapMs)
	}
	switch {
	case trend > d.threshold:
		if d.overMs < 0 {
			d.overMs = dt / 2
		} else {
			d.overMs += dt
		}
		d.overCount++
		// Overuse only when it lasts and is not already easing.
		if d.overMs > overuseTimeMs && d.overCount > 1 && trend >= d.prevTrend {
			d.overMs, d.overCount = 0, 0
			d.usage = Overusing
		}
	case trend < -d.threshold:
		d.overMs, d.overCount = -1, 0
		d.usage = Underusing
	default:
		d.overMs, d.overCount = -1, 0
		d.usage = Normal
	}
	d.prevTrend = trend
	// Adapt the threshold, unless the trend is an outlier far above it
	// (a sudden spike should not drag the threshold up).
	if a := math.Abs(trend); !(a > d.threshold+15) && !d.lastUpdate.IsZero() {
		k := kUp
		if a < d.threshold {
			k = kDown
		}
		d.threshold = clampF(d.threshold+k*(a-d.threshold)*dt, thresholdMin, thresholdMax)
	}
	d.lastUpdate = now
	return d.usage
}
