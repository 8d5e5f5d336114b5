package core_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/server/bus/natsbus"
	"github.com/jetstreamproto/jsp/server/storage"
)

// BenchmarkPublish measures one publish round trip: request over the bus,
// durable commit in a SQLite file, event published, reply.
func BenchmarkPublish(b *testing.B) {
	for _, tc := range []struct {
		name string
		bus  func(b *testing.B) bus.Bus
	}{
		{"membus", func(b *testing.B) bus.Bus { return newMemBus(b) }},
		{"nats-embedded", func(b *testing.B) bus.Bus {
			nb, err := natsbus.Embedded(natsbus.EmbeddedConfig{
				Server: natsbus.ServerConfig{DataDir: b.TempDir(), Logger: quiet},
				Client: natsbus.ClientConfig{Logger: quiet},
			})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = nb.Close() })
			return nb
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixtureDSN(b, tc.bus(b), "sqlite:"+b.TempDir()+"/bench.db")
			ctx := context.Background()
			body := make([]byte, 256)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := f.client.Publish(ctx, "bench", storage.Message{ClientID: fmt.Sprint(i), Sender: "alice", Body: body}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishParallel measures publishes from concurrent callers,
// each on its own channel, against a SQLite file over membus: the worker
// lanes let them share group commits. One op is one message.
func BenchmarkPublishParallel(b *testing.B) {
	f := newFixtureDSN(b, newMemBus(b), "sqlite:"+b.TempDir()+"/bench.db")
	body := make([]byte, 256)
	var next atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ch := fmt.Sprint("bench", next.Add(1))
		for i := 0; pb.Next(); i++ {
			if _, err := f.client.Publish(context.Background(), ch, storage.Message{ClientID: fmt.Sprint(ch, "-", i), Sender: "alice", Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishMany measures multi-message publishes of 64 messages to
// one channel (a gateway's publish window), against a SQLite file over
// membus. One op is one message.
func BenchmarkPublishMany(b *testing.B) {
	const window = 64
	f := newFixtureDSN(b, newMemBus(b), "sqlite:"+b.TempDir()+"/bench.db")
	body := make([]byte, 256)
	msgs := make([]storage.Message, window)
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; n < b.N; n += window {
		for i := range msgs {
			msgs[i] = storage.Message{ClientID: fmt.Sprint(n + i), Sender: "alice", Body: body}
		}
		res, err := f.client.PublishMany(context.Background(), "bench", msgs[:min(window, b.N-n)])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if err := r.Err(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkPublishChannels measures one-message publishes spread over
// 1,000 channels by 256 concurrent callers, as a gateway sends a publish
// window whose messages go to different channels (the fan-out benchmark's
// 1000x10 case), against a SQLite file over embedded NATS. One op is one
// message.
func BenchmarkPublishChannels(b *testing.B) {
	nb, err := natsbus.Embedded(natsbus.EmbeddedConfig{
		Server: natsbus.ServerConfig{DataDir: b.TempDir(), Logger: quiet},
		Client: natsbus.ClientConfig{Logger: quiet},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = nb.Close() })
	f := newFixtureDSN(b, nb, "sqlite:"+b.TempDir()+"/bench.db")
	body := make([]byte, 64)
	var next atomic.Int64
	b.SetParallelism(128) // 256 callers on 2 CPUs
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			ch := fmt.Sprint("c", i%1000)
			if _, err := f.client.Publish(context.Background(), ch, storage.Message{ClientID: fmt.Sprint(i), Sender: "alice", Body: body}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
