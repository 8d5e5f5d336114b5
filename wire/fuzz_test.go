package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/jetstreamproto/jsp/jsperr"
)

// Fuzz targets for every decoder, seeded from encoder output and from the
// vectors in spec/vectors. Each checks that the decoder never panics, that
// every error carries a registry code, and that whatever decodes re-encodes
// to a fixed point: byte for byte when the input had no unknown keys.

// addVectorSeeds adds the hex of every vector of the given type.
func addVectorSeeds(f *testing.F, typ string) {
	for _, file := range loadVectorFiles(f) {
		for _, v := range file.Vectors {
			if v.Type == typ {
				b, err := hex.DecodeString(v.Hex)
				if err != nil {
					f.Fatal(err)
				}
				f.Add(b)
			}
		}
	}
}

// checkCoded fails unless err is a protocol error with a registry code.
func checkCoded(t *testing.T, err error) {
	t.Helper()
	var e *jsperr.Error
	if !errors.As(err, &e) || !e.Code.Known() {
		t.Fatalf("error without a registry code: %v", err)
	}
}

func fuzzMessage(f *testing.F, typ string) {
	for _, s := range samples() {
		if typeName(s.msg) == typ {
			f.Add(s.msg.Append(nil))
		}
	}
	addVectorSeeds(f, typ)
	parse := parsers[typ]
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := parse(b)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		re := m.Append(nil)
		if len(re) != m.Len() {
			t.Fatalf("Len() = %d, encoding %d", m.Len(), len(re))
		}
		// Skipped unknown keys make the re-encoding shorter; otherwise the
		// decoder accepted only the deterministic form, so it is identical.
		switch {
		case len(re) > n:
			t.Fatalf("re-encoding longer than input: %x -> %x", b[:n], re)
		case len(re) == n && !bytes.Equal(re, b[:n]):
			t.Fatalf("re-encoding differs: %x -> %x", b[:n], re)
		}
		m2, n2, err := parse(re)
		if err != nil || n2 != len(re) {
			t.Fatalf("re-encoding %x does not parse: n=%d err=%v", re, n2, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoding changes the value:\n%#v\n%#v", m, m2)
		}
		if e, ok := m.(*EnvelopeFrame); ok {
			// The signing bytes are the encoding without keys 7, 9 and 11.
			sb := e.Envelope.SigningBytes(nil)
			if string(sb[:len(SigningContext)]) != SigningContext {
				t.Fatalf("signing bytes lack the context")
			}
			u, _, err := ParseEnvelope(sb[len(SigningContext):])
			want := e.Envelope
			want.Signature, want.Sender, want.Seq = nil, "", 0
			if err != nil || !reflect.DeepEqual(u, want) {
				t.Fatalf("signing bytes do not decode to the unsigned envelope: %v", err)
			}
		}
	})
}

func FuzzEnvelope(f *testing.F)     { fuzzMessage(f, "envelope") }
func FuzzHello(f *testing.F)        { fuzzMessage(f, "hello") }
func FuzzWelcome(f *testing.F)      { fuzzMessage(f, "welcome") }
func FuzzErrorMessage(f *testing.F) { fuzzMessage(f, "error") }
func FuzzPing(f *testing.F)         { fuzzMessage(f, "ping") }
func FuzzPong(f *testing.F)         { fuzzMessage(f, "pong") }
func FuzzGoaway(f *testing.F)       { fuzzMessage(f, "goaway") }
func FuzzAck(f *testing.F)          { fuzzMessage(f, "ack") }
func FuzzNack(f *testing.F)         { fuzzMessage(f, "nack") }
func FuzzSubscribe(f *testing.F)    { fuzzMessage(f, "subscribe") }
func FuzzUnsubscribe(f *testing.F)  { fuzzMessage(f, "unsubscribe") }
func FuzzStreamOpen(f *testing.F)   { fuzzMessage(f, "stream_open") }
func FuzzDatagram(f *testing.F)     { fuzzMessage(f, "datagram") }
func FuzzAnnounce(f *testing.F)     { fuzzMessage(f, "announce") }

func FuzzVarint(f *testing.F) {
	for _, v := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, MaxVarint} {
		f.Add(AppendVarint(nil, v))
	}
	addVectorSeeds(f, "varint")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ParseVarint(b)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if n != VarintLen(v) || !bytes.Equal(AppendVarint(nil, v), b[:n]) {
			t.Fatalf("%x -> %d does not re-encode", b[:n], v)
		}
	})
}

func FuzzHeader(f *testing.F) {
	f.Add(AppendHeader(nil, Header{Type: FrameHello, Length: 12}))
	f.Add(AppendHeader(nil, Header{Type: FrameStream, Flags: 0xff, StreamID: MaxVarint, Length: 1 << 20}))
	addVectorSeeds(f, "header")
	max := uint64(DefaultLimits().MaxFrame)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseHeader(b, max)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if h.Length > max || n != h.Len() || !bytes.Equal(AppendHeader(nil, h), b[:n]) {
			t.Fatalf("%x -> %v does not re-encode", b[:n], h)
		}
	})
}

// FuzzFrame decodes a byte stream as a sequence of frames, decoding each
// session payload, and checks that FrameReader reads the same frames.
func FuzzFrame(f *testing.F) {
	var all []byte
	for _, s := range samples() {
		fr := AppendMessage(nil, 0, 4, s.msg)
		f.Add(fr)
		all = append(all, fr...)
	}
	f.Add(all)
	addVectorSeeds(f, "frame")
	max := uint64(DefaultLimits().MaxFrame)
	f.Fuzz(func(t *testing.T, b []byte) {
		type frame struct {
			h Header
			p []byte
		}
		var frames []frame
		rest := b
		var perr error
		for len(rest) > 0 {
			h, p, n, err := ParseFrame(rest, max)
			if err != nil {
				checkCoded(t, err)
				perr = err
				break
			}
			frames = append(frames, frame{h, p})
			rest = rest[n:]
			m, err := DecodeMessage(h.Type, p)
			switch {
			case errors.Is(err, ErrUnknownFrame):
			case err != nil:
				checkCoded(t, err)
			default:
				if m.FrameType() != h.Type {
					t.Fatalf("%v decoded as %v", h.Type, m.FrameType())
				}
			}
		}
		// A 16-byte buffer (bufio's minimum) keeps each run cheap and makes
		// the reader refill inside headers and payloads.
		fr := NewFrameReader(bufio.NewReaderSize(bytes.NewReader(b), 16), max)
		for i := 0; ; i++ {
			h, p, err := fr.ReadFrame()
			if err != nil {
				if i < len(frames) {
					t.Fatalf("FrameReader stopped at frame %d of %d: %v", i, len(frames), err)
				}
				if perr == nil && err != io.EOF {
					t.Fatalf("FrameReader: %v after all frames", err)
				}
				if perr != nil && jsperr.CodeOf(err) != jsperr.CodeOf(perr) {
					t.Fatalf("FrameReader error %v, ParseFrame error %v", err, perr)
				}
				break
			}
			if i >= len(frames) || h != frames[i].h || !bytes.Equal(p, frames[i].p) {
				t.Fatalf("FrameReader frame %d differs", i)
			}
		}
	})
}

// FuzzDecodeMessage dispatches arbitrary payloads by an arbitrary type.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range samples() {
		f.Add(uint16(s.msg.FrameType()), s.msg.Append(nil))
	}
	f.Fuzz(func(t *testing.T, ft uint16, p []byte) {
		m, err := DecodeMessage(FrameType(ft), p)
		switch {
		case errors.Is(err, ErrUnknownFrame):
			if FrameType(ft).Known() {
				t.Fatalf("known type %v reported unknown", FrameType(ft))
			}
		case err != nil:
			checkCoded(t, err)
		default:
			if m.FrameType() != FrameType(ft) {
				t.Fatalf("%v decoded as %v", FrameType(ft), m.FrameType())
			}
			if re := m.Append(nil); len(re) > len(p) || (len(re) == len(p) && !bytes.Equal(re, p)) {
				t.Fatalf("re-encoding %x of %x", re, p)
			}
		}
	})
}

func FuzzFragmentHeader(f *testing.F) {
	f.Add(AppendFragmentHeader(nil, FragmentHeader{MsgID: 1, Index: 0, Count: 1}))
	f.Add(AppendFragmentHeader(nil, FragmentHeader{MsgID: MaxVarint, Index: 63, Count: 64}))
	addVectorSeeds(f, "fragment_header")
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := ParseFragmentHeader(b)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if h.Count == 0 || h.Count > MaxFragments || h.Index >= h.Count {
			t.Fatalf("accepted %+v", h)
		}
		if n != h.Len() || !bytes.Equal(AppendFragmentHeader(nil, h), b[:n]) {
			t.Fatalf("%x -> %+v does not re-encode", b[:n], h)
		}
	})
}

func FuzzLinkVarint(f *testing.F) {
	f.Add(AppendVarintPayload(nil, 0))
	f.Add(AppendVarintPayload(nil, 262144))
	addVectorSeeds(f, "varint_payload")
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVarintPayload(b)
		if err != nil {
			checkCoded(t, err)
			return
		}
		if !bytes.Equal(AppendVarintPayload(nil, v), b) {
			t.Fatalf("%x -> %d does not re-encode", b, v)
		}
	})
}

func FuzzLinkClose(f *testing.F) {
	f.Add(AppendLinkClose(nil, jsperr.GoingAway, "restarting"))
	f.Add(AppendLinkClose(nil, 0, ""))
	addVectorSeeds(f, "link_close")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, r, err := ParseLinkClose(b)
		if err != nil {
			checkCoded(t, err)
			return
		}
		re := AppendLinkClose(nil, c, r)
		if len(r) > MaxCloseReasonLen || (r != "" && !bytes.Equal(re, b)) {
			t.Fatalf("%x -> (%d, %q) does not re-encode", b, c, r)
		}
		if c2, r2, err := ParseLinkClose(re); err != nil || c2 != c || r2 != r {
			t.Fatalf("re-encoding %x does not decode to (%d, %q)", re, c, r)
		}
	})
}

// FuzzCBORSkip checks that Skip accepts exactly what it can walk: it never
// panics, consumes within bounds, and a skipped item skips again the same.
func FuzzCBORSkip(f *testing.F) {
	for _, s := range samples() {
		f.Add(s.msg.Append(nil))
	}
	f.Add(unhexMust("c11a514b67b0"))
	f.Add(unhexMust("fb3ff199999999999a"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := NewCBORDecoder(b)
		if err := d.Skip(); err != nil {
			checkCoded(t, err)
			return
		}
		n := d.Offset()
		if n <= 0 || n > len(b) {
			t.Fatalf("consumed %d of %d", n, len(b))
		}
		d2 := NewCBORDecoder(b[:n])
		if err := d2.Skip(); err != nil || d2.Remaining() != 0 {
			t.Fatalf("item %x does not skip alone: %v", b[:n], err)
		}
	})
}
