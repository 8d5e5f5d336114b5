package websocket

import (
	"bytes"
	"testing"
)

func TestFrameHeaderRoundTrip(t *testing.T) {
	tests := []frameHeader{
		{fin: true, opcode: opBinary},
		{fin: true, opcode: opBinary, length: 125},
		{fin: false, opcode: opBinary, length: 126},
		{fin: true, opcode: opContinuation, length: 0xFFFF},
		{fin: true, opcode: opBinary, length: 0x10000},
		{fin: true, opcode: opBinary, length: 1<<63 - 1},
		{fin: true, opcode: opPing, masked: true, mask: [4]byte{1, 2, 3, 4}, length: 5},
		{fin: true, opcode: opClose, rsv: 0x40, masked: true, mask: [4]byte{0xff, 0, 0xff, 0}, length: 300},
	}
	for _, h := range tests {
		b := appendFrameHeader(nil, h)
		got, n, err := parseFrameHeader(b)
		if err != nil || n != len(b) || got != h {
			t.Errorf("%+v: parsed %+v, %d of %d bytes, %v", h, got, n, len(b), err)
		}
		// No proper prefix is a header.
		for i := range len(b) {
			if _, n, err := parseFrameHeader(b[:i]); n != 0 || err != nil {
				t.Errorf("%+v: prefix of %d bytes parsed: %d, %v", h, i, n, err)
			}
		}
	}
}

func TestFrameHeaderRejects(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
	}{
		{"16-bit length below 126", []byte{0x82, 126, 0, 125}},
		{"64-bit length below 2^16", []byte{0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff}},
		{"64-bit length with the top bit", []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		if _, _, err := parseFrameHeader(tt.b); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	src := bytes.Repeat([]byte("masking is its own inverse "), 5)
	for _, split := range []int{0, 1, 3, 8, 13, len(src)} {
		b := bytes.Clone(src)
		pos := maskBytes(key, 0, b[:split])
		maskBytes(key, pos, b[split:])
		for i := range src {
			if b[i] != src[i]^key[i%4] {
				t.Fatalf("split %d: byte %d masked wrong", split, i)
			}
		}
	}
}

func TestAcceptKey(t *testing.T) {
	// RFC 6455, Section 1.3.
	if got := acceptKey("dGhlIHNhbXBsZSBub25jZQ=="); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("accept key %q", got)
	}
}

// FuzzFrameHeader: parsing never panics, and whatever parses re-encodes
// to the same bytes (headers have one encoding).
func FuzzFrameHeader(f *testing.F) {
	for _, h := range []frameHeader{
		{fin: true, opcode: opBinary, masked: true, mask: [4]byte{9, 8, 7, 6}, length: 3},
		{opcode: opContinuation, masked: true, length: 200},
		{fin: true, opcode: opClose, masked: true, length: 70000},
	} {
		f.Add(appendFrameHeader(nil, h))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseFrameHeader(b)
		if err != nil || n == 0 {
			return
		}
		if enc := appendFrameHeader(nil, h); !bytes.Equal(enc, b[:n]) {
			t.Fatalf("%x parsed as %+v, re-encodes to %x", b[:n], h, enc)
		}
	})
}
