package bench

import (
	"math"
	"slices"
	"time"
)

// Latencies collects per-operation durations and reports quantiles. The
// zero value is ready to use; it is not safe for concurrent use.
type Latencies struct {
	d      []time.Duration
	sorted bool
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) {
	l.d = append(l.d, d)
	l.sorted = false
}

// Len returns the number of samples.
func (l *Latencies) Len() int { return len(l.d) }

// Reset drops every sample and keeps the storage.
func (l *Latencies) Reset() {
	l.d = l.d[:0]
	l.sorted = false
}

// Quantile returns the nearest-rank q-quantile (0 < q <= 1): the smallest
// sample that at least q of all samples do not exceed. It returns 0 without
// samples.
func (l *Latencies) Quantile(q float64) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	if !l.sorted {
		slices.Sort(l.d)
		l.sorted = true
	}
	rank := int(math.Ceil(q * float64(len(l.d))))
	return l.d[min(max(rank, 1), len(l.d))-1]
}

// Micros converts d to microseconds for b.ReportMetric.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
