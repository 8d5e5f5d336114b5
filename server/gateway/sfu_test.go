package gateway

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
	"github.com/jetstreamproto/jsp/server/bus"
	"github.com/jetstreamproto/jsp/services/voice/voiceproto"
	"github.com/jetstreamproto/jsp/transport"
	"github.com/jetstreamproto/jsp/wire"
)

func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100]
}

// TestMediaRelayLatency measures the two ways media can cross between
// gateways on one machine (D21): a media packet relayed over the bus
// (embedded NATS, publish -> subscriber callback, one way) and a datagram
// on a JSP session over loopback QUIC (echoed by the gateway, half the
// round trip). It logs p50/p99 and asserts only that packets arrive.
func TestMediaRelayLatency(t *testing.T) {
	if testing.Short() {
		t.Skip("latency measurement skipped in -short mode")
	}
	const n, size = 400, 1001 // a full media packet plus the layer byte
	b := embeddedBus(t)
	got := make(chan time.Duration, n)
	sub, err := b.Subscribe("jspmedia.lat.pkt", func(m *bus.Msg) {
		sent := time.Unix(0, int64(binary.BigEndian.Uint64(m.Data)))
		got <- time.Since(sent)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	msg := make([]byte, size)
	var viaBus []time.Duration
	for range n {
		binary.BigEndian.PutUint64(msg, uint64(time.Now().UnixNano()))
		if err := b.Publish("jspmedia.lat.pkt", bus.Msg{Data: slices.Clone(msg)}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-got:
			viaBus = append(viaBus, d)
		case <-time.After(time.Second):
		}
		time.Sleep(2 * time.Millisecond)
	}

	g := startGateway(t, Config{QUICAddr: "127.0.0.1:0"})
	s := g.dial(t, transport.KindQUIC)
	ctx := ctxT(t)
	var viaLink []time.Duration
	for range n {
		start := time.Now()
		if err := s.SendDatagram(msg[:size-1], protocol.ClassMedia); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ReceiveDatagram(ctx); err != nil {
			t.Fatal(err)
		}
		viaLink = append(viaLink, time.Since(start)/2)
		time.Sleep(2 * time.Millisecond)
	}
	if len(viaBus) < n*9/10 || len(viaLink) < n*9/10 {
		t.Fatalf("arrived: bus %d, link %d of %d", len(viaBus), len(viaLink), n)
	}
	b50, b99 := percentiles(viaBus)
	l50, l99 := percentiles(viaLink)
	t.Logf("one way, %d packets of %d bytes: bus (embedded NATS) p50 %v p99 %v; JSP session over loopback QUIC p50 %v p99 %v",
		n, size, b50, b99, l50, l99)
}

// TestMediaCommandRefusals: voice.media needs a bus, valid flows and the
// core's grant.
func TestMediaCommandRefusals(t *testing.T) {
	tests := []struct {
		name string
		bus  bool
		req  voiceproto.Request
		code jsperr.Code
	}{
		{"no bus", false, voiceproto.Request{Op: voiceproto.MediaSubscribe, Room: "r", Track: "t", Flows: []uint64{2}}, jsperr.NotFound},
		{"reserved flow", true, voiceproto.Request{Op: voiceproto.MediaSubscribe, Room: "r", Track: "t", Flows: []uint64{1}}, jsperr.BadRequest},
		{"no voice service", true, voiceproto.Request{Op: voiceproto.MediaSubscribe, Room: "r", Track: "t", Flows: []uint64{2}}, jsperr.NotFound},
		{"bad body", true, voiceproto.Request{Room: "r"}, jsperr.BadRequest},
		{"unknown op", true, voiceproto.Request{Op: "fly", Room: "r"}, jsperr.BadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.bus {
				f := newClusterFixture(t, embeddedBus(t))
				cfg = Config{Bus: f.bus, Sessions: f.store}
			}
			g := startGateway(t, cfg)
			s := g.dial(t, transport.KindMem)
			env := &wire.Envelope{ID: []byte("m1"), Route: wire.Route{Kind: wire.RouteService, Name: voiceproto.MediaService},
				Kind: wire.KindCommand, Class: protocol.ClassChat, Body: voiceproto.Marshal(tt.req)}
			if err := s.SendEnvelope(wire.FrameCommand, env); err != nil {
				t.Fatal(err)
			}
			in := recvType(t, s, wire.FrameReply)
			if in.Envelope.ErrCode != tt.code {
				t.Fatalf("reply code %v, want %v", in.Envelope.ErrCode, tt.code)
			}
		})
	}
}
