package voiceproto

import (
	"strings"
	"testing"
)

func TestDecodeRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"join", `{"op":"join","room":"r"}`, true},
		{"no op", `{"room":"r"}`, false},
		{"bad kind", `{"op":"publish","room":"r","kind":"smell"}`, false},
		{"too many layers", `{"op":"publish","room":"r","layers":[{},{},{},{}]}`, false},
		{"bad quality", `{"op":"quality","room":"r","quality":"meh"}`, false},
		{"bad permission", `{"op":"create","room":"r","permissions":{"fly":"owner"}}`, false},
		{"wildcard room", `{"op":"join","room":"a.>"}`, false},
		{"long room", `{"op":"join","room":"` + strings.Repeat("x", MaxIDBytes+1) + `"}`, false},
		{"oversize", `{"op":"join","room":"r","codec":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, false},
		{"not json", `{`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(tt.body))
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func FuzzDecodeRequest(f *testing.F) {
	yes := true
	f.Add(Marshal(Request{Op: OpPublish, Room: "r", Track: "cam", Kind: KindVideo, Codec: "vp8",
		Layers: []Layer{{Width: 320, Height: 180, Bitrate: 150_000}}, Muted: &yes, Flows: []uint64{4}}))
	f.Add(Marshal(Request{Op: OpSpeakers, Speakers: []Speaker{{Participant: "p", Level: 0.3}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r2, err := DecodeRequest(Marshal(r)); err != nil || r2.Op != r.Op || r2.Room != r.Room {
			t.Fatalf("round trip: %v %+v %+v", err, r, r2)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add(Marshal(Event{Type: EvJoined, Room: "r", Participant: &Participant{ID: "p", User: "u"}}))
	f.Add(Marshal(Event{Type: EvSpeakers, Room: "r", Speakers: []Speaker{{Participant: "p"}}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b)
		if err != nil {
			return
		}
		if _, err := DecodeEvent(Marshal(e)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLayerMask(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want LayerMask
		ok   bool
	}{{"0", 0, true}, {"5", 5, true}, {"7", 7, true}, {"8", 0, false}, {"-1", 0, false}, {"", 0, false}, {"x", 0, false}, {"007", 7, true}} {
		m, err := ParseLayerMask(tc.in)
		if (err == nil) != tc.ok || m != tc.want {
			t.Errorf("%q: %v %v", tc.in, m, err)
		}
		if err == nil {
			if back, _ := ParseLayerMask(m.String()); back != m {
				t.Errorf("%q: round trip %v", tc.in, back)
			}
		}
	}
	if AllLayers(3) != 7 || AllLayers(1) != 1 || AllLayers(0) != 1 || AllLayers(9) != 7 {
		t.Fatal("AllLayers")
	}
	if !LayerMask(5).Has(2) || LayerMask(5).Has(1) || LayerMask(7).Has(3) || LayerMask(7).Has(-1) {
		t.Fatal("Has")
	}
}

func FuzzParseLayerMask(f *testing.F) {
	for m := range LayerMask(8) {
		f.Add(m.String())
	}
	f.Add("8")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseLayerMask(s)
		if err != nil {
			return
		}
		if m >= 1<<MaxLayers {
			t.Fatalf("%q gave %d", s, m)
		}
		if back, err := ParseLayerMask(m.String()); err != nil || back != m {
			t.Fatalf("%q: round trip %v %v", s, back, err)
		}
	})
}
