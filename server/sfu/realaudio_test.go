package sfu

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jetstreamproto/jsp/media/audiolevel"
	"github.com/jetstreamproto/jsp/media/ogg"
	"github.com/jetstreamproto/jsp/reliability/mediapkt"
)

// writeWAV writes mono 16-bit 48 kHz PCM.
func writeWAV(t *testing.T, path string, pcm []int16) {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	b.WriteString("RIFF")
	_ = binary.Write(&b, le, uint32(36+2*len(pcm)))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(48000), uint32(96000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, le, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, le, uint32(2*len(pcm)))
	_ = binary.Write(&b, le, pcm)
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRealOpusThroughSFU encodes 3 s of audio (1.5 s of a tone at -12
// dBov, then silence) with opusenc, publishes it packet by packet with each
// 20 ms frame's RFC 6464 level computed from the PCM, and records what two
// subscribers get as Ogg/Opus files that opusdec decodes to the full
// length. The speaker detector lists the publisher during the tone and
// drops it within a second of the silence.
func TestRealOpusThroughSFU(t *testing.T) {
	if testing.Short() {
		t.Skip("external tools are not run in -short mode")
	}
	enc, err1 := exec.LookPath("opusenc")
	dec, err2 := exec.LookPath("opusdec")
	if err1 != nil || err2 != nil {
		t.Skip("opusenc/opusdec not installed (Debian package opus-tools): skipping the real Opus test")
	}
	dir := t.TempDir()
	const rate, seconds, toneEnd = 48000, 3, 72000 // tone for 1.5 s
	pcm := make([]int16, rate*seconds)
	for i := range toneEnd {
		pcm[i] = int16(0.35 * 32767 * math.Sin(2*math.Pi*300*float64(i)/rate))
	}
	writeWAV(t, filepath.Join(dir, "in.wav"), pcm)
	if out, err := exec.Command(enc, "--quiet", "--bitrate", "24", filepath.Join(dir, "in.wav"), filepath.Join(dir, "in.opus")).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "in.opus"))
	if err != nil {
		t.Fatal(err)
	}
	or, err := ogg.NewOpusReader(bytes.NewReader(raw), ogg.OpusReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}

	f, clk := newForwarder(t, Config{})
	tr, err := f.Publish(TrackConfig{ID: "mic", Kind: KindAudio, Participant: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	var downs []*DownTrack
	var outs []*ogg.OpusWriter
	var files []*os.File
	for i := range 2 {
		d, err := f.Subscribe("mic", SubscriberConfig{InitialSeq: mediapkt.Seq(40000 * i)})
		if err != nil {
			t.Fatal(err)
		}
		fh, err := os.Create(filepath.Join(dir, string(rune('a'+i))+".opus"))
		if err != nil {
			t.Fatal(err)
		}
		w, err := ogg.NewOpusWriter(fh, ogg.OpusWriterConfig{Head: or.Head()})
		if err != nil {
			t.Fatal(err)
		}
		downs, outs, files = append(downs, d), append(outs, w), append(files, fh)
	}
	var seq mediapkt.Seq
	var pos int // samples into the PCM
	var packets int
	var speakingAt, silentAt time.Duration = -1, -1
	start := clk.Now()
	for {
		p, err := or.ReadPacket()
		if err != nil {
			break
		}
		frame := pcm[min(pos, len(pcm)):min(pos+p.Samples, len(pcm))]
		pos += p.Samples
		lvl := audiolevel.LevelFromPCM16(frame)
		h := mediapkt.Header{Flags: mediapkt.FlagEndOfFrame | mediapkt.FlagAudioLevel, Seq: seq, Timestamp: uint32(pos),
			AudioLevel: mediapkt.AudioLevel{Voice: lvl <= 40, Level: lvl}}
		seq++
		b, err := mediapkt.AppendPacket(nil, &h, p.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := tr.WritePacket(0, b); err != nil {
			t.Fatal(err)
		}
		packets++
		for i, d := range downs {
			for _, fb := range drain(d) {
				_, n, err := mediapkt.ParseHeader(fb)
				if err != nil {
					t.Fatal(err)
				}
				if err := outs[i].WritePacket(fb[n:]); err != nil {
					t.Fatal(err)
				}
			}
		}
		clk.Add(time.Duration(p.Samples) * time.Second / rate)
		list, _ := f.Speakers()
		el := clk.Now().Sub(start)
		if len(list) == 1 && speakingAt < 0 {
			speakingAt = el
		}
		if len(list) == 0 && speakingAt >= 0 && silentAt < 0 {
			silentAt = el
		}
	}
	t.Logf("%d packets; alice listed at %v, dropped at %v (tone ends at 1.5 s)", packets, speakingAt, silentAt)
	if speakingAt < 0 || speakingAt > 600*time.Millisecond || silentAt < 1500*time.Millisecond || silentAt > 2600*time.Millisecond {
		t.Fatalf("speaker detection: listed at %v, dropped at %v", speakingAt, silentAt)
	}
	for i, w := range outs {
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := files[i].Close(); err != nil {
			t.Fatal(err)
		}
		wav := filepath.Join(dir, string(rune('a'+i))+".wav")
		if out, err := exec.Command(dec, "--quiet", filepath.Join(dir, string(rune('a'+i))+".opus"), wav).CombinedOutput(); err != nil {
			t.Fatalf("opusdec of subscriber %d's recording: %v\n%s", i, err, out)
		}
		b, err := os.ReadFile(wav)
		if err != nil {
			t.Fatal(err)
		}
		k := bytes.Index(b, []byte("data"))
		samples := int(binary.LittleEndian.Uint32(b[k+4:])) / 2
		if samples < rate*seconds || samples > rate*seconds+ogg.MaxOpusPacketSamples {
			t.Fatalf("subscriber %d: opusdec decoded %d samples, want %d", i, samples, rate*seconds)
		}
		if st := downs[i].Stats(); st.Forwarded != uint64(packets) {
			t.Fatalf("subscriber %d: %+v", i, st)
		}
	}
}
