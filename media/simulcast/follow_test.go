package simulcast

import (
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/simnet"
	"github.com/jetstreamproto/jsp/media/bwe"
)

// TestLayerFollowsLink runs a bandwidth estimator over a simulated link
// whose rate goes 2.5 Mbit/s -> 0.8 Mbit/s (at 35 s) -> 2.5 Mbit/s (at
// 60 s) and feeds its estimate to a selector with the usual three layers
// (150k, 500k, 1.5M), key frames every second. The sender sends at the
// estimator's target (the layer plus padding, as a sender probing for
// more would). The forwarded layer must be the top one at the end of the
// first phase, the middle one (never the top) in the second, and the top
// one again in the third.
func TestLayerFollowsLink(t *testing.T) {
	est, err := bwe.New(bwe.Config{})
	if err != nil {
		t.Fatal(err)
	}
	est.SetRTT(40 * time.Millisecond)
	sel, err := NewSelector(layers, SelectorConfig{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(0, 0)
	mkLink := func(rate int64, seed uint64) *simnet.Link {
		l, err := simnet.NewLink(simnet.Config{Seed: seed, Delay: 20 * time.Millisecond, Rate: rate / 8, QueueDelay: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	links := []*simnet.Link{mkLink(2_500_000, 1)}
	sendTimes := map[uint64]time.Time{}
	arrived := map[uint64]time.Time{}
	var seq, fbFrom, highest uint64
	var anyArr bool
	type fb struct {
		at   time.Time
		pkts []bwe.PacketResult
	}
	var queue []fb
	var lastFb time.Time
	nextSend := start
	const size = 1000
	layerAt := map[time.Duration]int{} // current layer each second
	for now := start; now.Before(start.Add(90 * time.Second)); now = now.Add(time.Millisecond) {
		el := now.Sub(start)
		switch el {
		case 35 * time.Second:
			links = append(links, mkLink(800_000, 2))
		case 60 * time.Second:
			links = append(links, mkLink(2_500_000, 3))
		}
		// Key frame on every layer each second; the selector sees one
		// packet per layer per 10 ms.
		if el%(10*time.Millisecond) == 0 {
			for l := range layers {
				sel.OnPacket(l, el%time.Second == 0)
			}
		}
		if el%time.Second == 0 {
			layerAt[el] = sel.Current()
		}
		for !nextSend.After(now) {
			b := make([]byte, size)
			for i := range 8 {
				b[i] = byte(seq >> (8 * i))
			}
			links[len(links)-1].Send(b, now)
			sendTimes[seq] = now
			seq++
			nextSend = nextSend.Add(time.Duration(float64(size*8) / float64(est.Target()) * float64(time.Second)))
		}
		for _, l := range links {
			for _, p := range l.Deliver(now) {
				var q uint64
				for i := range 8 {
					q |= uint64(p.Data[i]) << (8 * i)
				}
				arrived[q] = p.At
				if !anyArr || q > highest {
					highest, anyArr = q, true
				}
			}
		}
		if anyArr && now.Sub(lastFb) >= 50*time.Millisecond {
			lastFb = now
			var pkts []bwe.PacketResult
			for q := fbFrom; q <= highest; q++ {
				pkts = append(pkts, bwe.PacketResult{SendTime: sendTimes[q], Arrival: arrived[q], Size: size})
				delete(sendTimes, q)
				delete(arrived, q)
			}
			fbFrom = highest + 1
			queue = append(queue, fb{now.Add(20 * time.Millisecond), pkts})
		}
		for len(queue) > 0 && !queue[0].at.After(now) {
			target, err := est.OnFeedback(now, queue[0].pkts)
			if err != nil {
				t.Fatal(err)
			}
			queue = queue[1:]
			sel.SetEstimate(now, target)
		}
	}
	var timeline []int
	for s := range 90 {
		timeline = append(timeline, layerAt[time.Duration(s)*time.Second])
	}
	t.Logf("layer each second: %v", timeline)
	t.Logf("selector %+v", sel.Stats())
	check := func(from, to int, ok func(int) bool, what string) {
		for s := from; s < to; s++ {
			if !ok(timeline[s]) {
				t.Errorf("second %d: layer %d, want %s", s, timeline[s], what)
			}
		}
	}
	// From 300 kbit/s, 8 %/s growth reaches the top layer's 1.725
	// Mbit/s (1.5M + 15 %) after about 23 s, plus the 2 s hold.
	check(30, 35, func(l int) bool { return l == 2 }, "2 (2.5 Mbit/s)")
	// The drop shows within a second; the switch waits for the next key
	// frame.
	check(37, 60, func(l int) bool { return l != 2 }, "below 2 (0.8 Mbit/s)")
	check(38, 60, func(l int) bool { return l == 1 }, "1 (0.8 Mbit/s)")
	check(80, 90, func(l int) bool { return l == 2 }, "2 (back to 2.5 Mbit/s)")
}
