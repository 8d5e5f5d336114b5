package ogg

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Ogg/Opus constants (RFC 7845).
const (
	// OpusSampleRate is the rate of Opus granule positions: 48 kHz
	// whatever the input rate (RFC 7845 §4).
	OpusSampleRate = 48000
	// DefaultPreSkip is the pre-skip written when OpusHead gives none:
	// the encoder delay of libopus at 48 kHz, as opusenc writes it.
	DefaultPreSkip = 312
	// MaxOpusPacketSamples is the longest Opus packet, 120 ms at 48 kHz
	// (RFC 6716 §3.2.5).
	MaxOpusPacketSamples = 5760
	// DefaultMaxTagsSize caps the OpusTags packet an [OpusReader]
	// accepts.
	DefaultMaxTagsSize = 64 << 10
	// DefaultPageDuration is how much audio an [OpusWriter] puts on one
	// page before writing it: short enough that a recorder that stops
	// abruptly loses little, long enough that page headers cost under 1 %.
	DefaultPageDuration = 200 * time.Millisecond
)

var (
	opusHeadMagic = []byte("OpusHead")
	opusTagsMagic = []byte("OpusTags")
)

// Errors of the Opus layer.
var (
	// ErrNotOpus: the stream's first packet is not an OpusHead.
	ErrNotOpus = errors.New("ogg: not an Ogg/Opus stream")
	// ErrOpusHead: the OpusHead packet is malformed.
	ErrOpusHead = errors.New("ogg: malformed OpusHead")
	// ErrOpusTags: the OpusTags packet is malformed.
	ErrOpusTags = errors.New("ogg: malformed OpusTags")
	// ErrOpusPacket: an Opus packet whose TOC cannot be read.
	ErrOpusPacket = errors.New("ogg: malformed Opus packet")
)

// OpusHead is the identification header (RFC 7845 §5.1).
type OpusHead struct {
	// Version is the encapsulation version; only major version 0
	// (values 0-15) is understood. Default 1 when writing.
	Version uint8
	// Channels is the output channel count, at least 1. Default 1 when
	// writing.
	Channels uint8
	// PreSkip is the number of 48 kHz samples to discard at the start.
	PreSkip uint16
	// InputSampleRate is informational: the original rate. Default 48000
	// when writing.
	InputSampleRate uint32
	// OutputGain in Q7.8 dB.
	OutputGain int16
	// MappingFamily selects the channel mapping; 0 is mono/stereo.
	MappingFamily uint8
	// StreamCount, CoupledCount and Mapping are present when
	// MappingFamily is not 0.
	StreamCount  uint8
	CoupledCount uint8
	Mapping      []uint8
}

// Append encodes h and appends it to b.
func (h *OpusHead) Append(b []byte) ([]byte, error) {
	if err := h.validate(); err != nil {
		return b, err
	}
	b = append(b, opusHeadMagic...)
	b = append(b, h.Version, h.Channels)
	b = le.AppendUint16(b, h.PreSkip)
	b = le.AppendUint32(b, h.InputSampleRate)
	b = le.AppendUint16(b, uint16(h.OutputGain))
	b = append(b, h.MappingFamily)
	if h.MappingFamily != 0 {
		b = append(b, h.StreamCount, h.CoupledCount)
		b = append(b, h.Mapping...)
	}
	return b, nil
}

func (h *OpusHead) validate() error {
	switch {
	case h.Version>>4 != 0:
		return fmt.Errorf("ogg: OpusHead version %d: %w", h.Version, ErrOpusHead)
	case h.Channels == 0:
		return fmt.Errorf("ogg: OpusHead with 0 channels: %w", ErrOpusHead)
	case h.MappingFamily == 0 && h.Channels > 2:
		return fmt.Errorf("ogg: mapping family 0 with %d channels: %w", h.Channels, ErrOpusHead)
	case h.MappingFamily == 0:
		return nil
	case h.StreamCount == 0 || h.CoupledCount > h.StreamCount || int(h.StreamCount)+int(h.CoupledCount) > 255:
		return fmt.Errorf("ogg: %d streams, %d coupled: %w", h.StreamCount, h.CoupledCount, ErrOpusHead)
	case len(h.Mapping) != int(h.Channels):
		return fmt.Errorf("ogg: %d mapping entries for %d channels: %w", len(h.Mapping), h.Channels, ErrOpusHead)
	}
	for _, m := range h.Mapping {
		if m != 255 && int(m) >= int(h.StreamCount)+int(h.CoupledCount) {
			return fmt.Errorf("ogg: mapping entry %d out of range: %w", m, ErrOpusHead)
		}
	}
	return nil
}

// ParseOpusHead decodes an OpusHead packet. Bytes after the mapping table
// are ignored, as RFC 7845 §5.1 asks of decoders.
func ParseOpusHead(b []byte) (OpusHead, error) {
	var h OpusHead
	if len(b) < 8 || string(b[:8]) != string(opusHeadMagic) {
		return h, ErrNotOpus
	}
	if len(b) < 19 {
		return h, fmt.Errorf("ogg: OpusHead of %d bytes: %w", len(b), ErrOpusHead)
	}
	h.Version, h.Channels = b[8], b[9]
	h.PreSkip = le.Uint16(b[10:])
	h.InputSampleRate = le.Uint32(b[12:])
	h.OutputGain = int16(le.Uint16(b[16:]))
	h.MappingFamily = b[18]
	if h.MappingFamily != 0 {
		if len(b) < 21+int(h.Channels) {
			return h, fmt.Errorf("ogg: OpusHead mapping table truncated: %w", ErrOpusHead)
		}
		h.StreamCount, h.CoupledCount = b[19], b[20]
		h.Mapping = append([]uint8(nil), b[21:21+int(h.Channels)]...)
	}
	return h, h.validate()
}

// OpusTags is the comment header (RFC 7845 §5.2).
type OpusTags struct {
	// Vendor names the encoder.
	Vendor string
	// Comments are "NAME=value" strings.
	Comments []string
}

// Append encodes t and appends it to b.
func (t OpusTags) Append(b []byte) []byte {
	b = append(b, opusTagsMagic...)
	b = le.AppendUint32(b, uint32(len(t.Vendor)))
	b = append(b, t.Vendor...)
	b = le.AppendUint32(b, uint32(len(t.Comments)))
	for _, c := range t.Comments {
		b = le.AppendUint32(b, uint32(len(c)))
		b = append(b, c...)
	}
	return b
}

// ParseOpusTags decodes an OpusTags packet. Every length is checked
// against what is left before anything is allocated; data after the
// comments (RFC 7845 §5.2 allows it) is ignored.
func ParseOpusTags(b []byte) (OpusTags, error) {
	var t OpusTags
	if len(b) < 8 || string(b[:8]) != string(opusTagsMagic) {
		return t, fmt.Errorf("ogg: second packet is not OpusTags: %w", ErrOpusTags)
	}
	b = b[8:]
	str := func() (string, bool) {
		if len(b) < 4 {
			return "", false
		}
		n := le.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return "", false
		}
		s := string(b[4 : 4+n])
		b = b[4+n:]
		return s, true
	}
	var ok bool
	if t.Vendor, ok = str(); !ok {
		return t, fmt.Errorf("ogg: vendor string truncated: %w", ErrOpusTags)
	}
	if len(b) < 4 {
		return t, fmt.Errorf("ogg: comment count truncated: %w", ErrOpusTags)
	}
	n := le.Uint32(b)
	b = b[4:]
	// Each comment takes at least its 4-byte length.
	if uint64(n) > uint64(len(b)/4) {
		return t, fmt.Errorf("ogg: %d comments in %d bytes: %w", n, len(b), ErrOpusTags)
	}
	t.Comments = make([]string, 0, n)
	for range n {
		c, ok := str()
		if !ok {
			return t, fmt.Errorf("ogg: comment truncated: %w", ErrOpusTags)
		}
		t.Comments = append(t.Comments, c)
	}
	return t, nil
}

// OpusPacketSamples returns the duration of an Opus packet in 48 kHz
// samples, read from its TOC byte and, for code 3, the frame count byte
// (RFC 6716 §3.1, §3.2.5).
func OpusPacketSamples(p []byte) (int, error) {
	if len(p) < 1 {
		return 0, fmt.Errorf("ogg: empty Opus packet: %w", ErrOpusPacket)
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int // samples per frame at 48 kHz
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = []int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // Hybrid: 10, 20 ms
		frame = []int{480, 960}[cfg&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = []int{120, 240, 480, 960}[cfg&3]
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0, fmt.Errorf("ogg: code 3 Opus packet without frame count: %w", ErrOpusPacket)
		}
		frames = int(p[1] & 0x3F)
		if frames == 0 {
			return 0, fmt.Errorf("ogg: Opus packet with 0 frames: %w", ErrOpusPacket)
		}
	}
	n := frames * frame
	if n > MaxOpusPacketSamples {
		return 0, fmt.Errorf("ogg: Opus packet of %d samples: %w", n, ErrOpusPacket)
	}
	return n, nil
}

// OpusPacket is one audio packet read by an [OpusReader].
type OpusPacket struct {
	// Data is the Opus packet.
	Data []byte
	// Samples is its duration at 48 kHz.
	Samples int
	// Position is the granule position at the end of the packet:
	// computed from the packet durations, and reset to the page's
	// granule at each packet that ends a page.
	Position int64
	// PageEnd is set on the last packet ending on its page, whose
	// Position is the page's granule position.
	PageEnd bool
	// PageSeq is the sequence number of the page the packet ends on.
	PageSeq uint32
}

// OpusReaderConfig configures an [OpusReader]. Zero fields take their
// defaults.
type OpusReaderConfig struct {
	// Reader configures the packet reader (packet size cap).
	Reader ReaderConfig
	// MaxTagsSize caps the OpusTags packet. Default DefaultMaxTagsSize.
	MaxTagsSize int
}

// OpusReader reads an Ogg/Opus file packet by packet (RFC 7845).
type OpusReader struct {
	pr   *PacketReader
	head OpusHead
	tags OpusTags
	pos  int64
}

// NewOpusReader reads the OpusHead and OpusTags headers from r and returns
// a reader of the audio packets that follow.
func NewOpusReader(r io.Reader, cfg OpusReaderConfig) (*OpusReader, error) {
	if cfg.MaxTagsSize == 0 {
		cfg.MaxTagsSize = DefaultMaxTagsSize
	}
	if cfg.MaxTagsSize < 8 {
		return nil, fmt.Errorf("ogg: MaxTagsSize %d below 8", cfg.MaxTagsSize)
	}
	pr, err := NewPacketReader(r, cfg.Reader)
	if err != nil {
		return nil, err
	}
	o := &OpusReader{pr: pr}
	p, err := pr.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("ogg: reading OpusHead: %w", err)
	}
	if o.head, err = ParseOpusHead(p.Data); err != nil {
		return nil, err
	}
	// RFC 7845 §3: the identification header is alone on the first page.
	if p.Granule != 0 {
		return nil, fmt.Errorf("ogg: OpusHead page granule %d, must be alone on a page with granule 0: %w", p.Granule, ErrOpusHead)
	}
	if p, err = pr.ReadPacket(); err != nil {
		return nil, fmt.Errorf("ogg: reading OpusTags: %w", err)
	}
	if len(p.Data) > cfg.MaxTagsSize {
		return nil, fmt.Errorf("ogg: OpusTags of %d bytes, limit %d: %w", len(p.Data), cfg.MaxTagsSize, ErrOpusTags)
	}
	if o.tags, err = ParseOpusTags(p.Data); err != nil {
		return nil, err
	}
	return o, nil
}

// Head returns the identification header.
func (o *OpusReader) Head() OpusHead { return o.head }

// Tags returns the comment header.
func (o *OpusReader) Tags() OpusTags { return o.tags }

// ReadPacket returns the next audio packet, or io.EOF at the end of the
// stream.
func (o *OpusReader) ReadPacket() (OpusPacket, error) {
	p, err := o.pr.ReadPacket()
	if err != nil {
		return OpusPacket{}, err
	}
	n, err := OpusPacketSamples(p.Data)
	if err != nil {
		return OpusPacket{}, fmt.Errorf("ogg: packet on page %d: %w", p.PageSeq, err)
	}
	o.pos += int64(n)
	op := OpusPacket{Data: p.Data, Samples: n, PageSeq: p.PageSeq}
	if p.Granule != NoGranule {
		// The page's granule is authoritative: it carries a start
		// offset on the first audio page and end trimming on the last.
		o.pos = p.Granule
		op.PageEnd = true
	}
	op.Position = o.pos
	return op, nil
}

// OpusWriterConfig configures an [OpusWriter]. Zero fields take their
// defaults.
type OpusWriterConfig struct {
	// Serial is the logical stream's serial number.
	Serial uint32
	// Head is written as the identification header; zero Version,
	// Channels and InputSampleRate become 1, 1 and 48000, zero PreSkip
	// DefaultPreSkip.
	Head OpusHead
	// Tags is written as the comment header; an empty Vendor becomes
	// "jsp".
	Tags OpusTags
	// PageDuration is how much audio goes on one page. Default
	// DefaultPageDuration.
	PageDuration time.Duration
}

// OpusWriter writes an Ogg/Opus file: the two header pages, then audio
// pages with granule positions computed from the packets' TOC bytes.
type OpusWriter struct {
	w       *Writer
	pos     int64
	pageMax int64 // samples per page
	pageAt  int64 // position at the start of the pending page
	closed  bool
}

// NewOpusWriter writes the Ogg/Opus headers to w and returns a writer for
// audio packets.
func NewOpusWriter(w io.Writer, cfg OpusWriterConfig) (*OpusWriter, error) {
	h := cfg.Head
	if h.Version == 0 {
		h.Version = 1
	}
	if h.Channels == 0 {
		h.Channels = 1
	}
	if h.InputSampleRate == 0 {
		h.InputSampleRate = OpusSampleRate
	}
	if h.PreSkip == 0 {
		h.PreSkip = DefaultPreSkip
	}
	if cfg.Tags.Vendor == "" {
		cfg.Tags.Vendor = "jsp"
	}
	if cfg.PageDuration == 0 {
		cfg.PageDuration = DefaultPageDuration
	}
	if cfg.PageDuration < 0 {
		return nil, fmt.Errorf("ogg: negative PageDuration")
	}
	head, err := h.Append(nil)
	if err != nil {
		return nil, err
	}
	o := &OpusWriter{w: NewWriter(w, cfg.Serial), pageMax: int64(cfg.PageDuration * OpusSampleRate / time.Second)}
	// RFC 7845 §3: OpusHead alone on the first page, OpusTags starting
	// on the second and ending its page, both with granule 0.
	if err := o.w.WritePacket(head, 0); err != nil {
		return nil, err
	}
	if err := o.w.Flush(); err != nil {
		return nil, err
	}
	if err := o.w.WritePacket(cfg.Tags.Append(nil), 0); err != nil {
		return nil, err
	}
	if err := o.w.Flush(); err != nil {
		return nil, err
	}
	return o, nil
}

// WritePacket appends one Opus packet. Its duration comes from its TOC
// byte.
func (o *OpusWriter) WritePacket(p []byte) error {
	if o.closed {
		return ErrWriterClosed
	}
	n, err := OpusPacketSamples(p)
	if err != nil {
		return err
	}
	o.pos += int64(n)
	if err := o.w.WritePacket(p, o.pos); err != nil {
		return err
	}
	if o.pos-o.pageAt >= o.pageMax {
		o.pageAt = o.pos
		return o.w.Flush()
	}
	return nil
}

// Position returns the granule position after the last packet written.
func (o *OpusWriter) Position() int64 { return o.pos }

// Close writes the last page, flagged EOS. It does not close the
// underlying writer.
func (o *OpusWriter) Close() error {
	if o.closed {
		return nil
	}
	o.closed = true
	return o.w.Close()
}
