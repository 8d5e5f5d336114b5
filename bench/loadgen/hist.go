// Package loadgen is the load generator shared by the fan-out and
// idle-connection benchmarks (bench/fanout, bench/idle and the Centrifugo
// driver in bench/centrifugo): a fixed-rate, open-loop publish schedule,
// a concurrent latency histogram, payloads stamped with their scheduled
// send time, and the result lines every driver prints and the report
// reads.
//
// Open loop means the schedule never waits for the system under test: the
// i-th message is due at start + i/rate whether or not earlier ones were
// answered, and its latency is measured from that due time, not from the
// moment the sender got round to it. A server that stalls for 100 ms
// therefore shows 100 ms of latency on every message due during the
// stall, instead of one slow message and a quiet gap (coordinated
// omission).
package loadgen

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// subBits sets the histogram's precision: each power-of-two range of
// values is split into 2^(subBits-1) linear buckets, so a recorded value
// is known to within 1/64 (1.6 %) of itself.
const subBits = 7

const (
	subCount = 1 << subBits // exact buckets for values below subCount
	subHalf  = subCount / 2 // linear buckets per power of two above it
	nBuckets = subCount + (64-subBits)*subHalf
)

// Histogram records durations in nanoseconds in log-linear buckets. Record
// is safe for concurrent use and does not allocate, so that thousands of
// subscriber goroutines can record into one histogram.
type Histogram struct {
	counts [nBuckets]atomic.Uint64
	total  atomic.Uint64
	max    atomic.Int64
}

// bucketOf returns the bucket index of v.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	// e >= 1 is how far v must be shifted to fit in subBits bits; the
	// shifted value's top bit is always set, so only its low subBits-1
	// bits choose the bucket within the power of two.
	e := bits.Len64(v) - subBits
	m := v >> uint(e)
	return subCount + (e-1)*subHalf + int(m-subHalf)
}

// bucketUpper returns the largest value that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < subCount {
		return uint64(i)
	}
	e := (i-subCount)/subHalf + 1
	m := uint64((i-subCount)%subHalf + subHalf)
	return (m+1)<<uint(e) - 1
}

// Record adds one duration; negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(0)
	if d > 0 {
		v = uint64(d)
	}
	h.counts[bucketOf(v)].Add(1)
	h.total.Add(1)
	for {
		m := h.max.Load()
		if int64(v) <= m || h.max.CompareAndSwap(m, int64(v)) {
			break
		}
	}
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Max returns the largest recorded duration.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max.Load()) }

// Never stands for a latency beyond anything recorded: the message did
// not arrive at all.
const Never = time.Duration(math.MaxInt64)

// Quantile returns the q-quantile (0 < q <= 1) as the upper bound of the
// bucket that holds it, so that it never understates; zero when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	return h.QuantileOf(q, h.Count())
}

// QuantileOf returns the q-quantile among total values of which the
// histogram holds the smallest: the total-Count() missing ones count as
// infinitely late, so that lost messages raise the percentiles instead of
// vanishing from them. It returns Never when the quantile falls among the
// missing ones.
func (h *Histogram) QuantileOf(q float64, total uint64) time.Duration {
	if total == 0 {
		return 0
	}
	// rank is the 1-based position of the quantile among sorted values.
	rank := uint64(q*float64(total) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > total {
		rank = total
	}
	if rank > h.Count() {
		return Never
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			u := bucketUpper(i)
			if m := uint64(h.max.Load()); u > m {
				u = m
			}
			return time.Duration(u)
		}
	}
	return h.Max()
}
