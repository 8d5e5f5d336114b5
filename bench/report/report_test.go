package report

import (
	"math"
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/jetstreamproto/jsp/bench
cpu: AMD EPYC
BenchmarkBulk/quic/jsp-2         	       9	 220000000 ns/op	       150.0 MB/s
BenchmarkBulk/quic/raw-2         	      10	 200000000 ns/op	       160.0 MB/s
BenchmarkRoundTrip/quic/64B/jsp-2	   10000	    110000 ns/op	       100.0 p50-µs	       300.0 p99-µs
BenchmarkRoundTrip/quic/64B/raw-2	   10000	    100000 ns/op	        95.0 p50-µs	       250.0 p99-µs
BenchmarkBulk/quic/jsp-2         	       9	 220000000 ns/op	       140.0 MB/s
BenchmarkBulk/quic/raw-2         	      10	 200000000 ns/op	       140.0 MB/s
BenchmarkRoundTrip/quic/64B/jsp-2	   10000	    110000 ns/op	       120.0 p50-µs	       300.0 p99-µs
BenchmarkRoundTrip/quic/64B/raw-2	   10000	    100000 ns/op	       100.0 p50-µs	       260.0 p99-µs
BenchmarkBulk/quic/jsp-2         	       9	 220000000 ns/op	       130.0 MB/s
BenchmarkBulk/quic/raw-2         	      10	 200000000 ns/op	       150.0 MB/s
BenchmarkHandshake/tcp/jsp-2     	     100	   1000000 ns/op	       900.0 handshakes/s	  1000 p50-µs
BenchmarkHandshake/tcp/raw-2     	     100	   1000000 ns/op	      1000.0 handshakes/s	   800 p50-µs
BenchmarkHandshake/tcp/jsp-2     	     100	   1000000 ns/op	       900.0 handshakes/s	  1000 p50-µs
PASS
ok  	github.com/jetstreamproto/jsp/bench	12.3s
`

func TestParseLine(t *testing.T) {
	tests := []struct {
		line    string
		ok      bool
		wantErr bool
		name    string
		iters   int64
		metrics map[string]float64
	}{
		{line: "BenchmarkBulk/quic/jsp-2 	 9	 220 ns/op	 150.5 MB/s", ok: true, name: "Bulk/quic/jsp", iters: 9,
			metrics: map[string]float64{"ns/op": 220, "MB/s": 150.5}},
		{line: "BenchmarkX/64B/raw 3 10 ns/op 1.5 p50-µs", ok: true, name: "X/64B/raw", iters: 3,
			metrics: map[string]float64{"ns/op": 10, "p50-µs": 1.5}},
		{line: "BenchmarkX/jsp-nozstd-16 3 10 ns/op", ok: true, name: "X/jsp-nozstd", iters: 3,
			metrics: map[string]float64{"ns/op": 10}},
		{line: "goos: linux", ok: false},
		{line: "PASS", ok: false},
		{line: "BenchmarkFoo logged something here", ok: false},
		{line: "BenchmarkX-2 3 abc ns/op", wantErr: true},
	}
	for _, tt := range tests {
		res, ok, err := parseLine(tt.line)
		if (err != nil) != tt.wantErr {
			t.Fatalf("%q: err %v, wantErr %v", tt.line, err, tt.wantErr)
		}
		if ok != tt.ok {
			t.Fatalf("%q: ok %v, want %v", tt.line, ok, tt.ok)
		}
		if !ok {
			continue
		}
		if res.Name != tt.name || res.Iterations != tt.iters || len(res.Metrics) != len(tt.metrics) {
			t.Fatalf("%q: got %+v", tt.line, res)
		}
		for k, v := range tt.metrics {
			if res.Metrics[k] != v {
				t.Fatalf("%q: metric %s = %v, want %v", tt.line, k, res.Metrics[k], v)
			}
		}
	}
}

func TestTrimProcs(t *testing.T) {
	for in, want := range map[string]string{
		"Bulk/quic/jsp-2":  "Bulk/quic/jsp",
		"Bulk/quic/jsp":    "Bulk/quic/jsp",
		"A/jsp-nozstd":     "A/jsp-nozstd",
		"A/jsp-nozstd-128": "A/jsp-nozstd",
		"A-":               "A-",
	} {
		if got := trimProcs(in); got != want {
			t.Errorf("trimProcs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5, 5, 1, 100, 5}, 5},
	}
	for _, tt := range tests {
		in := append([]float64(nil), tt.in...)
		if got := Median(tt.in); got != tt.want {
			t.Errorf("Median(%v) = %v, want %v", in, got, tt.want)
		}
		for i := range in {
			if in[i] != tt.in[i] {
				t.Fatalf("Median modified its input")
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func TestRows(t *testing.T) {
	results, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 13 {
		t.Fatalf("parsed %d results, want 13", len(results))
	}
	rows := Rows(results)
	type key struct{ bench, metric string }
	got := map[key]Row{}
	for _, r := range rows {
		got[key{r.Benchmark, r.Metric}] = r
	}
	if len(rows) != 5 {
		t.Fatalf("got %d rows, want 5: %+v", len(rows), rows)
	}
	// The second JSP handshake has no raw partner in its run.
	hs := got[key{"Handshake/tcp", "p50-µs"}]
	if hs.Runs != 1 || hs.Target != nil || hs.RunRatio != 1.25 {
		t.Fatalf("handshake p50 row %+v: only one run pairs up, and no target applies", hs)
	}
	if got[key{"Handshake/tcp", "handshakes/s"}].RunRatio != 0.9 {
		t.Fatalf("handshake rate row %+v", got[key{"Handshake/tcp", "handshakes/s"}])
	}
	bulk := got[key{"Bulk/quic", "MB/s"}]
	// JSP 150, 140, 130 -> 140; raw 160, 140, 150 -> 150; per-run ratios
	// 0.9375, 1, 0.8667 -> 0.9375.
	if bulk.Runs != 3 || bulk.JSP != 140 || bulk.Raw != 150 {
		t.Fatalf("bulk row %+v", bulk)
	}
	if math.Abs(bulk.RunRatio-0.9375) > 1e-9 || math.Abs(bulk.Ratio-140.0/150) > 1e-9 {
		t.Fatalf("bulk ratios %v %v", bulk.Ratio, bulk.RunRatio)
	}
	if bulk.Met() {
		t.Fatal("bulk at 0.94 of raw meets the 0.95 target")
	}
	p50 := got[key{"RoundTrip/quic/64B", "p50-µs"}]
	// ratios 100/95 = 1.0526, 120/100 = 1.2 -> median 1.1263.
	if p50.Runs != 2 || math.Abs(p50.RunRatio-(100.0/95+1.2)/2) > 1e-9 || p50.Met() {
		t.Fatalf("p50 row %+v met=%v", p50, p50.Met())
	}
	p99 := got[key{"RoundTrip/quic/64B", "p99-µs"}]
	if p99.Target != nil || !p99.Met() {
		t.Fatalf("p99 row has a target: %+v", p99)
	}
	var order []string
	for _, r := range rows {
		order = append(order, r.Benchmark+" "+r.Metric)
	}
	wantOrder := []string{"Bulk/quic MB/s", "RoundTrip/quic/64B p50-µs", "RoundTrip/quic/64B p99-µs",
		"Handshake/tcp handshakes/s", "Handshake/tcp p50-µs"}
	if !slices.Equal(order, wantOrder) {
		t.Fatalf("row order %q, want %q", order, wantOrder)
	}

	var sb strings.Builder
	if err := Markdown(&sb, rows); err != nil {
		t.Fatal(err)
	}
	out := sb.String()
	for _, want := range []string{"| Bulk/quic | MB/s | 3 | 140.0 | 150.0 | 0.933 | 0.938 |", "≥ 0.95 | **no** |", "| RoundTrip/quic/64B | p99-µs |"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		t     Target
		ratio float64
		want  bool
	}{
		{Target{Max: false, Limit: 0.95}, 0.95, true},
		{Target{Max: false, Limit: 0.95}, 0.949, false},
		{Target{Max: true, Limit: 1.10}, 1.10, true},
		{Target{Max: true, Limit: 1.10}, 1.11, false},
	}
	for _, tt := range tests {
		if got := tt.t.Met(tt.ratio); got != tt.want {
			t.Errorf("%v.Met(%v) = %v, want %v", tt.t, tt.ratio, got, tt.want)
		}
	}
}
