package audiolevel

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Header levels for publishers: what goes into the L field of an audio
// packet (JSP §13.1) when the app has the PCM a frame was encoded from.
//
// The voice-activity bit is set when the level is at or above the
// detector's speech level (DefaultActiveLevel): a plain energy gate, which
// is what a publisher without a voice detector of its own can honestly
// claim. A detector configured with UseVoiceFlag then counts the same
// frames as speech that one without it would.

// FromLevel returns the header level for an RFC 6464 level: the level,
// clamped to 0..MaxLevel, and the voice bit of the energy gate.
func FromLevel(level uint8) mediapkt.AudioLevel {
	level = min(level, MaxLevel)
	return mediapkt.AudioLevel{Level: level, Voice: level <= DefaultActiveLevel}
}

// FromPCM16 returns the header level of one frame's 16-bit PCM samples
// (any channel layout: the RMS is over all samples).
func FromPCM16(samples []int16) mediapkt.AudioLevel { return FromLevel(LevelFromPCM16(samples)) }

// FromFloat returns the header level of one frame's float samples in
// [-1, 1].
func FromFloat(samples []float32) mediapkt.AudioLevel { return FromLevel(LevelFromFloat(samples)) }

// MaxFrameSamples caps the samples per channel of one frame a
// [FrameLevels] call measures: 120 ms at 48 kHz, the longest Opus frame
// (RFC 6716 §3.2.5).
const MaxFrameSamples = 5760

// FrameLevels measures a decoded PCM stream frame by frame: pcm is
// interleaved little-endian signed 16-bit samples of channels channels
// (what `opusdec --rate 48000 in.opus -` writes) and frames gives each
// frame's length in samples per channel, in order. It returns one level
// per frame; frames past the end of pcm (a decoder trims the stream's
// end) are silence. It does not allocate from a frame length it has not
// checked.
func FrameLevels(pcm []byte, channels int, frames []int) ([]mediapkt.AudioLevel, error) {
	if channels < 1 || channels > 255 {
		return nil, fmt.Errorf("audiolevel: %d channels, want 1..255", channels)
	}
	if len(pcm)%(2*channels) != 0 {
		return nil, fmt.Errorf("audiolevel: %d bytes of PCM are not whole %d-channel 16-bit samples", len(pcm), channels)
	}
	out := make([]mediapkt.AudioLevel, 0, len(frames))
	var buf []int16
	off := 0
	for i, n := range frames {
		if n < 0 || n > MaxFrameSamples {
			return nil, fmt.Errorf("audiolevel: frame %d of %d samples, want 0..%d", i, n, MaxFrameSamples)
		}
		want := n * channels
		buf = buf[:0]
		for j := 0; j < want && off+1 < len(pcm); j++ {
			buf = append(buf, int16(binary.LittleEndian.Uint16(pcm[off:])))
			off += 2
		}
		// Samples missing at the end count as silence: the RMS is over
		// the frame's full length.
		out = append(out, FromLevel(levelOfPadded(buf, want)))
	}
	return out, nil
}

// levelOfPadded is LevelFromPCM16 of samples followed by zeros up to n.
func levelOfPadded(samples []int16, n int) uint8 {
	if n == 0 || len(samples) == 0 {
		return MaxLevel
	}
	var sum float64
	for _, s := range samples {
		v := float64(s) / 32768
		sum += v * v
	}
	return levelFromRMS(math.Sqrt(sum / float64(n)))
}
