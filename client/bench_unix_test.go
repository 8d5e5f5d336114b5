//go:build unix

package client_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/client"
	"github.com/jetstreamproto/jsp/internal/proccpu"
	"github.com/jetstreamproto/jsp/server/gateway"
)

// BenchmarkFanOutReceive receives one channel's events over wss:// on
// fanOutSubscribers Clients, one per subscriber as the fan-out driver
// runs them, through a gateway in this process. One op is one delivered
// event; cpu-ns/delivery is the process's CPU time (gateway and clients)
// per delivery, so that a change on the receiving side shows as the
// difference between two runs with the same gateway.
func BenchmarkFanOutReceive(b *testing.B) {
	const (
		fanOutSubscribers = 32
		// window bounds the events published and not yet received by
		// every subscriber, below every queue's limit: nothing is dropped
		// or recovered from history during the run.
		window = 64
	)
	off := gateway.Rate{PerSecond: -1}
	s := startServer(b, serverOpts{noQUIC: true, rateLimits: gateway.RateLimits{Conn: off, User: off, Channel: off}})
	ctx := ctxT(b)
	var got atomic.Int64
	for range fanOutSubscribers {
		c := s.dial(b, client.SchemeWebSocket)
		if _, err := c.Subscribe(ctx, "bench", func(client.Event) { got.Add(1) }); err != nil {
			b.Fatal(err)
		}
	}
	pub := s.dial(b, client.SchemeWebSocket)
	body := payload(100)
	events := max(1, b.N/fanOutSubscribers)
	waitFor := func(n int64) {
		deadline := time.Now().Add(time.Minute)
		for got.Load() < n {
			if time.Now().After(deadline) {
				b.Fatalf("received %d of %d deliveries", got.Load(), n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	b.ResetTimer()
	cpu := proccpu.Self()
	for i := range events {
		if i >= window {
			waitFor(int64(i-window+1) * fanOutSubscribers)
		}
		if err := pub.Publish(ctx, "bench", body); err != nil {
			b.Fatal(err)
		}
	}
	waitFor(int64(events) * fanOutSubscribers)
	b.StopTimer()
	cpu = proccpu.Self() - cpu
	if n := got.Load(); n != int64(events)*fanOutSubscribers {
		b.Fatalf("%d deliveries, want %d", n, events*fanOutSubscribers)
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(events*fanOutSubscribers), "cpu-ns/delivery")
}
