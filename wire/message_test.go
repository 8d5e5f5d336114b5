package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

func TestMessageRoundTrip(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			enc := s.msg.Append(nil)
			if got := s.msg.Len(); got != len(enc) {
				t.Fatalf("Len() = %d, encoding has %d bytes", got, len(enc))
			}
			// Append must extend, not overwrite, what b holds.
			pre := []byte{0xde, 0xad}
			if got := s.msg.Append(pre); !bytes.Equal(got[:2], pre) || !bytes.Equal(got[2:], enc) {
				t.Fatalf("Append(prefix) = %x", got)
			}
			dec, n, err := parsers[typeName(s.msg)](enc)
			if err != nil {
				t.Fatalf("parse %x: %v", enc, err)
			}
			if n != len(enc) {
				t.Fatalf("consumed %d of %d bytes", n, len(enc))
			}
			if !reflect.DeepEqual(dec, s.msg) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", dec, s.msg)
			}
			if re := dec.Append(nil); !bytes.Equal(re, enc) {
				t.Fatalf("re-encode:\n got %x\nwant %x", re, enc)
			}
			if _, ok := s.msg.(*Datagram); ok {
				return // a datagram's data is the rest of its payload
			}
			// Trailing input is left for the caller.
			_, n, err = parsers[typeName(s.msg)](append(enc[:len(enc):len(enc)], 0x00))
			if err != nil || n != len(enc) {
				t.Fatalf("with trailing byte: n=%d err=%v", n, err)
			}
		})
	}
}

// TestNoProperPrefixParses: every proper prefix of a valid encoding fails,
// so a decoder never mistakes a cut-off message for a whole one.
func TestNoProperPrefixParses(t *testing.T) {
	for _, s := range samples() {
		if _, ok := s.msg.(*Datagram); ok {
			continue // the data is "the rest", so prefixes are valid datagrams
		}
		enc := s.msg.Append(nil)
		parse := parsers[typeName(s.msg)]
		for i := 0; i < len(enc); i++ {
			if _, _, err := parse(enc[:i]); err == nil {
				t.Errorf("%s: prefix %x of %x parsed", s.name, enc[:i], enc)
			}
		}
	}
}

// TestDecodedDoesNotAlias: decoded byte fields survive the input buffer being
// overwritten, as FrameReader does with its buffer.
func TestDecodedDoesNotAlias(t *testing.T) {
	for _, s := range samples() {
		enc := s.msg.Append(nil)
		dec, _, err := parsers[typeName(s.msg)](enc)
		if err != nil {
			t.Fatal(err)
		}
		for i := range enc {
			enc[i] = 0xff
		}
		if !reflect.DeepEqual(dec, s.msg) {
			t.Errorf("%s: decoded value changed with its input", s.name)
		}
	}
}

func TestDecodeMessage(t *testing.T) {
	for _, s := range samples() {
		ft := s.msg.FrameType()
		m, err := DecodeMessage(ft, s.msg.Append(nil))
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if m.FrameType() != ft || !reflect.DeepEqual(m, s.msg) {
			t.Fatalf("%s: DecodeMessage = %#v", s.name, m)
		}
	}
	e := Envelope{ID: []byte{1}, Route: Route{Name: "c"}, Kind: KindCommand}
	tests := []struct {
		name string
		t    FrameType
		p    []byte
		want error
	}{
		{"unknown type", 0x3f, []byte{0xa0}, ErrUnknownFrame},
		{"link frame", FrameWindowUpdate, []byte{1}, ErrNotSessionFrame},
		{"trailing bytes", FramePing, []byte{0xa0, 0x00}, ErrTrailingBytes},
		{"kind mismatch", FrameEvent, e.Append(nil), ErrKindMismatch},
		{"command ok", FrameCommand, e.Append(nil), nil},
		{"message any kind", FrameMessage, e.Append(nil), nil},
		{"datagram too large", FrameDatagram, append([]byte{0, 0, 1}, make([]byte, 1100)...), ErrDatagramTooLarge},
		{"datagram at limit", FrameDatagram, append([]byte{0, 0, 1}, make([]byte, 1097)...), nil},
	}
	for _, tt := range tests {
		_, err := DecodeMessage(tt.t, tt.p)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := DecodeMessage(0x3f, nil); jsperr.CodeOf(err) != jsperr.Internal {
		// ErrUnknownFrame must not look like a protocol error with a code.
		t.Errorf("ErrUnknownFrame carries a code: %v", err)
	}
}

func TestAppendMessage(t *testing.T) {
	for _, s := range samples() {
		f := AppendMessage(nil, FlagFIN, 4, s.msg)
		h, p, n, err := ParseFrame(f, uint64(DefaultLimits().MaxFrame))
		if err != nil || n != len(f) {
			t.Fatalf("%s: ParseFrame: n=%d err=%v", s.name, n, err)
		}
		if h.Type != s.msg.FrameType() || h.Flags != FlagFIN || h.StreamID != 4 {
			t.Fatalf("%s: header %v", s.name, h)
		}
		if !bytes.Equal(p, s.msg.Append(nil)) {
			t.Fatalf("%s: payload %x", s.name, p)
		}
	}
}
