package load

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Latency histogram: microseconds in log-linear buckets (exact below
// 64 µs, then 32 buckets per power of two, so an upper bound within about
// 3 %). Unlike loadgen.Histogram it can be written out and merged, because
// the subscribers run in several processes.
const (
	histSubBits = 6
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	histBuckets = histSub + (64-histSubBits)*histHalf
)

// Hist is a mergeable latency histogram; Record is safe for concurrent
// use and does not allocate.
type Hist struct {
	counts [histBuckets]atomic.Uint64
}

func histBucket(us uint64) int {
	if us < histSub {
		return int(us)
	}
	e := bits.Len64(us) - histSubBits
	m := us >> uint(e)
	return histSub + (e-1)*histHalf + int(m-histHalf)
}

func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := (i-histSub)/histHalf + 1
	m := uint64((i-histSub)%histHalf + histHalf)
	return (m+1)<<uint(e) - 1
}

// Record adds one latency; negative ones (clock steps) count as zero.
func (h *Hist) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[histBucket(us)].Add(1)
}

// Count returns the number of recorded latencies.
func (h *Hist) Count() uint64 {
	var n uint64
	for i := range h.counts {
		n += h.counts[i].Load()
	}
	return n
}

// Merge adds o's counts to h.
func (h *Hist) Merge(o *Hist) {
	for i := range o.counts {
		if v := o.counts[i].Load(); v > 0 {
			h.counts[i].Add(v)
		}
	}
}

// Quantile returns the q-quantile in microseconds among total values, of
// which h holds the smallest: the missing ones (lost frames) count as
// later than any, and -1 is returned when the quantile falls among them.
// It is the upper bound of the quantile's bucket, so it never understates.
func (h *Hist) Quantile(q float64, total uint64) float64 {
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.999999)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return float64(histUpper(i))
		}
	}
	return -1
}

// String writes the non-empty buckets as "index:count" pairs joined by
// commas ("-" when empty): one field of a result line.
func (h *Hist) String() string {
	var b strings.Builder
	for i := range h.counts {
		if v := h.counts[i].Load(); v > 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(i))
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(v, 10))
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// ParseHist reads what String wrote.
func ParseHist(s string) (*Hist, error) {
	h := &Hist{}
	if s == "-" || s == "" {
		return h, nil
	}
	for _, p := range strings.Split(s, ",") {
		is, cs, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("histogram pair %q: want index:count", p)
		}
		i, err := strconv.Atoi(is)
		if err != nil || i < 0 || i >= histBuckets {
			return nil, fmt.Errorf("histogram bucket %q out of range", is)
		}
		c, err := strconv.ParseUint(cs, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("histogram count %q: %w", cs, err)
		}
		h.counts[i].Add(c)
	}
	return h, nil
}
