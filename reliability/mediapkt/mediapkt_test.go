package mediapkt

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

func sampleHeaders() []Header {
	return []Header{
		{},
		{Flags: FlagKeyFrame | FlagEndOfFrame, Seq: 65535, Timestamp: 0xffffffff},
		{Flags: FlagRetransmission | FlagAudioLevel, Seq: 4, AudioLevel: AudioLevel{Level: 3}},
		{Flags: FlagAudioLevel, Seq: 1, Timestamp: 960, AudioLevel: AudioLevel{Voice: true, Level: 30}},
		{Flags: FlagAudioLevel | FlagEndOfFrame, Seq: 2, AudioLevel: AudioLevel{Level: MaxAudioLevel}},
		{Flags: FlagFEC, Seq: 7, Timestamp: 90000, FEC: FECInfo{Base: 65530, K: 10, M: 2, Index: 1}},
		{Flags: FlagFEC, FEC: FECInfo{K: 1, M: 1}},
		{Flags: FlagFEC, FEC: FECInfo{K: 200, M: 55, Index: 54}},
	}
}

func TestHeaderVectors(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		hex  string
	}{
		{"plain", Header{Seq: 0x0102, Timestamp: 0x03040506}, "00" + "0102" + "03040506"},
		{"key end", Header{Flags: FlagKeyFrame | FlagEndOfFrame, Seq: 0xffff, Timestamp: 1}, "c0" + "ffff" + "00000001"},
		{"audio level", Header{Flags: FlagAudioLevel, Seq: 9, Timestamp: 960, AudioLevel: AudioLevel{Voice: true, Level: 42}},
			"10" + "0009" + "000003c0" + "aa"},
		{"parity", Header{Flags: FlagFEC, Seq: 3, Timestamp: 7, FEC: FECInfo{Base: 0xfffe, K: 10, M: 2, Index: 1}},
			"20" + "0003" + "00000007" + "fffe" + "0a" + "02" + "01"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.h.Append(nil)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if got := hex.EncodeToString(b); got != tt.hex {
				t.Fatalf("encoding = %s, want %s", got, tt.hex)
			}
			if len(b) != tt.h.Len() {
				t.Fatalf("Len = %d, encoded %d", tt.h.Len(), len(b))
			}
			h, n, err := ParseHeader(b)
			if err != nil || n != len(b) || h != tt.h {
				t.Fatalf("ParseHeader = %+v, %d, %v; want %+v, %d", h, n, err, tt.h, len(b))
			}
		})
	}
}

func TestRoundTripAndNoProperPrefix(t *testing.T) {
	for _, h := range sampleHeaders() {
		payload := []byte("payload bytes")
		b, err := AppendPacket([]byte{0xee}, &h, payload)
		if err != nil {
			t.Fatalf("AppendPacket(%+v): %v", h, err)
		}
		b = b[1:] // Append must append, not overwrite.
		got, p, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse(%x): %v", b, err)
		}
		if got != h || !bytes.Equal(p, payload) {
			t.Fatalf("round trip: got %+v %q, want %+v %q", got, p, h, payload)
		}
		hl := h.Len()
		for i := 0; i < hl; i++ {
			if _, _, err := ParseHeader(b[:i]); !errors.Is(err, ErrTruncated) {
				t.Fatalf("header %+v: prefix of %d/%d bytes: err = %v, want ErrTruncated", h, i, hl, err)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		want error
	}{
		{"empty", "", ErrTruncated},
		{"short fixed", "00000100", ErrTruncated},
		{"reserved bit 0", "01" + "0000" + "00000000", ErrReservedFlags},
		{"reserved bit 2", "04" + "0000" + "00000000", ErrReservedFlags},
		{"level missing", "10" + "0000" + "00000000", ErrTruncated},
		{"fec short", "20" + "0000" + "00000000" + "00000102", ErrTruncated},
		{"fec k zero", "20" + "0000" + "00000000" + "0000" + "00" + "01" + "00", ErrBadFEC},
		{"fec m zero", "20" + "0000" + "00000000" + "0000" + "01" + "00" + "00", ErrBadFEC},
		{"fec index", "20" + "0000" + "00000000" + "0000" + "04" + "02" + "02", ErrBadFEC},
		{"fec too many", "20" + "0000" + "00000000" + "0000" + "c8" + "38" + "00", ErrBadFEC},
		{"fec with key", "a0" + "0000" + "00000000" + "0000" + "01" + "01" + "00", ErrBadFEC},
		{"fec retransmitted", "28" + "0000" + "00000000" + "0000" + "01" + "01" + "00", ErrBadFEC},
		{"fec with level", "30" + "0000" + "00000000" + "00" + "0000" + "01" + "01" + "00", ErrBadFEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tt.hex)
			_, _, err := ParseHeader(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if jsperr.CodeOf(err) == jsperr.Internal {
				t.Fatalf("error %v carries no JSP code", err)
			}
		})
	}
}

func TestAppendValidates(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want error
	}{
		{"reserved", Header{Flags: 0x02}, ErrReservedFlags},
		{"level", Header{Flags: FlagAudioLevel, AudioLevel: AudioLevel{Level: 128}}, ErrBadAudioLevel},
		{"fec index", Header{Flags: FlagFEC, FEC: FECInfo{K: 1, M: 1, Index: 1}}, ErrBadFEC},
		{"fec end", Header{Flags: FlagFEC | FlagEndOfFrame, FEC: FECInfo{K: 1, M: 1}}, ErrBadFEC},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.h.Append([]byte{1})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(b) != 1 {
				t.Fatalf("failed Append changed the buffer to %x", b)
			}
		})
	}
}

func TestIgnoredFieldsNotEncoded(t *testing.T) {
	// Fields whose flag is clear are not encoded, so they do not survive
	// a round trip.
	h := Header{Seq: 5, AudioLevel: AudioLevel{Level: 3}, FEC: FECInfo{K: 1, M: 1}}
	b, err := h.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != FixedHeaderLen {
		t.Fatalf("encoded %d bytes, want %d", len(b), FixedHeaderLen)
	}
	got, _, err := ParseHeader(b)
	if err != nil || got != (Header{Seq: 5}) {
		t.Fatalf("ParseHeader = %+v, %v", got, err)
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, h := range sampleHeaders() {
		b, err := AppendPacket(nil, &h, []byte{1, 2, 3})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with n = %d", err, n)
			}
			return
		}
		if n != h.Len() || n > len(b) {
			t.Fatalf("n = %d, Len = %d, input %d", n, h.Len(), len(b))
		}
		// Parsing accepts only canonical encodings: re-encoding gives the
		// same bytes.
		re, err := h.Append(nil)
		if err != nil {
			t.Fatalf("re-encode of parsed %+v: %v", h, err)
		}
		if !bytes.Equal(re, b[:n]) {
			t.Fatalf("re-encoding %x differs from input %x", re, b[:n])
		}
		for i := 0; i < n; i++ {
			if _, _, err := ParseHeader(b[:i]); err == nil {
				t.Fatalf("proper prefix %x of %x parsed", b[:i], b[:n])
			}
		}
	})
}

func TestSetRetransmission(t *testing.T) {
	h := Header{Flags: FlagKeyFrame, Seq: 9, Timestamp: 1}
	b, _ := AppendPacket(nil, &h, []byte("p"))
	orig := bytes.Clone(b)
	if err := SetRetransmission(b, true); err != nil {
		t.Fatal(err)
	}
	got, p, err := Parse(b)
	if err != nil || got.Flags != FlagKeyFrame|FlagRetransmission || got.Seq != 9 || string(p) != "p" {
		t.Fatalf("after setting R: %+v %q %v", got, p, err)
	}
	if err := SetRetransmission(b, false); err != nil || !bytes.Equal(b, orig) {
		t.Fatalf("clearing R did not restore the packet: %x, %v", b, err)
	}
	if err := SetRetransmission(nil, true); !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty packet: %v", err)
	}
}
