// Package ogg reads and writes Ogg bitstreams (RFC 3533) and the Ogg
// encapsulation of Opus (RFC 7845), so that recorded and generated audio can
// be fed into and taken out of JSP media flows.
//
// An Ogg stream is a sequence of pages. Each page carries a segment table
// (lacing values) that cuts its body into packet pieces: a lacing value of
// 255 means the packet goes on in the next segment, anything less ends it,
// and a packet whose last lacing value on a page is 255 continues on the
// next page, which then has the "continued" flag. A page's granule position
// is the position (for Opus: the 48 kHz sample count, pre-skip included)
// at the end of the last packet that finishes on it, or -1 when none does.
//
//	 0        4   5   6                14        18        22        26  27
//	+--------+---+---+-----------------+---------+---------+---------+---+------------+------+
//	| "OggS" |ver|typ| granule (LE 64) | serial  | page seq| CRC-32  |n  | lacing x n | body |
//	+--------+---+---+-----------------+---------+---------+---------+---+------------+------+
//
// [Reader] returns pages and, through [PacketReader], whole packets with the
// granule position of the page they end on; [Writer] builds pages from
// packets. [OpusReader] and [OpusWriter] add the Ogg/Opus header packets
// (OpusHead, OpusTags) and compute granule positions from the Opus TOC byte.
// Every decoder checks bounds before reading, verifies the page CRC, and caps
// what it buffers ([ReaderConfig]).
package ogg

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Page layout constants (RFC 3533 §6).
const (
	// HeaderLen is the fixed part of a page header, before the lacing
	// values.
	HeaderLen = 27
	// MaxSegments is the most lacing values one page can have.
	MaxSegments = 255
	// MaxSegmentLen is the largest lacing value; a segment this long
	// means the packet continues.
	MaxSegmentLen = 255
	// MaxPageLen is the longest possible page: header, 255 lacing values
	// and 255 full segments.
	MaxPageLen = HeaderLen + MaxSegments + MaxSegments*MaxSegmentLen
)

// capture is the pattern every page starts with.
var capture = [4]byte{'O', 'g', 'g', 'S'}

// HeaderType is the page's flag byte.
type HeaderType uint8

// Header type bits (RFC 3533 §6).
const (
	// Continued: the first packet piece on the page continues a packet
	// from the previous page.
	Continued HeaderType = 0x01
	// BOS: first page of a logical bitstream.
	BOS HeaderType = 0x02
	// EOS: last page of a logical bitstream.
	EOS HeaderType = 0x04

	headerTypeKnown = Continued | BOS | EOS
)

// NoGranule is the granule position of a page on which no packet ends.
const NoGranule int64 = -1

// Errors returned by the decoders.
var (
	// ErrCapture: the input does not start with "OggS" where a page must
	// begin.
	ErrCapture = errors.New("ogg: missing capture pattern")
	// ErrVersion: a stream structure version other than 0.
	ErrVersion = errors.New("ogg: unsupported stream structure version")
	// ErrHeaderType: reserved header type bits set.
	ErrHeaderType = errors.New("ogg: reserved header type bits set")
	// ErrCRC: the page checksum does not match.
	ErrCRC = errors.New("ogg: page CRC mismatch")
	// ErrTruncated: the input ends inside a page.
	ErrTruncated = errors.New("ogg: page truncated")
	// ErrPacketTooLarge: a packet spans more bytes than the configured
	// limit.
	ErrPacketTooLarge = errors.New("ogg: packet over the size limit")
	// ErrContinuation: a page's continued flag does not match whether a
	// packet was left open by the previous page.
	ErrContinuation = errors.New("ogg: bad packet continuation")
	// ErrSequence: a page number skipped or repeated.
	ErrSequence = errors.New("ogg: page sequence gap")
	// ErrSerial: a page of another logical stream (multiplexed streams
	// are not supported).
	ErrSerial = errors.New("ogg: page of another logical stream")
)

// Page is one decoded Ogg page.
type Page struct {
	// Type holds the Continued, BOS and EOS bits.
	Type HeaderType
	// Granule is the granule position after the last packet that ends on
	// the page, or NoGranule.
	Granule int64
	// Serial identifies the logical bitstream.
	Serial uint32
	// Seq is the page sequence number within the logical bitstream.
	Seq uint32
	// Segments are the lacing values.
	Segments []uint8
	// Body is the page body: the concatenated segments.
	Body []byte
}

// Len returns the encoded length of p.
func (p *Page) Len() int { return HeaderLen + len(p.Segments) + len(p.Body) }

// validate checks the relations a page must satisfy to be encoded.
func (p *Page) validate() error {
	if p.Type&^headerTypeKnown != 0 {
		return ErrHeaderType
	}
	if len(p.Segments) > MaxSegments {
		return fmt.Errorf("ogg: %d segments on a page, at most %d", len(p.Segments), MaxSegments)
	}
	n := 0
	for _, s := range p.Segments {
		n += int(s)
	}
	if n != len(p.Body) {
		return fmt.Errorf("ogg: lacing values add up to %d, body is %d bytes", n, len(p.Body))
	}
	return nil
}

// Append encodes p, computes its CRC and appends it to b.
func (p *Page) Append(b []byte) ([]byte, error) {
	if err := p.validate(); err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, capture[:]...)
	b = append(b, 0, byte(p.Type))
	b = binary.LittleEndian.AppendUint64(b, uint64(p.Granule))
	b = binary.LittleEndian.AppendUint32(b, p.Serial)
	b = binary.LittleEndian.AppendUint32(b, p.Seq)
	b = append(b, 0, 0, 0, 0) // CRC, filled below
	b = append(b, byte(len(p.Segments)))
	b = append(b, p.Segments...)
	b = append(b, p.Body...)
	binary.LittleEndian.PutUint32(b[start+22:], crc(b[start:]))
	return b, nil
}

// ParsePage decodes one page from the front of b and returns it with the
// bytes consumed. Segments and Body alias b. It checks the capture pattern,
// version, header type and CRC.
func ParsePage(b []byte) (Page, int, error) {
	var p Page
	if len(b) < HeaderLen {
		return p, 0, ErrTruncated
	}
	if [4]byte(b[0:4]) != capture {
		return p, 0, ErrCapture
	}
	if b[4] != 0 {
		return p, 0, ErrVersion
	}
	p.Type = HeaderType(b[5])
	if p.Type&^headerTypeKnown != 0 {
		return p, 0, ErrHeaderType
	}
	p.Granule = int64(binary.LittleEndian.Uint64(b[6:]))
	p.Serial = binary.LittleEndian.Uint32(b[14:])
	p.Seq = binary.LittleEndian.Uint32(b[18:])
	sum := binary.LittleEndian.Uint32(b[22:])
	nseg := int(b[26])
	if len(b) < HeaderLen+nseg {
		return p, 0, ErrTruncated
	}
	p.Segments = b[HeaderLen : HeaderLen+nseg]
	bodyLen := 0
	for _, s := range p.Segments {
		bodyLen += int(s)
	}
	n := HeaderLen + nseg + bodyLen
	if len(b) < n {
		return p, 0, ErrTruncated
	}
	p.Body = b[HeaderLen+nseg : n]
	if crcSkipping(b[:n]) != sum {
		return p, 0, ErrCRC
	}
	return p, n, nil
}

// crcTable is the table of the Ogg CRC-32: polynomial 0x04C11DB7, most
// significant bit first, initial value 0, no final XOR (RFC 3533 §6). It
// is not hash/crc32's IEEE CRC, which is bit-reflected.
var crcTable = func() (t [256]uint32) {
	for i := range t {
		r := uint32(i) << 24
		for range 8 {
			if r&0x80000000 != 0 {
				r = r<<1 ^ 0x04C11DB7
			} else {
				r <<= 1
			}
		}
		t[i] = r
	}
	return t
}()

func crcUpdate(c uint32, b []byte) uint32 {
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}

// crc is the checksum of a page whose CRC field is zero.
func crc(page []byte) uint32 { return crcUpdate(0, page) }

// crcSkipping is the checksum of a page computed as if its CRC field
// (bytes 22-25) were zero, without copying the page.
func crcSkipping(page []byte) uint32 {
	c := crcUpdate(0, page[:22])
	c = crcUpdate(c, []byte{0, 0, 0, 0})
	return crcUpdate(c, page[26:])
}
