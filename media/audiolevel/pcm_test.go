package audiolevel

import (
	"encoding/binary"
	"testing"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

func TestFromLevelVoiceGate(t *testing.T) {
	cases := []struct {
		in   uint8
		want mediapkt.AudioLevel
	}{
		{0, mediapkt.AudioLevel{Level: 0, Voice: true}},
		{DefaultActiveLevel, mediapkt.AudioLevel{Level: DefaultActiveLevel, Voice: true}},
		{DefaultActiveLevel + 1, mediapkt.AudioLevel{Level: DefaultActiveLevel + 1}},
		{127, mediapkt.AudioLevel{Level: 127}},
		{200, mediapkt.AudioLevel{Level: 127}}, // clamped: the header has 7 bits
	}
	for _, c := range cases {
		if got := FromLevel(c.in); got != c.want {
			t.Errorf("FromLevel(%d) = %+v, want %+v", c.in, got, c.want)
		}
	}
	if got := FromPCM16(sine(960, 1)); got.Level != 3 || !got.Voice {
		t.Errorf("full-scale sine: %+v", got)
	}
	if got := FromPCM16(make([]int16, 960)); got.Level != MaxLevel || got.Voice {
		t.Errorf("silence: %+v", got)
	}
	if got := FromFloat([]float32{0.5, -0.5}); got.Level != 6 || !got.Voice {
		t.Errorf("float half scale: %+v", got)
	}
}

func pcmBytes(s []int16) []byte {
	b := make([]byte, 0, 2*len(s))
	for _, v := range s {
		b = binary.LittleEndian.AppendUint16(b, uint16(v))
	}
	return b
}

func TestFrameLevels(t *testing.T) {
	loud, quiet := sine(960, 1), sine(960, 0.001)
	stream := pcmBytes(append(append(append([]int16{}, loud...), make([]int16, 960)...), quiet...))
	got, err := FrameLevels(stream, 1, []int{960, 960, 960, 960})
	if err != nil {
		t.Fatal(err)
	}
	want := []uint8{3, 127, 63, 127} // the fourth frame is past the end: silence
	for i, w := range want {
		if got[i].Level != w {
			t.Errorf("frame %d: level %d, want %d", i, got[i].Level, w)
		}
	}
	// Stereo: two channels interleaved, 480 samples per channel.
	st, err := FrameLevels(pcmBytes(sine(960, 1)), 2, []int{480})
	if err != nil || st[0].Level != 3 {
		t.Errorf("stereo: %+v %v", st, err)
	}
	// A frame cut by the end of the stream is padded with silence: half
	// the energy is -3 dB.
	half, err := FrameLevels(pcmBytes(sine(480, 1)), 1, []int{960})
	if err != nil || half[0].Level != 6 {
		t.Errorf("padded frame: %+v %v", half, err)
	}
}

func TestFrameLevelsLimits(t *testing.T) {
	cases := []struct {
		name     string
		pcm      []byte
		channels int
		frames   []int
	}{
		{"no channels", nil, 0, nil},
		{"too many channels", nil, 256, nil},
		{"odd bytes", []byte{1, 2, 3}, 1, []int{1}},
		{"partial stereo sample", []byte{1, 2}, 2, []int{1}},
		{"negative frame", nil, 1, []int{-1}},
		{"frame over the limit", nil, 1, []int{MaxFrameSamples + 1}},
	}
	for _, c := range cases {
		if _, err := FrameLevels(c.pcm, c.channels, c.frames); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
	if got, err := FrameLevels(nil, 1, []int{MaxFrameSamples, 0}); err != nil || len(got) != 2 || got[1].Level != MaxLevel {
		t.Errorf("limit frame and empty frame: %+v %v", got, err)
	}
}

func FuzzFrameLevels(f *testing.F) {
	f.Add(pcmBytes(sine(960, 1)), uint8(1), uint16(960), uint16(480))
	f.Add([]byte{1, 2, 3, 4}, uint8(2), uint16(1), uint16(0))
	f.Fuzz(func(t *testing.T, pcm []byte, ch uint8, a, b uint16) {
		got, err := FrameLevels(pcm, int(ch), []int{int(a), int(b)})
		if err != nil {
			return
		}
		if len(got) != 2 {
			t.Fatalf("%d levels for 2 frames", len(got))
		}
		for _, l := range got {
			if l.Level > MaxLevel || l.Voice != (l.Level <= DefaultActiveLevel) {
				t.Fatalf("level %+v", l)
			}
		}
	})
}
