package gateway

import (
	"context"
	"testing"

	"github.com/jetstreamproto/jsp/server/bus/membus"
	"github.com/jetstreamproto/jsp/server/core"
	"github.com/jetstreamproto/jsp/server/storage"
	"github.com/jetstreamproto/jsp/transport"
)

// TestClusterMixedCodecs: gateways sending JSON and binary requests share
// cores publishing events in either encoding, as during a rolling upgrade
// (D42, docs/operations.md): every client gets every message, in order.
func TestClusterMixedCodecs(t *testing.T) {
	for _, coreCodec := range []core.Codec{core.CodecJSON, core.CodecBinary} {
		t.Run("core "+coreCodec.String(), func(t *testing.T) {
			b, err := membus.New(membus.Config{Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Close() })
			st, err := storage.Open(context.Background(), "sqlite::memory:", storage.Config{Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			c, err := core.New(core.Config{Bus: b, Store: st, Logger: testLogger(), Codec: coreCodec})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Close() })
			gj := startGateway(t, Config{Bus: b, NodeID: "gw-json", BusCodec: core.CodecJSON})
			gb := startGateway(t, Config{Bus: b, NodeID: "gw-binary"})
			const ch = "room.codecs"
			subJ, subB := gj.dial(t, transport.KindMem), gb.dial(t, transport.KindMem)
			subscribe(t, subJ, ch)
			subscribe(t, subB, ch)
			pubJ, pubB := gj.dial(t, transport.KindMem), gb.dial(t, transport.KindMem)
			if err := publishAcked(t, pubJ, ch, "j1", "from json"); err != nil {
				t.Fatal(err)
			}
			if err := publishAcked(t, pubB, ch, "b1", "from binary"); err != nil {
				t.Fatal(err)
			}
			wantEvents(t, subJ, ch, 1, "from json", "from binary")
			wantEvents(t, subB, ch, 1, "from json", "from binary")
		})
	}
}

func TestConfigBusCodec(t *testing.T) {
	for _, tc := range []struct {
		codec core.Codec
		ok    bool
	}{{core.CodecBinary, true}, {core.CodecJSON, true}, {core.CodecJSON + 1, false}} {
		cfg := Config{BusCodec: tc.codec}
		cfg.setDefaults()
		if err := cfg.validate(); (err == nil) != tc.ok {
			t.Errorf("BusCodec %d: %v", tc.codec, err)
		}
	}
}
