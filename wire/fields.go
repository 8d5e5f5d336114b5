package wire

import (
	"math"
	"slices"
	"strings"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

// Helpers shared by the body codecs. A JSP body is a CBOR map with small
// unsigned keys (JSP §6.2); optional fields are omitted when they hold their
// default value, so each value has exactly one encoding.

// beginBody reserves the one-byte map head of a body and returns its offset.
// Every JSP/1 body has fewer than 24 keys, so the head is always one byte
// and can be patched by endBody once the present fields are counted; this
// spares each encoder a separate counting pass.
func beginBody(b []byte) ([]byte, int) { return append(b, cborMap), len(b) }

// endBody patches the map head reserved by beginBody with the entry count.
func endBody(b []byte, at, n int) []byte {
	b[at] = cborMap | byte(n)
	return b
}

func appendUintField(b []byte, key, v uint64) []byte {
	return AppendCBORUint(AppendCBORUint(b, key), v)
}

func appendBytesField(b []byte, key uint64, p []byte) []byte {
	return AppendCBORBytes(AppendCBORUint(b, key), p)
}

func appendTextField(b []byte, key uint64, s string) []byte {
	return AppendCBORText(AppendCBORUint(b, key), s)
}

func uintFieldLen(key, v uint64) int { return cborHeadLen(key) + cborHeadLen(v) }

func strFieldLen(key uint64, n int) int { return cborHeadLen(key) + cborStrLen(n) }

func appendTextList(b []byte, l []string) []byte {
	b = AppendCBORArrayHeader(b, len(l))
	for _, s := range l {
		b = AppendCBORText(b, s)
	}
	return b
}

func textListLen(l []string) int {
	n := cborHeadLen(uint64(len(l)))
	for _, s := range l {
		n += cborStrLen(len(s))
	}
	return n
}

func appendVersionList(b []byte, l []protocol.Version) []byte {
	b = AppendCBORArrayHeader(b, len(l))
	for _, v := range l {
		b = AppendCBORUint(b, uint64(v))
	}
	return b
}

func versionListLen(l []protocol.Version) int {
	n := cborHeadLen(uint64(len(l)))
	for _, v := range l {
		n += cborHeadLen(uint64(v))
	}
	return n
}

// compareTextKeys orders map keys as RFC 8949 §4.2.1 orders their
// encodings; see textKeyCompare.
func compareTextKeys(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// appendTextMap appends a text->text map with its keys in deterministic
// order (JSP §6.2).
func appendTextMap(b []byte, m map[string]string) []byte {
	b = AppendCBORMapHeader(b, len(m))
	// Sort into a stack array when the map is within the spec limit, so
	// encoding an envelope with headers does not allocate.
	var arr [MaxHeaders]string
	keys := arr[:0]
	if len(m) > len(arr) {
		keys = make([]string, 0, len(m))
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareTextKeys)
	for _, k := range keys {
		b = AppendCBORText(b, k)
		b = AppendCBORText(b, m[k])
	}
	return b
}

func textMapLen(m map[string]string) int {
	n := cborHeadLen(uint64(len(m)))
	for k, v := range m {
		n += cborStrLen(len(k)) + cborStrLen(len(v))
	}
	return n
}

// optUint reads an optional unsigned field, which must not be 0 when
// present (JSP §6.2).
func (d *CBORDecoder) optUint() (uint64, error) {
	v, err := d.Uint()
	if err == nil && v == 0 {
		return 0, ErrNonCanonical
	}
	return v, err
}

// uintMax reads an unsigned field no greater than max.
func (d *CBORDecoder) uintMax(max uint64) (uint64, error) {
	v, err := d.Uint()
	if err == nil && v > max {
		return 0, ErrFieldRange
	}
	return v, err
}

// optBytes reads an optional byte string of 1..max bytes.
func (d *CBORDecoder) optBytes(max int) ([]byte, error) {
	p, err := d.Bytes(max)
	if err == nil && len(p) == 0 {
		return nil, ErrNonCanonical
	}
	return p, err
}

// optText reads an optional text string of 1..max bytes.
func (d *CBORDecoder) optText(max int) (string, error) {
	p, err := d.optTextBytes(max)
	return string(p), err
}

// optTextBytes is optText without the copy: the bytes are the input's.
func (d *CBORDecoder) optTextBytes(max int) ([]byte, error) {
	p, err := d.TextBytes(max)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, ErrNonCanonical
	}
	return p, nil
}

// optInterned is optText for a string that repeats across messages (a
// sender's identity): it comes from the intern table (intern.go).
func (d *CBORDecoder) optInterned(max int) (string, error) {
	p, err := d.optTextBytes(max)
	return internBytes(p), err
}

// optTrue reads an optional boolean, which must be true when present.
func (d *CBORDecoder) optTrue() (bool, error) {
	v, err := d.Bool()
	if err == nil && !v {
		return false, ErrNonCanonical
	}
	return v, err
}

// textList reads an optional array of 1..maxN non-empty text strings of at
// most maxLen bytes each.
func (d *CBORDecoder) textList(maxN, maxLen int) ([]string, error) {
	n, err := d.ArrayHeader(maxN)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrNonCanonical
	}
	l := make([]string, n)
	for i := range l {
		p, err := d.TextBytes(maxLen)
		if err != nil {
			return nil, err
		}
		if len(p) == 0 {
			return nil, ErrFieldRange
		}
		l[i] = string(p)
	}
	return l, nil
}

// versionList reads an array of 1..MaxVersions versions, each 1..2^32-1.
// An empty list is out of range whether the field is required (HELLO) or
// optional (ERROR, where absence is the canonical form).
func (d *CBORDecoder) versionList() ([]protocol.Version, error) {
	n, err := d.ArrayHeader(MaxVersions)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrFieldRange
	}
	l := make([]protocol.Version, n)
	for i := range l {
		v, err := d.uintMax(math.MaxUint32)
		if err != nil {
			return nil, err
		}
		if v == 0 {
			return nil, ErrFieldRange
		}
		l[i] = protocol.Version(v)
	}
	return l, nil
}

// textMap reads an optional text->text map of 1..MaxHeaders entries whose
// keys are 1..MaxHeaderKeyLen bytes, values at most MaxHeaderValueLen, and
// keys in strictly ascending deterministic order (JSP §6.2).
func (d *CBORDecoder) textMap() (map[string]string, error) {
	n, err := d.MapHeader(MaxHeaders)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrNonCanonical
	}
	m := make(map[string]string, n)
	var prev []byte
	for i := 0; i < n; i++ {
		k, err := d.TextBytes(MaxHeaderKeyLen)
		if err != nil {
			return nil, err
		}
		if len(k) == 0 {
			return nil, ErrFieldRange
		}
		if i > 0 {
			switch textKeyCompare(prev, k) {
			case 0:
				return nil, ErrDuplicateField
			case 1:
				return nil, ErrKeyOrder
			}
		}
		prev = k
		v, err := d.Text(MaxHeaderValueLen)
		if err != nil {
			return nil, err
		}
		m[string(k)] = v
	}
	return m, nil
}

// arena copies decoded byte strings out of the input. Decoded values never
// alias the caller's buffer (FrameReader reuses its buffer for the next
// frame), and one arena sized to the total needs a single allocation for all
// byte fields of a message.
type arena []byte

// clone copies p into the arena. nil stays nil so absent fields stay absent.
// The three-index slice keeps an append to one field from overwriting the
// next.
func (a *arena) clone(p []byte) []byte {
	if p == nil {
		return nil
	}
	s := len(*a)
	*a = append(*a, p...)
	return (*a)[s:len(*a):len(*a)]
}
