package wire

import (
	"bytes"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
)

var benchHeader = Header{Type: FrameEvent, Flags: FlagFIN.WithClass(protocol.ClassChat), StreamID: 1 << 20, Length: 70000}

func benchEnvelope(body int) Envelope {
	return Envelope{
		ID: []byte("01JD6W4T0F6Q5K9D1M3X4Y5Z7A"), Route: Route{Kind: RouteChannel, Name: "room.42"},
		Class: protocol.ClassChat, Timestamp: 1767225600000, Sender: "alice", Seq: 123456,
		Headers: map[string]string{"content-type": "text/plain"},
		Body:    bytes.Repeat([]byte("x"), body),
	}
}

func BenchmarkHeaderEncode(b *testing.B) {
	buf := make([]byte, 0, MaxHeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendHeader(buf[:0], benchHeader)
	}
}

func BenchmarkHeaderDecode(b *testing.B) {
	enc := AppendHeader(nil, benchHeader)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseHeader(enc, 1<<30); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEnvelopeEncode(b *testing.B) {
	e := benchEnvelope(64)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.Append(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkEnvelopeDecode(b *testing.B) {
	e := benchEnvelope(64)
	enc := e.Append(nil)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseEnvelope(enc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMessage1KiBEncode encodes a whole MESSAGE frame, header and
// envelope, with a 1 KiB body.
func BenchmarkMessage1KiBEncode(b *testing.B) {
	m := &EnvelopeFrame{Type: FrameMessage, Envelope: benchEnvelope(1024)}
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendMessage(buf[:0], Flags(0).WithClass(protocol.ClassChat), 0, m)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkMessage1KiBDecode parses the frame and decodes its envelope.
func BenchmarkMessage1KiBDecode(b *testing.B) {
	m := &EnvelopeFrame{Type: FrameMessage, Envelope: benchEnvelope(1024)}
	enc := AppendMessage(nil, 0, 0, m)
	max := uint64(DefaultLimits().MaxFrame)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		h, p, _, err := ParseFrame(enc, max)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeMessage(h.Type, p); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAllocs pins the allocation counts that the hot paths promise.
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation changes allocation counts")
	}
	hdr := AppendHeader(nil, benchHeader)
	buf := make([]byte, 0, 4096)
	e := benchEnvelope(1024)
	enc := e.Append(nil)
	ping := (&Ping{ID: 1, Timestamp: 2}).Append(nil)
	frag := AppendFragmentHeader(nil, FragmentHeader{MsgID: 9, Index: 1, Count: 2})
	badOrder := unhexMust("a2 02 82 00 61 63 01 41 01")
	badHeader := unhexMust("4010 00 00 00")
	tests := []struct {
		name string
		max  float64
		f    func()
	}{
		{"AppendHeader", 0, func() { buf = AppendHeader(buf[:0], benchHeader) }},
		{"ParseHeader", 0, func() { _, _, _ = ParseHeader(hdr, 1<<30) }},
		{"Envelope.Append with headers", 0, func() { buf = e.Append(buf[:0]) }},
		{"Envelope.SigningBytes", 0, func() { buf = e.SigningBytes(buf[:0]) }},
		{"ParsePing", 0, func() { _, _, _ = ParsePing(ping) }},
		{"ParseFragmentHeader", 0, func() { _, _, _ = ParseFragmentHeader(frag) }},
		{"ParseEnvelope key-order error", 0, func() { _, _, _ = ParseEnvelope(badOrder) }},
		{"ParseHeader non-minimal error", 0, func() { _, _, _ = ParseHeader(badHeader, 1<<30) }},
		// arena, route name, sender, headers map (two), one key, one value
		{"ParseEnvelope", 7, func() { _, _, _ = ParseEnvelope(enc) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got > tt.max {
			t.Errorf("%s: %v allocs per run, want <= %v", tt.name, got, tt.max)
		}
	}
}
