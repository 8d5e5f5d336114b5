package bench

import (
	"bytes"
	"context"
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/proccpu"
)

var (
	bulkMiB  = flag.Int("bulk-mib", 32, "MiB per bulk transfer in BenchmarkBulk")
	rawFirst = flag.Bool("raw-first", false, "run the raw stack before JSP in each pair (benchreport alternates it between runs)")
	variants = flag.Bool("variants", false, "also run the diagnostic JSP variants (Pair.Variants), after the pair")
)

// rttSizes are the payload sizes of BenchmarkRoundTrip.
var rttSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"1KiB", 1 << 10}}

// benchOrder returns the pair's stacks in the order they run.
func benchOrder(p Pair) []Stack {
	order := []Stack{p.JSP, p.Raw}
	if *rawFirst {
		order = []Stack{p.Raw, p.JSP}
	}
	if *variants {
		order = append(order, p.Variants...)
	}
	return order
}

// forEachStack runs f as sub-benchmark <transport>/<sub...>/<stack> for
// every pair, JSP and raw back to back in the same process.
func forEachStack(b *testing.B, sub string, f func(b *testing.B, st Stack)) {
	for _, p := range Pairs() {
		name := p.Transport
		if sub != "" {
			name += "/" + sub
		}
		b.Run(name, func(b *testing.B) {
			for _, st := range benchOrder(p) {
				b.Run(st.Name, func(b *testing.B) { f(b, st) })
			}
		})
	}
}

// benchCtx bounds everything a benchmark does; a stuck peer fails it.
func benchCtx(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	b.Cleanup(cancel)
	return ctx
}

// serve starts st's server and stops it, checking its errors, at the end.
func serve(tb testing.TB, st Stack) Server {
	tb.Helper()
	srv, err := st.Listen(tlsEnv)
	if err != nil {
		tb.Fatalf("%s: listen: %v", st.Name, err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Errorf("%s server: %v", st.Name, err)
		}
	})
	return srv
}

// connect opens a client connection that is closed at the end.
func connect(tb testing.TB, ctx context.Context, st Stack, srv Server) Conn {
	tb.Helper()
	c, err := st.Connect(ctx, srv.Addr(), tlsEnv)
	if err != nil {
		tb.Fatalf("%s: connect: %v", st.Name, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// cpuMeter reports the process CPU time per operation as "cpu-µs/op"; see
// proccpu.Self. The testing package stops its timer only around the timed
// loop, so the meter is started right before it.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{start: proccpu.Self()} }

func (m cpuMeter) report(b *testing.B, ops int) {
	if m.start == 0 || ops == 0 {
		return
	}
	b.ReportMetric(Micros(proccpu.Self()-m.start)/float64(ops), "cpu-µs/op")
}

// randomBytes returns n deterministic pseudo-random bytes: incompressible,
// like media or encrypted payloads, and the same in every run.
func randomBytes(n int, seed uint64) []byte {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'j', 's', 'p'})
	p := make([]byte, n)
	_, _ = r.Read(p)
	return p
}

// BenchmarkBulk sends -bulk-mib MiB per operation on one connection: on a
// new Stream API stream (JSP) or a new QUIC stream (raw QUIC), or as one
// length-prefixed message (raw TLS). The first transfer, outside the timed
// loop, is verified with SHA-256 and lets flow-control windows grow.
// Reports MB/s (10^6 bytes per second of timed transfer).
func BenchmarkBulk(b *testing.B) {
	data := randomBytes(*bulkMiB<<20, 1)
	forEachStack(b, "", func(b *testing.B, st Stack) {
		ctx := benchCtx(b)
		c := connect(b, ctx, st, serve(b, st))
		ack, err := c.Bulk(ctx, data, true)
		if err == nil {
			err = ack.Check(data, true)
		}
		if err != nil {
			b.Fatalf("verified transfer: %v", err)
		}
		n := 0
		cpu := startCPU()
		for b.Loop() {
			ack, err := c.Bulk(ctx, data, false)
			if err == nil {
				err = ack.Check(data, false)
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(n)*float64(len(data))/b.Elapsed().Seconds()/1e6, "MB/s")
		cpu.report(b, n)
	})
}

// BenchmarkRoundTrip measures request/response latency on one connection:
// COMMAND/REPLY of class chat through Session.Request and Reply (JSP), or a
// write and a read of the same size on one stream (raw), which the server
// echoes. Reports p50-µs and p99-µs over every timed round trip.
func BenchmarkRoundTrip(b *testing.B) {
	for _, sz := range rttSizes {
		p := randomBytes(sz.size, 2)
		forEachStack(b, sz.name, func(b *testing.B, st Stack) {
			ctx := benchCtx(b)
			c := connect(b, ctx, st, serve(b, st))
			out := make([]byte, len(p))
			// Warm-up: streams open, buffers and pools filled, the first
			// answer checked byte for byte.
			for i := range 100 {
				clear(out)
				if err := c.Echo(ctx, p, out); err != nil {
					b.Fatal(err)
				}
				if i == 0 && !bytes.Equal(out, p) {
					b.Fatal("echo differs from the request")
				}
			}
			lat := Latencies{d: make([]time.Duration, 0, 1<<16)}
			cpu := startCPU()
			for b.Loop() {
				t0 := time.Now()
				if err := c.Echo(ctx, p, out); err != nil {
					b.Fatal(err)
				}
				lat.Add(time.Since(t0))
			}
			b.ReportMetric(Micros(lat.Quantile(0.50)), "p50-µs")
			b.ReportMetric(Micros(lat.Quantile(0.99)), "p99-µs")
			cpu.report(b, lat.Len())
		})
	}
}

// BenchmarkHandshake measures full handshakes one after another, each on a
// fresh connection that is closed afterwards: TLS 1.3 plus HELLO/WELCOME
// (JSP), a bare TLS 1.3 handshake over TCP or a bare QUIC handshake (raw).
// No session resumption. Reports handshakes/s and the p50-µs and p99-µs of
// one connect-and-close.
func BenchmarkHandshake(b *testing.B) {
	forEachStack(b, "", func(b *testing.B, st Stack) {
		ctx := benchCtx(b)
		srv := serve(b, st)
		lat := Latencies{d: make([]time.Duration, 0, 1<<12)}
		n := 0
		cpu := startCPU()
		for b.Loop() {
			t0 := time.Now()
			c, err := st.Connect(ctx, srv.Addr(), tlsEnv)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Close(); err != nil {
				b.Fatal(err)
			}
			lat.Add(time.Since(t0))
			n++
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "handshakes/s")
		b.ReportMetric(Micros(lat.Quantile(0.50)), "p50-µs")
		b.ReportMetric(Micros(lat.Quantile(0.99)), "p99-µs")
		cpu.report(b, n)
	})
}

// TestBenchOrder checks that -raw-first swaps the order within a pair and
// -variants appends the variants.
func TestBenchOrder(t *testing.T) {
	p := Pair{JSP: Stack{Name: "jsp"}, Raw: Stack{Name: "raw"}, Variants: []Stack{variant("x", Stack{Name: "jsp"})}}
	defer func(rf, v bool) { *rawFirst, *variants = rf, v }(*rawFirst, *variants)
	tests := []struct {
		rawFirst, variants bool
		want               []string
	}{
		{false, false, []string{"jsp", "raw"}},
		{true, false, []string{"raw", "jsp"}},
		{false, true, []string{"jsp", "raw", "jsp-x"}},
		{true, true, []string{"raw", "jsp", "jsp-x"}},
	}
	for _, tt := range tests {
		*rawFirst, *variants = tt.rawFirst, tt.variants
		var names []string
		for _, st := range benchOrder(p) {
			names = append(names, st.Name)
		}
		if !slices.Equal(names, tt.want) {
			t.Fatalf("raw-first=%v variants=%v: order %v, want %v", tt.rawFirst, tt.variants, names, tt.want)
		}
	}
}
