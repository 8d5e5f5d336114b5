package wire

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
)

// chunkReader returns its script one step at a time: data, or an error.
type chunkReader struct {
	steps []chunkStep
}

type chunkStep struct {
	data []byte
	err  error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.steps) == 0 {
		return 0, io.EOF
	}
	st := &c.steps[0]
	if st.err != nil {
		err := st.err
		c.steps = c.steps[1:]
		return 0, err
	}
	n := copy(p, st.data)
	st.data = st.data[n:]
	if len(st.data) == 0 {
		c.steps = c.steps[1:]
	}
	return n, nil
}

func TestFrameReaderIdleShrink(t *testing.T) {
	small := AppendFrame(nil, FrameStream, 0, 4, []byte("ping"))
	var burst []byte
	for len(burst) < 3*frameReaderBusyBuf {
		burst = AppendFrame(burst, FrameStream, 0, 4, bytes.Repeat([]byte{7}, 6000))
	}
	frames := len(burst) / len(AppendFrame(nil, FrameStream, 0, 4, make([]byte, 6000)))
	tests := []struct {
		name    string
		steps   []chunkStep
		want    int  // frames
		busyMid bool // busy buffer held after the first frame
		busyEnd bool // busy buffer held after the last frame
	}{
		{"small frames stay small", []chunkStep{{data: small}, {data: small}, {data: small}}, 3, false, false},
		{"burst takes a busy buffer", []chunkStep{{data: small}, {data: burst}}, 1 + frames, false, true},
		// The short read that ends the burst marks the reader idle; the
		// busy buffer goes back before the next Read can block (at EOF
		// here, checked below).
		{"burst then quiet gives it back", []chunkStep{{data: burst}, {data: small}}, frames + 1, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fr := NewFrameReader(&chunkReader{steps: tc.steps}, 1<<20)
			got := 0
			for {
				_, _, err := fr.ReadFrame()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("frame %d: %v", got, err)
				}
				got++
				if got == 1 && (fr.Buffered() > 0) != tc.busyMid {
					t.Errorf("after first frame Buffered() = %d, want busy %v", fr.Buffered(), tc.busyMid)
				}
				if got == tc.want && (fr.Buffered() > 0) != tc.busyEnd {
					t.Errorf("after last frame Buffered() = %d, want busy %v", fr.Buffered(), tc.busyEnd)
				}
			}
			if got != tc.want {
				t.Fatalf("read %d frames, want %d", got, tc.want)
			}
			if fr.Buffered() != 0 {
				t.Errorf("busy buffer still held at EOF: %d", fr.Buffered())
			}
		})
	}
}

// A time-out is reported once; the next ReadFrame carries on, as with
// bufio.Reader (the session handshake relies on read deadlines).
func TestFrameReaderErrorOnce(t *testing.T) {
	f := AppendFrame(nil, FrameStream, 0, 4, []byte("abc"))
	fr := NewFrameReader(&chunkReader{steps: []chunkStep{{err: os.ErrDeadlineExceeded}, {data: f}}}, 1<<10)
	if _, _, err := fr.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("first ReadFrame: %v, want deadline", err)
	}
	_, p, err := fr.ReadFrame()
	if err != nil || string(p) != "abc" {
		t.Fatalf("second ReadFrame = %q, %v", p, err)
	}
	if _, _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("third ReadFrame: %v, want EOF", err)
	}
}

// A frame split across many one-byte reads parses; truncation inside a
// frame is ErrTruncated.
func TestFrameReaderSplitAndTruncated(t *testing.T) {
	f := AppendFrame(nil, FrameStream, 0, 9, bytes.Repeat([]byte{1}, 700))
	var steps []chunkStep
	for i := range f {
		steps = append(steps, chunkStep{data: f[i : i+1]})
	}
	fr := NewFrameReader(&chunkReader{steps: steps}, 1<<10)
	if h, p, err := fr.ReadFrame(); err != nil || h.StreamID != 9 || len(p) != 700 {
		t.Fatalf("split frame: %+v %d %v", h, len(p), err)
	}
	fr = NewFrameReader(&chunkReader{steps: []chunkStep{{data: f[:len(f)-1]}}}, 1<<10)
	if _, _, err := fr.ReadFrame(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated frame: %v", err)
	}
}

// TestFrameReaderRelease: a reader that holds input or a busy buffer, or
// reads a caller's io.ByteReader, is not released; a drained one is, and
// a reader taken after it reads its own source from the start and never
// writes into a payload returned before the release (D50).
func TestFrameReaderRelease(t *testing.T) {
	frame := func(body string) []byte {
		return AppendFrame(nil, FrameStream, 0, 1, []byte(body))
	}
	two := append(frame("first"), frame("second")...)
	for _, tc := range []struct {
		name    string
		src     io.Reader
		reads   int
		release bool
	}{
		{"second frame still buffered", &chunkReader{steps: []chunkStep{{data: two}}}, 1, false},
		{"drained", &chunkReader{steps: []chunkStep{{data: two}}}, 2, true},
		{"caller's io.ByteReader", bytes.NewReader(two), 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fr := GetFrameReader(tc.src, 1<<10)
			var last []byte
			for range tc.reads {
				_, p, err := fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				last = p
			}
			kept := string(last)
			if got := fr.Release(); got != tc.release {
				t.Fatalf("Release = %v, want %v", got, tc.release)
			}
			if !tc.release {
				return
			}
			// Taken again (the same reader when the pool keeps it): it
			// reads the new source and leaves the old payload alone.
			next := GetFrameReader(&chunkReader{steps: []chunkStep{{data: frame("zz")}}}, 1<<10)
			_, p, err := next.ReadFrame()
			if err != nil || string(p) != "zz" {
				t.Fatalf("after release: %q, %v", p, err)
			}
			if string(last) != kept {
				t.Fatalf("a payload returned before the release changed: %q, want %q", last, kept)
			}
			if _, _, err := next.ReadFrame(); !errors.Is(err, io.EOF) {
				t.Fatalf("after the new source's end: %v, want io.EOF", err)
			}
		})
	}
}
