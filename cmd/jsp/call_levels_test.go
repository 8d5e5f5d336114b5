package main

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/security/token"
)

// levelTools returns espeak-ng and opusenc, or skips naming the missing
// Debian package. opusdec is looked up by `jsp call` itself.
func levelTools(t *testing.T) (espeak, enc string) {
	t.Helper()
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	var err error
	if espeak, err = exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (Debian package espeak-ng)")
	}
	if enc, err = exec.LookPath("opusenc"); err != nil {
		t.Skip("opusenc not installed (Debian package opus-tools)")
	}
	if _, err = exec.LookPath("opusdec"); err != nil {
		t.Skip("opusdec not installed (Debian package opus-tools)")
	}
	return espeak, enc
}

// writeSilenceWAV writes d of 48 kHz mono 16-bit silence.
func writeSilenceWAV(t *testing.T, path string, d time.Duration) {
	t.Helper()
	n := uint32(48_000 * d / time.Second)
	le := binary.LittleEndian
	b := []byte("RIFF")
	b = le.AppendUint32(b, 36+2*n)
	b = append(b, "WAVEfmt "...)
	b = le.AppendUint32(b, 16)
	b = le.AppendUint16(b, 1) // PCM
	b = le.AppendUint16(b, 1) // mono
	b = le.AppendUint32(b, 48_000)
	b = le.AppendUint32(b, 96_000)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 16)
	b = append(b, "data"...)
	b = le.AppendUint32(b, 2*n)
	b = append(b, make([]byte, 2*n)...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func opusenc(t *testing.T, enc, wav, out string) {
	t.Helper()
	if o, err := exec.Command(enc, "--quiet", "--bitrate", "24", "--framesize", "20", wav, out).CombinedOutput(); err != nil {
		t.Fatalf("opusenc %s: %v: %s", wav, err, o)
	}
}

// TestCallActiveSpeakerLevels: alice publishes real speech (espeak-ng,
// opusenc), bob publishes silence of the same length, both with levels
// measured by `jsp call` from opusdec's PCM; carol only listens. The
// speakers events carol prints name alice and never bob: levels go from
// the CLI through the gateway's forwarder and the rooms service.
func TestCallActiveSpeakerLevels(t *testing.T) {
	espeak, enc := levelTools(t)
	node := startTokenNode(t, "level-test")
	ctx := node.ctx
	dir := t.TempDir()
	speechWAV, silenceWAV := filepath.Join(dir, "speech.wav"), filepath.Join(dir, "silence.wav")
	if o, err := exec.Command(espeak, "-w", speechWAV, "Good morning everyone. The build is green and the release goes out today.").CombinedOutput(); err != nil {
		t.Fatalf("espeak-ng: %v: %s", err, o)
	}
	writeSilenceWAV(t, silenceWAV, 4*time.Second)
	speech, silence := filepath.Join(dir, "speech.opus"), filepath.Join(dir, "silence.opus")
	opusenc(t, enc, speechWAV, speech)
	opusenc(t, enc, silenceWAV, silence)

	flags := func(user string) *callFlags {
		tok, err := token.Sign(node.key, token.Claims{Audience: "level-test", Subject: user, NotBefore: time.Now().Add(-time.Minute), Expiry: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		tokFile := filepath.Join(dir, user+".tok")
		if err := os.WriteFile(tokFile, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return &callFlags{dialFlags: dialFlags{pins: []string{node.pin}, timeout: 10 * time.Second, logLevel: "error"},
			token: "@" + tokFile, room: "levels", linger: time.Second, levels: levelsOpusdec, stats: true}
	}
	url := "jsp+tcp://" + node.addr
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	carolOut := &syncBuffer{}
	carolDone := make(chan error, 1)
	go func() { carolDone <- runCall(cctx, flags("carol"), url, carolOut, io.Discard) }()
	waitOutput(t, carolOut, "joined levels")

	type run struct {
		out  *syncBuffer
		done chan error
	}
	start := func(user, file string) run {
		f := flags(user)
		f.oggIn = file
		r := run{out: &syncBuffer{}, done: make(chan error, 1)}
		go func() { r.done <- runCall(ctx, f, url, r.out, io.Discard) }()
		return r
	}
	alice, bob := start("alice", speech), start("bob", silence)
	idOf := func(r run) string {
		m := regexp.MustCompile(`joined levels as (\S+)`).FindStringSubmatch(waitOutput(t, r.out, "joined levels as "))
		return m[1]
	}
	aliceID, bobID := idOf(alice), idOf(bob)
	for name, r := range map[string]run{"alice": alice, "bob": bob} {
		if err := <-r.done; err != nil {
			t.Fatalf("%s: %v\n%s", name, err, r.out.String())
		}
		if !strings.Contains(r.out.String(), "with audio levels") {
			t.Fatalf("%s published without levels:\n%s", name, r.out.String())
		}
	}
	got := waitOutput(t, carolOut, "speakers: "+aliceID)
	ccancel()
	if err := <-carolDone; err != nil {
		t.Fatalf("carol: %v", err)
	}
	got = carolOut.String()
	for _, line := range strings.Split(got, "\n") {
		if strings.HasPrefix(line, "speakers:") && strings.Contains(line, bobID) {
			t.Fatalf("silent bob (%s) named a speaker: %q\n%s", bobID, line, got)
		}
	}
	if !regexp.MustCompile(`stats \S+/mic: \d+ frames`).MatchString(got) {
		t.Errorf("carol printed no --stats line:\n%s", got)
	}
	t.Logf("carol saw:\n%s", got)
	node.stop(t)
}

func TestOggLevelsModes(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "x.opus")
	writeOpusFile(t, in, 3)
	if l, note, err := oggLevels(context.Background(), levelsOff, in); l != nil || note != "" || err != nil {
		t.Errorf("off: %v %q %v", l, note, err)
	}
	if _, _, err := oggLevels(context.Background(), "loud", in); err == nil {
		t.Error("unknown mode accepted")
	}
	head, frames, err := opusFrames(in)
	if err != nil {
		t.Fatal(err)
	}
	// Three 20 ms packets; the pre-skip (312 samples) shortens the first.
	if want := []int{960 - int(head.PreSkip), 960, 960}; len(frames) != 3 || frames[0] != want[0] || frames[2] != want[2] {
		t.Errorf("frames %v, want %v", frames, want)
	}
}
