// Package ivf reads and writes IVF files, the simple container libvpx and
// ffmpeg use for VP8, VP9 and AV1 elementary streams, so that video frames
// can be fed into and taken out of JSP media flows.
//
// Layout (all integers little-endian):
//
//	file header, 32 bytes:
//	  0  "DKIF"
//	  4  version (uint16, 0)
//	  6  header length (uint16, 32)
//	  8  codec FourCC ("VP80")
//	 12  width, height (uint16 each)
//	 16  time base denominator, numerator (uint32 each): frame timestamps
//	     are in units of numerator/denominator seconds
//	 24  frame count (uint32)
//	 28  unused (uint32)
//	then per frame, 12 bytes and the frame:
//	  0  frame size (uint32)
//	  4  timestamp (uint64, in time-base units)
//	 12  frame data
//
// A frame's size is checked against [ReaderConfig.MaxFrameSize] before the
// frame is read, so a corrupt size never allocates.
package ivf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Sizes of the IVF structures.
const (
	// FileHeaderLen is the length of the file header this package writes
	// and the least it accepts.
	FileHeaderLen = 32
	// FrameHeaderLen is the length of a frame header.
	FrameHeaderLen = 12
	// MaxFileHeaderLen caps the header length field a reader accepts;
	// bytes past the 32 it knows are skipped.
	MaxFileHeaderLen = 1024
	// DefaultMaxFrameSize caps one frame. A 1080p VP8 key frame at high
	// quality is a few hundred kilobytes.
	DefaultMaxFrameSize = 4 << 20
)

// FourCC names a codec.
type FourCC [4]byte

// Codec FourCCs.
var (
	VP8 = FourCC{'V', 'P', '8', '0'}
	VP9 = FourCC{'V', 'P', '9', '0'}
	AV1 = FourCC{'A', 'V', '0', '1'}
)

// String returns the FourCC as text.
func (f FourCC) String() string { return string(f[:]) }

// Errors returned by the reader.
var (
	// ErrSignature: the file does not start with "DKIF".
	ErrSignature = errors.New("ivf: missing DKIF signature")
	// ErrHeader: the file header is malformed.
	ErrHeader = errors.New("ivf: malformed file header")
	// ErrTruncated: the input ends inside a header or frame.
	ErrTruncated = errors.New("ivf: truncated")
	// ErrFrameTooLarge: a frame over the configured limit.
	ErrFrameTooLarge = errors.New("ivf: frame over the size limit")
	// ErrClosed: a write after Close.
	ErrClosed = errors.New("ivf: writer closed")
)

// FileHeader is the IVF file header.
type FileHeader struct {
	// Codec is the FourCC; default VP8 when writing.
	Codec FourCC
	// Width and Height are the frame size in pixels.
	Width, Height uint16
	// TimebaseDen and TimebaseNum give the timestamp unit,
	// TimebaseNum/TimebaseDen seconds; default 1/90000 when writing, the
	// video clock of JSP media flows (JSP §13.2).
	TimebaseDen, TimebaseNum uint32
	// Frames is the frame count. A writer on an io.WriteSeeker fixes it
	// at Close; readers must not rely on it (a live recording may end
	// before the header is rewritten).
	Frames uint32
}

// Append encodes h and appends it to b.
func (h *FileHeader) Append(b []byte) []byte {
	b = append(b, 'D', 'K', 'I', 'F')
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, FileHeaderLen)
	b = append(b, h.Codec[:]...)
	b = binary.LittleEndian.AppendUint16(b, h.Width)
	b = binary.LittleEndian.AppendUint16(b, h.Height)
	b = binary.LittleEndian.AppendUint32(b, h.TimebaseDen)
	b = binary.LittleEndian.AppendUint32(b, h.TimebaseNum)
	b = binary.LittleEndian.AppendUint32(b, h.Frames)
	return binary.LittleEndian.AppendUint32(b, 0)
}

// ParseFileHeader decodes the first 32 bytes of a file header and returns
// it with the header length the file declares (32 or more).
func ParseFileHeader(b []byte) (FileHeader, int, error) {
	var h FileHeader
	if len(b) < 4 || string(b[:4]) != "DKIF" {
		return h, 0, ErrSignature
	}
	if len(b) < FileHeaderLen {
		return h, 0, ErrTruncated
	}
	if v := binary.LittleEndian.Uint16(b[4:]); v != 0 {
		return h, 0, fmt.Errorf("ivf: version %d: %w", v, ErrHeader)
	}
	n := int(binary.LittleEndian.Uint16(b[6:]))
	if n < FileHeaderLen || n > MaxFileHeaderLen {
		return h, 0, fmt.Errorf("ivf: header length %d outside %d..%d: %w", n, FileHeaderLen, MaxFileHeaderLen, ErrHeader)
	}
	copy(h.Codec[:], b[8:12])
	h.Width = binary.LittleEndian.Uint16(b[12:])
	h.Height = binary.LittleEndian.Uint16(b[14:])
	h.TimebaseDen = binary.LittleEndian.Uint32(b[16:])
	h.TimebaseNum = binary.LittleEndian.Uint32(b[20:])
	h.Frames = binary.LittleEndian.Uint32(b[24:])
	if h.TimebaseDen == 0 || h.TimebaseNum == 0 {
		return h, 0, fmt.Errorf("ivf: time base %d/%d: %w", h.TimebaseNum, h.TimebaseDen, ErrHeader)
	}
	return h, n, nil
}

// Frame is one frame of an IVF file.
type Frame struct {
	// Timestamp is in the file's time base.
	Timestamp uint64
	// Data is the encoded frame.
	Data []byte
}

// ReaderConfig configures a [Reader]. Zero fields take their defaults.
type ReaderConfig struct {
	// MaxFrameSize caps one frame. Default DefaultMaxFrameSize.
	MaxFrameSize int
}

// Reader reads frames from an IVF file.
type Reader struct {
	r      io.Reader
	cfg    ReaderConfig
	header FileHeader
	hdr    [FrameHeaderLen]byte
}

// NewReader reads the file header from r.
func NewReader(r io.Reader, cfg ReaderConfig) (*Reader, error) {
	if cfg.MaxFrameSize == 0 {
		cfg.MaxFrameSize = DefaultMaxFrameSize
	}
	if cfg.MaxFrameSize < 1 {
		return nil, fmt.Errorf("ivf: MaxFrameSize %d below 1", cfg.MaxFrameSize)
	}
	var b [FileHeaderLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if len(b) >= 4 && string(b[:4]) != "DKIF" {
				return nil, ErrSignature
			}
			return nil, ErrTruncated
		}
		return nil, fmt.Errorf("ivf: reading file header: %w", err)
	}
	h, n, err := ParseFileHeader(b[:])
	if err != nil {
		return nil, err
	}
	// Skip header bytes this version does not know (bounded above).
	if _, err := io.CopyN(io.Discard, r, int64(n-FileHeaderLen)); err != nil {
		return nil, ErrTruncated
	}
	return &Reader{r: r, cfg: cfg, header: h}, nil
}

// Header returns the file header.
func (r *Reader) Header() FileHeader { return r.header }

// ReadFrame returns the next frame, or io.EOF at a clean end of file. The
// frame's data is newly allocated.
func (r *Reader) ReadFrame() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, ErrTruncated
		}
		return Frame{}, fmt.Errorf("ivf: reading frame header: %w", err)
	}
	size := binary.LittleEndian.Uint32(r.hdr[:])
	f := Frame{Timestamp: binary.LittleEndian.Uint64(r.hdr[4:])}
	if uint64(size) > uint64(r.cfg.MaxFrameSize) {
		return Frame{}, fmt.Errorf("ivf: frame of %d bytes at %d, limit %d: %w", size, f.Timestamp, r.cfg.MaxFrameSize, ErrFrameTooLarge)
	}
	f.Data = make([]byte, size)
	if _, err := io.ReadFull(r.r, f.Data); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, ErrTruncated
		}
		return Frame{}, fmt.Errorf("ivf: reading frame: %w", err)
	}
	return f, nil
}

// Writer writes an IVF file.
type Writer struct {
	w      io.Writer
	header FileHeader
	frames uint32
	buf    []byte
	closed bool
}

// NewWriter writes the file header to w. Zero Codec and time base take
// VP8 and 1/90000.
func NewWriter(w io.Writer, h FileHeader) (*Writer, error) {
	if h.Codec == (FourCC{}) {
		h.Codec = VP8
	}
	if h.TimebaseDen == 0 && h.TimebaseNum == 0 {
		h.TimebaseDen, h.TimebaseNum = 90000, 1
	}
	if h.TimebaseDen == 0 || h.TimebaseNum == 0 {
		return nil, fmt.Errorf("ivf: time base %d/%d: %w", h.TimebaseNum, h.TimebaseDen, ErrHeader)
	}
	if _, err := w.Write(h.Append(nil)); err != nil {
		return nil, fmt.Errorf("ivf: writing file header: %w", err)
	}
	return &Writer{w: w, header: h}, nil
}

// WriteFrame appends a frame with a timestamp in the file's time base.
func (w *Writer) WriteFrame(ts uint64, data []byte) error {
	if w.closed {
		return ErrClosed
	}
	if uint64(len(data)) > 1<<32-1 {
		return fmt.Errorf("ivf: frame of %d bytes: %w", len(data), ErrFrameTooLarge)
	}
	w.buf = binary.LittleEndian.AppendUint32(w.buf[:0], uint32(len(data)))
	w.buf = binary.LittleEndian.AppendUint64(w.buf, ts)
	w.buf = append(w.buf, data...)
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("ivf: writing frame %d: %w", w.frames, err)
	}
	w.frames++
	return nil
}

// Frames returns the number of frames written.
func (w *Writer) Frames() uint32 { return w.frames }

// Close records the frame count in the header when the underlying writer
// is an io.WriteSeeker, and stops the writer. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	ws, ok := w.w.(io.WriteSeeker)
	if !ok {
		return nil
	}
	end, err := ws.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("ivf: finding end of file: %w", err)
	}
	var n [4]byte
	binary.LittleEndian.PutUint32(n[:], w.frames)
	if _, err := ws.Seek(24, io.SeekStart); err != nil {
		return fmt.Errorf("ivf: seeking to frame count: %w", err)
	}
	if _, err := ws.Write(n[:]); err != nil {
		return fmt.Errorf("ivf: writing frame count: %w", err)
	}
	if _, err := ws.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("ivf: seeking back to end: %w", err)
	}
	return nil
}
