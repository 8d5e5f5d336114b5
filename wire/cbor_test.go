package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func TestCBOREncode(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		// RFC 8949 Appendix A examples.
		{"uint 0", AppendCBORUint(nil, 0), "00"},
		{"uint 23", AppendCBORUint(nil, 23), "17"},
		{"uint 24", AppendCBORUint(nil, 24), "1818"},
		{"uint 255", AppendCBORUint(nil, 255), "18ff"},
		{"uint 256", AppendCBORUint(nil, 256), "190100"},
		{"uint 65536", AppendCBORUint(nil, 65536), "1a00010000"},
		{"uint 2^32", AppendCBORUint(nil, 1<<32), "1b0000000100000000"},
		{"uint max", AppendCBORUint(nil, ^uint64(0)), "1bffffffffffffffff"},
		{"bytes empty", AppendCBORBytes(nil, nil), "40"},
		{"bytes", AppendCBORBytes(nil, []byte{1, 2, 3, 4}), "4401020304"},
		{"text", AppendCBORText(nil, "IETF"), "6449455446"},
		{"text unicode", AppendCBORText(nil, "\u00fc"), "62c3bc"},
		{"false", AppendCBORBool(nil, false), "f4"},
		{"true", AppendCBORBool(nil, true), "f5"},
		{"array 3", AppendCBORArrayHeader(nil, 3), "83"},
		{"array 25", AppendCBORArrayHeader(nil, 25), "9819"},
		{"map 1", AppendCBORMapHeader(nil, 1), "a1"},
		{"map 64", AppendCBORMapHeader(nil, 64), "b840"},
	}
	for _, tt := range tests {
		if got := hex.EncodeToString(tt.got); got != tt.want {
			t.Errorf("%s: got %s want %s", tt.name, got, tt.want)
		}
	}
	for _, v := range []uint64{0, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, ^uint64(0)} {
		if n := len(AppendCBORUint(nil, v)); n != cborHeadLen(v) {
			t.Errorf("cborHeadLen(%d) = %d, encoding %d", v, cborHeadLen(v), n)
		}
	}
}

func TestCBORDecodePrimitives(t *testing.T) {
	tests := []struct {
		name string
		in   string
		read func(d *CBORDecoder) (any, error)
		want any
		err  error
	}{
		{"uint", "1903e8", func(d *CBORDecoder) (any, error) { return d.Uint() }, uint64(1000), nil},
		{"uint non-minimal 1", "1817", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrNonCanonical},
		{"uint non-minimal 2", "1900ff", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrNonCanonical},
		{"uint non-minimal 4", "1a0000ffff", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrNonCanonical},
		{"uint non-minimal 8", "1b00000000ffffffff", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrNonCanonical},
		{"uint truncated", "19 03", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrTruncated},
		{"uint empty", "", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrTruncated},
		{"uint reserved ai", "1c", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrInvalidCBOR},
		{"uint wrong type", "20", func(d *CBORDecoder) (any, error) { return d.Uint() }, nil, ErrWrongType},
		{"bool true", "f5", func(d *CBORDecoder) (any, error) { return d.Bool() }, true, nil},
		{"bool false", "f4", func(d *CBORDecoder) (any, error) { return d.Bool() }, false, nil},
		{"bool null", "f6", func(d *CBORDecoder) (any, error) { return d.Bool() }, nil, ErrWrongType},
		{"bytes", "43010203", func(d *CBORDecoder) (any, error) { return d.Bytes(3) }, []byte{1, 2, 3}, nil},
		{"bytes over max", "43010203", func(d *CBORDecoder) (any, error) { return d.Bytes(2) }, nil, ErrFieldRange},
		{"bytes over input", "4301", func(d *CBORDecoder) (any, error) { return d.Bytes(8) }, nil, ErrTruncated},
		{"bytes huge length", "5bffffffffffffffff", func(d *CBORDecoder) (any, error) { return d.Bytes(1 << 20) }, nil, ErrFieldRange},
		{"bytes indefinite", "5f41014102ff", func(d *CBORDecoder) (any, error) { return d.Bytes(8) }, nil, ErrIndefiniteLength},
		{"text", "6161", func(d *CBORDecoder) (any, error) { return d.Text(8) }, "a", nil},
		{"text bad utf8", "62c328", func(d *CBORDecoder) (any, error) { return d.Text(8) }, nil, ErrInvalidUTF8},
		{"text as bytes", "6161", func(d *CBORDecoder) (any, error) { return d.Bytes(8) }, nil, ErrWrongType},
		{"array", "83010203", func(d *CBORDecoder) (any, error) { return d.ArrayHeader(3) }, 3, nil},
		{"array over max", "83010203", func(d *CBORDecoder) (any, error) { return d.ArrayHeader(2) }, nil, ErrFieldRange},
		{"array over input", "830102", func(d *CBORDecoder) (any, error) { return d.ArrayHeader(3) }, nil, ErrTruncated},
		{"map", "a10102", func(d *CBORDecoder) (any, error) { return d.MapHeader(1) }, 1, nil},
		{"map over input", "a2010203", func(d *CBORDecoder) (any, error) { return d.MapHeader(2) }, nil, ErrTruncated},
		{"map indefinite", "bf0102ff", func(d *CBORDecoder) (any, error) { return d.MapHeader(2) }, nil, ErrIndefiniteLength},
	}
	for _, tt := range tests {
		d := NewCBORDecoder(unhex(t, tt.in))
		got, err := tt.read(&d)
		if tt.err != nil {
			if err != tt.err {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if gb, ok := got.([]byte); ok {
			if !bytes.Equal(gb, tt.want.([]byte)) {
				t.Errorf("%s: got %x", tt.name, gb)
			}
		} else if got != tt.want {
			t.Errorf("%s: got %v want %v", tt.name, got, tt.want)
		}
		if _, isCount := got.(int); !isCount && d.Remaining() != 0 {
			t.Errorf("%s: %d bytes left", tt.name, d.Remaining())
		}
	}
}

func TestCBORSkip(t *testing.T) {
	nest := func(depth int) string {
		return strings.Repeat("81", depth) + "00"
	}
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"uint", "1b0000000100000000", nil},
		{"negative", "3903e7", nil},
		{"bytes", "43010203", nil},
		{"text", "6449455446", nil},
		{"array", "8301820203820405", nil},
		{"map any keys", "a26161016162820203", nil},
		{"tag", "c11a514b67b0", nil},
		{"simple", "f6", nil},
		{"simple one byte", "f820", nil},
		{"float16", "f93c00", nil},
		{"float64", "fb3ff199999999999a", nil},
		{"depth at cap", nest(MaxCBORDepth - 1), nil},
		{"depth over cap", nest(MaxCBORDepth), ErrTooDeep},
		{"tags nest too", strings.Repeat("c1", MaxCBORDepth) + "00", ErrTooDeep},
		{"simple one byte below 32", "f818", ErrInvalidCBOR},
		{"break", "ff", ErrInvalidCBOR},
		{"reserved ai", "1d", ErrInvalidCBOR},
		{"indefinite array", "9f01ff", ErrIndefiniteLength},
		{"non-minimal length", "5801aa", ErrNonCanonical},
		{"bad utf8", "61ff", ErrInvalidUTF8},
		{"array count over input", "9a7fffffff00", ErrTruncated},
		{"map count over input", "a3010203", ErrTruncated},
		{"array of two", "820102", nil},
		{"truncated item", "8201", ErrTruncated},
		{"truncated float", "fa0000", ErrTruncated},
	}
	for _, tt := range tests {
		b := unhex(t, tt.in)
		d := NewCBORDecoder(b)
		err := d.Skip()
		if err != tt.err {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
		if err == nil && d.Remaining() != 0 {
			t.Errorf("%s: %d bytes left", tt.name, d.Remaining())
		}
	}
}

func TestCBORMapOrder(t *testing.T) {
	tests := []struct {
		name string
		in   string
		err  error
	}{
		{"ascending", "a3010002000a00", nil},
		{"gap", "a2010018ff00", nil},
		{"descending", "a2020001f4", ErrKeyOrder},
		{"repeated", "a2010001f4", ErrDuplicateField},
		{"text key", "a1616100", ErrWrongType},
	}
	for _, tt := range tests {
		d := NewCBORDecoder(unhex(t, tt.in))
		mp, err := d.Map(8)
		if err != nil {
			t.Fatal(err)
		}
		for {
			var ok bool
			_, ok, err = mp.Next()
			if err != nil || !ok {
				break
			}
			if err = d.Skip(); err != nil {
				break
			}
		}
		if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
		}
	}
	d := NewCBORDecoder(unhex(t, "a201000500"))
	mp, _ := d.Map(8)
	for {
		_, ok, _ := mp.Next()
		if !ok {
			break
		}
		_ = d.Skip()
	}
	if !mp.Has(1) || !mp.Has(5) || mp.Has(2) || mp.Has(64) {
		t.Errorf("Has: seen = %b", mp.seen)
	}
}

func TestTextKeyOrder(t *testing.T) {
	// Deterministic order sorts by encoded bytes: shorter first, then
	// bytewise, including across the 23/24-byte head boundary.
	keys := []string{"b", "a", "aa", strings.Repeat("z", 23), strings.Repeat("a", 24), "ab", "B"}
	m := map[string]string{}
	for _, k := range keys {
		m[k] = ""
	}
	enc := appendTextMap(nil, m)
	d := NewCBORDecoder(enc)
	got, err := d.textMap()
	if err != nil {
		t.Fatalf("textMap(appendTextMap) = %v", err)
	}
	if len(got) != len(keys) {
		t.Fatalf("got %d keys", len(got))
	}
	var prev []byte
	d = NewCBORDecoder(enc)
	n, _ := d.MapHeader(64)
	for i := 0; i < n; i++ {
		start := d.Offset()
		if _, err := d.Text(256); err != nil {
			t.Fatal(err)
		}
		k := enc[start:d.Offset()]
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("encoded keys out of order: %x then %x", prev, k)
		}
		prev = k
		_, _ = d.Text(256)
	}
}
