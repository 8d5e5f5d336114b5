package wire

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if l.MaxFrame != protocol.DefaultMaxFrameSize || l.MaxMessage != protocol.DefaultMaxMessageSize ||
		l.MaxStreams != protocol.DefaultMaxStreams || l.MaxDatagram != protocol.DefaultMaxDatagramPayload ||
		l.MaxDatagramMessage != protocol.DefaultMaxDatagramMessage {
		t.Fatalf("DefaultLimits() = %+v", l)
	}
	var zero Limits
	if got := zero.withDefaults(); got != l {
		t.Fatalf("zero limits with defaults = %+v", got)
	}
	if got := (*Limits)(nil).withDefaults(); got != l {
		t.Fatalf("nil limits with defaults = %+v", got)
	}
	if err := zero.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	bad := []Limits{
		{MaxFrame: -1},
		{MaxMessage: 2 << 20},
		{MaxDatagram: 128 << 10},
		{MaxStreams: 1 << 40},
		{MaxFrame: MaxVarint + 1, MaxMessage: 1},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", b)
		}
	}
}

// TestNamedLimits checks every fixed limit of JSP §9: a value at the limit
// decodes, one past it fails with the registry code the spec names.
// (MaxCloseReasonLen, which drops the reason instead, is in TestLinkClose;
// MaxCBORDepth in TestCBORSkip; MaxDatagram in TestDecodeMessage.)
func TestNamedLimits(t *testing.T) {
	s := func(n int) string { return strings.Repeat("x", n) }
	b := func(n int) []byte { return make([]byte, n+1)[1:] } // non-nil even when n == 0
	hdrs := func(n int) map[string]string {
		m := map[string]string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("k%03d", i)] = "v"
		}
		return m
	}
	strs := func(n, l int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = s(l)
		}
		return out
	}
	e := func(mod func(*Envelope)) []byte {
		m := Envelope{ID: []byte{1}, Route: Route{Name: "c"}}
		mod(&m)
		return m.Append(nil)
	}
	envParse := func(p []byte) error { _, _, err := ParseEnvelope(p); return err }
	helloParse := func(p []byte) error { _, _, err := ParseHello(p); return err }
	welParse := func(p []byte) error { _, _, err := ParseWelcome(p); return err }
	errParse := func(p []byte) error { _, _, err := ParseErrorMessage(p); return err }
	ackParse := func(p []byte) error { _, _, err := ParseAck(p); return err }
	tests := []struct {
		name  string
		limit int
		build func(n int) []byte
		parse func([]byte) error
		code  jsperr.Code
	}{
		{"MaxIDLen", MaxIDLen, func(n int) []byte { return e(func(m *Envelope) { m.ID = b(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxRouteNameLen", MaxRouteNameLen, func(n int) []byte { return e(func(m *Envelope) { m.Route.Name = s(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxSenderLen", MaxSenderLen, func(n int) []byte { return e(func(m *Envelope) { m.Sender = s(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxNonceLen", MaxNonceLen, func(n int) []byte { return e(func(m *Envelope) { m.Nonce = b(n) }) }, envParse, jsperr.InvalidCbor},
		{"SignatureLen", SignatureLen, func(n int) []byte { return e(func(m *Envelope) { m.Signature = b(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxHeaders", MaxHeaders, func(n int) []byte { return e(func(m *Envelope) { m.Headers = hdrs(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxHeaderKeyLen", MaxHeaderKeyLen, func(n int) []byte {
			return e(func(m *Envelope) { m.Headers = map[string]string{s(n): ""} })
		}, envParse, jsperr.InvalidCbor},
		{"MaxHeaderValueLen", MaxHeaderValueLen, func(n int) []byte {
			return e(func(m *Envelope) { m.Headers = map[string]string{"k": s(n)} })
		}, envParse, jsperr.InvalidCbor},
		{"MaxReasonLen envelope", MaxReasonLen, func(n int) []byte { return e(func(m *Envelope) { m.ErrReason = s(n) }) }, envParse, jsperr.InvalidCbor},
		{"MaxMessage", int(protocol.DefaultMaxMessageSize), func(n int) []byte { return e(func(m *Envelope) { m.Body = b(n) }) }, envParse, jsperr.MessageTooLarge},
		{"MaxVersions", MaxVersions, func(n int) []byte {
			h := Hello{Versions: make([]protocol.Version, n)}
			for i := range h.Versions {
				h.Versions[i] = 1
			}
			return h.Append(nil)
		}, helloParse, jsperr.InvalidCbor},
		{"MaxNameLen", MaxNameLen, func(n int) []byte {
			h := Hello{Versions: []protocol.Version{1}, ClientName: s(n)}
			return h.Append(nil)
		}, helloParse, jsperr.InvalidCbor},
		{"MaxAuthLen", MaxAuthLen, func(n int) []byte { h := Hello{Versions: []protocol.Version{1}, Auth: b(n)}; return h.Append(nil) }, helloParse, jsperr.InvalidCbor},
		{"MaxCaps", MaxCaps, func(n int) []byte {
			h := Hello{Versions: []protocol.Version{1}, Caps: strs(n, 1)}
			return h.Append(nil)
		}, helloParse, jsperr.InvalidCbor},
		{"MaxCapLen", MaxCapLen, func(n int) []byte {
			h := Hello{Versions: []protocol.Version{1}, Caps: strs(1, n)}
			return h.Append(nil)
		}, helloParse, jsperr.InvalidCbor},
		{"MaxTokenLen", MaxTokenLen, func(n int) []byte {
			w := Welcome{Version: 1, SessionID: []byte{1}, ResumeToken: b(n)}
			return w.Append(nil)
		}, welParse, jsperr.InvalidCbor},
		{"MaxGateways", MaxGateways, func(n int) []byte {
			w := Welcome{Version: 1, SessionID: []byte{1}, Gateways: strs(n, 3)}
			return w.Append(nil)
		}, welParse, jsperr.InvalidCbor},
		{"MaxReasonLen error", MaxReasonLen, func(n int) []byte { m := ErrorMessage{Code: 1, Reason: s(n)}; return m.Append(nil) }, errParse, jsperr.InvalidCbor},
		{"MaxAckIDs", MaxAckIDs, func(n int) []byte {
			a := Ack{IDs: make([][]byte, n)}
			for i := range a.IDs {
				a.IDs[i] = []byte{1}
			}
			return a.Append(nil)
		}, ackParse, jsperr.InvalidCbor},
		{"MaxAckCursors", MaxAckCursors, func(n int) []byte { a := Ack{Cursors: make([]Cursor, n)}; fillCursors(a.Cursors); return a.Append(nil) }, ackParse, jsperr.InvalidCbor},
		{"MaxNackSeqs", MaxNackSeqs, func(n int) []byte { m := Nack{Seqs: make([]uint64, n)}; return m.Append(nil) }, func(p []byte) error { _, _, err := ParseNack(p); return err }, jsperr.InvalidCbor},
		{"MaxFragments", MaxFragments, func(n int) []byte {
			return AppendFragmentHeader(nil, FragmentHeader{MsgID: 1, Index: 0, Count: uint16(n)})
		}, func(p []byte) error { _, _, err := ParseFragmentHeader(p); return err }, jsperr.MalformedFrame},
		{"maxBodyFields", maxBodyFields, func(n int) []byte {
			p := AppendCBORMapHeader(nil, n)
			for i := 0; i < n; i++ {
				p = append(AppendCBORUint(p, uint64(i+20)), 0)
			}
			return p
		}, func(p []byte) error { _, _, err := ParsePing(p); return err }, jsperr.InvalidCbor},
	}
	for _, tt := range tests {
		if err := tt.parse(tt.build(tt.limit)); err != nil {
			t.Errorf("%s: at limit %d: %v", tt.name, tt.limit, err)
		}
		if err := tt.parse(tt.build(tt.limit + 1)); jsperr.CodeOf(err) != tt.code {
			t.Errorf("%s: over limit: err = %v, want %s", tt.name, err, tt.code)
		}
	}
}

func fillCursors(cs []Cursor) {
	for i := range cs {
		cs[i] = Cursor{Channel: "c", Seq: uint64(i)}
	}
}

func TestLimitsParseEnvelope(t *testing.T) {
	m := Envelope{ID: []byte{1}, Route: Route{Name: "c"}, Body: make([]byte, 100)}
	enc := m.Append(nil)
	small := Limits{MaxMessage: 99}
	if _, _, err := small.ParseEnvelope(enc); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("body over a negotiated limit: err = %v", err)
	}
	if _, err := small.DecodeMessage(FrameMessage, enc); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("DecodeMessage over a negotiated limit: err = %v", err)
	}
	exact := Limits{MaxMessage: 100}
	if _, _, err := exact.ParseEnvelope(enc); err != nil {
		t.Fatalf("body at a negotiated limit: %v", err)
	}
	if err := m.Validate(&small); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("Validate over limit = %v", err)
	}
	if err := m.Validate(nil); err != nil {
		t.Fatalf("Validate = %v", err)
	}
}
