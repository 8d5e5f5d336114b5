package websocket

import (
	"encoding/binary"
	"errors"
)

// WebSocket frames as the server reads and writes them (RFC 6455,
// Section 5.2):
//
//	byte 0    FIN (1) | RSV1-3 (3) | opcode (4)
//	byte 1    MASK (1) | payload length (7): 0-125, 126 = 16-bit length
//	          follows, 127 = 64-bit length follows
//	          extended payload length (0, 2 or 8 bytes, big-endian)
//	          masking key (4 bytes, present when MASK is set)
//	          payload
//
// Client frames are masked, server frames are not (Section 5.1).

// Opcodes (RFC 6455, Section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// maxControlPayload is the largest payload of a control frame (RFC 6455,
// Section 5.5).
const maxControlPayload = 125

// maxFrameHeader is the longest header: 2 bytes, an 8-byte length and a
// 4-byte masking key.
const maxFrameHeader = 2 + 8 + 4

// Close status codes the server sends or understands (RFC 6455, Section
// 7.4.1).
const (
	statusNormal          = 1000
	statusGoingAway       = 1001
	statusProtocolError   = 1002
	statusNoStatus        = 1005 // never sent: a close frame without a code
	statusInvalidPayload  = 1007
	statusMessageTooBig   = 1009
	statusInternalError   = 1011
	statusPolicyViolation = 1008
)

// frameHeader is a decoded frame header.
type frameHeader struct {
	fin    bool
	rsv    byte // RSV1-3 as the high bits of byte 0; JSP uses no extension
	opcode byte
	masked bool
	mask   [4]byte
	length uint64
}

// Decoding errors of frame headers.
var (
	errNonMinimalLength = errors.New("websocket: payload length not in its shortest form")
	errLengthTooLarge   = errors.New("websocket: payload length with the most significant bit set")
)

// parseFrameHeader decodes the header at the front of b. It returns the
// header and its length, or n == 0 and no error when b holds only part of
// a header. RFC 6455, Section 5.2: the length is in its minimal form and a
// 64-bit length has its most significant bit clear.
func parseFrameHeader(b []byte) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.opcode = b[0] & 0x0F
	h.masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7F; l {
	case 126:
		if len(b) < n+2 {
			return h, 0, nil
		}
		h.length = uint64(binary.BigEndian.Uint16(b[n:]))
		n += 2
		if h.length < 126 {
			return h, 0, errNonMinimalLength
		}
	case 127:
		if len(b) < n+8 {
			return h, 0, nil
		}
		h.length = binary.BigEndian.Uint64(b[n:])
		n += 8
		if h.length>>63 != 0 {
			return h, 0, errLengthTooLarge
		}
		if h.length <= 0xFFFF {
			return h, 0, errNonMinimalLength
		}
	default:
		h.length = uint64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0, nil
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// appendFrameHeader appends the encoding of h, in its minimal form.
func appendFrameHeader(b []byte, h frameHeader) []byte {
	b0 := h.rsv&0x70 | h.opcode&0x0F
	if h.fin {
		b0 |= 0x80
	}
	var m byte
	if h.masked {
		m = 0x80
	}
	switch {
	case h.length < 126:
		b = append(b, b0, m|byte(h.length))
	case h.length <= 0xFFFF:
		b = append(b, b0, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.length))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, h.length)
	}
	if h.masked {
		b = append(b, h.mask[:]...)
	}
	return b
}

// maskBytes XORs b with the masking key, starting at key position pos,
// and returns the position after b (RFC 6455, Section 5.3). Masking and
// unmasking are the same operation.
func maskBytes(key [4]byte, pos int, b []byte) int {
	// Eight bytes at a time once aligned to the key: payloads of a busy
	// link are kilobytes, a byte loop would dominate reading them.
	for len(b) > 0 && pos&3 != 0 {
		b[0] ^= key[pos&3]
		b = b[1:]
		pos++
	}
	if len(b) >= 8 {
		k32 := binary.LittleEndian.Uint32(key[:])
		k64 := uint64(k32) | uint64(k32)<<32
		for len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, binary.LittleEndian.Uint64(b)^k64)
			b = b[8:]
		}
	}
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return (pos + len(b)) & 3
}

// appendClosePayload appends a close frame's payload: the status code and
// a reason (RFC 6455, Section 5.5.1).
func appendClosePayload(b []byte, code uint16, reason string) []byte {
	b = binary.BigEndian.AppendUint16(b, code)
	return append(b, reason...)
}

// validCloseCode reports whether a peer may send code in a close frame
// (RFC 6455, Section 7.4).
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
