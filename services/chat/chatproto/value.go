// Package chatproto is the wire format of the chat service's commands
// (spec/JSP-chat.md §3): the COMMAND body is a [Request] and the REPLY
// body a [Response], both CBOR maps with small unsigned integer keys in
// deterministic order (JSP §6). The SDK (client/chat) and the service
// (services/chat) share it.
//
// The bodies are built from a small generic CBOR value model ([Map]):
// unsigned integers, text, byte strings, booleans, arrays and nested maps,
// which is all the chat bodies use. The decoder is bounded (MaxBodyBytes,
// maxDepth, maxItems) and skips nothing silently: unknown keys are kept in
// the Map and ignored by the typed decoders (JSP §8.3).
package chatproto

import (
	"errors"
	"fmt"
	"slices"

	"github.com/jetstreamproto/jsp/wire"
)

// Limits of the value decoder.
const (
	// MaxBodyBytes caps a request or response body.
	MaxBodyBytes = 4 << 20
	// maxDepth caps nesting (a response is at most 4 deep).
	maxDepth = 6
	// maxItems caps one array or map.
	maxItems = 100000
	// maxStr caps one text or byte string.
	maxStr = 1 << 20
)

// ErrInvalid is wrapped by every decoding failure.
var ErrInvalid = errors.New("chatproto: invalid body")

// Map is a CBOR map with unsigned integer keys. Values are uint64, string,
// []byte, bool, []any or Map.
type Map map[uint64]any

// Append appends the deterministic encoding of m: keys ascending.
func (m Map) Append(b []byte) []byte {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = wire.AppendCBORMapHeader(b, len(keys))
	for _, k := range keys {
		b = wire.AppendCBORUint(b, k)
		b = appendValue(b, m[k])
	}
	return b
}

func appendValue(b []byte, v any) []byte {
	switch x := v.(type) {
	case uint64:
		return wire.AppendCBORUint(b, x)
	case string:
		return wire.AppendCBORText(b, x)
	case []byte:
		return wire.AppendCBORBytes(b, x)
	case bool:
		return wire.AppendCBORBool(b, x)
	case []any:
		b = wire.AppendCBORArrayHeader(b, len(x))
		for _, e := range x {
			b = appendValue(b, e)
		}
		return b
	case Map:
		return x.Append(b)
	}
	// Only the types above are ever stored in a Map by this package.
	panic(fmt.Sprintf("chatproto: cannot encode %T", v))
}

// DecodeMap decodes one map that fills data exactly.
func DecodeMap(data []byte) (Map, error) {
	if len(data) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: %d bytes over %d", ErrInvalid, len(data), MaxBodyBytes)
	}
	d := wire.NewCBORDecoder(data)
	m, err := decodeMap(&d, data, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if d.Remaining() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalid, d.Remaining())
	}
	return m, nil
}

func decodeMap(d *wire.CBORDecoder, data []byte, depth int) (Map, error) {
	it, err := d.Map(maxItems)
	if err != nil {
		return nil, err
	}
	m := Map{}
	for {
		k, ok, err := it.Next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return m, nil
		}
		v, err := decodeValue(d, data, depth+1)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", k, err)
		}
		m[k] = v
	}
}

func decodeValue(d *wire.CBORDecoder, data []byte, depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	if d.Remaining() == 0 {
		return nil, wire.ErrTruncated
	}
	// The major type is the top three bits of the next byte (RFC 8949
	// §3); the typed reads below check the rest.
	switch data[d.Offset()] >> 5 {
	case 0:
		return d.Uint()
	case 2:
		b, err := d.Bytes(maxStr)
		return slices.Clone(b), err
	case 3:
		return d.Text(maxStr)
	case 4:
		n, err := d.ArrayHeader(maxItems)
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, n)
		for range n {
			v, err := decodeValue(d, data, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case 5:
		return decodeMap(d, data, depth)
	case 7:
		return d.Bool()
	}
	return nil, fmt.Errorf("unsupported CBOR major type %d", data[d.Offset()]>>5)
}

// Typed getters: each returns the zero value when the key is absent and an
// error when it holds another type.

func typeErr(k uint64, want string, v any) error {
	return fmt.Errorf("%w: key %d is %T, want %s", ErrInvalid, k, v, want)
}

// Str returns the text at k.
func (m Map) Str(k uint64) (string, error) {
	v, ok := m[k]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", typeErr(k, "text", v)
	}
	return s, nil
}

// Uint returns the unsigned integer at k.
func (m Map) Uint(k uint64) (uint64, error) {
	v, ok := m[k]
	if !ok {
		return 0, nil
	}
	u, ok := v.(uint64)
	if !ok {
		return 0, typeErr(k, "uint", v)
	}
	return u, nil
}

// Bool returns the boolean at k.
func (m Map) Bool(k uint64) (bool, error) {
	v, ok := m[k]
	if !ok {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, typeErr(k, "bool", v)
	}
	return b, nil
}

// Bytes returns the byte string at k.
func (m Map) Bytes(k uint64) ([]byte, error) {
	v, ok := m[k]
	if !ok {
		return nil, nil
	}
	b, ok := v.([]byte)
	if !ok {
		return nil, typeErr(k, "bytes", v)
	}
	return b, nil
}

// Strs returns the array of text at k.
func (m Map) Strs(k uint64) ([]string, error) {
	v, ok := m[k]
	if !ok {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, typeErr(k, "array", v)
	}
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok {
			return nil, typeErr(k, "array of text", e)
		}
		out = append(out, s)
	}
	return out, nil
}

// Maps returns the array of maps at k.
func (m Map) Maps(k uint64) ([]Map, error) {
	v, ok := m[k]
	if !ok {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, typeErr(k, "array", v)
	}
	out := make([]Map, 0, len(a))
	for _, e := range a {
		mm, ok := e.(Map)
		if !ok {
			return nil, typeErr(k, "array of maps", e)
		}
		out = append(out, mm)
	}
	return out, nil
}

// setters skip zero values so that absent and zero encode alike.

func (m Map) putStr(k uint64, s string) {
	if s != "" {
		m[k] = s
	}
}

func (m Map) putUint(k, u uint64) {
	if u != 0 {
		m[k] = u
	}
}

func (m Map) putBool(k uint64, b bool) {
	if b {
		m[k] = true
	}
}

func (m Map) putBytes(k uint64, b []byte) {
	if len(b) > 0 {
		m[k] = b
	}
}

func (m Map) putStrs(k uint64, l []string) {
	if len(l) == 0 {
		return
	}
	a := make([]any, len(l))
	for i, s := range l {
		a[i] = s
	}
	m[k] = a
}

func (m Map) putMaps(k uint64, l []Map) {
	if len(l) == 0 {
		return
	}
	a := make([]any, len(l))
	for i, x := range l {
		a[i] = x
	}
	m[k] = a
}
