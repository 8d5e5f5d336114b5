package core_test

import (
	"context"
	"fmt"
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
