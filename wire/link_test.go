package wire

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/jetstreamproto/jsp/internal/protocol"
	"github.com/jetstreamproto/jsp/jsperr"
)

func TestVarintPayload(t *testing.T) {
	for _, v := range []uint64{0, 1, 63, 64, 1 << 20, MaxVarint} {
		p := AppendVarintPayload(nil, v)
		got, err := ParseVarintPayload(p)
		if err != nil || got != v {
			t.Errorf("%d: got %d, %v", v, got, err)
		}
	}
	tests := []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"4005", ErrNonMinimalVarint},
		{"0500", ErrTrailingBytes},
		{"80", ErrTruncated},
	}
	for _, tt := range tests {
		if _, err := ParseVarintPayload(unhex(t, tt.in)); err != tt.want {
			t.Errorf("%q: err = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestLinkClose(t *testing.T) {
	tests := []struct {
		name   string
		code   jsperr.Code
		reason string
	}{
		{"empty", jsperr.NoError, ""},
		{"ascii", jsperr.GoingAway, "restarting"},
		{"utf8", jsperr.ProtocolViolation, "d\u00e9j\u00e0 vu \u2013 \U0001f600"},
		{"at limit", jsperr.Internal, strings.Repeat("r", MaxCloseReasonLen)},
	}
	for _, tt := range tests {
		p := AppendLinkClose(nil, tt.code, tt.reason)
		c, r, err := ParseLinkClose(p)
		if err != nil || c != tt.code || r != tt.reason {
			t.Errorf("%s: got (%v, %q, %v)", tt.name, c, r, err)
		}
	}
	// A long reason is cut at a character boundary, never mid-rune.
	long := strings.Repeat("\u00e9", MaxCloseReasonLen) // 2 bytes each
	p := AppendLinkClose(nil, 1, "a"+long)
	_, r, err := ParseLinkClose(p)
	if err != nil || len(r) > MaxCloseReasonLen || !utf8.ValidString(r) {
		t.Fatalf("long reason: %d bytes, valid=%v, err=%v", len(r), utf8.ValidString(r), err)
	}
	// Invalid UTF-8 from a local error string is repaired, not sent.
	if _, r, err := ParseLinkClose(AppendLinkClose(nil, 1, "bad \xff byte")); err != nil || r != "bad \ufffd byte" {
		t.Fatalf("invalid UTF-8 reason: %q, %v", r, err)
	}
	bad := []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"non-minimal code", unhex(t, "4003"), ErrNonMinimalVarint},
	}
	for _, tt := range bad {
		if _, _, err := ParseLinkClose(tt.p); err != tt.want {
			t.Errorf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	// An invalid reason is dropped; the code survives.
	for _, p := range [][]byte{unhex(t, "03ff"), append([]byte{3}, strings.Repeat("r", MaxCloseReasonLen+1)...)} {
		if c, r, err := ParseLinkClose(p); err != nil || c != 3 || r != "" {
			t.Errorf("%.8x...: got (%v, %q, %v), want code 3 without reason", p, c, r, err)
		}
	}
}

func TestFragmentHeader(t *testing.T) {
	good := []FragmentHeader{
		{MsgID: 0, Index: 0, Count: 1},
		{MsgID: 1 << 40, Index: 5, Count: 6},
		{MsgID: MaxVarint, Index: MaxFragments - 1, Count: MaxFragments},
	}
	for _, h := range good {
		b := append(AppendFragmentHeader(nil, h), "data"...)
		got, n, err := ParseFragmentHeader(b)
		if err != nil || got != h || n != h.Len() || string(b[n:]) != "data" {
			t.Errorf("%+v: got %+v n=%d err=%v", h, got, n, err)
		}
	}
	bad := []struct {
		in   string
		want error
	}{
		{"", ErrTruncated},
		{"01", ErrTruncated},
		{"0100", ErrTruncated},
		{"010000", ErrBadFragment},
		{"010101", ErrBadFragment},
		{"01054041", ErrBadFragment},
		{"4001 00 01", ErrNonMinimalVarint},
	}
	for _, tt := range bad {
		if _, _, err := ParseFragmentHeader(unhex(t, tt.in)); err != tt.want {
			t.Errorf("%q: err = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func TestKindStrings(t *testing.T) {
	if KindEvent.String() != "event" || KindCommand.String() != "command" || KindReply.String() != "reply" ||
		KindNotification.String() != "notification" || Kind(9).String() != "kind(9)" {
		t.Error("Kind.String")
	}
	if RouteChannel.String() != "channel" || RouteUser.String() != "user" || RouteService.String() != "service" ||
		RouteKind(7).String() != "route(7)" {
		t.Error("RouteKind.String")
	}
}

func TestErrorMessageFromAndErr(t *testing.T) {
	e := &jsperr.Error{Code: jsperr.UnsupportedVersion, Reason: "want 2", Supported: []uint32{2, 3},
		RetryAfter: 1500 * time.Millisecond}
	m := ErrorMessageFrom(fmtWrap(e))
	if m.Code != jsperr.UnsupportedVersion || m.Reason != "want 2" || m.RetryAfterMS != 1500 ||
		len(m.Supported) != 2 || m.Supported[1] != 3 {
		t.Fatalf("ErrorMessageFrom = %+v", m)
	}
	r := m.Err()
	if !r.Remote || r.Code != e.Code || r.RetryAfter != e.RetryAfter || len(r.Supported) != 2 || !errors.Is(r, e) {
		t.Fatalf("Err() = %+v", r)
	}
	if m := ErrorMessageFrom(errors.New("disk on fire at /var/x")); m.Code != jsperr.Internal || m.Reason != "internal error" {
		t.Fatalf("plain error = %+v", m)
	}
	if m := ErrorMessageFrom(nil); m.Code != jsperr.NoError || m.Reason != "" {
		t.Fatalf("nil = %+v", m)
	}
	long := jsperr.New(jsperr.BadRequest, strings.Repeat("\u00e9", MaxReasonLen))
	if m := ErrorMessageFrom(long); len(m.Reason) > MaxReasonLen || !utf8.ValidString(m.Reason) {
		t.Fatalf("long reason not cut: %d bytes", len(m.Reason))
	}
}

func fmtWrap(err error) error { return errors.Join(errors.New("context"), err) }

func TestEnvelopeValidate(t *testing.T) {
	ok := func() Envelope { return Envelope{ID: []byte{1}, Route: Route{Name: "c"}} }
	tests := []struct {
		name string
		mod  func(*Envelope)
		want error
	}{
		{"ok", func(*Envelope) {}, nil},
		{"no id", func(e *Envelope) { e.ID = nil }, ErrFieldRange},
		{"long id", func(e *Envelope) { e.ID = make([]byte, MaxIDLen+1) }, ErrFieldRange},
		{"route kind", func(e *Envelope) { e.Route.Kind = 3 }, ErrFieldRange},
		{"no route name", func(e *Envelope) { e.Route.Name = "" }, ErrFieldRange},
		{"long route name", func(e *Envelope) { e.Route.Name = strings.Repeat("c", MaxRouteNameLen+1) }, ErrFieldRange},
		{"kind", func(e *Envelope) { e.Kind = 4 }, ErrFieldRange},
		{"class", func(e *Envelope) { e.Class = protocol.NumClasses }, ErrFieldRange},
		{"sender", func(e *Envelope) { e.Sender = strings.Repeat("s", MaxSenderLen+1) }, ErrFieldRange},
		{"reply_to", func(e *Envelope) { e.ReplyTo = make([]byte, MaxIDLen+1) }, ErrFieldRange},
		{"nonce", func(e *Envelope) { e.Nonce = make([]byte, MaxNonceLen+1) }, ErrFieldRange},
		{"signature", func(e *Envelope) { e.Signature = make([]byte, 10) }, ErrFieldRange},
		{"headers", func(e *Envelope) {
			e.Headers = map[string]string{}
			for i := 0; i <= MaxHeaders; i++ {
				e.Headers[strings.Repeat("k", i+1)] = ""
			}
		}, ErrFieldRange},
		{"empty header key", func(e *Envelope) { e.Headers = map[string]string{"": "v"} }, ErrFieldRange},
		{"err_reason", func(e *Envelope) { e.ErrReason = strings.Repeat("r", MaxReasonLen+1) }, ErrFieldRange},
		{"body", func(e *Envelope) { e.Body = make([]byte, protocol.DefaultMaxMessageSize+1) }, ErrMessageTooLarge},
	}
	for _, tt := range tests {
		e := ok()
		tt.mod(&e)
		err := e.Validate(nil)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: Validate = %v, want %v", tt.name, err, tt.want)
		}
		// Whatever Validate accepts, the decoder accepts.
		if err == nil {
			if _, _, err := ParseEnvelope(e.Append(nil)); err != nil {
				t.Errorf("%s: valid envelope does not decode: %v", tt.name, err)
			}
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		s    string
		max  int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"a\u00e9", 2, "a"},
		{"\U0001f600x", 3, ""},
		{"\U0001f600x", 4, "\U0001f600"},
	}
	for _, tt := range tests {
		if got := truncateUTF8(tt.s, tt.max); got != tt.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tt.s, tt.max, got, tt.want)
		}
	}
}

// TestSigningBytes: the signature covers the envelope without key 11 and
// without the fields the server sets (7 sender, 9 seq), so signing, and the
// server's stamping on delivery, do not change what is signed.
func TestSigningBytes(t *testing.T) {
	e := Envelope{ID: []byte{1}, Route: Route{Name: "c"}, Nonce: []byte{9}, Timestamp: 5, Body: []byte("b")}
	unsigned := e.SigningBytes(nil)
	if string(unsigned[len(SigningContext):]) != string(e.Append(nil)) {
		t.Fatalf("signing bytes are not the unsigned encoding")
	}
	e.Signature = make([]byte, SignatureLen)
	e.Sender, e.Seq = "alice", 42
	if got := e.SigningBytes(nil); string(got) != string(unsigned) {
		t.Fatalf("signing bytes change with signature, sender or seq")
	}
	for name, mod := range map[string]func(*Envelope){
		"body":    func(e *Envelope) { e.Body = []byte("c") },
		"route":   func(e *Envelope) { e.Route.Kind = RouteUser },
		"nonce":   func(e *Envelope) { e.Nonce = []byte{8} },
		"ts":      func(e *Envelope) { e.Timestamp = 6 },
		"headers": func(e *Envelope) { e.Headers = map[string]string{"k": "v"} },
	} {
		c := e
		mod(&c)
		if string(c.SigningBytes(nil)) == string(unsigned) {
			t.Errorf("signing bytes do not cover %s", name)
		}
	}
}
