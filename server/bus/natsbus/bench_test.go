package natsbus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
)

// benchServer starts an embedded server with a loopback listener and
// returns an in-process bus and a TCP bus to it.
func benchServer(b *testing.B) (inproc, tcp *natsbus.Bus) {
	b.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{DataDir: b.TempDir(), Listen: "127.0.0.1:0", Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Shutdown)
	inproc, err = srv.Connect(natsbus.ClientConfig{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = inproc.Close() })
	tcp, err = natsbus.Connect([]string{srv.ClientURL()}, natsbus.ClientConfig{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tcp.Close() })
	return inproc, tcp
}

// BenchmarkRoundTrip publishes one 128-byte message and waits until the
// same connection's subscriber has it: the bus's one-way latency plus the
// client work on both ends.
func BenchmarkRoundTrip(b *testing.B) {
	inproc, tcp := benchServer(b)
	for _, tt := range []struct {
		name string
		bus  *natsbus.Bus
	}{{"inprocess", inproc}, {"tcp", tcp}} {
		b.Run(tt.name, func(b *testing.B) {
			got := make(chan struct{}, 1)
			sub, err := tt.bus.Subscribe("jsp.bench.rt", func(*bus.Msg) { got <- struct{}{} })
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()
			msg := bus.Msg{Data: make([]byte, 128)}
			// The subscription is registered once a first message comes
			// back.
			for {
				_ = tt.bus.Publish("jsp.bench.rt", msg)
				select {
				case <-got:
				case <-time.After(10 * time.Millisecond):
					continue
				}
				break
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := tt.bus.Publish("jsp.bench.rt", msg); err != nil {
					b.Fatal(err)
				}
				<-got
			}
		})
	}
}

// BenchmarkRequest is a gateway-to-core command: a request from one
// connection, answered by a queue subscriber on another.
func BenchmarkRequest(b *testing.B) {
	inproc, tcp := benchServer(b)
	for _, tt := range []struct {
		name                 string
		requester, responder *natsbus.Bus
	}{{"inprocess", inproc, inproc}, {"tcp", tcp, tcp}} {
		b.Run(tt.name, func(b *testing.B) {
			subj := "jsp.bench.core.cmd." + tt.name
			sub, err := tt.responder.QueueSubscribe(subj, bus.CoreQueue, func(m *bus.Msg) {
				_ = tt.responder.Publish(m.Reply, bus.Msg{Data: m.Data})
			})
			if err != nil {
				b.Fatal(err)
			}
			defer sub.Unsubscribe()
			ctx := context.Background()
			msg := bus.Msg{Data: make([]byte, 128)}
			for {
				if _, err := tt.requester.Request(ctx, subj, msg); err == nil {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := tt.requester.Request(ctx, subj, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFanout measures deliveries per second from one publisher to k
// receivers of a channel, two ways: k bus subscriptions (what a gateway
// must not do) and one bus subscription with k ChannelFanout sinks (what it
// does).
func BenchmarkFanout(b *testing.B) {
	inproc, _ := benchServer(b)
	s, _ := bus.NewSubjects("bench")
	for _, tt := range []struct {
		mode string
		k    int
	}{{"bus-subs", 1}, {"bus-subs", 10}, {"bus-subs", 100}, {"fanout-sinks", 100}, {"fanout-sinks", 1000}} {
		b.Run(fmt.Sprintf("%s=%d", tt.mode, tt.k), func(b *testing.B) {
			ch := fmt.Sprintf("room-%s-%d", tt.mode, tt.k)
			subj, _ := s.Channel(ch)
			var delivered atomic.Int64
			count := func() { delivered.Add(1) }
			var cleanup []func()
			if tt.mode == "bus-subs" {
				for range tt.k {
					sub, err := inproc.Subscribe(subj, func(*bus.Msg) { count() })
					if err != nil {
						b.Fatal(err)
					}
					cleanup = append(cleanup, func() { _ = sub.Unsubscribe() })
				}
			} else {
				f := bus.NewChannelFanout(inproc, s.Channel)
				for range tt.k {
					if _, err := f.Subscribe(ch, func(string, *bus.Msg) { count() }); err != nil {
						b.Fatal(err)
					}
				}
				cleanup = append(cleanup, func() { _ = f.Close() })
			}
			defer func() {
				for _, c := range cleanup {
					c()
				}
			}()
			msg := bus.Msg{Data: make([]byte, 128)}
			// Warm up until every receiver is registered.
			for delivered.Load() < int64(tt.k) {
				_ = inproc.Publish(subj, msg)
				time.Sleep(time.Millisecond)
			}
			delivered.Store(0)
			// Bound what is in flight, so the benchmark measures delivery,
			// not slow-consumer drops: the server also caps what it queues
			// for one connection (64 MiB), and k subscriptions multiply it.
			window := int64(256)
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				for int64(i)*int64(tt.k)-delivered.Load() > window*int64(tt.k) {
					if inproc.Conn().IsClosed() {
						b.Fatal("connection closed")
					}
					time.Sleep(10 * time.Microsecond)
				}
				if err := inproc.Publish(subj, msg); err != nil {
					b.Fatal(err)
				}
			}
			want := int64(b.N) * int64(tt.k)
			deadline := time.Now().Add(30 * time.Second)
			for delivered.Load() < want {
				if time.Now().After(deadline) {
					b.Fatalf("delivered %d of %d (stats %+v)", delivered.Load(), want, inproc.Stats())
				}
				time.Sleep(10 * time.Microsecond)
			}
			el := time.Since(start).Seconds()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el, "msgs/s")
			b.ReportMetric(float64(want)/el, "deliveries/s")
		})
	}
}
