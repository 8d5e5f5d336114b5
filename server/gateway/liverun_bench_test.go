package gateway

import (
	"fmt"
	"testing"

	"github.com/jetstreamproto/jsp/internal/proccpu"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

// BenchmarkLive1x1 is the fan-out benchmark's 1x1 case in one process,
// on embedded NATS: one publisher with 64 PUBLISHes in flight, one
// subscriber on the same gateway, with the gateway's no-echo connection
// (D44) and without (the bus echoes the live event back, D43). It reports
// the process's CPU per message, clients included.
func BenchmarkLive1x1(b *testing.B) {
	for _, tc := range []struct {
		name string
		wrap func(bus.Bus) bus.Bus
	}{
		{"no-echo", func(x bus.Bus) bus.Bus { return x }},
		{"echo", func(x bus.Bus) bus.Bus { return echoOnly{x} }},
	} {
		b.Run(tc.name, func(b *testing.B) { benchLive1x1(b, tc.wrap) })
	}
}

func benchLive1x1(b *testing.B, wrap func(bus.Bus) bus.Bus) {
	f := newClusterFixture(b, wrap(embeddedBus(b)))
	off := Rate{PerSecond: -1} // as the fan-out benchmark's server
	g := startGateway(b, Config{Bus: f.bus, Sessions: f.store, NodeID: "gw-bench", LiveChannels: []string{"typing.*"},
		RateLimits: RateLimits{Conn: off, User: off, Channel: off}})
	const ch, window = "typing.bench", 64
	sub, pub := g.dial(b, transport.KindMem), g.dial(b, transport.KindMem)
	subscribe(b, sub, ch)
	if err := publishAcked(b, pub, ch, "warm", "warm"); err != nil {
		b.Fatal(err)
	}
	if _, err := sub.Recv(ctxT(b)); err != nil {
		b.Fatal(err)
	}
	tokens := make(chan struct{}, window)
	acks, events := make(chan error, 1), make(chan error, 1)
	go func() {
		for n := 0; n < b.N; {
			in, err := pub.Recv(ctxT(b))
			if err != nil {
				acks <- err
				return
			}
			switch m := in.Message.(type) {
			case *wire.Ack:
				for range m.IDs {
					<-tokens
					n++
				}
			case *wire.ErrorMessage:
				acks <- fmt.Errorf("ERROR %v for %q", m.Code, m.Ref)
				return
			}
		}
		acks <- nil
	}()
	go func() {
		for n := 0; n < b.N; {
			in, err := sub.Recv(ctxT(b))
			if err != nil {
				events <- err
				return
			}
			if in.Type == wire.FrameEvent {
				n++
			}
		}
		events <- nil
	}()
	body := make([]byte, 64)
	cpu0 := proccpu.Self()
	b.ResetTimer()
	for i := range b.N {
		select {
		case tokens <- struct{}{}:
		case err := <-acks:
			b.Fatalf("after %d PUBLISHes: %v", i, err)
		}
		env := liveEnvelope(ch, fmt.Sprint("m", i), "")
		env.Body = body
		if err := pub.SendEnvelope(wire.FramePublish, env); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-acks; err != nil {
		b.Fatal(err)
	}
	if err := <-events; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(proccpu.Self()-cpu0)/float64(b.N)/1e3, "cpu-us/msg")
}
