package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/jetstreamproto/jsp/media/audiolevel"
	"github.com/jetstreamproto/jsp/media/ogg"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// Audio levels of a published Ogg/Opus file (spec/JSP-media.md §13.1, L
// field). The SDK does not decode, and an Opus packet's bytes say nothing
// reliable about loudness, so `jsp call` decodes the file once with
// opusdec (Debian package opus-tools) into 48 kHz PCM before sending and
// measures each packet's samples (audiolevel.FrameLevels): the level a
// live microphone app would measure before encoding.
//
// --levels auto uses opusdec when it is on PATH and sends no levels
// otherwise (saying so); opusdec requires it; off sends none. Without
// levels the publisher is never an active speaker.
const (
	levelsAuto    = "auto"
	levelsOpusdec = "opusdec"
	levelsOff     = "off"
)

// maxLevelsPCM caps the decoded PCM read for levels: one hour of 48 kHz
// stereo 16-bit audio. A longer file is published without levels.
const maxLevelsPCM = 3600 * 48_000 * 2 * 2

// oggLevels returns one level per Opus packet of the file at path, or nil
// when levels are off (or, in auto mode, opusdec is missing: note says
// why).
func oggLevels(ctx context.Context, mode, path string) (levels []mediapkt.AudioLevel, note string, err error) {
	switch mode {
	case levelsOff:
		return nil, "", nil
	case levelsAuto, levelsOpusdec, "":
	default:
		return nil, "", fmt.Errorf("--levels %q: want %s, %s or %s", mode, levelsAuto, levelsOpusdec, levelsOff)
	}
	dec, err := exec.LookPath("opusdec")
	if err != nil {
		if mode == levelsOpusdec {
			return nil, "", fmt.Errorf("--levels opusdec: opusdec not found (Debian package opus-tools): %w", err)
		}
		return nil, "opusdec not found (Debian package opus-tools): publishing without audio levels", nil
	}
	head, frames, err := opusFrames(path)
	if err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, dec, "--quiet", "--rate", "48000", path, "-")
	cmd.Stdout, cmd.Stderr = &limitedWriter{w: &out, n: maxLevelsPCM}, &errOut
	if err := cmd.Run(); err != nil {
		return nil, "", fmt.Errorf("opusdec %s: %w: %s", path, err, bytes.TrimSpace(errOut.Bytes()))
	}
	// opusdec writes every channel of the head, interleaved.
	ch := max(int(head.Channels), 1)
	levels, err = audiolevel.FrameLevels(out.Bytes(), ch, frames)
	if err != nil {
		return nil, "", fmt.Errorf("levels of %s: %w", path, err)
	}
	return levels, "", nil
}

// opusFrames reads the file's packet durations and turns them into
// lengths in the decoded PCM, which starts after the pre-skip (RFC 7845
// §4.2): the packets the pre-skip covers are shortened, down to zero.
func opusFrames(path string) (ogg.OpusHead, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return ogg.OpusHead{}, nil, fmt.Errorf("--ogg: %w", err)
	}
	defer f.Close()
	r, err := ogg.NewOpusReader(f, ogg.OpusReaderConfig{})
	if err != nil {
		return ogg.OpusHead{}, nil, fmt.Errorf("--ogg %s: %w", path, err)
	}
	skip := int(r.Head().PreSkip)
	var frames []int
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return r.Head(), frames, nil
		}
		if err != nil {
			return ogg.OpusHead{}, nil, fmt.Errorf("--ogg %s: %w", path, err)
		}
		n := min(p.Samples, audiolevel.MaxFrameSamples)
		cut := min(skip, n)
		skip -= cut
		frames = append(frames, n-cut)
	}
}

// limitedWriter fails once more than n bytes were written.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > l.n {
		return 0, fmt.Errorf("decoded audio over %d bytes", maxLevelsPCM)
	}
	l.n -= len(p)
	return l.w.Write(p)
}
