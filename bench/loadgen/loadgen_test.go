package loadgen

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBucketBounds(t *testing.T) {
	// Every value lies in its bucket: above the previous bucket's upper
	// bound and at most its own, and the bucket is at most 1/64 wide.
	vals := []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 65535, 1 << 20, 123456789, 1<<62 + 12345, ^uint64(0)}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		vals = append(vals, r.Uint64()>>r.IntN(64))
	}
	for _, v := range vals {
		i := bucketOf(v)
		if i < 0 || i >= nBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		if up := bucketUpper(i); v > up {
			t.Fatalf("value %d above its bucket's upper bound %d", v, up)
		}
		if i > 0 && v <= bucketUpper(i-1) {
			t.Fatalf("value %d not above the previous bucket's bound %d", v, bucketUpper(i-1))
		}
		if v >= subCount {
			if lo := bucketUpper(i-1) + 1; float64(bucketUpper(i)-lo) > float64(lo)/float64(subHalf) {
				t.Fatalf("bucket %d [%d, %d] wider than 1/%d", i, lo, bucketUpper(i), subHalf)
			}
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name   string
		values []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one", []time.Duration{100 * time.Microsecond}, 0.99, 100 * time.Microsecond},
		{"median of 1..100 ms", seqMS(1, 100), 0.5, 50 * time.Millisecond},
		{"p99 of 1..100 ms", seqMS(1, 100), 0.99, 99 * time.Millisecond},
		{"p99.9 of 1..1000 ms", seqMS(1, 1000), 0.999, 999 * time.Millisecond},
		{"max caps the bucket", []time.Duration{time.Second + 1}, 1, time.Second + 1},
		{"negative is zero", []time.Duration{-5}, 0.5, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, v := range tt.values {
				h.Record(v)
			}
			got := h.Quantile(tt.q)
			// The answer is the upper bound of the right bucket: never
			// below the true value, at most 1/64 above it.
			if got < tt.want || float64(got-tt.want) > float64(tt.want)/64+1 {
				t.Fatalf("Quantile(%v) = %v, want %v (within 1/64 above)", tt.q, got, tt.want)
			}
		})
	}
}

func seqMS(from, to int) []time.Duration {
	var out []time.Duration
	for i := from; i <= to; i++ {
		out = append(out, time.Duration(i)*time.Millisecond)
	}
	return out
}

func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 {
		t.Fatalf("count %d, want 8000", h.Count())
	}
	if h.Max() != 7999*time.Microsecond {
		t.Fatalf("max %v, want 7.999ms", h.Max())
	}
}

func TestSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		rate      float64
		d         time.Duration
		wantCount int64
		due3      time.Duration
	}{
		{1000, time.Second, 1000, 3 * time.Millisecond},
		{3, time.Second, 3, time.Second},
		{10, 250 * time.Millisecond, 3, 300 * time.Millisecond},
		{100, 0, 0, 30 * time.Millisecond},
	}
	for _, tt := range tests {
		s := NewSchedule(start, tt.rate)
		if got := s.Count(tt.d); got != tt.wantCount {
			t.Errorf("rate %v: Count(%v) = %d, want %d", tt.rate, tt.d, got, tt.wantCount)
		}
		if got := s.Due(3).Sub(start); got != tt.due3 {
			t.Errorf("rate %v: Due(3) = start+%v, want +%v", tt.rate, got, tt.due3)
		}
	}
}

// TestPaceOpenLoop checks that pacing neither waits for a slow receiver
// nor skips due times: ticks that find the backlog full are counted as
// unsent, and the ones handed over carry their scheduled times.
func TestPaceOpenLoop(t *testing.T) {
	s := NewSchedule(time.Unix(0, 0), 100) // 10 ms apart
	var slept []time.Time
	sleep := func(_ context.Context, at time.Time) { slept = append(slept, at) }
	out := make(chan Tick, 4) // nobody reads: the fifth tick on finds it full
	unsent := Pace(context.Background(), s, 100*time.Millisecond, out, sleep)
	if unsent != 6 {
		t.Fatalf("unsent = %d, want 6", unsent)
	}
	var got []Tick
	for tk := range out {
		got = append(got, tk)
	}
	if len(got) != 4 {
		t.Fatalf("%d ticks handed over, want 4", len(got))
	}
	for i, tk := range got {
		if tk.Seq != int64(i) || !tk.Due.Equal(s.Due(int64(i))) {
			t.Fatalf("tick %d = %+v, want seq %d due %v", i, tk, i, s.Due(int64(i)))
		}
	}
	if len(slept) != 10 || !slept[9].Equal(s.Due(9)) {
		t.Fatalf("slept until %v, want the 10 due times", slept)
	}
}

func TestPaceCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := make(chan Tick, 100)
	unsent := Pace(ctx, NewSchedule(time.Now(), 1000), 10*time.Millisecond, out, nil)
	if unsent != 10 {
		t.Fatalf("unsent = %d after cancel, want all 10", unsent)
	}
}

func TestStamp(t *testing.T) {
	due := time.Unix(1700000000, 123456789)
	for _, size := range []int{0, StampLen, 64, 1024} {
		p := Stamp(size, 42, due)
		if want := max(size, StampLen); len(p) != want {
			t.Fatalf("size %d: len %d, want %d", size, len(p), want)
		}
		seq, d, err := ParseStamp(p)
		if err != nil || seq != 42 || !d.Equal(due) {
			t.Fatalf("size %d: ParseStamp = %d, %v, %v", size, seq, d, err)
		}
	}
	for _, bad := range [][]byte{nil, []byte("short"), make([]byte, 64)} {
		if _, _, err := ParseStamp(bad); err != ErrNotStamped {
			t.Fatalf("ParseStamp(%q) err = %v, want ErrNotStamped", bad, err)
		}
	}
}

func TestRecorderWindow(t *testing.T) {
	var r Recorder
	base := time.Unix(100, 0)
	// Before the window is set, nothing counts.
	r.DeliverAt(base, Stamp(32, 0, base))
	r.setWindow(base, base.Add(time.Second))
	r.DeliverAt(base.Add(10*time.Millisecond), Stamp(32, 1, base))                             // due in, arrived in
	r.DeliverAt(base.Add(1500*time.Millisecond), Stamp(32, 2, base.Add(900*time.Millisecond))) // due in, arrived after
	r.DeliverAt(base.Add(100*time.Millisecond), Stamp(32, 3, base.Add(-time.Millisecond)))     // due before, arrived in
	r.DeliverAt(base, []byte("not ours"))
	if got := r.Latency.Count(); got != 2 {
		t.Fatalf("latency samples %d, want 2 (messages due in the window)", got)
	}
	if got := r.arrived.Load(); got != 2 {
		t.Fatalf("arrivals %d, want 2 (arrived in the window)", got)
	}
	if r.foreign.Load() != 1 {
		t.Fatalf("foreign %d, want 1", r.foreign.Load())
	}
	if got := r.Latency.Max(); got != 600*time.Millisecond {
		t.Fatalf("max latency %v, want 600ms from the due time", got)
	}
}

// loopback delivers every publish to subs subscribers after a fixed delay.
type loopback struct {
	rec   *Recorder
	subs  int
	delay time.Duration
	wg    sync.WaitGroup
	mu    sync.Mutex
	chans []int
}

func (l *loopback) Publish(_ context.Context, ch int, p []byte) error {
	l.mu.Lock()
	l.chans = append(l.chans, ch)
	l.mu.Unlock()
	l.wg.Go(func() {
		time.Sleep(l.delay)
		for range l.subs {
			l.rec.Deliver(p)
		}
	})
	return nil
}

func TestRun(t *testing.T) {
	rec := &Recorder{}
	lb := &loopback{rec: rec, subs: 3, delay: 2 * time.Millisecond}
	cfg := RunConfig{Rate: 500, Channels: 2, Subscribers: 3, Warmup: 40 * time.Millisecond,
		Duration: 200 * time.Millisecond, Drain: 2 * time.Second}
	st, err := Run(context.Background(), cfg, lb, rec)
	lb.wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Expected != 300 || st.Lost != 0 || st.Unsent != 0 {
		t.Fatalf("expected %d lost %d unsent %d, want 300, 0, 0", st.Expected, st.Lost, st.Unsent)
	}
	if st.Offered != 1500 {
		t.Fatalf("offered %v/s, want 1500", st.Offered)
	}
	if st.P50 < 2*time.Millisecond {
		t.Fatalf("p50 %v below the 2 ms delivery delay", st.P50)
	}
	if !slices.Contains(lb.chans, 0) || !slices.Contains(lb.chans, 1) {
		t.Fatalf("channels used %v, want 0 and 1", lb.chans)
	}
}

func TestRunLost(t *testing.T) {
	rec := &Recorder{}
	// Nobody delivers: every expected delivery is lost after the drain.
	st, err := Run(context.Background(), RunConfig{Rate: 200, Subscribers: 2, Warmup: 10 * time.Millisecond,
		Duration: 50 * time.Millisecond, Drain: 20 * time.Millisecond}, TargetFunc(func(context.Context, int, []byte) error { return nil }), rec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Expected != 20 || st.Lost != 20 || st.Delivered != 0 {
		t.Fatalf("%+v, want 20 expected, all lost", st)
	}
}

func TestRunConfigValidate(t *testing.T) {
	if _, err := Run(context.Background(), RunConfig{}, nil, &Recorder{}); err == nil {
		t.Fatal("zero rate accepted")
	}
}

func TestLineRoundTrip(t *testing.T) {
	l := Line{}.Add("bench", "fanout").Add("system", "jsp").Add("rate", 200.0).
		Add("p99-us", 1234567*time.Nanosecond).Add("lost", uint64(3)).Add("odd", "a b=c")
	s := l.String()
	want := "result bench=fanout system=jsp rate=200 p99-us=1234.6 lost=3 odd=a_b_c"
	if s != want {
		t.Fatalf("String() = %q, want %q", s, want)
	}
	got, ok := ParseLine(s)
	if !ok || !slices.Equal(got, l) {
		t.Fatalf("ParseLine = %v, %v; want %v", got, ok, l)
	}
	for _, bad := range []string{"", "result", "other a=b", "result a", "result =b"} {
		if _, ok := ParseLine(bad); ok {
			t.Fatalf("ParseLine(%q) accepted", bad)
		}
	}
	if n := len(ParseLines("noise\n" + s + "\n  " + s + "\nresult x\n")); n != 2 {
		t.Fatalf("ParseLines found %d lines, want 2", n)
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{{nil, 0}, {[]float64{3}, 3}, {[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, tt := range tests {
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestTableMarkdown(t *testing.T) {
	var lines []Line
	add := func(sys, run string, dps, p99 float64) {
		lines = append(lines, Line{}.Add("case", "1x100").Add("system", sys).Add("run", run).
			Add("delivered/s", dps).Add("p99-us", p99))
	}
	add("jsp", "1", 300, 10)
	add("centrifugo", "1", 100, 20)
	add("jsp", "2", 200, 10)
	add("centrifugo", "2", 200, 10)
	add("jsp", "3", 900, 30)
	add("centrifugo", "3", 300, 10)
	md := Table{Row: []string{"case"}, Systems: []string{"jsp", "centrifugo", "nats"},
		Ratios: [][2]string{{"jsp", "centrifugo"}}, Metrics: []string{"delivered/s", "p99-us"}}.Markdown(lines)
	for _, want := range []string{
		"| case | metric | runs | jsp | centrifugo | nats | jsp/centrifugo (same-run median) |",
		"| 1x100 | delivered/s | 3 | 300.0 | 200.0 | — | 3.00 |", // ratios 3, 1, 3
		"| 1x100 | p99-us | 3 | 10 | 10 | — | 1.00 |",            // ratios 0.5, 1, 3
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

func TestQuantileOfCountsLostAsLate(t *testing.T) {
	var h Histogram
	for i := 1; i <= 90; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	// 100 expected, 90 arrived: the median is the 50th smallest, p99 is
	// among the ten lost.
	if got := h.QuantileOf(0.5, 100); got < 50*time.Millisecond || got > 51*time.Millisecond {
		t.Fatalf("p50 = %v, want 50ms", got)
	}
	if got := h.QuantileOf(0.99, 100); got != Never {
		t.Fatalf("p99 = %v, want Never", got)
	}
	if l := (Line{}).Add("p99-us", Never); l.Get("p99-us") != "inf" {
		t.Fatalf("Never formats as %q", l.Get("p99-us"))
	}
	md := Table{Row: []string{"case"}, Systems: []string{"a", "b"}, Ratios: [][2]string{{"a", "b"}}, Metrics: []string{"p99-us"}}.
		Markdown([]Line{
			Line{}.Add("case", "x").Add("system", "a").Add("run", 1).Add("p99-us", Never),
			Line{}.Add("case", "x").Add("system", "b").Add("run", 1).Add("p99-us", time.Millisecond),
		})
	if !strings.Contains(md, "| x | p99-us | 1 | lost | 1000 | — |") {
		t.Fatalf("table:\n%s", md)
	}
}
