// Package audiolevel measures audio levels as RFC 6464 expresses them (0 to
// 127, in -dBov: 0 is the loudest a signal can be, 127 silence) and turns
// the levels carried on audio media packets (the L field of the media
// packet header, JSP §13.1) into active-speaker decisions.
//
// A publisher computes each frame's level from its PCM before encoding
// ([LevelFromPCM16], or [FromPCM16] for the header level with a voice bit;
// [FrameLevels] for a decoded file) and sends it with the frame
// (media.Frame.AudioLevel).
// The SFU never decodes audio: it feeds the levels of every participant's
// packets to a [Detector], which
//
//  1. cuts each participant's observations into windows (500 ms by
//     default) and calls a window active when enough of its audio (40 %)
//     was at or above the speech level (-35 dBov, level <= 35);
//  2. keeps an exponentially smoothed loudness per participant (the mean
//     linear amplitude of its active observations, 0 for an inactive
//     window);
//  3. lists as speakers the participants whose smoothed loudness is above
//     an entry threshold, keeping them until it falls under a lower exit
//     threshold (hysteresis), loudest first, at most MaxSpeakers;
//  4. reports a change of that list at most once per MinEventInterval.
package audiolevel

import (
	"math"
)

// MaxLevel is the quietest level, silence (RFC 6464).
const MaxLevel = 127

// LevelFromPCM16 returns the RFC 6464 level of 16-bit PCM samples: the RMS
// amplitude in dB relative to a full-scale square wave (dBov), negated and
// rounded, 0..127. An empty or all-zero input is silence (127).
func LevelFromPCM16(samples []int16) uint8 {
	if len(samples) == 0 {
		return MaxLevel
	}
	var sum float64
	for _, s := range samples {
		v := float64(s) / 32768
		sum += v * v
	}
	return levelFromRMS(math.Sqrt(sum / float64(len(samples))))
}

// LevelFromFloat returns the level of float samples in [-1, 1].
func LevelFromFloat(samples []float32) uint8 {
	if len(samples) == 0 {
		return MaxLevel
	}
	var sum float64
	for _, s := range samples {
		v := float64(s)
		sum += v * v
	}
	return levelFromRMS(math.Sqrt(sum / float64(len(samples))))
}

func levelFromRMS(rms float64) uint8 {
	if rms <= 0 {
		return MaxLevel
	}
	db := -20 * math.Log10(rms)
	return uint8(math.Max(0, math.Min(MaxLevel, math.Round(db))))
}

// Linear converts a level to a linear amplitude, 1 at level 0 and about
// 4.5e-7 at 127.
func Linear(level uint8) float64 {
	return math.Pow(10, -float64(min(level, MaxLevel))/20)
}
