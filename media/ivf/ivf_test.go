package ivf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func writeFile(t testing.TB, h FileHeader, frames []Frame) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f.Timestamp, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFrame(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	return buf.Bytes()
}

func readFile(t testing.TB, b []byte, cfg ReaderConfig) (FileHeader, []Frame, error) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(b), cfg)
	if err != nil {
		return FileHeader{}, nil, err
	}
	var out []Frame
	for {
		f, err := r.ReadFrame()
		if errors.Is(err, io.EOF) {
			return r.Header(), out, nil
		}
		if err != nil {
			return r.Header(), out, err
		}
		out = append(out, f)
	}
}

var sampleFrames = []Frame{{0, []byte{0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a}}, {3000, []byte{0x31}}, {6000, nil}, {1 << 40, bytes.Repeat([]byte{7}, 5000)}}

func TestRoundTrip(t *testing.T) {
	b := writeFile(t, FileHeader{Width: 640, Height: 360}, sampleFrames)
	h, frames, err := readFile(t, b, ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Codec != VP8 || h.Width != 640 || h.Height != 360 || h.TimebaseDen != 90000 || h.TimebaseNum != 1 {
		t.Fatalf("header %+v", h)
	}
	if len(frames) != len(sampleFrames) {
		t.Fatalf("%d frames", len(frames))
	}
	for i, f := range frames {
		if f.Timestamp != sampleFrames[i].Timestamp || !bytes.Equal(f.Data, sampleFrames[i].Data) {
			t.Fatalf("frame %d differs", i)
		}
	}
	hb := (&FileHeader{Codec: VP9, Width: 1, Height: 2, TimebaseDen: 30, TimebaseNum: 1, Frames: 5}).Append(nil)
	if len(hb) != FileHeaderLen {
		t.Fatalf("header length %d", len(hb))
	}
	for i := range len(hb) {
		if _, _, err := ParseFileHeader(hb[:i]); err == nil {
			t.Fatalf("prefix of %d parsed", i)
		}
	}
}

// TestFrameCount checks that Close records the count in a seekable file.
func TestFrameCount(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.ivf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, FileHeader{})
	if err != nil {
		t.Fatal(err)
	}
	for _, fr := range sampleFrames {
		if err := w.WriteFrame(fr.Timestamp, fr.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	h, frames, err := readFile(t, b, ReaderConfig{})
	if err != nil || h.Frames != uint32(len(sampleFrames)) || len(frames) != len(sampleFrames) {
		t.Fatalf("count %d, %d frames, %v", h.Frames, len(frames), err)
	}
}

func TestReaderErrors(t *testing.T) {
	good := writeFile(t, FileHeader{}, sampleFrames)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		in   []byte
		cfg  ReaderConfig
		want error
	}{
		{"signature", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ReaderConfig{}, ErrSignature},
		{"version", mod(func(b []byte) []byte { b[4] = 1; return b }), ReaderConfig{}, ErrHeader},
		{"short header length", mod(func(b []byte) []byte { b[6] = 31; return b }), ReaderConfig{}, ErrHeader},
		{"huge header length", mod(func(b []byte) []byte { b[6], b[7] = 0xff, 0xff; return b }), ReaderConfig{}, ErrHeader},
		{"zero time base", mod(func(b []byte) []byte { copy(b[16:24], make([]byte, 8)); return b }), ReaderConfig{}, ErrHeader},
		{"short file", good[:20], ReaderConfig{}, ErrTruncated},
		{"cut frame header", good[:FileHeaderLen+5], ReaderConfig{}, ErrTruncated},
		{"cut frame", good[:FileHeaderLen+FrameHeaderLen+2], ReaderConfig{}, ErrTruncated},
		{"over limit", good, ReaderConfig{MaxFrameSize: 4999}, ErrFrameTooLarge},
		{"huge declared size", mod(func(b []byte) []byte { copy(b[FileHeaderLen:], []byte{0xff, 0xff, 0xff, 0xff}); return b }), ReaderConfig{}, ErrFrameTooLarge},
	}
	for _, c := range cases {
		if _, _, err := readFile(t, c.in, c.cfg); !errors.Is(err, c.want) {
			t.Errorf("%s: got %v want %v", c.name, err, c.want)
		}
	}
	if _, _, err := readFile(t, good, ReaderConfig{MaxFrameSize: 5000}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	// A longer header is skipped.
	long := append((&FileHeader{Codec: VP8, TimebaseDen: 1, TimebaseNum: 1}).Append(nil), make([]byte, 8)...)
	long[6] = 40
	long = append(long, good[FileHeaderLen:]...)
	if _, frames, err := readFile(t, long, ReaderConfig{}); err != nil || len(frames) != len(sampleFrames) {
		t.Fatalf("40-byte header: %v", err)
	}
	if _, err := NewWriter(io.Discard, FileHeader{TimebaseDen: 1}); !errors.Is(err, ErrHeader) {
		t.Fatalf("half time base: %v", err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(writeFile(f, FileHeader{Width: 2, Height: 2}, sampleFrames))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, frames, _ := readFile(t, b, ReaderConfig{MaxFrameSize: 1 << 16})
		for _, fr := range frames {
			if len(fr.Data) > 1<<16 {
				t.Fatal("frame over the limit")
			}
		}
	})
}

// TestFFmpegInterop reads a VP8 IVF file made by ffmpeg, writes its frames
// again, and decodes the copy with ffmpeg.
func TestFFmpegInterop(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Skip("ffmpeg not installed (Debian package ffmpeg): skipping the interoperability test")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.ivf"), filepath.Join(dir, "out.ivf")
	cmd := exec.Command(ff, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30:duration=1",
		"-c:v", "libvpx", "-b:v", "300k", "-g", "15", in)
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg encode: %v\n%s", err, o)
	}
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	h, frames, err := readFile(t, b, ReaderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if h.Codec != VP8 || h.Width != 320 || h.Height != 240 || len(frames) != 30 {
		t.Fatalf("ffmpeg file: %+v, %d frames", h, len(frames))
	}
	// VP8 frame tag bit 0 clear marks a key frame (RFC 6386 §9.1); a GOP
	// of 15 gives key frames at 0 and 15.
	keys := 0
	for _, f := range frames {
		if len(f.Data) > 0 && f.Data[0]&1 == 0 {
			keys++
		}
	}
	if keys < 2 {
		t.Fatalf("%d key frames", keys)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(o, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WriteFrame(f.Timestamp, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_ = o.Close()
	cmd = exec.Command(ff, "-v", "error", "-xerror", "-i", out, "-f", "framemd5", "-")
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg decode of our file: %v", err)
	}
	if n := bytes.Count(got, []byte("\n0,")); n != 30 {
		t.Fatalf("ffmpeg decoded %d frames from our file", n)
	}
}
