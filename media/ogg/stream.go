package ogg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxPacketSize caps one packet reassembled by a [PacketReader]. An
// Opus packet is at most 120 ms of 6 frames of 1,275 bytes; the cap leaves
// room for comment packets with small pictures and refuses the rest, since
// a packet's length is only known after reading all of its pages.
const DefaultMaxPacketSize = 256 << 10

// ReaderConfig configures a [PacketReader]. Zero fields take their
// defaults.
type ReaderConfig struct {
	// MaxPacketSize caps one packet. Default DefaultMaxPacketSize.
	MaxPacketSize int
}

func (c *ReaderConfig) setDefaults() {
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
}

func (c *ReaderConfig) validate() error {
	if c.MaxPacketSize < 1 {
		return fmt.Errorf("ogg: MaxPacketSize %d below 1", c.MaxPacketSize)
	}
	return nil
}

// Reader reads pages from an io.Reader. The buffer of a page is reused by
// the next ReadPage call.
type Reader struct {
	r   io.Reader
	buf []byte
}

// NewReader returns a page reader on r.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// ReadPage reads the next page. It returns io.EOF at a clean end of input
// and ErrTruncated when the input ends inside a page. The page's slices are
// valid until the next call.
func (r *Reader) ReadPage() (Page, error) {
	if cap(r.buf) < MaxPageLen {
		// One buffer of the largest page size: a page's declared lengths
		// can never ask for more, so nothing is allocated from input.
		r.buf = make([]byte, MaxPageLen)
	}
	b := r.buf[:HeaderLen]
	if _, err := io.ReadFull(r.r, b); err != nil {
		if errors.Is(err, io.EOF) {
			return Page{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Page{}, ErrTruncated
		}
		return Page{}, fmt.Errorf("ogg: reading page header: %w", err)
	}
	if [4]byte(b[0:4]) != capture {
		return Page{}, ErrCapture
	}
	nseg := int(b[26])
	b = r.buf[:HeaderLen+nseg]
	if err := readFull(r.r, b[HeaderLen:]); err != nil {
		return Page{}, err
	}
	body := 0
	for _, s := range b[HeaderLen:] {
		body += int(s)
	}
	b = r.buf[:HeaderLen+nseg+body]
	if err := readFull(r.r, b[HeaderLen+nseg:]); err != nil {
		return Page{}, err
	}
	p, _, err := ParsePage(b)
	return p, err
}

func readFull(r io.Reader, b []byte) error {
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return ErrTruncated
		}
		return fmt.Errorf("ogg: reading page: %w", err)
	}
	return nil
}

// Packet is one packet of a logical stream.
type Packet struct {
	// Data is the packet. It is owned by the caller.
	Data []byte
	// Granule is the granule position of the page the packet ends on if
	// it is the last packet ending there, else NoGranule.
	Granule int64
	// PageSeq is the sequence number of the page the packet ends on.
	PageSeq uint32
	// BOS is set on the first packet of the stream.
	BOS bool
	// EOS is set on the last packet of the stream's EOS page.
	EOS bool
}

// PacketReader reads the packets of a single logical Ogg stream, joining
// packets that span pages. It checks that pages follow each other without a
// gap and belong to one stream.
type PacketReader struct {
	pr      *Reader
	cfg     ReaderConfig
	started bool
	serial  uint32
	nextSeq uint32
	eos     bool

	page    Page   // current page
	segIdx  int    // next segment of page
	bodyOff int    // next body byte of page
	partial []byte // packet carried over from earlier pages
	open    bool   // a packet is open across the page boundary
	first   bool   // no packet returned yet
}

// NewPacketReader returns a packet reader on r.
func NewPacketReader(r io.Reader, cfg ReaderConfig) (*PacketReader, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &PacketReader{pr: NewReader(r), cfg: cfg, first: true}, nil
}

// Serial returns the stream's serial number (zero before the first page).
func (r *PacketReader) Serial() uint32 { return r.serial }

// nextPage reads and checks the next page of the stream.
func (r *PacketReader) nextPage() error {
	if r.eos {
		return io.EOF
	}
	p, err := r.pr.ReadPage()
	if err != nil {
		if errors.Is(err, io.EOF) && r.open {
			return ErrTruncated
		}
		return err
	}
	switch {
	case !r.started:
		if p.Type&BOS == 0 {
			return fmt.Errorf("ogg: first page %d has no BOS flag: %w", p.Seq, ErrSequence)
		}
		r.started, r.serial = true, p.Serial
	case p.Serial != r.serial:
		return fmt.Errorf("ogg: serial %08x after %08x: %w", p.Serial, r.serial, ErrSerial)
	case p.Seq != r.nextSeq:
		return fmt.Errorf("ogg: page %d, expected %d: %w", p.Seq, r.nextSeq, ErrSequence)
	case p.Type&BOS != 0:
		return fmt.Errorf("ogg: BOS on page %d: %w", p.Seq, ErrSequence)
	}
	if (p.Type&Continued != 0) != r.open {
		return fmt.Errorf("ogg: page %d continued=%v with open packet=%v: %w", p.Seq, p.Type&Continued != 0, r.open, ErrContinuation)
	}
	r.nextSeq = p.Seq + 1
	r.eos = p.Type&EOS != 0
	r.page, r.segIdx, r.bodyOff = p, 0, 0
	return nil
}

// ReadPacket returns the next packet, or io.EOF after the stream's last
// packet.
func (r *PacketReader) ReadPacket() (Packet, error) {
	for {
		if r.segIdx >= len(r.page.Segments) {
			if err := r.nextPage(); err != nil {
				return Packet{}, err
			}
			continue
		}
		// Collect segments of the current packet on this page.
		start := r.bodyOff
		ended := false
		for r.segIdx < len(r.page.Segments) {
			s := int(r.page.Segments[r.segIdx])
			r.segIdx++
			r.bodyOff += s
			if s < MaxSegmentLen {
				ended = true
				break
			}
		}
		piece := r.page.Body[start:r.bodyOff]
		if len(r.partial)+len(piece) > r.cfg.MaxPacketSize {
			return Packet{}, fmt.Errorf("ogg: packet of at least %d bytes on page %d, limit %d: %w",
				len(r.partial)+len(piece), r.page.Seq, r.cfg.MaxPacketSize, ErrPacketTooLarge)
		}
		r.partial = append(r.partial, piece...)
		if !ended {
			r.open = true
			continue
		}
		r.open = false
		pkt := Packet{Data: r.partial, Granule: NoGranule, PageSeq: r.page.Seq, BOS: r.first}
		r.partial, r.first = nil, false
		if r.lastEndingLocked() {
			pkt.Granule = r.page.Granule
			pkt.EOS = r.eos
		}
		return pkt, nil
	}
}

// lastEndingLocked reports whether no packet ends on the current page after
// the segment cursor.
func (r *PacketReader) lastEndingLocked() bool {
	for _, s := range r.page.Segments[r.segIdx:] {
		if s < MaxSegmentLen {
			return false
		}
	}
	return true
}

// Writer writes the packets of one logical stream as pages.
type Writer struct {
	w       io.Writer
	serial  uint32
	seq     uint32
	started bool
	closed  bool

	segs        []uint8
	body        []byte
	continued   bool  // the pending page starts inside a packet
	pendGranule int64 // granule of the last packet ended on the pending page
	pendEnded   bool  // a packet ends on the pending page
	lastGranule int64 // granule of the last packet written
	out         []byte
}

// NewWriter returns a writer of the logical stream serial to w.
func NewWriter(w io.Writer, serial uint32) *Writer {
	return &Writer{w: w, serial: serial, pendGranule: NoGranule, lastGranule: NoGranule}
}

// ErrWriterClosed is returned by a Writer after Close.
var ErrWriterClosed = errors.New("ogg: writer closed")

// WritePacket adds a packet whose end has the given granule position. Pages
// fill up to 255 segments and are written as they fill; a packet that does
// not fit continues on the next page. Flush ends the pending page early.
func (w *Writer) WritePacket(data []byte, granule int64) error {
	if w.closed {
		return ErrWriterClosed
	}
	w.body = append(w.body, data...)
	n := len(data)
	for {
		if len(w.segs) == MaxSegments {
			if err := w.emit(0); err != nil {
				return err
			}
		}
		s := min(n, MaxSegmentLen)
		w.segs = append(w.segs, uint8(s))
		n -= s
		if s < MaxSegmentLen {
			w.pendGranule, w.pendEnded, w.lastGranule = granule, true, granule
			return nil
		}
		// A packet whose length is a multiple of 255 ends with a
		// zero-length segment, added by the next round.
	}
}

// Flush writes the pending page, if any.
func (w *Writer) Flush() error {
	if w.closed {
		return ErrWriterClosed
	}
	if len(w.segs) == 0 {
		return nil
	}
	return w.emit(0)
}

// Close writes the pending packets on a last page flagged EOS (an empty
// one if nothing is pending) and stops the writer. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	err := w.emit(EOS)
	w.closed = true
	return err
}

// emit writes the pending segments as one page. The body of a page holds
// whole segments, so the pending body is split at the byte count of the
// pending lacing values; the rest belongs to the packet still being laced.
func (w *Writer) emit(extra HeaderType) error {
	n := 0
	for _, s := range w.segs {
		n += int(s)
	}
	p := Page{Type: extra, Serial: w.serial, Seq: w.seq, Segments: w.segs, Body: w.body[:n], Granule: NoGranule}
	if !w.started {
		p.Type |= BOS
	}
	if w.continued {
		p.Type |= Continued
	}
	switch {
	case w.pendEnded:
		p.Granule = w.pendGranule
	case len(w.segs) == 0:
		// An empty EOS page repeats the stream's last position.
		p.Granule = w.lastGranule
	}
	var err error
	w.out, err = p.Append(w.out[:0])
	if err != nil {
		return err
	}
	if _, err := w.w.Write(w.out); err != nil {
		return fmt.Errorf("ogg: writing page %d: %w", w.seq, err)
	}
	w.started = true
	w.seq++
	w.continued = len(w.segs) > 0 && w.segs[len(w.segs)-1] == MaxSegmentLen
	w.body = append(w.body[:0], w.body[n:]...)
	w.segs = w.segs[:0]
	w.pendEnded = false
	return nil
}

// le helpers shared by the Opus headers.
var le = binary.LittleEndian
