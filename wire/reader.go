package wire

import (
	"errors"
	"io"
	"sync"
)

// Read-buffer policy of a FrameReader that owns its buffering (decision
// D24). An idle session must hold almost nothing, yet a busy one must not
// pay a system call per small frame:
//
//   - While idle the reader waits in a Read into a small inline buffer
//     (frameReaderIdleBuf bytes), so a parked reader pins no heap buffer.
//   - A Read that fills the buffer it was given means data is flowing: the
//     next refill uses a frameReaderBusyBuf buffer taken from a sync.Pool.
//   - Once the buffered bytes are consumed and the last Read came back
//     short (less than frameReaderIdleBuf bytes: the peer's burst is over),
//     the busy buffer goes back to the pool, and a payload buffer larger
//     than frameReaderKeepPayload is dropped, before the reader blocks
//     again.
const (
	frameReaderIdleBuf     = 512
	frameReaderBusyBuf     = 32 << 10
	frameReaderKeepPayload = 4 << 10
)

var frameReaderPool = sync.Pool{New: func() any { b := make([]byte, frameReaderBusyBuf); return &b }}

// byteReader is what ReadFrame consumes: single header bytes and whole
// payloads.
type byteReader interface {
	io.Reader
	io.ByteReader
}

// FrameReader reads whole frames from a byte stream. It reads the header a
// byte at a time (cheap: the bytes are buffered) so that it never consumes
// more than one frame from a caller's *bufio.Reader, checks the declared
// length against its limit before allocating, and reuses one payload
// buffer. Given any other io.Reader it buffers by itself, following the
// idle-shrink policy above.
type FrameReader struct {
	r          byteReader
	own        *lazyReader // r when the reader buffers by itself
	maxPayload uint64
	hdr        [MaxHeaderLen]byte
	buf        []byte
}

// NewFrameReader returns a reader of frames from r whose payloads are at most
// maxPayload bytes. When r is an io.ByteReader (a *bufio.Reader, say) the
// FrameReader reads from it directly and consumes exactly the frames it
// returns; otherwise it buffers r itself and may read ahead of the last
// frame returned.
func NewFrameReader(r io.Reader, maxPayload uint64) *FrameReader {
	fr := &FrameReader{maxPayload: maxPayload}
	if br, ok := r.(byteReader); ok {
		fr.r = br
	} else {
		// short: start as if idle, so that a session's first (small)
		// frames never take a busy buffer.
		fr.own = &lazyReader{src: r, short: true}
		fr.r = fr.own
	}
	return fr
}

// idleReaders holds released frame readers (GetFrameReader, Release).
var idleReaders sync.Pool

// GetFrameReader is NewFrameReader for a reader that is used for one
// burst of input and released after it (Release): an on-demand control
// reader, which runs once per burst and holds no reader between bursts
// (decisions D27, D34). It takes a released reader when there is one, so
// that a burst costs no reader and inline buffer of its own (D50).
func GetFrameReader(r io.Reader, maxPayload uint64) *FrameReader {
	if _, ok := r.(byteReader); ok {
		return NewFrameReader(r, maxPayload)
	}
	fr, ok := idleReaders.Get().(*FrameReader)
	if !ok {
		return NewFrameReader(r, maxPayload)
	}
	fr.maxPayload = maxPayload
	fr.own.src = r
	return fr
}

// Release gives fr to GetFrameReader's next caller and reports true, or
// reports false and does nothing when fr holds input (Pending), a busy
// buffer (Buffered), or reads a caller's io.ByteReader. After true the
// caller must not use fr again. The payload buffer goes with neither: a
// later user never sees bytes of an earlier one.
func (fr *FrameReader) Release() bool {
	l := fr.own
	if l == nil || fr.Pending() || l.big != nil {
		return false
	}
	fr.buf = nil
	l.src, l.buf = nil, nil
	l.r, l.w, l.short = 0, 0, true
	idleReaders.Put(fr)
	return true
}

// ReadFrame returns the next frame. The payload aliases an internal buffer
// that the next call overwrites. At a clean end of input between frames it
// returns io.EOF; inside a frame, ErrTruncated.
func (fr *FrameReader) ReadFrame() (Header, []byte, error) {
	if fr.own != nil && fr.own.idle() && cap(fr.buf) > frameReaderKeepPayload {
		// The previous payload is dead by contract; a large one would
		// otherwise stay pinned for as long as the link is quiet.
		fr.buf = nil
	}
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

// Buffered returns how many bytes of the busy buffer the reader holds
// (0 while it is idle or reads from a caller's io.ByteReader). For tests
// and memory accounting.
func (fr *FrameReader) Buffered() int {
	if fr.own == nil || fr.own.big == nil {
		return 0
	}
	return cap(*fr.own.big)
}

// Pending reports whether the reader holds input of its own (unread
// bytes, or an error that came with the last ones), so that ReadFrame
// makes progress before it reads its source again. It is always false when
// the reader reads from a caller's io.ByteReader. A caller that reads only
// when its source has input uses it to know when to stop (decision D27).
func (fr *FrameReader) Pending() bool {
	return fr.own != nil && (fr.own.r < fr.own.w || fr.own.err != nil)
}

func (fr *FrameReader) truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// lazyReader buffers src, holding a pooled buffer only while data flows
// (see the policy at the top of this file).
type lazyReader struct {
	src   io.Reader
	big   *[]byte // pooled busy buffer, nil while idle
	buf   []byte  // small[:] or *big
	r, w  int     // buf[r:w] is unread
	short bool    // the last Read from src came back short
	err   error   // error from src that came with data, returned (once) after it
	small [frameReaderIdleBuf]byte
}

// idle reports whether nothing is buffered and the last read was short,
// that is, the next read will probably block.
func (l *lazyReader) idle() bool { return l.r == l.w && l.short }

// fill reads once from src into an empty buffer, choosing its size by the
// policy. It returns an error only when no byte was read.
func (l *lazyReader) fill() error {
	if err := l.takeErr(); err != nil {
		return err
	}
	l.r, l.w = 0, 0
	if l.short {
		l.releaseBig()
		l.buf = l.small[:]
	} else if l.big == nil {
		l.big = frameReaderPool.Get().(*[]byte)
		l.buf = *l.big
	}
	if l.buf == nil {
		l.buf = l.small[:]
	}
	for {
		n, err := l.src.Read(l.buf)
		l.w = n
		l.short = n < frameReaderIdleBuf
		if err != nil {
			l.err = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			l.releaseBig()
			return l.takeErr()
		}
	}
}

// takeErr returns the pending error and forgets it: like bufio.Reader, a
// time-out is reported once and a later Read may succeed.
func (l *lazyReader) takeErr() error {
	err := l.err
	l.err = nil
	return err
}

func (l *lazyReader) releaseBig() {
	if l.big != nil {
		frameReaderPool.Put(l.big)
		l.big = nil
	}
}

// ReadByte implements io.ByteReader.
func (l *lazyReader) ReadByte() (byte, error) {
	if l.r == l.w {
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	c := l.buf[l.r]
	l.r++
	return c, nil
}

// Read implements io.Reader. A read at least as large as the buffer, with
// nothing buffered, goes straight into p: a large payload is not copied
// twice.
func (l *lazyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.r == l.w {
		if err := l.takeErr(); err != nil {
			return 0, err
		}
		if len(p) >= frameReaderBusyBuf {
			n, err := l.src.Read(p)
			l.short = n < frameReaderIdleBuf
			l.releaseBig()
			if err != nil && n > 0 {
				l.err = err
				err = nil
			}
			return n, err
		}
		if err := l.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, l.buf[l.r:l.w])
	l.r += n
	return n, nil
}
