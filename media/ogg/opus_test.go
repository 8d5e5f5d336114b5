package ogg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func TestOpusPacketSamples(t *testing.T) {
	cases := []struct {
		pkt  []byte
		want int
		err  bool
	}{
		{[]byte{0 << 3}, 480, false},        // SILK NB 10 ms
		{[]byte{3 << 3}, 2880, false},       // SILK 60 ms
		{[]byte{13 << 3}, 960, false},       // Hybrid 20 ms
		{[]byte{16 << 3}, 120, false},       // CELT 2.5 ms
		{[]byte{31<<3 | 0}, 960, false},     // CELT 20 ms, one frame
		{[]byte{31<<3 | 1}, 1920, false},    // two equal frames
		{[]byte{31<<3 | 2}, 1920, false},    // two frames of different size
		{[]byte{31<<3 | 3, 6}, 5760, false}, // six 20 ms frames: the 120 ms cap
		{[]byte{31<<3 | 3, 7}, 0, true},     // 140 ms
		{[]byte{3<<3 | 3, 3}, 0, true},      // 3 x 60 ms
		{[]byte{31<<3 | 3, 0}, 0, true},     // no frames
		{[]byte{31<<3 | 3}, 0, true},        // count byte missing
		{nil, 0, true},
	}
	for _, c := range cases {
		n, err := OpusPacketSamples(c.pkt)
		if (err != nil) != c.err || n != c.want {
			t.Errorf("%x: got %d, %v; want %d, err=%v", c.pkt, n, err, c.want, c.err)
		}
	}
}

func TestOpusHeadersRoundTrip(t *testing.T) {
	heads := []OpusHead{
		{Version: 1, Channels: 2, PreSkip: 312, InputSampleRate: 44100, OutputGain: -256},
		{Version: 1, Channels: 3, MappingFamily: 1, StreamCount: 2, CoupledCount: 1, Mapping: []uint8{0, 2, 1}},
	}
	for _, h := range heads {
		b, err := h.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseOpusHead(b)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := got.Append(nil)
		if !bytes.Equal(again, b) {
			t.Fatalf("head round trip: %x vs %x", again, b)
		}
		for i := range len(b) {
			if _, err := ParseOpusHead(b[:i]); err == nil {
				t.Fatalf("head prefix of %d parsed", i)
			}
		}
	}
	bad := []OpusHead{
		{Version: 0x10, Channels: 1},
		{Version: 1},
		{Version: 1, Channels: 3},
		{Version: 1, Channels: 1, MappingFamily: 1, StreamCount: 1, CoupledCount: 2, Mapping: []uint8{0}},
		{Version: 1, Channels: 2, MappingFamily: 1, StreamCount: 1, Mapping: []uint8{0}},
		{Version: 1, Channels: 1, MappingFamily: 1, StreamCount: 1, Mapping: []uint8{5}},
	}
	for _, h := range bad {
		if _, err := h.Append(nil); !errors.Is(err, ErrOpusHead) {
			t.Errorf("%+v accepted: %v", h, err)
		}
	}
	tags := OpusTags{Vendor: "v", Comments: []string{"TITLE=x", ""}}
	b := tags.Append(nil)
	got, err := ParseOpusTags(b)
	if err != nil || got.Vendor != "v" || len(got.Comments) != 2 || got.Comments[0] != "TITLE=x" {
		t.Fatalf("tags: %+v %v", got, err)
	}
	for i := range len(b) {
		if _, err := ParseOpusTags(b[:i]); err == nil {
			t.Fatalf("tags prefix of %d parsed", i)
		}
	}
	huge := append(OpusTags{Vendor: "v"}.Append(nil)[:13], 0xff, 0xff, 0xff, 0x7f)
	if _, err := ParseOpusTags(huge); !errors.Is(err, ErrOpusTags) {
		t.Fatalf("comment count past the input: %v", err)
	}
}

// synthPackets returns n CELT packets of 20 ms with recognisable bodies.
func synthPackets(n int) [][]byte {
	var out [][]byte
	for i := range n {
		p := bytes.Repeat([]byte{byte(i)}, 20+i%200)
		p[0] = 31 << 3 // CELT FB 20 ms, one frame
		out = append(out, p)
	}
	return out
}

func writeOpus(t testing.TB, w io.Writer, head OpusHead, pkts [][]byte) {
	t.Helper()
	ow, err := NewOpusWriter(w, OpusWriterConfig{Serial: 9, Head: head, Tags: OpusTags{Comments: []string{"TITLE=test"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := ow.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := ow.Close(); err != nil {
		t.Fatal(err)
	}
}

func readOpus(t testing.TB, r io.Reader) (*OpusReader, []OpusPacket) {
	t.Helper()
	or, err := NewOpusReader(r, OpusReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []OpusPacket
	for {
		p, err := or.ReadPacket()
		if errors.Is(err, io.EOF) {
			return or, out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

func TestOpusRoundTrip(t *testing.T) {
	pkts := synthPackets(123)
	var buf bytes.Buffer
	writeOpus(t, &buf, OpusHead{}, pkts)
	or, got := readOpus(t, &buf)
	if h := or.Head(); h.Channels != 1 || h.PreSkip != DefaultPreSkip || h.Version != 1 || h.InputSampleRate != 48000 {
		t.Fatalf("head %+v", h)
	}
	if tg := or.Tags(); tg.Vendor != "jsp" || len(tg.Comments) != 1 {
		t.Fatalf("tags %+v", tg)
	}
	if len(got) != len(pkts) {
		t.Fatalf("%d packets, want %d", len(got), len(pkts))
	}
	pages := map[uint32]bool{}
	for i, p := range got {
		if !bytes.Equal(p.Data, pkts[i]) || p.Samples != 960 || p.Position != int64(960*(i+1)) {
			t.Fatalf("packet %d: %d samples at %d", i, p.Samples, p.Position)
		}
		pages[p.PageSeq] = true
	}
	// 123 packets of 20 ms at 200 ms a page: 13 audio pages.
	if len(pages) != 13 {
		t.Fatalf("%d audio pages", len(pages))
	}
}

func TestOpusReaderRejects(t *testing.T) {
	var notOpus bytes.Buffer
	w := NewWriter(&notOpus, 1)
	_ = w.WritePacket([]byte("Vorbis.."), 0)
	_ = w.Close()
	if _, err := NewOpusReader(&notOpus, OpusReaderConfig{}); !errors.Is(err, ErrNotOpus) {
		t.Fatalf("not opus: %v", err)
	}
	// OpusHead sharing its page with OpusTags.
	var shared bytes.Buffer
	w = NewWriter(&shared, 1)
	h, _ := (&OpusHead{Version: 1, Channels: 1}).Append(nil)
	_ = w.WritePacket(h, 0)
	_ = w.WritePacket(OpusTags{Vendor: "x"}.Append(nil), 0)
	_ = w.Close()
	if _, err := NewOpusReader(bytes.NewReader(shared.Bytes()), OpusReaderConfig{}); !errors.Is(err, ErrOpusHead) {
		t.Fatalf("shared first page: %v", err)
	}
	var big bytes.Buffer
	writeOpus(t, &big, OpusHead{}, nil)
	if _, err := NewOpusReader(&big, OpusReaderConfig{MaxTagsSize: 10}); !errors.Is(err, ErrOpusTags) {
		t.Fatalf("tags over the limit: %v", err)
	}
}

func FuzzOpusReader(f *testing.F) {
	var buf bytes.Buffer
	writeOpus(f, &buf, OpusHead{Channels: 2}, synthPackets(12))
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		or, err := NewOpusReader(bytes.NewReader(b), OpusReaderConfig{Reader: ReaderConfig{MaxPacketSize: 1 << 16}})
		if err != nil {
			return
		}
		for range 1000 {
			p, err := or.ReadPacket()
			if err != nil {
				return
			}
			if p.Samples < 1 || p.Samples > MaxOpusPacketSamples {
				t.Fatalf("%d samples", p.Samples)
			}
		}
	})
}

// needTool skips the test when a command-line tool is missing; the
// Debian package that provides it is named so that the skip says what to
// install.
func needTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s): skipping the interoperability test", tool, pkg)
	}
	return p
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// writeWAV writes a mono 16-bit 48 kHz sine tone.
func writeWAV(t *testing.T, path string, d time.Duration) {
	t.Helper()
	n := int(d * 48000 / time.Second)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+2*n))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(48000), uint32(96000), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(2*n))
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/48000))
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// wavSamples returns the number of 16-bit mono samples in a WAV file's
// data chunk.
func wavSamples(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("data"))
	if i < 0 || len(b) < i+8 {
		t.Fatalf("%s: no data chunk", path)
	}
	return int(binary.LittleEndian.Uint32(b[i+4:])) / 2
}

// TestOpusToolsInterop reads a file made by opusenc, rewrites its packets
// with OpusWriter, and decodes the result with opusdec (and ffmpeg when
// present).
func TestOpusToolsInterop(t *testing.T) {
	enc := needTool(t, "opusenc", "opus-tools")
	dec := needTool(t, "opusdec", "opus-tools")
	dir := t.TempDir()
	src, in, out, wav := filepath.Join(dir, "in.wav"), filepath.Join(dir, "in.opus"), filepath.Join(dir, "out.opus"), filepath.Join(dir, "out.wav")
	const seconds = 2
	writeWAV(t, src, seconds*time.Second)
	run(t, enc, "--quiet", "--bitrate", "32", src, in)

	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	or, pkts := readOpus(t, f)
	head := or.Head()
	if head.Channels != 1 {
		t.Fatalf("opusenc head %+v", head)
	}
	last := pkts[len(pkts)-1]
	// opusenc ends the stream with a granule of pre-skip + input samples.
	if want := int64(head.PreSkip) + seconds*48000; last.Position != want || !last.PageEnd {
		t.Fatalf("final granule %d, want %d", last.Position, want)
	}
	t.Logf("opusenc: %d packets, pre-skip %d, vendor %q", len(pkts), head.PreSkip, or.Tags().Vendor)

	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	var data [][]byte
	for _, p := range pkts {
		data = append(data, p.Data)
	}
	writeOpus(t, o, head, data)
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	run(t, dec, "--quiet", out, wav)
	// Our writer does not trim the end: the decoded length is every
	// packet's samples less the pre-skip, at most one packet over.
	got := wavSamples(t, wav)
	if got < seconds*48000 || got > seconds*48000+MaxOpusPacketSamples {
		t.Fatalf("opusdec decoded %d samples from our file", got)
	}
	if ff, err := exec.LookPath("ffmpeg"); err == nil {
		run(t, ff, "-v", "error", "-xerror", "-i", out, "-f", "null", "-")
	}
}

// TestFFmpegOpusInterop reads an Ogg/Opus file written by ffmpeg's own
// muxer.
func TestFFmpegOpusInterop(t *testing.T) {
	ff := needTool(t, "ffmpeg", "ffmpeg")
	out := filepath.Join(t.TempDir(), "ff.opus")
	run(t, ff, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "libopus", "-b:a", "24k", out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	or, pkts := readOpus(t, f)
	total := 0
	for _, p := range pkts {
		total += p.Samples
	}
	if total < 48000 || pkts[len(pkts)-1].Position < 48000 {
		t.Fatalf("ffmpeg file: %d samples, final position %d, head %+v", total, pkts[len(pkts)-1].Position, or.Head())
	}
}
