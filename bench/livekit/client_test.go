package main

import (
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/jetstreamproto/jsp/bench/sfu/load"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestVP8Frame checks what LiveKit's forwarder and the subscribers read: a
// key frame's tag bit and start code, the size kept, and the benchmark
// header right after the VP8 header.
func TestVP8Frame(t *testing.T) {
	payload := make([]byte, 100)
	want := load.FrameHeader{Sent: time.Unix(5, 6), Sched: time.Unix(5, 0), Seq: 9, Layer: 2, Window: true}
	load.PutHeader(payload, want)
	tests := []struct {
		key bool
		tag byte
	}{{true, 0}, {false, 1}}
	for _, tt := range tests {
		b := vp8Frame(nil, load.OutFrame{Payload: payload, KeyFrame: tt.key}, 1280, 720)
		if len(b) != len(payload) {
			t.Errorf("key=%v: %d bytes, want %d", tt.key, len(b), len(payload))
		}
		if b[0]&1 != tt.tag || b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
			t.Errorf("key=%v: VP8 header % x", tt.key, b[:vp8HeaderLen])
		}
		if w, h := int(b[6])|int(b[7])<<8, int(b[8])|int(b[9])<<8; w != 1280 || h != 720 {
			t.Errorf("size %dx%d", w, h)
		}
		got, err := load.ParseHeader(b[vp8HeaderLen:])
		if err != nil || got.Seq != want.Seq || got.Layer != want.Layer || !got.Sent.Equal(want.Sent) || !got.Window {
			t.Errorf("key=%v: header %+v %v", tt.key, got, err)
		}
	}
	// A frame smaller than both headers still carries the whole benchmark
	// header.
	small := make([]byte, load.PayloadHeader)
	load.PutHeader(small, want)
	if b := vp8Frame(nil, load.OutFrame{Payload: small}, 320, 180); len(b) != vp8HeaderLen+load.PayloadHeader {
		t.Errorf("small frame: %d bytes", len(b))
	}
}
