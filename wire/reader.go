package wire

import (
	"bufio"
	"errors"
	"io"
)

// FrameReader reads whole frames from a byte stream. It reads the header a
// byte at a time from a bufio.Reader (cheap: the bytes are buffered) so that
// it never consumes more than one frame, checks the declared length against
// its limit before allocating, and reuses one payload buffer.
type FrameReader struct {
	r          *bufio.Reader
	maxPayload uint64
	hdr        [MaxHeaderLen]byte
	buf        []byte
}

// NewFrameReader returns a reader of frames from r whose payloads are at most
// maxPayload bytes.
func NewFrameReader(r io.Reader, maxPayload uint64) *FrameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 32<<10)
	}
	return &FrameReader{r: br, maxPayload: maxPayload}
}

// ReadFrame returns the next frame. The payload aliases an internal buffer
// that the next call overwrites. At a clean end of input between frames it
// returns io.EOF; inside a frame, ErrTruncated.
func (fr *FrameReader) ReadFrame() (Header, []byte, error) {
	n := 0
	// The header is four fields; read each varint by its length prefix.
	for field := 0; field < 4; field++ {
		c, err := fr.r.ReadByte()
		if err != nil {
			if n == 0 && errors.Is(err, io.EOF) {
				return Header{}, nil, io.EOF
			}
			return Header{}, nil, fr.truncated(err)
		}
		fr.hdr[n] = c
		n++
		if field == 1 { // flags byte
			continue
		}
		l := 1 << (c >> 6)
		if _, err := io.ReadFull(fr.r, fr.hdr[n:n+l-1]); err != nil {
			return Header{}, nil, fr.truncated(err)
		}
		// Check each varint as soon as it is complete, so a stream reports
		// the same first error as ParseFrame on the same bytes.
		if _, _, err := ParseVarint(fr.hdr[n-1 : n+l-1]); err != nil {
			return Header{}, nil, err
		}
		n += l - 1
	}
	h, _, err := ParseHeader(fr.hdr[:n], fr.maxPayload)
	if err != nil {
		return h, nil, err
	}
	if uint64(cap(fr.buf)) < h.Length {
		fr.buf = make([]byte, h.Length)
	}
	p := fr.buf[:h.Length]
	if _, err := io.ReadFull(fr.r, p); err != nil {
		return h, nil, fr.truncated(err)
	}
	return h, p, nil
}

func (fr *FrameReader) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}
