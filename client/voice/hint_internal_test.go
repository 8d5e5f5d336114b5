package voice

import (
	"slices"
	"testing"

	"github.com/jetstreamproto/jsp/media/bwe"
)

func TestBitrateNotified(t *testing.T) {
	cases := []struct {
		name   string
		layers []Layer
		value  string
		want   []bwe.Bitrate
	}{
		{"split lowest first", []Layer{{Bitrate: 100}, {Bitrate: 300}, {Bitrate: 900}}, "500", []bwe.Bitrate{100, 300, 100}},
		{"single layer", nil, "700", []bwe.Bitrate{700}},
		{"no declared rates", []Layer{{Width: 1}, {Width: 2}}, "800", []bwe.Bitrate{800, 800}},
		{"garbage ignored", []Layer{{Bitrate: 100}}, "fast", nil},
		{"zero ignored", []Layer{{Bitrate: 100}}, "0", nil},
		{"negative ignored", []Layer{{Bitrate: 100}}, "-5", nil},
	}
	for _, c := range cases {
		lt := &LocalTrack{info: Track{Layers: c.layers}}
		var got []bwe.Bitrate
		lt.OnBitrateHint(func(h BitrateHint) { got = h.Layers })
		lt.bitrateNotified(c.value)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: layers %v, want %v", c.name, got, c.want)
		}
		h, ok := lt.BitrateHint()
		if ok != (c.want != nil) || !slices.Equal(h.Layers, c.want) {
			t.Errorf("%s: BitrateHint() = %+v, %v", c.name, h, ok)
		}
	}
}
