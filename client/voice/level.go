package voice

import (
	"github.com/jetstreamproto/jsp/media"
	"github.com/jetstreamproto/jsp/media/audiolevel"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Audio levels (spec/JSP-media.md §13.1, the L field; RFC 6464 values):
// the SDK does not decode, so the level of an audio frame comes from the
// app. The gateway's forwarder reads it from every packet and smooths the
// room's levels into "speakers" events (media/audiolevel). Three ways to
// give it:
//
//	mic.WriteFrame(0, f, voice.WithAudioLevel(level, vad)) // the app measured it
//	mic.WriteFrame(0, f, voice.WithPCM16(pcm))             // the PCM the frame was encoded from
//	f.AudioLevel, f.HasAudioLevel = lvl, true             // set on media.Frame directly
//
// A frame written without any of them carries no level and its
// publisher is never an active speaker.

// WriteOption is a per-frame extra of [LocalTrack.WriteFrame].
type WriteOption func(*media.Frame)

// WithAudioLevel sends level (RFC 6464: 0 loudest .. 127 silence, in
// -dBov; larger values are clamped to 127) with the frame; voice is the
// voice-activity bit of the app's detector.
func WithAudioLevel(level uint8, voice bool) WriteOption {
	return func(f *media.Frame) {
		f.AudioLevel = mediapkt.AudioLevel{Level: min(level, audiolevel.MaxLevel), Voice: voice}
		f.HasAudioLevel = true
	}
}

// WithPCM16 measures the level of the 16-bit PCM samples the frame was
// encoded from (all channels, interleaved) and sends it with the frame;
// the voice bit is set when the level is speech-loud
// (audiolevel.FromPCM16).
func WithPCM16(samples []int16) WriteOption {
	return func(f *media.Frame) {
		f.AudioLevel, f.HasAudioLevel = audiolevel.FromPCM16(samples), true
	}
}

// WithLevel sends a level computed elsewhere (for example by
// audiolevel.FrameLevels from a decoded file).
func WithLevel(l mediapkt.AudioLevel) WriteOption {
	return func(f *media.Frame) {
		f.AudioLevel = mediapkt.AudioLevel{Level: min(l.Level, audiolevel.MaxLevel), Voice: l.Voice}
		f.HasAudioLevel = true
	}
}
