package simulcast

import (
	"errors"
	"fmt"
)

// VP8 parsing errors.
var (
	// ErrVP8Truncated: the input ends inside a descriptor or header.
	ErrVP8Truncated = errors.New("simulcast: VP8 data truncated")
	// ErrVP8StartCode: a key frame without the 0x9d 0x01 0x2a start code.
	ErrVP8StartCode = errors.New("simulcast: VP8 key frame without start code")
)

// VP8Descriptor is the VP8 RTP payload descriptor (RFC 7741 §4.2), which a
// packet carries when a publisher forwards VP8 from RTP:
//
//	 0 1 2 3 4 5 6 7
//	+-+-+-+-+-+-+-+-+
//	|X|R|N|S|R| PID |  required
//	+-+-+-+-+-+-+-+-+
//	|I|L|T|K| RSV   |  X: extension bits
//	|M| PictureID   |  I: 7 or 15 bits (M = 15-bit form)
//	|   TL0PICIDX   |  L
//	|TID|Y| KEYIDX  |  T or K
//	+-+-+-+-+-+-+-+-+
type VP8Descriptor struct {
	NonReference bool   // N
	Start        bool   // S: first packet of a partition
	PartitionID  uint8  // PID
	HasPictureID bool   // I
	PictureID    uint16 // 7 or 15 bits
	HasTL0       bool   // L
	TL0PicIdx    uint8
	HasTID       bool // T
	TID          uint8
	LayerSync    bool // Y
	HasKeyIdx    bool // K
	KeyIdx       uint8
	// Len is the descriptor's length; the VP8 payload follows.
	Len int
}

// ParseVP8Descriptor decodes a VP8 payload descriptor at the front of b.
func ParseVP8Descriptor(b []byte) (VP8Descriptor, error) {
	var d VP8Descriptor
	if len(b) < 1 {
		return d, ErrVP8Truncated
	}
	x := b[0]&0x80 != 0
	d.NonReference = b[0]&0x20 != 0
	d.Start = b[0]&0x10 != 0
	d.PartitionID = b[0] & 0x07
	n := 1
	if x {
		if len(b) < 2 {
			return d, ErrVP8Truncated
		}
		ext := b[1]
		n = 2
		d.HasPictureID, d.HasTL0, d.HasTID, d.HasKeyIdx = ext&0x80 != 0, ext&0x40 != 0, ext&0x20 != 0, ext&0x10 != 0
		if d.HasPictureID {
			if len(b) < n+1 {
				return d, ErrVP8Truncated
			}
			if b[n]&0x80 != 0 {
				if len(b) < n+2 {
					return d, ErrVP8Truncated
				}
				d.PictureID = uint16(b[n]&0x7F)<<8 | uint16(b[n+1])
				n += 2
			} else {
				d.PictureID = uint16(b[n])
				n++
			}
		}
		if d.HasTL0 {
			if len(b) < n+1 {
				return d, ErrVP8Truncated
			}
			d.TL0PicIdx = b[n]
			n++
		}
		if d.HasTID || d.HasKeyIdx {
			if len(b) < n+1 {
				return d, ErrVP8Truncated
			}
			d.TID = b[n] >> 6
			d.LayerSync = b[n]&0x20 != 0
			d.KeyIdx = b[n] & 0x1F
			n++
		}
	}
	d.Len = n
	return d, nil
}

// VP8Header is the start of a VP8 frame (RFC 6386 §9.1): the 3-byte frame
// tag and, on key frames, the start code and dimensions.
//
//	frame tag (little-endian, 24 bits):
//	  bit 0      frame type: 0 key frame, 1 inter frame
//	  bits 1-3   version
//	  bit 4      show_frame
//	  bits 5-23  first partition size
//	key frames then: 0x9d 0x01 0x2a, width (14 bits + 2 scale bits),
//	height (14 bits + 2 scale bits), both little-endian
type VP8Header struct {
	KeyFrame       bool
	Version        uint8
	ShowFrame      bool
	FirstPartSize  uint32
	Width, Height  uint16 // key frames only
	HScale, VScale uint8
}

// ParseVP8Header decodes the frame header at the front of a VP8 frame (not
// of a later packet of it).
func ParseVP8Header(b []byte) (VP8Header, error) {
	var h VP8Header
	if len(b) < 3 {
		return h, ErrVP8Truncated
	}
	tag := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
	h.KeyFrame = tag&1 == 0
	h.Version = uint8(tag>>1) & 7
	h.ShowFrame = tag&0x10 != 0
	h.FirstPartSize = tag >> 5
	if !h.KeyFrame {
		return h, nil
	}
	if len(b) < 10 {
		return h, ErrVP8Truncated
	}
	if b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
		return h, fmt.Errorf("simulcast: start code %x: %w", b[3:6], ErrVP8StartCode)
	}
	w := uint16(b[6]) | uint16(b[7])<<8
	v := uint16(b[8]) | uint16(b[9])<<8
	h.Width, h.HScale = w&0x3FFF, uint8(w>>14)
	h.Height, h.VScale = v&0x3FFF, uint8(v>>14)
	return h, nil
}

// IsVP8KeyFrame reports whether a whole VP8 frame (as in an IVF file or a
// JSP media frame) is a key frame with a valid start code.
func IsVP8KeyFrame(frame []byte) bool {
	h, err := ParseVP8Header(frame)
	return err == nil && h.KeyFrame
}

// IsVP8KeyFrameRTP reports whether an RTP VP8 payload (descriptor first)
// starts a key frame: the descriptor marks the start of partition 0 and the
// frame header that follows says key frame.
func IsVP8KeyFrameRTP(payload []byte) bool {
	d, err := ParseVP8Descriptor(payload)
	if err != nil || !d.Start || d.PartitionID != 0 {
		return false
	}
	return IsVP8KeyFrame(payload[d.Len:])
}
