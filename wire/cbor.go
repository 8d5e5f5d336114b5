package wire

import (
	"unicode/utf8"
)

// This file is JSP's minimal CBOR (RFC 8949) codec: exactly the subset that
// JSP bodies use, in the core deterministic encoding of RFC 8949 §4.2.1
// (JSP §6). Encoders always produce deterministic output; the decoder accepts
// only deterministic input so that every accepted body re-encodes to the same
// bytes, which signatures (JSP §4.3) and the byte-exact test vectors rely on.

// CBOR major types (RFC 8949 §3.1), already shifted into the top three bits
// of the initial byte.
const (
	cborUint   byte = 0 << 5
	cborNeg    byte = 1 << 5
	cborBytes  byte = 2 << 5
	cborText   byte = 3 << 5
	cborArray  byte = 4 << 5
	cborMap    byte = 5 << 5
	cborTag    byte = 6 << 5
	cborSimple byte = 7 << 5

	cborFalse byte = cborSimple | 20
	cborTrue  byte = cborSimple | 21
)

// MaxCBORDepth caps how deeply nested an item may be when the decoder skips
// it as the value of an unknown key (JSP §6, §9). The cap bounds recursion,
// so a hostile body cannot exhaust the stack.
const MaxCBORDepth = 16

// appendCBORHead appends an initial byte of the given major type with its
// argument v in the shortest form (RFC 8949 §4.2.1).
func appendCBORHead(b []byte, major byte, v uint64) []byte {
	switch {
	case v < 24:
		return append(b, major|byte(v))
	case v <= 0xff:
		return append(b, major|24, byte(v))
	case v <= 0xffff:
		return append(b, major|25, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, major|26, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(b, major|27, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// cborHeadLen returns the encoded length of a head whose argument is v.
func cborHeadLen(v uint64) int {
	switch {
	case v < 24:
		return 1
	case v <= 0xff:
		return 2
	case v <= 0xffff:
		return 3
	case v <= 0xffffffff:
		return 5
	default:
		return 9
	}
}

// cborStrLen returns the encoded length of a byte or text string of n bytes.
func cborStrLen(n int) int { return cborHeadLen(uint64(n)) + n }

// AppendCBORUint appends v as a CBOR unsigned integer (major type 0).
func AppendCBORUint(b []byte, v uint64) []byte { return appendCBORHead(b, cborUint, v) }

// AppendCBORBytes appends p as a definite-length CBOR byte string.
func AppendCBORBytes(b []byte, p []byte) []byte {
	return append(appendCBORHead(b, cborBytes, uint64(len(p))), p...)
}

// AppendCBORText appends s as a definite-length CBOR text string. The caller
// must pass valid UTF-8; the decoder rejects anything else (JSP §6).
func AppendCBORText(b []byte, s string) []byte {
	return append(appendCBORHead(b, cborText, uint64(len(s))), s...)
}

// AppendCBORBool appends v as CBOR false (0xf4) or true (0xf5).
func AppendCBORBool(b []byte, v bool) []byte {
	if v {
		return append(b, cborTrue)
	}
	return append(b, cborFalse)
}

// AppendCBORArrayHeader appends the head of a definite-length array of n
// items; the caller appends the items.
func AppendCBORArrayHeader(b []byte, n int) []byte {
	return appendCBORHead(b, cborArray, uint64(n))
}

// AppendCBORMapHeader appends the head of a definite-length map of n
// entries; the caller appends the keys and values in deterministic order.
func AppendCBORMapHeader(b []byte, n int) []byte {
	return appendCBORHead(b, cborMap, uint64(n))
}

// CBORDecoder reads deterministic CBOR items from the front of a byte slice
// (JSP §6). Each method reads one item and advances; on error the decoder's
// position is unspecified and the caller abandons the input.
//
// Every length is checked first against the caller's limit and then against
// the input that remains, before anything is sliced or allocated. Byte and
// text strings returned as []byte alias the input.
type CBORDecoder struct {
	b   []byte
	off int
}

// NewCBORDecoder returns a decoder reading from the start of b.
func NewCBORDecoder(b []byte) CBORDecoder { return CBORDecoder{b: b} }

// Offset returns the number of bytes consumed so far.
func (d *CBORDecoder) Offset() int { return d.off }

// Remaining returns the number of bytes not yet consumed.
func (d *CBORDecoder) Remaining() int { return len(d.b) - d.off }

// head reads an initial byte and its argument. Integer and length arguments
// must be in the shortest form; indefinite lengths and the reserved
// additional-information values 28-30 are rejected (JSP §6).
func (d *CBORDecoder) head() (major byte, arg uint64, err error) {
	if d.off >= len(d.b) {
		return 0, 0, ErrTruncated
	}
	ib := d.b[d.off]
	major, ai := ib&0xe0, ib&0x1f
	switch {
	case ai < 24:
		d.off++
		return major, uint64(ai), nil
	case ai <= 27:
		n := 1 << (ai - 24)
		if len(d.b)-d.off-1 < n {
			return 0, 0, ErrTruncated
		}
		var v uint64
		for _, c := range d.b[d.off+1 : d.off+1+n] {
			v = v<<8 | uint64(c)
		}
		if major == cborSimple {
			// ai 25-27 are floats, whose bits carry no minimality rule we
			// check (JSP never uses them); a one-byte simple value below 32
			// is not well-formed (RFC 8949 §3.3).
			if ai == 24 && v < 32 {
				return 0, 0, ErrInvalidCBOR
			}
		} else if cborHeadLen(v) != 1+n {
			return 0, 0, ErrNonCanonical
		}
		d.off += 1 + n
		return major, v, nil
	case ai == 31:
		if major == cborSimple {
			return 0, 0, ErrInvalidCBOR // a "break" outside an indefinite item
		}
		return 0, 0, ErrIndefiniteLength
	default:
		return 0, 0, ErrInvalidCBOR
	}
}

// headOf reads a head and requires major type want.
func (d *CBORDecoder) headOf(want byte) (uint64, error) {
	major, arg, err := d.head()
	if err != nil {
		return 0, err
	}
	if major != want {
		return 0, ErrWrongType
	}
	return arg, nil
}

// Uint reads an unsigned integer (major type 0).
func (d *CBORDecoder) Uint() (uint64, error) { return d.headOf(cborUint) }

// Bool reads false or true.
func (d *CBORDecoder) Bool() (bool, error) {
	if d.off >= len(d.b) {
		return false, ErrTruncated
	}
	switch d.b[d.off] {
	case cborFalse:
		d.off++
		return false, nil
	case cborTrue:
		d.off++
		return true, nil
	}
	return false, ErrWrongType
}

// str reads a definite-length string of the given major type whose length
// is at most max. The length is checked against max and then against the
// remaining input before the string is sliced.
func (d *CBORDecoder) str(major byte, max int) ([]byte, error) {
	n, err := d.headOf(major)
	if err != nil {
		return nil, err
	}
	if n > uint64(max) {
		return nil, ErrFieldRange
	}
	if n > uint64(len(d.b)-d.off) {
		return nil, ErrTruncated
	}
	p := d.b[d.off : d.off+int(n)]
	d.off += int(n)
	return p, nil
}

// Bytes reads a byte string of at most max bytes. The result aliases the
// input.
func (d *CBORDecoder) Bytes(max int) ([]byte, error) { return d.str(cborBytes, max) }

// TextBytes reads a text string of at most max bytes and checks that it is
// valid UTF-8. The result aliases the input, so reading it does not allocate.
func (d *CBORDecoder) TextBytes(max int) ([]byte, error) {
	p, err := d.str(cborText, max)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(p) {
		return nil, ErrInvalidUTF8
	}
	return p, nil
}

// Text reads a text string of at most max bytes as a Go string.
func (d *CBORDecoder) Text(max int) (string, error) {
	p, err := d.TextBytes(max)
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// ArrayHeader reads the head of an array of at most max items. Since every
// item takes at least one byte, a count above the remaining input is
// reported as truncation before the caller allocates for it.
func (d *CBORDecoder) ArrayHeader(max int) (int, error) {
	n, err := d.headOf(cborArray)
	if err != nil {
		return 0, err
	}
	if n > uint64(max) {
		return 0, ErrFieldRange
	}
	if n > uint64(len(d.b)-d.off) {
		return 0, ErrTruncated
	}
	return int(n), nil
}

// MapHeader reads the head of a map of at most max entries. Every entry
// takes at least two bytes, which bounds the count by the remaining input.
func (d *CBORDecoder) MapHeader(max int) (int, error) {
	n, err := d.headOf(cborMap)
	if err != nil {
		return 0, err
	}
	if n > uint64(max) {
		return 0, ErrFieldRange
	}
	if n > uint64(len(d.b)-d.off)/2 {
		return 0, ErrTruncated
	}
	return int(n), nil
}

// Skip reads and discards one well-formed item of any type: the value of an
// unknown map key (JSP §8.3). Strings must be definite and text valid UTF-8,
// heads in shortest form, and nesting at most MaxCBORDepth deep. Skipped
// items are not otherwise inspected (map key order inside them is not
// checked), because the receiver does not interpret or re-encode them.
func (d *CBORDecoder) Skip() error { return d.skip(0) }

func (d *CBORDecoder) skip(depth int) error {
	if depth >= MaxCBORDepth {
		return ErrTooDeep
	}
	major, arg, err := d.head()
	if err != nil {
		return err
	}
	rem := uint64(len(d.b) - d.off)
	switch major {
	case cborUint, cborNeg, cborSimple:
		return nil
	case cborBytes, cborText:
		if arg > rem {
			return ErrTruncated
		}
		p := d.b[d.off : d.off+int(arg)]
		d.off += int(arg)
		if major == cborText && !utf8.Valid(p) {
			return ErrInvalidUTF8
		}
		return nil
	case cborArray, cborMap:
		items := arg
		if major == cborMap {
			if arg > rem/2 {
				return ErrTruncated
			}
			items = 2 * arg
		} else if arg > rem {
			return ErrTruncated
		}
		// The count is bounded by the input length, so this loop is too.
		for i := uint64(0); i < items; i++ {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	default: // cborTag: the tag number, then one tagged item
		return d.skip(depth + 1)
	}
}

// CBORMap iterates over a map whose keys are unsigned integers, as every JSP
// body is (JSP §6). It enforces the deterministic key order: a key equal to
// its predecessor is DUPLICATE_FIELD, a smaller one INVALID_CBOR. It records
// which keys below 64 it has seen, so decoders can report MISSING_FIELD.
type CBORMap struct {
	d       *CBORDecoder
	left    int
	last    uint64
	started bool
	seen    uint64
}

// Map reads the head of a map of at most max entries and returns an
// iterator over its keys. The caller reads (or skips) each value.
func (d *CBORDecoder) Map(max int) (CBORMap, error) {
	n, err := d.MapHeader(max)
	if err != nil {
		return CBORMap{}, err
	}
	return CBORMap{d: d, left: n}, nil
}

// Next reads the next key. It returns ok == false after the last entry.
func (m *CBORMap) Next() (key uint64, ok bool, err error) {
	if m.left == 0 {
		return 0, false, nil
	}
	m.left--
	k, err := m.d.Uint()
	if err != nil {
		return 0, false, err
	}
	if m.started {
		// RFC 8949 §4.2.1: keys sorted by their encoded bytes, which for
		// shortest-form unsigned integers is numeric order.
		if k == m.last {
			return 0, false, ErrDuplicateField
		}
		if k < m.last {
			return 0, false, ErrKeyOrder
		}
	}
	m.started, m.last = true, k
	if k < 64 {
		m.seen |= 1 << k
	}
	return k, true, nil
}

// Has reports whether key k (below 64) has been read.
func (m *CBORMap) Has(k uint64) bool { return k < 64 && m.seen&(1<<k) != 0 }

// textKeyCompare orders text keys as RFC 8949 §4.2.1 orders their encodings:
// a shorter string has a shorter (and smaller) head, so length decides
// first, then the bytes.
func textKeyCompare(a, b []byte) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}
